"""Practice insight for one council: its extract (and the published data) in, a result object out (no words).

1. **Groupings of need**: latent class analysis of the assessment factors (stats.latent_class),
   the number of classes by BIC, stability by adjusted Rand index, classes named from their most
   distinctive factors and set beside Hood et al. (2023); per grouping, its share of assessments and
   how soon its children come back (Kaplan-Meier and Cox from the survival analysis, clustered by child).
2. **Practice patterns**: changes of allocated worker, weeks from referral to assessment authorised,
   plan (none, child in need, child protection) and its length, the team that held the case at
   closure, each in one Cox model of re-referral clustered by child, adjusted for need, age,
   previous referrals and disability: association, not cause.
3. **Disproportionality**: children referred per 10,000 children by ethnic group (ONS 0-17 times
   the group's Census 2021 share, all ages) and the relative rate index against the council's
   overall rate; what happens after referral (assessed, on a plan, on a child protection plan,
   re-referred within 12 months) by ethnicity, sex, disability and age, against the council's overall share.
4. **Published context**: the council's factor profile against England and its neighbours, workforce,
   and its place on the deprivation-adjusted funnel (analyses.published_practice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from insightlib import reference
from insightlib.analyses import published_practice as pub
from insightlib.analyses import rereferral
from insightlib.analyses.practice_disproportionality import after_referral, population_rates
from insightlib.analyses.practice_groupings import (
    CLASS_RANGE,
    MIN_FACTOR_SHARE,
    Groupings,
    grouping_of_episodes,
    grouping_survival,
    groupings,
)
from insightlib.analyses.practice_patterns import Patterns, episode_practice, practice_patterns, previous_band
from insightlib.errors import InputError
from insightlib.ingest.episodes import at_risk, build_episodes
from insightlib.stats.threads import one_thread

# --- the whole analysis -----------------------------------------------------------------------


@dataclass
class PracticeResult:
    la_code: str
    la_name: str
    parameters: dict
    groupings: Groupings | None
    patterns: Patterns | None
    population: pd.DataFrame | None
    after_referral: pd.DataFrame
    profile: pd.DataFrame | None
    trend: pd.DataFrame | None
    workforce: pd.DataFrame | None
    funnel: object  # stats.deprivation_funnel.DeprivationFunnel (all councils)
    turnover: tuple
    notes: list = field(default_factory=list)
    extract_date: object = None
    episodes: int = 0
    rereferral_counts: dict = field(default_factory=dict)  # ingest.episodes' counts and the episodes followed up

    def to_dict(self) -> dict:
        out = {"la_name": self.la_name, "episodes": self.episodes, "notes": self.notes}
        if self.groupings is not None:
            out["groupings"] = self.groupings.to_dict()
        if self.patterns is not None:
            out["practice_patterns"] = self.patterns.to_dict()
        if self.funnel is not None and self.la_code in set(self.funnel.table["la_code"]):
            row = self.funnel.table.set_index("la_code").loc[self.la_code]
            out["deprivation_funnel"] = {
                "year": self.funnel.table.attrs.get("year"),
                "rate_per_10000": row["rate"],
                "expected_rate_per_10000": row["expected_rate"],
                "ratio": row["ratio"],
                "lower_95": row["lower_95"],
                "upper_95": row["upper_95"],
                "verdict": row["verdict"],
                "tau2": self.funnel.tau2,
                "slope_per_idaci_point": self.funnel.coef["slope"],
            }
        d, c = self.turnover
        out["turnover_and_rereferral"] = c
        return out


@one_thread()  # a council's matrices are small (stats.threads)
def analyse(
    tables: dict,
    la_code: str,
    *,
    seed: int = 0,
    period_days: int = 365,
    ks=CLASS_RANGE,
    stability_checks: bool = True,
    min_group_size: int = 20,
    published: bool = True,
) -> PracticeResult:
    """The practice analysis of one council's tables (warehouse.read_council), with the published context."""
    notes = []
    episodes, rereferral_counts = practice_episodes(tables)
    g = None
    asm = tables.get("assessments")
    if asm is not None and len(asm):
        g = _attempt(notes, groupings, asm, seed=seed, ks=ks, stability_checks=stability_checks)
        if g is not None:
            episodes["grouping"] = grouping_of_episodes(g, asm, episodes)
            notes += grouping_survival(g, episodes[episodes["grouping"].notna()], min_group_size)
    pat = _attempt(notes, practice_patterns, episodes, min_group_size)
    pop = _attempt(notes, population_rates, tables, la_code, period_days)
    profile, trend, workforce = _published_context(la_code, notes) if published else (None, None, None)
    return PracticeResult(
        la_code,
        reference.council_name(la_code),
        {
            "seed": seed,
            "period_days": period_days,
            "classes_tried": [min(ks), max(ks)],
            "min_group_size": min_group_size,
            "min_factor_share": MIN_FACTOR_SHARE,
        },
        g,
        pat,
        pop,
        after_referral(tables),
        profile,
        trend,
        workforce,
        pub.children_in_need_funnel(),
        pub.turnover_and_rereferral(),
        notes,
        pd.to_datetime(tables["councils"]["extract_date"]).max(),
        int(len(episodes)),
        rereferral_counts,
    )


def practice_episodes(tables: dict) -> tuple[pd.DataFrame, dict]:
    """The council's episodes at risk with their groupings and practice measures; and the re-referral
    report's "what happened" counts (its episodes followed up: those with any follow-up), so that this
    report publishes the referrals in the extract only where that report does (report.rereferral)."""
    built, counts = build_episodes(tables, with_counts=True)
    rereferral_counts = {"counts": counts.to_dict(), "followed_up": int((built["duration_days"] > 0).sum())}
    episodes = rereferral.add_groupings(at_risk(built), None)  # interventions are not used here
    episodes["previous_referrals_band"] = previous_band(episodes["previous_referrals"])
    return episodes.join(episode_practice(tables, episodes)), rereferral_counts


def _attempt(notes: list[str], step, *args, **kwargs):
    """One step of the analysis, or None with its message in the notes where the data cannot support it."""
    try:
        return step(*args, **kwargs)
    except InputError as exc:
        notes.append(str(exc))
        return None


def _published_context(la_code: str, notes: list[str]) -> tuple:
    """The council's published factor profile, its trend in the top five factors and its workforce."""
    profile = trend = workforce = None
    try:
        profile = pub.factor_profile(la_code)
        trend = pub.factor_trend(la_code, profile["factor"].head(5))
        workforce = pub.workforce_profile(la_code)
    except InputError as exc:
        notes.append(str(exc))
    return profile, trend, workforce
