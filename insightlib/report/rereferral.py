"""The re-referral report: the estimates of analyses/rereferral.py in sentences, with their tables
(report/rereferral_tables.py) and figures (report/rereferral_charts.py). Every figure it words or
tabulates passes the disclosure threshold."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib.contract import DISCLOSURE_THRESHOLD, MIN_AT_RISK
from insightlib.report import rereferral_charts as charts, rereferral_tables as tables
from insightlib.report import rereferral_words as words
from insightlib.report.labels import GROUPINGS, OTHER, _who, group_label
from insightlib.report.survival_words import logrank_sentence, ph_sentences
from insightlib.report.text import plain as _plain
from insightlib.report.words import one_in as _one_in, within as _within
from insightlib.stats.competing_risks import CumulativeIncidenceResult
from insightlib.stats.cox import CoxResult
from insightlib.stats.logrank import LogRankResult
from insightlib.stats.survival import KMResult, RMSTResult


@dataclass
class ReReferralReport:
    """Everything the re-referral notebook shows, computed and tested in the library."""

    group_by: str
    horizons: tuple[int, ...]
    counts: dict
    km: KMResult
    logrank: LogRankResult
    cumulative_incidence: CumulativeIncidenceResult | None
    rmst: RMSTResult
    cox: CoxResult | None
    cox_note: str
    dfe_measure: pd.DataFrame
    headline_year: int | None
    headline_rate: float | None
    episodes_at_risk: int
    children: int
    min_at_risk: int = MIN_AT_RISK
    km_chart: KMResult | None = None  # the same curves with the smaller groups folded into "Other"
    cif_chart: CumulativeIncidenceResult | None = None
    folded: list = field(default_factory=list)  # groups shown as "Other" on the charts
    data_start: pd.Timestamp | None = None  # first referral in the extract
    extract_date: pd.Timestamp | None = None
    threshold: int = (
        DISCLOSURE_THRESHOLD  # disclosure threshold: every figure the report words or tabulates is controlled by it
    )
    rounding: int | None = None
    _published: dict | None = field(default=None, repr=False)

    @property
    def what(self) -> str:
        return GROUPINGS.get(self.group_by, self.group_by)

    def km_dict(self) -> dict:
        """KM at the horizons; values where fewer than ``min_at_risk`` remain are withheld (None)."""
        out = {}
        for g, by_h in self.km.to_dict().items():
            out[g] = {
                h: (
                    v
                    if (v["at_risk"] or 0) >= self.min_at_risk
                    else {"survival": None, "ci_low": None, "ci_high": None, "at_risk": None}
                )
                for h, v in by_h.items()
            }
        return out

    def to_dict(self) -> dict:
        dfe = self.dfe_measure
        return {
            "km": self.km_dict(),
            "logrank": self.logrank.to_dict(),
            "cox": self.cox.to_dict() if self.cox is not None else {},
            "cox_global_test": self.cox.global_test() if self.cox is not None else {},
            "cox_too_few_to_estimate": (
                [t for t in self.cox.terms["term"] if not self.cox.estimable(t)] if self.cox is not None else []
            ),
            "ph_test": (
                {r.term: {"statistic": r.statistic, "df": r.df, "p_value": r.p_value} for r in self.cox.ph.itertuples()}
                if self.cox is not None
                else {}
            ),
            "cumulative_incidence": self.cumulative_incidence.to_dict() if self.cumulative_incidence else {},
            "rmst": self.rmst.to_dict(),
            "dfe_measure": {
                str(r.year): {
                    "referrals": r.referrals,
                    "rereferrals": r.rereferrals,
                    "rate": r.rate,
                    "complete": bool(r.complete),
                    "published_rate": getattr(r, "published_rate", None),
                }
                for r in dfe.itertuples()
            },
            "headline": {
                "closure_year": self.headline_year,
                "horizon_days": max(self.horizons),
                f"share_rereferred_within_{max(self.horizons)}_days": self.headline_rate,
            },
            "episodes": {**self.counts, "at_risk": self.episodes_at_risk, "children": self.children},
            "group_by": self.group_by,
            "charts": {"groups_folded_into_other": list(self.folded)},
        }

    # disclosure control: one place decides which figures may be published ---------------------
    def _small(self, n: int) -> bool:
        return 1 <= n < self.threshold

    def _events_by(self, group: str, h: int, cause: str = "rereferral") -> int:
        """Episodes in the group that ended in a re-referral (or a competing event) by day ``h``."""
        if cause == "rereferral":
            c = self.km.curves[group]
        else:
            c = self.cumulative_incidence.competing[group]
        return int(c.loc[c["time"] <= h, "events"].sum())

    def share_shown(self, group: str, h: int, cause: str = "rereferral") -> bool:
        """Whether a share (survival, re-referral or competing) of the group by day ``h`` may be published.

        Not where fewer than ``min_at_risk`` are still followed, nor where the count of children
        behind it is small: "5% of 23" is one child (the share and the group size give it back).
        """
        if (self.km.at(group, h)["at_risk"] or 0) < self.min_at_risk:
            return False
        return not self._small(self._events_by(group, h, cause))

    def _counts_frame(self) -> tuple[pd.DataFrame, list[dict]]:
        """The "what happened" counts by key, and the identities a reader knows between them."""
        return counts_frame(self.counts, self.episodes_at_risk)

    def published_counts(self) -> dict:
        """The "what happened" counts as published: a whole number, or "c" (primary and secondary
        suppression over the table's identities), the same in the table and every sentence."""
        if self._published is None:
            self._published = published_counts(self.counts, self.episodes_at_risk, self.threshold, self.rounding)[0]
        return dict(self._published)

    def count_words(self, key: str) -> str:
        """A count from the counts table for a sentence: as the table shows it, never more exactly."""
        v = self.published_counts()[key]
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        if self._small(int(self._counts_frame()[0].loc[key, "count"])):
            return f"fewer than {self.threshold}"
        return "a number (hidden so that a small count cannot be worked out)"

    def dfe_published(self, complete_only: bool = True) -> pd.DataFrame:
        """DfE's measure as published: referrals and re-referrals hidden ("c") when small, and the
        re-referrals (with the rate) also when the referrals that were not re-referrals are few,
        as ``disclosure.safe_rate`` and the national page decide."""
        from insightlib.report.disclosure import round_count, safe_rate

        d = self.dfe_measure
        if complete_only:
            d = d[d["complete"]]
        rows = []
        for r in d.itertuples():
            ref, rr = int(r.referrals), int(r.rereferrals)
            rate = safe_rate(rr, ref, self.threshold, rounding=self.rounding)
            hide_ref = self._small(ref)
            hide_rr = rr > 0 and (self._small(rr) or self._small(ref - rr) or hide_ref)  # a true zero is shown
            rows.append(
                {
                    "year": int(r.year),
                    "referrals": "c" if hide_ref else round_count(ref, self.rounding),
                    "rereferrals": "c" if hide_rr else round_count(rr, self.rounding),
                    "rate": None if (rate.suppressed or hide_rr or hide_ref) else rate.rate,
                    "rate_display": "c" if (rate.suppressed or hide_rr or hide_ref) else rate.display,
                    "published_rate": getattr(r, "published_rate", np.nan),
                    "complete": bool(r.complete),
                }
            )
        return pd.DataFrame(
            rows, columns=["year", "referrals", "rereferrals", "rate", "rate_display", "published_rate", "complete"]
        )

    # sentences -------------------------------------------------------------------------
    def _share_back(self, group: str, h: int) -> float | None:
        """Share re-referred by ``h`` days (cumulative incidence where computed, else 1 - KM); None where it
        may not be published (too few followed, or too few re-referred)."""
        if not self.share_shown(group, h):
            return None
        if self.cumulative_incidence is not None:
            return self.cumulative_incidence.at(group, h)["rereferral"]
        return 1 - self.km.at(group, h)["survival"]

    def _shares_back_on_chart(self, h: int) -> dict:
        chart = self.km_chart or self.km
        groups = [g for g in chart.curves if g != OTHER and g in self.km.curves]
        return {g: v for g in groups if (v := self._share_back(g, h)) is not None}

    def chart_title(self) -> str:
        """A headline title for the curves: the finding, where there is a clear one."""
        back = self._shares_back_on_chart(max(self.horizons))
        if len(back) >= 2 and np.isfinite(self.logrank.p_value) and self.logrank.p_value < 0.05:
            fast, slow = max(back, key=back.get), min(back, key=back.get)
            if round(100 * back[fast]) != round(100 * back[slow]):
                who = _who(self.group_by, fast)
                return f"{who[0].upper() + who[1:]} came back fastest"
        return f"How soon children were referred again, by {self.what}"

    def headlines(self) -> list[str]:
        """The findings in plain English, as a director would want them.

        They lead with DfE's published measure (the figure every council is compared on), where the
        extract has a full year of it; the share of closed cases referred again follows, with one
        sentence on why the two rates differ.
        """
        out = []
        dfe = self._dfe_sentence()
        share = self._closure_share_sentence()
        if dfe:
            out.append(dfe)
        if share:
            out.append(share + (" " + self.two_rates_sentence() if dfe else ""))
        group = self._group_sentence()
        if group:
            out.append(group)
        cox = self.cox_headline()
        if cox:
            out.append(cox)
        return out

    def _closure_share_sentence(self) -> str | None:
        if self.headline_year is None or self.headline_rate is None:
            return None
        return (
            f"Of children whose cases closed in {self.headline_year}, {_one_in(self.headline_rate)} "
            f"were referred again {_within(max(self.horizons))}."
        )

    def _group_sentence(self) -> str | None:
        h = max(self.horizons)
        chart = self.km_chart or self.km
        back = self._shares_back_on_chart(h)
        if len(back) < 2:
            return None
        fast, slow = max(back, key=back.get), min(back, key=back.get)
        among = " Of the largest groups," if len(self.km.curves) > len(chart.curves) else ""
        if round(100 * back[fast]) == round(100 * back[slow]):
            sentence = (
                f"{among} {_who(self.group_by, fast, True)} and {_who(self.group_by, slow, True)} came back at about "
                f"the same rate ({back[fast]:.0%} referred again {_within(h)})."
            ).strip()
        else:
            sentence = (
                f"{among} {_who(self.group_by, fast, True)} came back fastest ({back[fast]:.0%} referred again "
                f"{_within(h)}, against {back[slow]:.0%} of {_who(self.group_by, slow, True)})."
            ).strip()
        sentence = sentence[0].upper() + sentence[1:]
        if self.logrank.p_value >= 0.05:
            sentence += " The difference between the groups could be chance."
        return sentence

    def _latest_dfe(self):
        """The latest complete year of DfE's measure, as published (``dfe_published``: rate None when hidden)."""
        dfe = self.dfe_published()
        return dfe.iloc[-1] if len(dfe) else None

    def england_comparison(self, year: int | None = None) -> tuple[float | None, str]:
        """England's rate for the council's own year (DfE's measure), in words (report/rereferral_words.py)."""
        return words.england_comparison(self, year)

    def _dfe_sentence(self) -> str | None:
        return words.dfe_sentence(self)

    def two_rates_sentence(self) -> str:
        """Why the share of closed cases referred again is not DfE's measure, in one sentence."""
        return (
            "The two rates differ: DfE's published measure is the share of a year's referrals that came within "
            "12 months of the child's previous referral (first referrals count in its denominator), while this "
            "share follows each closed case for a year after it closed, so it is usually the higher."
        )

    def _compared_terms(self) -> pd.DataFrame:
        return words.compared_terms(self)

    def _clearest_term(self):
        """The Cox term with the clearest difference, or None (report/rereferral_words.clearest_term)."""
        return words.clearest_term(self)

    def forest_title(self) -> str:
        return words.forest_title(self)

    def cox_headline(self) -> str | None:
        return words.cox_headline(self)

    def logrank_sentence(self) -> str:
        return logrank_sentence(self.logrank)

    def ph_sentences(self) -> list[str]:
        return ph_sentences(self.cox) if self.cox is not None else [self.cox_note]

    def chart_note(self) -> str | None:
        """What the charts fold into "Other", said under them."""
        if not self.folded:
            return None
        names = [group_label(self.group_by, g) for g in self.folded]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        if len(self.km.curves) == len(self.km_chart.curves):  # only groups too small to show alone
            return f'"{group_label(None, OTHER)}": {listed}, too small to show on their own.'
        shown = len(self.km_chart.curves) - 1
        return (
            f'The chart shows the {shown} largest groups; "{group_label(None, OTHER)}" is {listed} together. '
            "The tables give every group of at least the minimum size."
        )

    def dfe_note(self) -> str:
        return words.dfe_note(self)

    def caveats(self) -> list[str]:
        return words.caveats(self)

    def rmst_sentences(self) -> list[str]:
        return words.rmst_sentences(self)

    @staticmethod
    def definitions() -> list[str]:
        return words.definitions()

    # tables (report/rereferral_tables.py) ---------------------------------------------------
    def survival_table(self, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
        return tables.survival_table(self, threshold, rounding)

    def cumulative_incidence_table(self) -> pd.DataFrame:
        return tables.cumulative_incidence_table(self)

    def rmst_table(self) -> pd.DataFrame:
        return tables.rmst_table(self)

    def cox_table(self) -> pd.DataFrame:
        return tables.cox_table(self)

    def dfe_table(
        self, threshold: int | None = None, rounding: int | None = None, complete_only: bool = True
    ) -> pd.DataFrame:
        return tables.dfe_table(self, threshold, rounding, complete_only)

    def counts_table(self, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
        return tables.counts_table(self, threshold, rounding)

    # figures -----------------------------------------------------------------------------
    def figures(self) -> dict:
        """Figures with their alt text (charts show the largest groups; "Other" is stated under them)."""
        h = max(self.horizons)
        km = self.km_chart or self.km
        cif = self.cif_chart or self.cumulative_incidence
        groups = "; ".join(km.labels.get(g, g) for g in km.curves)
        figs = {
            "km": (
                charts.km_figure(
                    km,
                    title=self.chart_title(),
                    min_at_risk=self.min_at_risk,
                    max_days=3 * h,
                    threshold=self.threshold,
                    note=self.chart_note(),
                ),
                f"Kaplan-Meier curves by {self.what} ({groups}): the share of children not yet referred again "
                f"against time since closure, with 95% bands and the numbers still followed below. "
                f"{self._group_sentence() or ''}".strip(),
            ),
        }
        if cif is not None:
            figs["cumulative_incidence"] = (
                charts.cif_figure(
                    cif, min_at_risk=self.min_at_risk, max_days=3 * h, note=self.chart_note(), threshold=self.threshold
                ),
                f"Cumulative incidence of re-referral by {self.what} ({groups}) up to three times {h} days, "
                f"allowing for children who turn 18, die or move away. {self._closure_share_sentence() or ''}".strip(),
            )
        if self.cox is not None:
            figs["forest"] = (
                charts.forest_figure(self.cox, self.forest_title()),
                "Hazard ratios of re-referral with 95% intervals for each factor in "
                "the Cox model, against each factor's comparison group; a ratio above 1 means referred "
                f"again sooner. {_plain(self.cox_headline() or '')}".strip(),
            )
        return figs


def counts_frame(counts: dict, followed_up: int) -> tuple[pd.DataFrame, list[dict]]:
    """The "what happened" counts by key (ingest.episodes' counts and the episodes followed up), and the
    identities a reader knows between them."""
    rows = [{"key": k, "count": int(v)} for k, v in counts.items()]
    rows.append({"key": "followed_up", "count": int(followed_up)})
    identities = []
    keys = {r["key"] for r in rows}
    if {"referrals", "referrals_after_extract", "merged_overlapping", "open_cases", "episodes"} <= keys:
        identities.append(
            {"referrals": 1, "referrals_after_extract": -1, "merged_overlapping": -1, "open_cases": -1, "episodes": -1}
        )
    ends = ["not_at_risk_died", "not_at_risk_transferred", "not_at_risk_adult", "closed_on_extract_date"]
    if {"episodes", *ends} <= keys:
        identities.append({"episodes": 1, **{k: -1 for k in ends}, "followed_up": -1})
    return pd.DataFrame(rows).set_index("key"), identities


def published_counts(
    counts: dict, followed_up: int, threshold: int = DISCLOSURE_THRESHOLD, rounding: int | None = None
) -> tuple[dict, bool]:
    """The "what happened" counts as published, and whether the referrals in the extract are published.

    The survival table's groups (each at least the threshold, never hidden) add up to the episodes followed
    up, so that count is published there whatever this table does. The practice report's groups of referrals
    (by sex, age, ...) add up to the referrals in the extract, so they are published too, unless that leaves
    a hidden count here unprotected (referrals and episodes followed up differ by a few): then the referrals
    are hidden here and the practice report hides its referral counts (report.practice), both decided here
    from the same counts."""
    from insightlib.report.disclosure import suppress_table

    frame, identities = counts_frame(counts, followed_up)
    known = {"followed_up": int(followed_up)}
    if "referrals" in frame.index:
        pinned = suppress_table(
            frame,
            ["count"],
            threshold,
            rounding,
            identities=identities,
            known={**known, "referrals": int(frame.loc["referrals", "count"])},
        )
        if not any("could not be protected" in n for n in pinned.notes):
            return dict(zip(pinned.display.index, pinned.display["count"])), True
    shown = suppress_table(frame, ["count"], threshold, rounding, identities=identities, known=known).display
    return dict(zip(shown.index, shown["count"])), False
