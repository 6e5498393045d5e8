"""The council-by-quarter panel a programme evaluation runs on: outcomes from each council's canonical tables
(re-referral within 12 months of closure, referrals, child protection plans, closures with no further action),
each council's adoption quarter and the periods since it; and DfE's published council panel (annual)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from .. import reference
from ..contract import ADULT_AGE_YEARS, TABLES
from ..errors import InputError
from .programme_parameters import as_date, council_code, normalise_adoption

#: Outcomes the council-quarter panel carries, with the words reports use.
OUTCOMES = {
    "rereferral_rate": "re-referral within 12 months of closure (% of closures)",
    "referrals": "referrals (count)",
    "referrals_per_10k": "referrals per 10,000 children",
    "cp_plans": "child protection plans starting (count)",
    "cp_plans_per_10k": "child protection plans starting per 10,000 children",
    "nfa_closures": "closures with no further action (count)",
    "nfa_share": "closures with no further action (% of closures)",
    "closures": "closures (count)",
}
#: DfE's published measure, which differs from the panel's own re-referral rate.
PUBLISHED_REREFERRAL = "re-referrals within 12 months of a previous referral (% of referrals, DfE)"
#: Outcomes measured as a percentage: effects on them are in percentage points.
PERCENT_OUTCOMES = ("rereferral_rate", "nfa_share")
#: Closure reason meaning "closed after assessment, no further action".
NFA_CLOSURE_REASON = "RC8"
FOLLOW_UP_DAYS = 365


def quarter_index(dates: pd.Series) -> pd.Series:
    """Quarters as consecutive integers (year*4 + quarter-1), so differences are quarters."""
    d = pd.to_datetime(dates)
    return (d.dt.year * 4 + d.dt.quarter - 1).astype("Int64")


def quarter_label(index: int) -> str:
    """A quarter index as 2016Q2."""
    return f"{index // 4}Q{index % 4 + 1}"


def _quarter_start(index: int) -> pd.Timestamp:
    """The first day of a quarter index."""
    return pd.Timestamp(year=index // 4, month=3 * (index % 4) + 1, day=1)


def _quarter_end(index: int) -> pd.Timestamp:
    """The last day of a quarter index."""
    return _quarter_start(index + 1) - pd.Timedelta(days=1)


def _combine_tables(tables: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """Accept one dict of tables (all councils, la_code column) or a dict la_code -> tables."""
    if not isinstance(tables, Mapping) or not tables:
        raise InputError(
            "No tables were given: expected a dict of table name -> DataFrame (all councils) or la_code -> tables."
        )
    if any(name in TABLES for name in tables):
        return {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}
    combined: dict[str, list[pd.DataFrame]] = {}
    for la_code, council_tables in tables.items():
        if not isinstance(council_tables, Mapping):
            raise InputError(f"tables for council {la_code!r} must be a dict of table name -> DataFrame.")
        for name, df in council_tables.items():
            if isinstance(df, pd.DataFrame):
                df = df.copy()
                if "la_code" not in df.columns:
                    df["la_code"] = str(la_code)
                combined.setdefault(name, []).append(df)
    return {name: pd.concat(frames, ignore_index=True) for name, frames in combined.items()}


def _require(df: pd.DataFrame | None, table: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if df is None:
        raise InputError(f"table '{table}' is needed for the programme panel but was not given.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"table '{table}' is missing column(s) {', '.join(missing)} needed for the programme panel.")
    return df


def _population_map(population: Any) -> dict[str, float]:
    if population is None:
        return {}
    if isinstance(population, pd.DataFrame):
        cols = set(population.columns)
        value = next((c for c in ("population", "children", "child_population") if c in cols), None)
        if "la_code" not in cols or value is None:
            raise InputError("population table needs columns la_code and population (children aged 0 to 17).")
        population = dict(zip(population["la_code"].astype(str), population[value]))
    out = {}
    for key, value in dict(population).items():
        code = council_code(key, "population")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(f"population for council {code}: {value!r} is not a number.") from None
        if not v > 0:
            raise InputError(f"population for council {code} must be a positive number of children; got {value!r}.")
        out[code] = v
    return out


def _closure_cohort(referrals: pd.DataFrame, children: pd.DataFrame | None) -> pd.DataFrame:
    """Each closed referral with whether the child came back within 365 days (18th birthday truncates)."""
    import duckdb

    ref = referrals[["la_code", "referral_id", "child_id", "referral_date", "closure_date"]].copy()
    ref["la_code"] = ref["la_code"].astype(str)
    ref["referral_id"] = ref["referral_id"].astype(str)
    ref["child_id"] = ref["child_id"].astype(str)
    ref["referral_date"] = pd.to_datetime(ref["referral_date"])
    ref["closure_date"] = pd.to_datetime(ref["closure_date"])
    if children is not None and "date_of_birth" in children.columns:
        dob = children[["la_code", "child_id", "date_of_birth"]].copy()
        dob["la_code"] = dob["la_code"].astype(str)
        dob["child_id"] = dob["child_id"].astype(str)
        dob["date_of_birth"] = pd.to_datetime(dob["date_of_birth"])
        dob = dob.drop_duplicates(["la_code", "child_id"])
    else:
        dob = pd.DataFrame(
            {
                "la_code": pd.Series(dtype=str),
                "child_id": pd.Series(dtype=str),
                "date_of_birth": pd.Series(dtype="datetime64[ns]"),
            }
        )
    con = duckdb.connect()
    try:
        con.register("ref", ref)
        con.register("dob", dob)
        out = con.execute(
            f"""
            WITH closed AS (SELECT * FROM ref WHERE closure_date IS NOT NULL)
            SELECT c.la_code, c.referral_id, c.closure_date,
                   d.date_of_birth + INTERVAL {ADULT_AGE_YEARS} YEAR AS turns_18,
                   min(n.referral_date) AS next_referral_date
            FROM closed c
            LEFT JOIN dob d ON d.la_code = c.la_code AND d.child_id = c.child_id
            LEFT JOIN ref n ON n.la_code = c.la_code AND n.child_id = c.child_id
                 AND n.referral_id <> c.referral_id
                 AND n.referral_date >= c.closure_date AND n.referral_date > c.referral_date
            GROUP BY ALL
            """
        ).df()
    finally:
        con.close()
    for col in ("closure_date", "turns_18", "next_referral_date"):
        out[col] = pd.to_datetime(out[col])
    window_end = out["closure_date"] + pd.Timedelta(days=FOLLOW_UP_DAYS)
    window_end = window_end.where(out["turns_18"].isna() | (out["turns_18"] > window_end), out["turns_18"])
    out["adult_at_closure"] = out["turns_18"].notna() & (out["turns_18"] <= out["closure_date"])
    out["rereferred_12m"] = (
        out["next_referral_date"].notna() & (out["next_referral_date"] <= window_end) & ~out["adult_at_closure"]
    )
    return out


def council_quarter_panel(
    tables: Mapping[str, Any],
    adoption: Mapping[Any, Any] | None = None,
    *,
    population: Any = None,
    extract_date: Any = None,
    start: Any = None,
) -> pd.DataFrame:
    """Council-by-quarter outcomes from the canonical tables, with each council's adoption quarter.

    ``tables``: one dict of DataFrames for all councils (la_code column) or la_code -> tables.
    ``adoption``: la_code -> adoption date (None or absent: not adopted in the period).
    ``population``: optional la_code -> number of children, for rates per 10,000.
    ``start``: first quarter to include (default: the quarter of each council's first referral;
    give it when the extract starts part-way through a quarter, so counts are not short).

    Re-referral rate: of the closures in the quarter (children under 18 at closure), the share
    whose next referral came within 365 days, the window ending early at the 18th birthday.
    It is missing, never zero, for quarters without a full year of follow-up before the
    extract date. Counts run over each council's complete quarters only.
    """
    t = _combine_tables(tables)
    referrals = _referrals(t)
    adoption_map = normalise_adoption(adoption or {})
    population_map = _population_map(population)
    given_extract = as_date(extract_date, "extract_date") if extract_date is not None else None
    start_date = as_date(start, "start") if start is not None else None
    first_seen = referrals.groupby("la_code")["referral_date"].min()
    unknown = sorted(set(adoption_map) - set(first_seen.index))
    if unknown:
        raise InputError(
            f"adoption names council(s) {', '.join(unknown)} that have no referrals in the data; "
            "check the codes, or the data given."
        )
    panel = _quarter_grid(referrals, t.get("councils"), given_extract, start_date)
    panel = _with_counts(panel, referrals, t.get("children"), t.get("plans"))
    panel = _with_outcomes(panel, population_map)
    panel["quarter"] = panel["period"].map(lambda q: quarter_label(int(q)))
    panel["quarter_start"] = panel["period"].map(lambda q: _quarter_start(int(q)))
    adoption_dates = panel["la_code"].map(lambda c: adoption_map.get(c))
    panel["adoption_date"] = pd.to_datetime(adoption_dates)
    panel["adoption_period"] = quarter_index(panel["adoption_date"])
    panel = add_event_time(panel)
    panel["period"] = panel["period"].astype(int)
    panel = panel[PANEL_COLUMNS].sort_values(["la_code", "period"]).reset_index(drop=True)
    panel.attrs["time_unit"] = "quarter"
    return panel


#: The council-quarter panel's columns, in order.
PANEL_COLUMNS = [
    "la_code", "quarter", "period", "quarter_start", "adoption_date", "adoption_period", "event_time", "treated",
    "referrals", "referrals_per_10k", "cp_plans", "cp_plans_per_10k", "closures", "nfa_closures", "nfa_share",
    "cohort_closures", "rereferrals_12m", "rereferral_rate", "full_follow_up", "population", "extract_date",
]  # fmt: skip


def _referrals(t: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The referrals table with the columns the panel needs (closure fields may be absent: missing)."""
    referrals = _require(t.get("referrals"), "referrals", ("la_code", "referral_id", "child_id", "referral_date"))
    referrals = referrals.copy()
    referrals["la_code"] = referrals["la_code"].astype(str)
    for col in ("closure_date", "closure_reason", "referral_nfa"):
        if col not in referrals.columns:
            referrals[col] = pd.NA
    referrals["referral_date"] = pd.to_datetime(referrals["referral_date"])
    referrals["closure_date"] = pd.to_datetime(referrals["closure_date"])
    if referrals.empty:
        raise InputError("table 'referrals' has no rows, so there is nothing to build a programme panel from.")
    return referrals


def _quarter_grid(
    referrals: pd.DataFrame,
    councils: pd.DataFrame | None,
    given_extract: pd.Timestamp | None,
    start_date: pd.Timestamp | None,
) -> pd.DataFrame:
    """Each council's complete quarters (la_code, period, extract_date), from its first referral (or ``start``)
    to its extract date: the councils table's, else the argument, else the last date seen."""
    extract: dict[str, pd.Timestamp] = {}
    if councils is not None and {"la_code", "extract_date"} <= set(councils.columns):
        for code, value in zip(councils["la_code"].astype(str), pd.to_datetime(councils["extract_date"])):
            if pd.notna(value):
                extract[code] = value
    last_seen = referrals.groupby("la_code")[["referral_date", "closure_date"]].max().max(axis=1)
    first_seen = referrals.groupby("la_code")["referral_date"].min()
    grid = []
    for code, first in first_seen.items():
        ext = extract.get(code, given_extract if given_extract is not None else last_seen[code])
        q_first = int(quarter_index(pd.Series([first if start_date is None else max(first, start_date)])).iloc[0])
        q_last = int(quarter_index(pd.Series([ext])).iloc[0])
        if ext < _quarter_end(q_last):
            q_last -= 1  # the extract date falls inside this quarter
        for q in range(q_first, q_last + 1):
            grid.append((code, q, ext))
    panel = pd.DataFrame(grid, columns=["la_code", "period", "extract_date"])
    if panel.empty:
        raise InputError("the referrals cover no complete quarter before the extract date, so no panel can be built.")
    return panel


def _counts(df: pd.DataFrame, date_col: str, name: str) -> pd.Series:
    """Rows per council and quarter of ``date_col``."""
    df = df.loc[df[date_col].notna()]
    return df.groupby([df["la_code"].astype(str), quarter_index(df[date_col]).rename("period")]).size().rename(name)


def _with_counts(
    panel: pd.DataFrame, referrals: pd.DataFrame, children: pd.DataFrame | None, plans: pd.DataFrame | None
) -> pd.DataFrame:
    """The grid with each quarter's referrals, closures, closures with no further action, child protection
    plans starting, and closures of children under 18 with how many were re-referred within 12 months."""
    ref_counts = _counts(referrals, "referral_date", "referrals")
    closed = referrals.loc[referrals["closure_date"].notna()].copy()
    nfa_flag = closed["referral_nfa"].map(lambda v: str(v).strip().lower() in ("true", "1", "y", "yes", "t"))
    closed["nfa"] = nfa_flag | (closed["closure_reason"].astype(str) == NFA_CLOSURE_REASON)
    nfa_counts = _counts(closed.loc[closed["nfa"]], "closure_date", "nfa_closures")
    closure_counts = _counts(closed, "closure_date", "closures")

    cohort = _closure_cohort(referrals, children)
    cohort = cohort.loc[~cohort["adult_at_closure"]]
    cohort["period"] = quarter_index(cohort["closure_date"])
    rr = cohort.groupby(["la_code", "period"]).agg(
        cohort_closures=("rereferred_12m", "size"), rereferrals_12m=("rereferred_12m", "sum")
    )

    if plans is not None and {"la_code", "plan_type", "start_date"} <= set(plans.columns):
        cp = plans.loc[plans["plan_type"].astype(str) == "CP"].copy()
        cp["start_date"] = pd.to_datetime(cp["start_date"])
        cp_counts = _counts(cp, "start_date", "cp_plans")
    else:
        cp_counts = pd.Series(dtype=float, name="cp_plans")

    panel = panel.set_index(["la_code", "period"])
    for series in (ref_counts, closure_counts, nfa_counts, cp_counts):
        panel = panel.join(series, how="left")
    panel = panel.join(rr, how="left").reset_index()
    for col in ("referrals", "closures", "nfa_closures", "cp_plans", "cohort_closures", "rereferrals_12m"):
        panel[col] = panel[col].fillna(0).astype(int)
    if plans is None:
        panel["cp_plans"] = np.nan
    return panel


def _with_outcomes(panel: pd.DataFrame, population_map: dict[str, float]) -> pd.DataFrame:
    """Rates from the counts: re-referral (only for quarters with a full year of follow-up), no further
    action share, and per 10,000 children where the population is known."""
    ends = panel["period"].map(lambda q: _quarter_end(int(q)))
    full_follow_up = ends + pd.Timedelta(days=FOLLOW_UP_DAYS) <= panel["extract_date"]
    rate = 100.0 * panel["rereferrals_12m"] / panel["cohort_closures"].where(panel["cohort_closures"] > 0)
    panel["rereferral_rate"] = rate.where(full_follow_up)
    panel["full_follow_up"] = full_follow_up
    panel["nfa_share"] = 100.0 * panel["nfa_closures"] / panel["closures"].where(panel["closures"] > 0)
    pop = panel["la_code"].map(population_map).astype(float)
    panel["population"] = pop
    panel["referrals_per_10k"] = 10_000 * panel["referrals"] / pop
    panel["cp_plans_per_10k"] = 10_000 * panel["cp_plans"] / pop
    return panel


def add_event_time(panel: pd.DataFrame, time: str = "period", adoption: str = "adoption_period") -> pd.DataFrame:
    """Periods since adoption (missing for never) and whether each row is on or after it."""
    panel = panel.copy()
    panel[adoption] = pd.array(panel[adoption], dtype="Int64")
    panel["event_time"] = (panel[time].astype("Int64") - panel[adoption]).astype("Int64")
    panel["treated"] = (panel["event_time"] >= 0).fillna(False).astype(bool)
    return panel


def reporting_year(value: Any) -> int | None:
    """DfE's year label for a date: the year ending 31 March (2017-06-01 -> 2018)."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    ts = as_date(value, "adoption")
    if ts is None:
        return None
    return ts.year + (1 if ts.month >= 4 else 0)


def published_panel(adoption: Mapping[Any, Any] | None = None) -> pd.DataFrame:
    """Every council's published re-referral rate, 2013 to 2025, as a council-by-year panel.

    Values DfE published as a symbol (c suppressed, x not available, u low reliability) are
    missing, never zero. ``adoption`` maps la_code to a date or a DfE year (the year ending
    31 March) for real programme adoptions; by default no council has adopted.
    """
    rates = reference.rereferral_rates()
    panel = pd.DataFrame(
        {
            "la_code": rates["la_code"].astype(str),
            "la_name": rates["la_name"],
            "region": rates["region_name"],
            "year": rates["year"].astype(int),
            "period": rates["year"].astype(int),
            "referrals": rates["referral_count"],
            "rereferrals": rates["rereferral_count"],
            "rereferral_rate": rates["rereferral_percent"],
            "rereferral_rate_symbol": rates["rereferral_percent_symbol"],
            "nfa_share": rates["no_further_action_percent"],
        }
    )
    years = {}
    for key, value in (adoption or {}).items():
        years[council_code(key, "adoption")] = reporting_year(value)
    panel["adoption_period"] = panel["la_code"].map(years)
    panel = add_event_time(panel)
    panel.attrs["time_unit"] = "year"
    return panel.sort_values(["la_code", "year"]).reset_index(drop=True)
