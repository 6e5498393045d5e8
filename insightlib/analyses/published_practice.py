"""The practice picture from DfE's and ONS's published data, for one council or all (no words).

* ``factor_profile`` : the council's factors identified at assessment (per 100 episodes with a
  factor) against England (relative rate index: the council is part of England) and against
  its ten statistical neighbours pooled (rate ratio: independent groups), with intervals.
* ``factor_trend`` : each factor's share per year, 2018-2025, council, neighbours and England.
* ``workforce_profile`` : turnover, agency, vacancy and caseload: the council, its neighbours
  (median and range) and England, per year.
* ``turnover_and_rereferral`` : across councils, workforce turnover against the published
  re-referral rate of the same year (correlation with interval): association, not cause.
* ``children_in_need_funnel`` : children in need at 31 March per 10,000 children against the
  rate each council's deprivation (IDACI 2019) predicts (stats.deprivation_funnel).
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.ingest import practice as src
from insightlib.stats import deprivation_funnel as dfun
from insightlib.stats import rates

ENGLAND = src.ENGLAND


def _check_council(la_code: str) -> None:
    if la_code not in set(reference.local_authorities()["la_code"]):
        raise InputError(f"{la_code!r} is not one of the 153 councils' 3-digit codes.")


def _same_for_every_council(f):
    """A figure across all councils from the shipped published tables: worked out once per process (a
    batch's warm kernel reports council after council), each caller given its own copy."""
    kept = functools.lru_cache(maxsize=8)(f)

    @functools.wraps(f)
    def fresh(*args, **kwargs):
        return copy.deepcopy(kept(*args, **kwargs))

    _KEPT.append(kept)
    return fresh


#: Every figure kept by _same_for_every_council (forget_figures empties them).
_KEPT: list = []


def forget_figures() -> None:
    """Work every figure across councils out afresh (a test that patched the shipped tables or a council's name)."""
    for kept in _KEPT:
        kept.cache_clear()


def latest_year(table: str = "factors") -> int:
    return int(src.load(table)["year"].max())


@_same_for_every_council
def _long_factors() -> pd.DataFrame:
    df = src.load("factors")
    parts = []
    for col, code in src.FACTOR_COLUMNS.items():
        parts.append(
            pd.DataFrame(
                {
                    "year": df["year"],
                    "la_code": df["la_code"],
                    "factor": code,
                    "factor_column": col,
                    "count": df[col],
                    "symbol": df[col + "_symbol"],
                    "episodes": df["episodes"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def factor_profile(la_code: str, year: int | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """One row per factor: the council's count and share, England's and the neighbours', ratios with intervals."""
    _check_council(la_code)
    f = _long_factors()
    year = int(year or f["year"].max())
    f = f[f["year"] == year]
    if not (f["la_code"] == la_code).any():
        raise InputError(f"DfE published no factors at assessment for {reference.council_name(la_code)} in {year}.")
    neighbours = reference.neighbours_of(la_code)
    own = f[f["la_code"] == la_code].set_index("factor")
    eng = f[f["la_code"] == ENGLAND].set_index("factor")
    nb = f[f["la_code"].isin(neighbours)]
    nb_ok = nb[nb["count"].notna() & nb["episodes"].notna()]
    nb_sum = nb_ok.groupby("factor").agg(
        nb_count=("count", "sum"), nb_episodes=("episodes", "sum"), nb_councils=("la_code", "nunique")
    )
    out = pd.DataFrame(
        {
            "factor": own.index,
            "factor_column": own["factor_column"].to_numpy(),
            "label": [src.FACTOR_LABELS.get(c, c) for c in own.index],
            "count": own["count"].to_numpy(),
            "symbol": own["symbol"].to_numpy(),
            "episodes": own["episodes"].to_numpy(),
        }
    )
    out["england_count"] = out["factor"].map(eng["count"])
    out["england_episodes"] = out["factor"].map(eng["episodes"])
    out = out.join(nb_sum, on="factor")
    share = rates.proportion(out["count"], out["episodes"], alpha)
    out["per_100"] = share["share"] * 100
    out["ci_low"], out["ci_high"] = share["ci_low"] * 100, share["ci_high"] * 100
    out["england_per_100"] = out["england_count"] / out["england_episodes"] * 100
    out["neighbours_per_100"] = out["nb_count"] / out["nb_episodes"] * 100
    rri = rates.relative_rate_index(out["count"], out["episodes"], out["england_count"], out["england_episodes"], alpha)
    out["vs_england"], out["vs_england_low"], out["vs_england_high"] = rri["rri"], rri["ci_low"], rri["ci_high"]
    rr = rates.rate_ratio(out["count"], out["episodes"], out["nb_count"], out["nb_episodes"], alpha)
    out["vs_neighbours"], out["vs_neighbours_low"], out["vs_neighbours_high"] = rr["ratio"], rr["ci_low"], rr["ci_high"]
    out["year"] = year
    out["la_code"] = la_code
    return out.sort_values("per_100", ascending=False, na_position="last").reset_index(drop=True)


def factor_trend(la_code: str, factors=None, alpha: float = 0.05) -> pd.DataFrame:
    """Per year and factor: the council's share per 100 with interval, the neighbours' pooled and England's."""
    _check_council(la_code)
    f = _long_factors()
    if factors is not None:
        f = f[f["factor"].isin(list(factors))]
    neighbours = reference.neighbours_of(la_code)
    own = f[f["la_code"] == la_code].copy()
    share = rates.proportion(own["count"], own["episodes"], alpha)
    own["per_100"], own["ci_low"], own["ci_high"] = (
        (share["share"] * 100).to_numpy(),
        (share["ci_low"] * 100).to_numpy(),
        (share["ci_high"] * 100).to_numpy(),
    )
    eng = f[f["la_code"] == ENGLAND].set_index(["year", "factor"])
    own["england_per_100"] = [
        eng["count"].get(k, np.nan) / eng["episodes"].get(k, np.nan) * 100 for k in zip(own["year"], own["factor"])
    ]
    nb = f[f["la_code"].isin(neighbours) & f["count"].notna() & f["episodes"].notna()]
    nbs = nb.groupby(["year", "factor"])[["count", "episodes"]].sum()
    own["neighbours_per_100"] = [
        (nbs["count"] / nbs["episodes"] * 100).get(k, np.nan) for k in zip(own["year"], own["factor"])
    ]
    return (
        own[
            [
                "year",
                "factor",
                "count",
                "symbol",
                "episodes",
                "per_100",
                "ci_low",
                "ci_high",
                "neighbours_per_100",
                "england_per_100",
            ]
        ]
        .sort_values(["factor", "year"])
        .reset_index(drop=True)
    )


WORKFORCE_MEASURES = {
    "turnover_rate_fte": "turnover (% of FTE social workers leaving in the year)",
    "agency_rate_fte": "agency workers (% of FTE)",
    "vacancy_rate_fte": "vacancies (% of FTE posts)",
    "caseload_fte": "average caseload (cases per FTE case holder)",
}


def workforce_profile(la_code: str) -> pd.DataFrame:
    """Per year and measure: the council, its neighbours' median and range, England."""
    _check_council(la_code)
    w = src.load("workforce")
    neighbours = reference.neighbours_of(la_code)
    rows = []
    for year, g in w.groupby("year"):
        own, eng = g[g["la_code"] == la_code], g[g["la_code"] == ENGLAND]
        nb = g[g["la_code"].isin(neighbours)]
        for m in WORKFORCE_MEASURES:
            v = nb[m].dropna()
            rows.append(
                {
                    "year": int(year),
                    "measure": m,
                    "council": own[m].iloc[0] if len(own) else np.nan,
                    "council_symbol": own[m + "_symbol"].iloc[0] if len(own) else "x",
                    "neighbours_median": v.median() if len(v) else np.nan,
                    "neighbours_low": v.min() if len(v) else np.nan,
                    "neighbours_high": v.max() if len(v) else np.nan,
                    "neighbours_n": int(len(v)),
                    "england": eng[m].iloc[0] if len(eng) else np.nan,
                }
            )
    return pd.DataFrame(rows)


@_same_for_every_council
def turnover_and_rereferral(year: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Across councils: workforce turnover and the published re-referral rate of the same year."""
    w = src.load("workforce")
    rr = reference.rereferral_rates()
    years = sorted(set(w["year"]) & set(rr["year"]))
    year = int(year or years[-1])
    a = w[(w["year"] == year) & (w["la_code"] != ENGLAND)][["la_code", "turnover_rate_fte", "agency_rate_fte"]]
    b = rr[rr["year"] == year][["la_code", "rereferral_percent"]]
    d = a.merge(b, on="la_code", how="inner").dropna()
    return d.reset_index(drop=True), {
        "year": year,
        **rates.correlation(d["turnover_rate_fte"], d["rereferral_percent"]),
    }


@_same_for_every_council
def children_in_need_funnel(year: int | None = None, covariate: str = "idaci_score") -> dfun.DeprivationFunnel:
    """Children in need at 31 March per 10,000 children (ONS 0-17, mid-year before) against deprivation.

    Every council with a published count, population and deprivation score is in it; councils
    without one are listed in ``funnel.table.attrs['left_out']`` with the reason."""
    cin = src.load("children_in_need")
    pop = src.load("population")
    dep = src.load("deprivation")
    year = int(year or cin["year"].max())
    c = cin[(cin["year"] == year) & (cin["la_code"] != ENGLAND)][["la_code", "at31_episodes", "at31_episodes_symbol"]]
    p = pop[(pop["year"] == year - 1) & (pop["la_code"] != ENGLAND)][["la_code", "population"]]
    d = c.merge(p, on="la_code", how="outer").merge(
        dep[["la_code", covariate, "deprivation_from"]], on="la_code", how="outer"
    )
    d = d[d["la_code"].isin(set(reference.local_authorities()["la_code"]))]
    ok = d["at31_episodes"].notna() & d["population"].notna() & d[covariate].notna()
    left = d[~ok]
    d = d[ok].rename(columns={"at31_episodes": "observed", covariate: "deprivation"})
    funnel = dfun.deprivation_funnel(d, observed="observed", population="population", deprivation="deprivation")
    funnel.table["la_name"] = funnel.table["la_code"].map(reference.council_name)
    funnel.table.attrs["left_out"] = {
        r["la_code"]: (
            "children in need not published (" + r["at31_episodes_symbol"] + ")"
            if pd.isna(r["at31_episodes"])
            else "no population or deprivation"
        )
        for r in left.to_dict("records")
    }
    funnel.table.attrs["year"] = year
    funnel.table.attrs["population_year"] = year - 1
    return funnel
