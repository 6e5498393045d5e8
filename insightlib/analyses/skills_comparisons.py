"""The skills gap's context tables: NEET, the Employer Skills Survey and industries against the region,
England and the statistical neighbours; FE achievements, apprenticeships and adverts by profession."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.analyses.skills_area import Area, among, neighbours
from insightlib.analyses.skills_gap import fe_by_subject
from insightlib.contract import SSA_T1
from insightlib.ingest import skills as src


def _council_rows(table: pd.DataFrame, codes) -> pd.DataFrame:
    return table[table["la_code"].isin(codes)]


def neet_comparison(neet: pd.DataFrame, area: Area) -> pd.DataFrame:
    """NEET, not known and participation (%), 2022 and 2023: the area, its region, England, neighbours' median."""
    rows = []
    measures = ["neet_pct", "not_known_pct", "neet_or_not_known_pct", "participation_pct", "apprenticeship_pct"]
    for year in sorted(neet["year"].unique()):
        y = neet[neet["year"] == year]
        councils = _council_rows(y, area.councils)
        if len(councils) and councils["cohort"].notna().all():
            w = councils["cohort"]
            rows.append(
                {
                    "year": int(year),
                    "comparator": area.name,
                    "cohort": float(w.sum()),
                    **{m: float((councils[m] * w).sum() / w.sum()) for m in measures},
                }
            )
        if area.region:
            r = y[(y["level"] == "Regional") & (y["region"] == area.region)]
            if len(r):
                rows.append(
                    {
                        "year": int(year),
                        "comparator": area.region,
                        "cohort": float(r["cohort"].iloc[0]),
                        **{m: float(r[m].iloc[0]) for m in measures},
                    }
                )
        e = y[y["level"] == "National"]
        rows.append(
            {
                "year": int(year),
                "comparator": "England",
                "cohort": float(e["cohort"].iloc[0]),
                **{m: float(e[m].iloc[0]) for m in measures},
            }
        )
        if area.kind == "council":
            sn = neighbours(area.councils[0])
            n = _council_rows(y, sn)
            if len(n):
                rows.append(
                    {
                        "year": int(year),
                        "comparator": "Statistical neighbours (median)",
                        "cohort": None,
                        **{m: float(n[m].median()) for m in measures},
                    }
                )
    return pd.DataFrame(rows)


def ess_comparison(ess: pd.DataFrame, area: Area) -> pd.DataFrame:
    """Employer Skills Survey 2019: vacancies, skill-shortage vacancies (SSVs) and their density.

    Shares are recomputed from the summed counts (for one council they equal the published
    ones); the interval is for the share of establishments with an SSV (binomial on the
    establishments interviewed, no design effect: the survey's weighting widens it somewhat).
    """
    la = reference.local_authorities()
    keyed = ess.assign(key=ess["area"].map(src.name_key))
    code_of = dict(zip(la["la_name"].map(src.name_key), la["la_code"]))
    keyed["la_code"] = keyed["key"].map(code_of)

    def row(label, part: pd.DataFrame) -> dict:
        n = part["sampled"].sum()
        p = float((part["share_establishments_with_ssv"] * part["establishments"]).sum() / part["establishments"].sum())
        half = 1.96 * np.sqrt(p * (1 - p) / n) if n else np.nan
        return {
            "comparator": label,
            "establishments_interviewed": float(n),
            "establishments": float(part["establishments"].sum()),
            "staff": float(part["staff"].sum()),
            "vacancies": float(part["vacancies"].sum()),
            "ssv": float(part["ssv"].sum()),
            "ssv_share_of_vacancies": float(part["ssv"].sum() / part["vacancies"].sum()),
            "ssv_per_1000_staff": float(1000 * part["ssv"].sum() / part["staff"].sum()),
            "vacancies_per_1000_staff": float(1000 * part["vacancies"].sum() / part["staff"].sum()),
            "share_establishments_with_ssv": p,
            "ssv_establishments_ci_low": max(0.0, p - half),
            "ssv_establishments_ci_high": min(1.0, p + half),
        }

    rows = []
    mine = keyed[keyed["la_code"].isin(area.councils)]
    if len(mine) and len(mine) == len(area.councils):
        rows.append(row(area.name, mine))
    if area.region:
        in_region = set(la[la["region"] == area.region]["la_code"])
        rows.append(row(area.region, keyed[keyed["la_code"].isin(in_region)]))
    rows.append(row("England", keyed[keyed["area"] == "England"]))
    if area.kind == "council":
        sn = keyed[keyed["la_code"].isin(neighbours(area.councils[0]))]
        if len(sn):
            each = pd.DataFrame([row(r.area, keyed[keyed["area"] == r.area]) for r in sn.itertuples()])
            med = each.drop(columns="comparator").median().to_dict()
            rows.append({"comparator": "Statistical neighbours (median)", **med})
    return pd.DataFrame(rows)


def industry_comparison(industry: pd.DataFrame, districts, england_districts) -> pd.DataFrame:
    """APS employment by industry group: the area's latest year, its share beside England's, and its change.

    England is the sum of England's districts. Shares use the summed group counts, so they add to 1.
    """

    def summed(names):
        d = industry[among(industry["area"], names)]
        return d.groupby(["year", "industry"])["employed"].sum().unstack("year")

    own, eng = summed(districts), summed(england_districts)
    first, last = int(own.columns.min()), int(own.columns.max())
    out = pd.DataFrame(
        {"industry": own.index, f"employed_{first}": own[first].to_numpy(), f"employed_{last}": own[last].to_numpy()}
    )
    out["share"] = out[f"employed_{last}"] / out[f"employed_{last}"].sum()
    out["england_share"] = (eng[last] / eng[last].sum()).reindex(own.index).to_numpy()
    out["relative_to_england"] = out["share"] / out["england_share"]
    out["change"] = out[f"employed_{last}"] - out[f"employed_{first}"]
    out["england_change_pct"] = ((eng[last] - eng[first]) / eng[first]).reindex(own.index).to_numpy()
    out.attrs["years"] = (first, last)
    return out.sort_values(f"employed_{last}", ascending=False).reset_index(drop=True)


def fe_comparison(fe: pd.DataFrame, districts) -> pd.DataFrame:
    """FE achievements per subject (every subject, the area's beside England's)."""
    table = pd.DataFrame({"subject": list(SSA_T1)})
    table = table.merge(fe_by_subject(fe, districts).reset_index().rename(columns={"ssa": "subject"}), on="subject")
    return table.merge(
        fe_by_subject(fe)
        .reset_index()[["ssa", "achievements"]]
        .rename(columns={"ssa": "subject", "achievements": "england_achievements"}),
        on="subject",
    )


def apprenticeship_comparison(app: pd.DataFrame, districts) -> pd.DataFrame:
    """Apprenticeship starts and achievements per year, the area's beside England's."""
    own = app[among(app["area"], districts)].groupby("year", as_index=False)[["starts", "achievements"]].sum()
    england = (
        app.groupby("year", as_index=False)[["starts", "achievements"]]
        .sum()
        .rename(columns={"starts": "england_starts", "achievements": "england_achievements"})
    )
    return own.merge(england, on="year")


def adverts_by_profession(table: pd.DataFrame, area: Area) -> pd.DataFrame:
    """October 2022 adverts by profession for the area's LSIP (or itself), share against England's."""
    name = area.name if area.kind != "council" else area.lsip
    level = "MCA" if area.kind == "combined_authority" else "LSIP"
    own = table[(table["level"] == level) & (table["area"].map(src.name_key) == src.name_key(name))]
    eng = table[table["area"] == "England"]
    out = own[["profession", "adverts"]].merge(
        eng[["profession", "adverts"]].rename(columns={"adverts": "england"}), on="profession"
    )
    out["share"] = out["adverts"] / out["adverts"].sum()
    out["england_share"] = out["england"] / out["england"].sum()
    out["relative_to_england"] = out["share"] / out["england_share"]
    out.insert(0, "area", name)
    return out.sort_values("adverts", ascending=False).reset_index(drop=True)
