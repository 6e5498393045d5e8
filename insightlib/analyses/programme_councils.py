"""One adopting council on its own: an interrupted time series (its own trend before and after) and the gap
to its statistical neighbours (in the extracts, else on DfE's published rates), with the neighbour comparisons'
intervals calibrated on made-up start dates. Estimators in stats/timeseries.py; words in report/programme_councils.py.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import reference
from ..contract import DISCLOSURE_THRESHOLD
from ..errors import InputError
from ..report.disclosure import safe_rate, suppress_table
from ..report.programme_councils import InterruptedTimeSeries, NeighbourComparison
from ..stats.timeseries import (
    NeighbourCalibration,
    ar1_regression,
    placebo_calibration,
    placebo_t,
    segmented_regression,
)
from .programme_panel import published_panel, reporting_year
from .programme_parameters import as_date


#: The counts behind each outcome: (numerator, denominator) for rates, (count, None) for counts.
_COUNTS_BEHIND = {
    "rereferral_rate": ("rereferrals_12m", "cohort_closures"),
    "nfa_share": ("nfa_closures", "closures"),
    "referrals": ("referrals", None),
    "referrals_per_10k": ("referrals", None),
    "cp_plans": ("cp_plans", None),
    "cp_plans_per_10k": ("cp_plans", None),
    "nfa_closures": ("nfa_closures", None),
    "closures": ("closures", None),
}


def suppressed_rows(rows: pd.DataFrame, outcome: str, threshold: int = DISCLOSURE_THRESHOLD) -> pd.Series:
    """Council-periods whose value may not be shown: a small count lies behind it (insightlib.report.disclosure)."""
    num, den = _COUNTS_BEHIND.get(outcome, (None, None))
    if num is None or num not in rows.columns:
        return pd.Series(False, index=rows.index)
    if den is None:
        v = rows[num].fillna(0)
        small = (v >= 1) & (v < threshold)
        if "period" in rows.columns and rows.attrs.get("time_unit", "quarter") == "quarter":
            return small | _hidden_across_years(rows, num, threshold)
        return small
    if den not in rows.columns:
        return pd.Series(False, index=rows.index)
    return pd.Series(
        [
            safe_rate(int(n), int(d), threshold).suppressed if pd.notna(n) and pd.notna(d) and d >= n else False
            for n, d in zip(rows[num], rows[den])
        ],
        index=rows.index,
    )


def shown_panel(panel: pd.DataFrame, outcome: str, threshold: int = DISCLOSURE_THRESHOLD) -> pd.DataFrame:
    """The panel with every council-period that may not be shown (``suppressed_rows``) blanked.

    The estimates across councils (the staggered difference-in-differences, its event study and the two-way
    fixed effects contrast) are linear in the outcome: fitted through a hidden quarter, each published figure
    is a linear equation in it, and an event time with one adopter gives it back (docs/publishing.md,
    identity 15). Fitted on this panel they are functions of the periods that may be shown only, as the
    interrupted time series is."""
    out = panel.copy()
    out.loc[suppressed_rows(panel, outcome, threshold).to_numpy(), outcome] = np.nan
    out.attrs = dict(panel.attrs)
    return out


def _reporting_year_of_quarter(q: int) -> int:
    """A quarter index (year * 4 + quarter - 1) to DfE's year to 31 March: 2021Q2..2021Q4 and 2022Q1 -> 2022."""
    return q // 4 + (1 if q % 4 >= 1 else 0)


def _hidden_across_years(rows: pd.DataFrame, num: str, threshold: int) -> pd.Series:
    """Quarters hidden so that none can be worked out from a year's total.

    One council's four quarters of a year to 31 March add up to its referrals in that year, which the
    re-referral report publishes (DfE's measure); a lone hidden quarter would come back by subtraction. So
    the quarters go through report.disclosure.suppress_table as a year-by-quarter table whose year totals
    are known (pinned: published elsewhere), with its secondary suppression and protection interval."""
    hide = pd.Series(False, index=rows.index)
    if "la_code" in rows.columns and rows["la_code"].nunique() > 1:
        for _, g in rows.groupby("la_code"):
            hide.loc[g.index] = _hidden_across_years(g, num, threshold).to_numpy()
        return hide
    d = rows[["period", num]].dropna()
    q = d["period"].astype(int)
    year = q.map(_reporting_year_of_quarter)
    slot = (q % 4 - 1) % 4  # Apr-Jun first
    full = [y for y, n in year.value_counts().items() if n == 4]  # a year's total is published only when whole
    if not full:
        return hide
    cols = ["Q1", "Q2", "Q3", "Q4"]
    table = pd.DataFrame(0.0, index=range(len(full)), columns=cols)
    at = {y: i for i, y in enumerate(sorted(full))}
    for y, k, v in zip(year, slot, d[num]):
        if y in at:
            table.loc[at[y], cols[k]] = float(v)
    table["Year"] = table[cols].sum(axis=1)
    sup = suppress_table(
        table,
        [*cols, "Year"],
        threshold,
        total_column="Year",
        known={(i, "Year"): float(table.loc[i, "Year"]) for i in table.index},
    )
    for i, y, k in zip(d.index, year, slot):
        if y in at:
            hide.loc[i] = bool(sup.mask.loc[at[y], cols[k]])
    return hide


def _start_period(panel: pd.DataFrame, la_code: str | None, start: Any, time: str) -> int:
    """The period the change starts: ``start`` (a date or a period), else the council's adoption period."""
    if start is None:
        if "adoption_period" not in panel.columns:
            raise InputError("no start given and the panel has no adoption_period column.")
        rows = (
            panel.loc[panel["la_code"].astype(str) == str(la_code), "adoption_period"].dropna()
            if la_code is not None
            else panel["adoption_period"].dropna()
        )
        if rows.empty:
            raise InputError(f"council {la_code} has no adoption date, so give the start of the change explicitly.")
        return int(rows.iloc[0])
    if isinstance(start, (int, np.integer)):
        return int(start)
    ts = as_date(start, "start")
    if ts is None:
        raise InputError("start must be a date or a period number.")
    if panel.attrs.get("time_unit") == "year":
        return reporting_year(ts)
    return int(ts.year * 4 + ts.quarter - 1)


def _own_series(panel: pd.DataFrame, la_code: str | None, outcome: str, time: str, threshold: int) -> pd.DataFrame:
    """One council's measured periods in order: period, outcome, and _hide (a small count lies behind it)."""
    d = panel
    if la_code is not None:
        d = panel.loc[panel["la_code"].astype(str) == str(la_code)]
    elif "la_code" in panel.columns and panel["la_code"].nunique() > 1:
        raise InputError("the panel holds several councils; name one la_code for an interrupted time series.")
    if outcome not in d.columns:
        raise InputError(f"outcome '{outcome}' is not in the panel.")
    hide = suppressed_rows(d, outcome, threshold)
    return d.assign(_hide=hide)[[time, outcome, "_hide"]].dropna().sort_values(time)


def interrupted_time_series(
    panel: pd.DataFrame,
    la_code: str | None = None,
    outcome: str = "rereferral_rate",
    *,
    start: Any = None,
    time: str = "period",
    alpha: float = 0.05,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
) -> InterruptedTimeSeries:
    """Segmented regression with level and slope change, and AR(1) errors fitted by REML.

    y = b0 + b1 * t + b2 * after + b3 * (t - start) * after + u, u_t = phi u_(t-1) + e_t, for one
    council with no comparison. The errors allow for neighbouring quarters being alike (see
    ``ar1_regression``: Newey-West errors, used before, covered the truth 81% of the time at a
    nominal 95% with 40 quarters). Anything else that changed at the same time is attributed to
    the programme: a weaker design than the comparison with other councils.

    Fitted on the periods that may be shown only (the errors of the periods either side of a hidden one
    correlate phi^2): a line fitted through a hidden quarter, drawn exactly, would give it back.
    """
    d = _own_series(panel, la_code, outcome, time, disclosure_threshold)
    s0 = _start_period(panel, la_code, start, time)
    t_all = d[time].astype(float).to_numpy()
    shown = ~d["_hide"].to_numpy(bool)
    t = t_all[shown]
    y = d[outcome].astype(float).to_numpy()[shown]
    after = (t >= s0).astype(float)
    n_before, n_after = int((after == 0).sum()), int(after.sum())
    if n_before < 3 or n_after < 3:
        unit = panel.attrs.get("time_unit", "period")
        raise InputError(
            f"an interrupted time series needs at least 3 {unit}s measured before the start and 3 after; "
            f"{reference.council_name(str(la_code))} ({la_code}) has {n_before} before and {n_after} after."
        )
    fit, _ = segmented_regression(t, y, s0)
    fitted = _its_lines(t_all, d[outcome].astype(float).to_numpy(), shown, fit.params, s0)
    return InterruptedTimeSeries(
        la_code=None if la_code is None else str(la_code),
        outcome=outcome,
        start=s0,
        level_change=fit.term(2, alpha),
        slope_change=fit.term(3, alpha),
        pre_slope=fit.term(1, alpha),
        n_before=n_before,
        n_after=n_after,
        fitted=fitted,
        method=fit.method,
        autocorrelation=fit.phi,
        note=fit.note,
        alpha=alpha,
        time_unit=panel.attrs.get("time_unit", "quarter"),
    )


def _its_lines(t: np.ndarray, y: np.ndarray, shown: np.ndarray, params: np.ndarray, s0: int) -> pd.DataFrame:
    """Every period's observed value, whether it is hidden, the segmented trend and the trend had nothing changed
    (the lines are drawn at hidden periods too: they come from the periods shown)."""
    after = (t >= s0).astype(float)
    X = np.column_stack([np.ones_like(t), t - s0, after, (t - s0) * after])
    return pd.DataFrame(
        {
            "period": t.astype(int),
            "observed": y,
            "suppressed": ~shown,
            "fitted": X @ params,
            "counterfactual": params[0] + params[1] * (t - s0),
        }
    )


def _published_gap_table() -> pd.DataFrame:
    """The published panel as council-by-year rates (NaN where DfE published a symbol)."""
    pub = published_panel()
    return pub.pivot_table(index="la_code", columns="year", values="rereferral_rate", aggfunc="first")


@lru_cache(maxsize=1)
def _placebo_neighbour_table() -> pd.DataFrame:
    """Every council of DfE's published panel at every made-up start year with 3 years before and 2 after:
    the |t| of its neighbour comparison there (no programme started then, so the true change is zero)."""
    rates = _published_gap_table()
    years = sorted(int(y) for y in rates.columns)
    rows = []
    for code in sorted(rates.index):
        nbs = [n for n in reference.neighbours_of(code) if n in rates.index and n != code]
        if not nbs:
            continue
        gap = (rates.loc[code] - rates.loc[nbs].mean(axis=0)).dropna()
        gap.index = gap.index.astype(int)
        for start in years[3:-1]:
            got = placebo_t(gap, start)
            if got is not None:
                rows.append({"la_code": code, "start": start, "abs_t": got[0], "model_rejects": got[1]})
    return pd.DataFrame(rows)


def neighbour_calibration(alpha: float = 0.05) -> NeighbourCalibration:
    """The calibration of neighbour comparisons on every placebo start date of DfE's published panel."""
    table = _placebo_neighbour_table()
    if len(table) < 200:
        raise InputError(
            "too few placebo start dates could be made on the published panel to calibrate neighbour comparisons."
        )
    return placebo_calibration(table["abs_t"].to_numpy(float), table["model_rejects"], alpha)


def extract_neighbour_calibration(
    panel: pd.DataFrame,
    outcome: str = "rereferral_rate",
    alpha: float = 0.05,
    *,
    time: str = "period",
    min_before: int = 4,
    min_after: int = 2,
    min_draws: int = 200,
) -> NeighbourCalibration | None:
    """The calibration of neighbour comparisons made inside the councils' own extracts (quarterly), on
    made-up start dates in those extracts: every council with a statistical neighbour in the data (its
    neighbours that adopted left out, as the comparison leaves them out), at every start with
    ``min_before`` periods before and ``min_after`` after, before its own adoption only (no real change
    then). None when fewer than ``min_draws`` such dates exist: the comparison is then the model's alone,
    and the report says it is a lower bound on the uncertainty."""
    if outcome not in panel.columns:
        return None
    codes = panel["la_code"].astype(str)
    adoption = (
        panel.loc[panel["adoption_period"].notna()].groupby(codes)["adoption_period"].first()
        if "adoption_period" in panel.columns
        else pd.Series(dtype=float)
    )
    wide = panel.assign(la_code=codes).pivot_table(index="la_code", columns=time, values=outcome, aggfunc="first")
    rows = []
    for code in sorted(wide.index):
        nbs = [n for n in reference.neighbours_of(code) if n in wide.index and n != code and n not in adoption.index]
        if not nbs:
            continue
        gap = (wide.loc[code] - wide.loc[nbs].mean(axis=0)).dropna()
        gap.index = gap.index.astype(int)
        if code in adoption.index:
            gap = gap[gap.index < int(adoption[code])]
        periods = gap.index.to_numpy(int)
        for start in periods[min_before : len(periods) - min_after + 1]:
            got = placebo_t(gap, int(start))
            if got is not None:
                rows.append((got[0], got[1]))
    if len(rows) < min_draws:
        return None
    return placebo_calibration(
        np.array([r[0] for r in rows], float), [r[1] for r in rows], alpha, "the councils' own extracts"
    )


def neighbour_false_positive_rate(alpha: float = 0.05) -> dict:
    """The false-positive rate of calibrated neighbour comparisons, measured honestly: each council's placebo
    dates are judged against the critical value from the other councils' placebo dates only (leave one
    council out), so no draw helps set its own threshold. The model's own interval's rate beside it."""
    table = _placebo_neighbour_table()
    hits = []
    for code, g in table.groupby("la_code"):
        crit = np.quantile(table.loc[table["la_code"] != code, "abs_t"], 1 - alpha)
        hits.extend(g["abs_t"].to_numpy() > crit)
    k, n = int(np.sum(hits)), len(hits)
    lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return {
        "calibrated_rate": k / n,
        "calibrated_rate_ci": [float(lo), float(hi)],
        "draws": n,
        "councils": int(table["la_code"].nunique()),
        "uncalibrated_rate": float(table["model_rejects"].mean()),
        "nominal": alpha,
    }


def _usable_neighbours(
    panel: pd.DataFrame, la_code: str, neighbours: list[str] | None, exclude_adopters: bool, min_neighbours: int
) -> list[str]:
    """The council's statistical neighbours (or those given) that are in the panel and, by default, did not adopt."""
    wanted = list(neighbours) if neighbours is not None else reference.neighbours_of(la_code)
    present = set(panel["la_code"].astype(str))
    usable = [n for n in wanted if n in present and n != la_code]
    if exclude_adopters and "adoption_period" in panel.columns:
        adopted = set(panel.loc[panel["adoption_period"].notna(), "la_code"].astype(str))
        usable = [n for n in usable if n not in adopted]
    if len(usable) < min_neighbours:
        raise InputError(
            f"council {la_code}: {len(usable)} of its {len(wanted)} statistical neighbours are in the data and did not adopt "
            f"(at least {min_neighbours} needed), so there is no neighbour comparison."
        )
    return usable


def _gap_series(
    panel: pd.DataFrame, la_code: str, usable: list[str], outcome: str, time: str, threshold: int
) -> pd.DataFrame:
    """By period: the council, its neighbours' average, the gap, and whether the council's value is hidden."""
    own_rows = panel.loc[panel["la_code"].astype(str) == la_code]
    hidden = set(own_rows.loc[suppressed_rows(own_rows, outcome, threshold), time])
    own = own_rows[[time, outcome]].dropna().set_index(time)[outcome]
    nb_rows = panel.loc[panel["la_code"].astype(str).isin(usable)]
    nb = nb_rows[[time, outcome]].dropna().groupby(time)[outcome].mean()
    # the neighbours' line is their counts too (with one neighbour, that council's own quarters): hidden where
    # the neighbours' counts behind it, pooled, are small or could be worked out from their years' totals
    behind = [c for c in _COUNTS_BEHIND.get(outcome, (None, None)) if c is not None and c in nb_rows.columns]
    nb_hidden: set = set()
    if behind:
        pooled = nb_rows.loc[nb_rows[outcome].notna()].groupby(time)[behind].sum(min_count=1).reset_index()
        if time != "period":
            pooled["period"] = pooled[time]
        pooled.attrs["time_unit"] = panel.attrs.get("time_unit", "quarter")
        nb_hidden = set(pooled.loc[suppressed_rows(pooled, outcome, threshold).to_numpy(), time])
    s = (
        pd.DataFrame({"council": own, "neighbours": nb})
        .dropna()
        .sort_index()
        .reset_index()
        .rename(columns={time: "period"})
    )
    s["gap"] = s["council"] - s["neighbours"]
    s["suppressed"] = s["period"].isin(hidden)
    s["neighbours_suppressed"] = s["period"].isin(nb_hidden)
    return s


def neighbour_comparison(
    panel: pd.DataFrame,
    la_code: str,
    outcome: str = "rereferral_rate",
    *,
    start: Any = None,
    neighbours: list[str] | None = None,
    time: str = "period",
    min_neighbours: int = 1,
    exclude_adopters: bool = True,
    alpha: float = 0.05,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    source: str = "the data",
    calibration: NeighbourCalibration | None = None,
) -> NeighbourComparison:
    """Council minus its statistical neighbours' average, before against after (DfE's 2025 model).

    Neighbours that adopted the programme themselves are left out (they are not a comparison);
    only neighbours present in the panel count. The gap's periods are alike from one to the
    next, so the change in the gap is a regression with AR(1) errors by REML (``ar1_regression``),
    not Newey-West, which is far too narrow on a series this short. The averages and the fit use the
    periods where neither the council's value nor its neighbours' is hidden: an average over a hidden
    quarter, with the quarters shown, gives it back.
    """
    la_code = str(la_code)
    s0 = _start_period(panel, la_code, start, time)
    usable = _usable_neighbours(panel, la_code, neighbours, exclude_adopters, min_neighbours)
    series = _gap_series(panel, la_code, usable, outcome, time, disclosure_threshold)
    s = series.loc[~(series["suppressed"] | series["neighbours_suppressed"])]
    after = (s["period"] >= s0).astype(float).to_numpy()
    if after.sum() < 2 or (1 - after).sum() < 2:
        raise InputError(
            f"council {la_code}: need at least 2 periods before and 2 after the start with neighbour data."
        )
    X = np.column_stack([np.ones(len(s)), after])
    fit = ar1_regression(s["gap"].to_numpy(), X, times=s["period"].to_numpy())
    change, method = fit.term(1, alpha), fit.method
    if calibration is not None and np.isfinite(change["se"]):
        c = calibration.critical_value
        change = calibration.widen(change)
        method += (
            f"; interval calibrated on {calibration.draws:,} made-up start dates on {calibration.source} "
            f"(|t| beyond {c:.2f} rather than the model's {stats.t.ppf(1 - alpha / 2, fit.df):.2f})"
        )
    return NeighbourComparison(
        la_code=la_code,
        outcome=outcome,
        start=s0,
        neighbours=usable,
        gap_before=float(s.loc[after == 0, "gap"].mean()),
        gap_after=float(s.loc[after == 1, "gap"].mean()),
        change=change,
        series=series,
        method=method,
        autocorrelation=fit.phi,
        note=fit.note,
        source=source,
        alpha=alpha,
        time_unit=panel.attrs.get("time_unit", "quarter"),
    )
