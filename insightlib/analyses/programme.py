"""Programme evaluation across councils: did councils that adopted a programme see outcomes change?

Councils adopt programmes (Family Safeguarding, No Wrong Door, Family Valued ...) at different
times, and the effect of a programme usually grows as it beds in. Plain two-way fixed effects
regression is biased in exactly that setting, because councils that adopted early serve as
"controls" for later adopters while their own effect is still changing. So the headline here
is Gardner's two-stage difference-in-differences (pyfixest ``did2s``), which is valid when
effects differ by council and over time: council and quarter effects are learned only from
council-quarters not (yet) treated, and the effect is the average gap between what adopters
saw and what those effects predict. Two-way fixed effects is shown beside it for contrast.

Pieces (the estimators are in stats/did.py, stats/did_randomisation.py and stats/timeseries.py; the words,
tables and figures in report/programme*.py):

- ``council_tables``: every council's canonical tables together, from a warehouse or a data directory.
- ``programme_panel.council_quarter_panel``: council-by-quarter outcomes from those tables.
- ``programme_panel.published_panel``: DfE's published council re-referral rates, 2013 to 2025 (annual).
- ``staggered_did``: the headline effect, event study, pre-trend test and TWFE contrast.
- ``placebo_check`` / ``placebo_rejection_rate``: random placebo adoptions on real councils;
  an honest method rejects "no effect" about as often as its nominal level.
- ``programme_councils.interrupted_time_series``: one council with no comparison (segmented regression,
  AR(1) errors by REML).
- ``programme_councils.neighbour_comparison``: one council against its ten statistical neighbours' average.
- ``evaluate_programme``: every piece, as the notebook runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..contract import DISCLOSURE_THRESHOLD
from ..errors import InputError
from ..report.programme import PlaceboCheck, ProgrammeEffect, ProgrammeEvaluation
from ..stats.did import MIN_ADOPTERS_CLUSTERED, Sample, did2s, did2s_fast, estimation_sample, pretrend_test, twfe
from ..stats.did_randomisation import (
    randomisation_event_intervals,
    randomisation_interval,
    randomisation_lead_intervals,
)
from .programme_councils import (
    extract_neighbour_calibration,
    interrupted_time_series,
    neighbour_calibration,
    neighbour_comparison,
    shown_panel,
)
from .programme_panel import OUTCOMES, published_panel
from .programme_parameters import council_code


def council_tables(data: str | Path, councils: Any = "all") -> dict[str, pd.DataFrame]:
    """Every council's canonical tables in one dict (la_code column), from a warehouse or a data directory.

    A warehouse (``insight load``) holds pseudonymised, validated data. A data directory is
    validated here and only its clean councils are used; nothing is written.
    """
    from ..ingest import warehouse

    path = Path(data)
    wanted = (
        None
        if councils in (None, "all") or (isinstance(councils, str) and councils.lower() == "all")
        else (
            [council_code(councils, "la_code")]
            if isinstance(councils, (str, int))
            else [council_code(c, "councils") for c in councils]
        )
    )
    if path.is_dir():
        from ..ingest.validate import validate_directory

        report = validate_directory(path)
        if report.unattributed:
            raise InputError(f"Cannot read {path}: these problems stop every council.\n\n" + report.format_text(50))
        clean = list(report.clean_councils)
        if wanted is not None:
            missing = [c for c in wanted if c not in clean]
            if missing:
                raise InputError(f"council(s) {', '.join(missing)} are not among the clean councils in {path}.")
            clean = wanted
        if not clean:
            raise InputError(f"Cannot read {path}: no council's data is clean.\n\n" + report.format_text(50))
        return {
            name: frame[frame["la_code"].isin(clean)].reset_index(drop=True) for name, frame in report.tables.items()
        }
    codes = warehouse.council_codes(path)
    if wanted is not None:
        missing = [c for c in wanted if c not in codes]
        if missing:
            raise InputError(
                f"council(s) {', '.join(missing)} are not in the warehouse {path} (it has {', '.join(codes)})."
            )
        codes = wanted
    from ..ingest.warehouse_read import read_councils

    return read_councils(path, codes)  # one query a table for every council, not one council at a time


def data_fingerprint(data: str | Path, councils: Any = "all") -> str:
    """One fingerprint for the councils' data together (each council's fingerprint, hashed)."""
    from ..ingest import fingerprint, warehouse

    path = Path(data)
    if path.is_dir():
        return fingerprint.folder_sha256(path)
    codes = warehouse.council_codes(path)
    if councils not in (None, "all"):
        codes = [c for c in codes if c in ({councils} if isinstance(councils, str) else set(map(str, councils)))]
    return fingerprint.combined(warehouse.data_fingerprint(path, c) for c in codes)


def staggered_did(
    panel: pd.DataFrame,
    outcome: str = "rereferral_rate",
    *,
    unit: str = "la_code",
    time: str = "period",
    adoption: str = "adoption_period",
    horizon: int | None = None,
    pre_periods: int = 4,
    alpha: float = 0.05,
) -> ProgrammeEffect:
    """Effect of adopting the programme, valid when it differs by council and over time.

    ``horizon``: periods after adoption to include (event times 0 to horizon-1); later adopter
    periods are left out rather than extrapolated. ``pre_periods``: leads in the pre-trend test.
    The headline ATT is the average effect over the adopting council-periods in the sample,
    each counting equally.
    """
    sample = _did_sample(panel, outcome, unit, time, adoption, horizon)
    d = sample.data
    g = d["unit"].nunique()
    att = did2s(d, ["post"], alpha)["post"]
    pretrend, es = _event_study(d, int(pre_periods), alpha)
    adopters = d.loc[d["treated"], "unit"].nunique()
    ever = d.loc[d["adopt"].notna(), "unit"].nunique()
    ri = randomisation_interval(d, alpha) if adopters < MIN_ADOPTERS_CLUSTERED else None
    es["interval_from"] = "clustered by council"
    if ri is not None:  # few adopters: each period's interval by randomisation inference too (clustered t undercovers)
        _randomisation_event_study(d, es, alpha)
    return ProgrammeEffect(
        outcome=outcome,
        att=att,
        event_study=es,
        pretrend=pretrend,
        twfe=twfe(d, alpha),
        n_councils=int(g),
        n_adopters=int(adopters),
        n_comparison_only=int(g - ever),
        n_observations=int(len(d)),
        n_treated_observations=int(d["treated"].sum()),
        dropped=sample.dropped,
        alpha=alpha,
        horizon=None if horizon is None else int(horizon),
        time_unit=panel.attrs.get("time_unit", "period"),
        att_randomisation=ri,
    )


def _did_sample(panel: pd.DataFrame, outcome: str, unit: str, time: str, adoption: str, horizon: int | None) -> Sample:
    """The estimation sample, or a message saying why the data cannot give an effect."""
    if outcome not in panel.columns:
        raise InputError(
            f"outcome '{outcome}' is not in the panel; available: {', '.join(c for c in OUTCOMES if c in panel.columns)}."
        )
    if horizon is not None and int(horizon) < 1:
        raise InputError(f"horizon must be at least 1 period after adoption; got {horizon!r}.")
    sample = estimation_sample(panel, outcome, unit, time, adoption, None if horizon is None else int(horizon))
    d = sample.data
    if d["treated"].sum() == 0:
        raise InputError("no adopting council has an observed period after adoption, so no effect can be estimated.")
    if (~d["treated"]).sum() == 0:
        raise InputError("every observed council-period is after adoption, so there is nothing to compare with.")
    g = d["unit"].nunique()
    if g < 3:
        raise InputError(
            f"only {g} council(s) have usable data; at least 3 are needed for intervals clustered by council."
        )
    return sample


def _event_study(d: pd.DataFrame, pre_periods: int, alpha: float) -> tuple[dict, pd.DataFrame]:
    """The pre-trend test, and the event study: one two-stage estimate per period since adoption (adds the
    indicator columns e0, e1, ... to ``d``) with the pre-trend test's leads before adoption."""
    event_times = sorted(int(e) for e in d.loc[d["treated"], "event_time"].unique())
    names = []
    for e in event_times:
        col = f"e{e}"
        d[col] = (d["treated"] & (d["event_time"] == e)).astype(float)
        names.append(col)
    post = did2s(d, names, alpha)
    councils_at = d.loc[d["treated"]].groupby("event_time")["unit"].nunique()
    rows = [
        {"event_time": e, **post[f"e{e}"], "councils": int(councils_at.get(float(e), 0)), "source": "effect"}
        for e in event_times
        if f"e{e}" in post
    ]
    pretrend, leads = pretrend_test(d, pre_periods, alpha)
    if not leads.empty:
        u = d.loc[~d["treated"]]
        at = u.groupby("event_time")["unit"].nunique()
        leads["councils"] = leads["event_time"].map(lambda e: int(at.get(float(e), 0)))
        leads["source"] = "pre-trend test"
    es = pd.concat([leads, pd.DataFrame(rows)], ignore_index=True).sort_values("event_time").reset_index(drop=True)
    return pretrend, es


def _randomisation_event_study(d: pd.DataFrame, es: pd.DataFrame, alpha: float) -> None:
    """Each event-study row's interval and p-value by randomisation inference instead (in place)."""
    effect_rows = es["source"] == "effect"
    effects = {int(e): float(v) for e, v in zip(es.loc[effect_rows, "event_time"], es.loc[effect_rows, "estimate"])}
    by_e = randomisation_event_intervals(d, effects, alpha).set_index("event_time")
    lead_rows = es["source"] == "pre-trend test"
    if lead_rows.any():
        leads = {int(e): float(v) for e, v in zip(es.loc[lead_rows, "event_time"], es.loc[lead_rows, "estimate"])}
        by_e = pd.concat([by_e, randomisation_lead_intervals(d, leads, effects, alpha).set_index("event_time")])
    for i in es.index:
        r = by_e.loc[int(es.at[i, "event_time"])]
        es.loc[i, ["ci_low", "ci_high", "p_value"]] = [r["ci_low"], r["ci_high"], r["p_value"]]
        es.at[i, "interval_from"] = "randomisation inference"


def true_att_for_sample(effect: ProgrammeEffect, att_by_event_time: Mapping[Any, float]) -> float:
    """The true ATT an estimate targets: the truth by period since adoption, weighted as the sample is.

    The headline averages over adopting council-periods, so event times with more councils
    observed count for more; a truth stated per event time must be weighted the same way.
    """
    es = effect.event_study.loc[effect.event_study["source"] == "effect"]
    truth = {int(float(k)): float(v) for k, v in att_by_event_time.items()}
    missing = [int(e) for e in es["event_time"] if int(e) not in truth]
    if missing:
        raise KeyError(f"the truth gives no effect for period(s) since adoption {missing}")
    weights = es.set_index(es["event_time"].astype(int))["councils"].astype(float)
    return float(sum(truth[e] * w for e, w in weights.items()) / weights.sum())


def placebo_check(
    panel: pd.DataFrame | None = None,
    n_draws: int = 200,
    seed: int = 0,
    *,
    outcome: str = "rereferral_rate",
    alpha: float = 0.05,
    share_adopting: float = 0.5,
    min_pre: int = 2,
    min_post: int = 1,
    unit: str = "la_code",
    time: str = "period",
) -> PlaceboCheck:
    """Assign adoption at random to real councils and periods; count intervals that exclude zero.

    No real programme is behind these dates, so the true effect is zero and an honest method
    rejects about ``alpha`` of the time. Each draw picks ``share_adopting`` of the councils and
    gives each a period uniformly among those with at least ``min_pre`` periods before and
    ``min_post`` after; the rest never adopt.
    """
    if panel is None:
        panel = published_panel()
    if n_draws < 1:
        raise InputError(f"n_draws must be at least 1; got {n_draws!r}.")
    base = panel[[unit, time, outcome]].copy()
    base = base.loc[pd.to_numeric(base[outcome], errors="coerce").notna()]
    units = np.array(sorted(base[unit].astype(str).unique()))
    periods = np.array(sorted(base[time].astype(int).unique()))
    choices = periods[min_pre : len(periods) - min_post + 1] if len(periods) > min_pre + min_post else periods[:0]
    if len(units) < 4 or len(choices) == 0:
        raise InputError("the panel is too small for a placebo check (need at least 4 councils and enough periods).")
    rng = np.random.default_rng(seed)
    n_adopt = max(1, int(round(share_adopting * len(units))))
    rows = []
    for draw in range(n_draws):
        adopters = rng.choice(units, size=n_adopt, replace=False)
        starts = rng.choice(choices, size=n_adopt, replace=True)
        mapping = dict(zip(adopters, starts))
        p = base.copy()
        p["placebo_adoption"] = p[unit].astype(str).map(mapping)
        sample = estimation_sample(p, outcome, unit, time, "placebo_adoption", None)
        att = did2s_fast(sample.data, ["post"], alpha)["post"]
        rows.append({"draw": draw, **att, "reject": not (att["ci_low"] <= 0 <= att["ci_high"])})
    est = pd.DataFrame(rows)
    rejections = int(est["reject"].sum())
    return PlaceboCheck(
        rate=rejections / n_draws,
        rejections=rejections,
        n_draws=n_draws,
        alpha=alpha,
        estimates=est,
        share_adopting=share_adopting,
        outcome=outcome,
        seed=seed,
    )


def placebo_rejection_rate(panel: pd.DataFrame | None = None, n_draws: int = 200, seed: int = 0, **kw) -> float:
    """Share of random placebo adoptions whose interval excludes zero (about ``alpha`` if honest)."""
    return placebo_check(panel, n_draws, seed, **kw).rate


def evaluate_programme(
    panel: pd.DataFrame,
    *,
    programme: str = "the programme",
    outcome: str = "rereferral_rate",
    horizon: int | None = 8,
    pre_periods: int = 4,
    placebo_draws: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    published_neighbours: bool = True,
    calibrate_neighbours: bool = True,
) -> ProgrammeEvaluation:
    """Run every piece: the staggered DiD, each adopter's ITS and neighbour comparison, the placebo check.

    A piece that the data cannot support (too few councils, too short a series) is reported
    with the reason instead of stopping the report. Where an adopter's statistical neighbours
    are not in the data (a few councils' extracts), and the outcome is the re-referral rate,
    the neighbour comparison is made on DfE's published annual rates instead
    (``published_neighbours``): every council is there, by year ending 31 March.
    """
    _check_outcome(panel, outcome)
    effect, problem = _effect_across_councils(panel, outcome, horizon, pre_periods, alpha, disclosure_threshold)
    adopters = sorted(panel.loc[panel["adoption_period"].notna(), "la_code"].astype(str).unique())
    adoption_periods = {
        str(c): int(v)
        for c, v in panel.loc[panel["adoption_period"].notna()]
        .groupby(panel["la_code"].astype(str))["adoption_period"]
        .first()
        .items()
    }
    councils = _CouncilDesigns(panel, outcome, alpha, disclosure_threshold, published_neighbours, calibrate_neighbours)
    for code in adopters:
        councils.add(code)
    placebo = None
    if placebo_draws and placebo_draws > 0:
        placebo = placebo_check(published_panel(), n_draws=int(placebo_draws), seed=seed, alpha=alpha)
    return ProgrammeEvaluation(
        programme=programme,
        outcome=outcome,
        effect=effect,
        effect_problem=problem,
        its=councils.its,
        neighbours=councils.neighbours,
        problems=councils.problems,
        placebo=placebo,
        n_councils=int(panel["la_code"].nunique()),
        n_adopting=len(adopters),
        published_neighbours=councils.published,
        adoption_periods=adoption_periods,
        neighbour_calibration=neighbour_calibration(alpha) if councils.published and calibrate_neighbours else None,
        extract_neighbour_calibration=councils.extract_cal or None,
    )


def _effect_across_councils(panel, outcome, horizon, pre_periods, alpha, threshold) -> tuple:
    """The staggered DiD fitted on the quarters that may be shown only (docs/publishing.md, identity 15: fitted
    through a hidden quarter, an event time with one adopter gives it back), or the reason it cannot be made."""
    try:
        shown = shown_panel(panel, outcome, threshold)
        return staggered_did(shown, outcome, horizon=horizon, pre_periods=pre_periods, alpha=alpha), None
    except InputError as exc:
        return None, str(exc)


def _check_outcome(panel: pd.DataFrame, outcome: str) -> None:
    """The outcome is one the panel carries, with at least one value."""
    if outcome not in OUTCOMES or outcome not in panel.columns:
        raise InputError(f"outcome '{outcome}' is not one of: {', '.join(c for c in OUTCOMES if c in panel.columns)}.")
    if panel[outcome].notna().sum() == 0:
        raise InputError(
            f"outcome '{outcome}' has no values in the panel (for re-referral, no quarter has a full year of follow-up)."
        )


class _CouncilDesigns:
    """Each adopting council's interrupted time series and neighbour comparison (in the extracts, else on DfE's
    published rates), with the reasons where one cannot be made; the calibrations are computed once, when needed."""

    def __init__(
        self,
        panel: pd.DataFrame,
        outcome: str,
        alpha: float,
        threshold: int,
        published_neighbours: bool,
        calibrate: bool,
    ):
        self.panel, self.outcome, self.alpha, self.threshold = panel, outcome, alpha, threshold
        self.use_published, self.calibrate = published_neighbours, calibrate
        self.its, self.neighbours, self.problems, self.published = {}, {}, {}, {}
        self.adoption_dates = (
            panel.loc[panel["adoption_date"].notna()].groupby(panel["la_code"].astype(str))["adoption_date"].first()
            if "adoption_date" in panel.columns
            else pd.Series(dtype="datetime64[ns]")
        )
        self.pub_panel, self.extract_cal = None, False  # False: not yet computed (it needs an in-extract comparison)

    def add(self, code: str) -> None:
        panel, outcome, alpha, threshold = self.panel, self.outcome, self.alpha, self.threshold
        notes = []
        try:
            self.its[code] = interrupted_time_series(panel, code, outcome, alpha=alpha, disclosure_threshold=threshold)
        except InputError as exc:
            notes.append(f"no interrupted time series, because {exc}")
        try:
            self.neighbours[code] = neighbour_comparison(
                panel, code, outcome, alpha=alpha, disclosure_threshold=threshold
            )
            if self.calibrate:  # made-up start dates in the extracts themselves set the interval's width
                if self.extract_cal is False:
                    self.extract_cal = extract_neighbour_calibration(panel, outcome, alpha)
                if self.extract_cal is not None:
                    self.neighbours[code] = neighbour_comparison(
                        panel, code, outcome, alpha=alpha, disclosure_threshold=threshold, calibration=self.extract_cal
                    )
        except InputError as exc:
            if self.use_published and outcome == "rereferral_rate" and code in self.adoption_dates.index:
                try:
                    self.published[code] = self._published(code)
                except InputError as exc2:
                    notes.append(f"no neighbour comparison: {exc} On DfE's published rates: {exc2}")
            else:
                notes.append(f"no neighbour comparison: {exc}")
        if notes:
            self.problems[code] = " ".join(notes)

    def _published(self, code: str):
        """The council against its neighbours on DfE's published annual rates."""
        if self.pub_panel is None:
            self.pub_panel = published_panel({c: d for c, d in self.adoption_dates.items()})
        return neighbour_comparison(
            self.pub_panel,
            code,
            self.outcome,
            alpha=self.alpha,
            disclosure_threshold=self.threshold,
            source="DfE's published re-referral rates",
            calibration=neighbour_calibration(self.alpha) if self.calibrate else None,
        )
