"""Disproportionality for one council: children referred per 10,000 children by ethnic group (ONS 0-17
times the group's Census 2021 share, all ages) with the relative rate index against the council's overall
rate; what happens after referral (assessed, on a plan, on a child protection plan, re-referred within 12
months) by ethnicity, sex, disability and age, against the council's overall share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import contract, reference
from insightlib.errors import InputError
from insightlib.ingest import practice as src
from insightlib.ingest.episodes import DFE_WINDOW_DAYS
from insightlib.stats import rates

AFTER_REFERRAL = {
    "assessed": "assessed",
    "plan": "on a child in need or protection plan",
    "cp_plan": "on a child protection plan",
    "rereferral": "re-referred within 12 months",
}
GROUPS = {"ethnicity": "ethnic group", "sex": "sex", "disability": "disability", "age_band": "age at referral"}
SEX_LABELS = {"M": "Boys", "F": "Girls", "U": "Not known"}


def _child_groups(tables: dict) -> pd.DataFrame:
    ch = tables["children"].copy()
    ch["ethnicity_group"] = ch["ethnicity"].map(contract.ETHNICITY_GROUP).fillna("Not known")
    ch["ethnicity_group"] = ch["ethnicity_group"].replace({"Other": "Any other ethnic group"})
    ch["disability_group"] = np.where(
        ch.get("disability", pd.Series("NONE", index=ch.index))
        .fillna("NONE")
        .astype(str)
        .str.upper()
        .isin(["NONE", "", "NAN"]),
        "No disability",
        "Disability",
    )
    ch["sex_group"] = ch["sex"].map(SEX_LABELS).fillna("Not known")
    return ch


def population_rates(tables: dict, la_code: str, period_days: int = 365, alpha: float = 0.05) -> pd.DataFrame:
    """Children referred in the period per 10,000 children, by ethnic group, with the relative rate index.

    Group populations: ONS 0-17 (latest year not after the extract) times the group's Census 2021 share
    (all ages). Children whose ethnicity is not known are left out of the numerators and the total."""
    ref = tables["referrals"]
    extract = contract.as_datetime(tables["councils"]["extract_date"]).max()
    recent = ref[contract.as_datetime(ref["referral_date"]) > extract - pd.Timedelta(days=period_days)]
    ch = _child_groups(tables).set_index("child_id")
    groups = ch.loc[recent["child_id"].unique(), "ethnicity_group"]
    pop = src.load("population")
    pop = pop[(pop["la_code"] == la_code) & (pop["year"] <= extract.year)].sort_values("year")
    eth = src.load("ethnicity")
    eth = eth[eth["la_code"] == la_code].copy()
    if pop.empty or pop["population"].isna().all() or eth.empty:
        raise InputError(f"No published population for {reference.council_name(la_code)} ({la_code}).")
    children = float(pop["population"].dropna().iloc[-1])
    eth["group"] = eth["ethnicity"].map(contract.ETHNICITY_GROUP).replace({"Other": "Any other ethnic group"})
    shares = eth.groupby("group")["people"].sum() / eth["people"].sum()
    known = groups[groups != "Not known"]
    counts = known.value_counts()
    names = [g for g in ("White", "Mixed", "Asian", "Black", "Any other ethnic group") if g in shares.index]
    a = np.array([counts.get(g, 0) for g in names], dtype=float)
    n = np.array([shares[g] * children for g in names])
    r = rates.rate(a, n)
    rri = rates.relative_rate_index(a, n, a.sum(), children)
    out = pd.DataFrame(
        {
            "group": names,
            "children_referred": a,
            "population": n,
            "census_share": [shares[g] for g in names],
            "referred_share": a / a.sum() if a.sum() else np.nan,
            "rate_per_10000": r["rate"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "rri": rri["rri"],
            "rri_low": rri["ci_low"],
            "rri_high": rri["ci_high"],
        }
    )
    out.attrs.update(
        {
            "children_0_17": children,
            "population_year": int(pop["year"].iloc[-1]),
            "not_known": int((groups == "Not known").sum()),
            "period_days": period_days,
            "overall_rate": a.sum() / children * 10_000,
            "extract": str(extract.date()),
        }
    )
    return out


def after_referral(tables: dict, alpha: float = 0.05) -> pd.DataFrame:
    """Per group (ethnicity, sex, disability, age at referral): the share of referrals assessed, on a plan,
    on a CP plan and re-referred within 12 months, with the relative rate index against the council's share."""
    ref = tables["referrals"].copy()
    ch = _child_groups(tables).set_index("child_id")
    ref["ethnicity"] = ref["child_id"].map(ch["ethnicity_group"]).to_numpy()
    ref["sex"] = ref["child_id"].map(ch["sex_group"]).to_numpy()
    ref["disability"] = ref["child_id"].map(ch["disability_group"]).to_numpy()
    age = (
        contract.as_datetime(ref["referral_date"]) - contract.as_datetime(ref["child_id"].map(ch["date_of_birth"]))
    ).dt.days / 365.25
    ref["age_band"] = contract.age_band(age.to_numpy(dtype=float))
    nfa = (
        ref["referral_nfa"].astype(str).str.lower().isin(["true", "1", "y", "yes"])
        if ref["referral_nfa"].dtype != bool
        else ref["referral_nfa"]
    )
    asm = tables.get("assessments")
    ref["assessed"] = ref["referral_id"].isin(set(asm["referral_id"])) if asm is not None else ~nfa
    plans = tables.get("plans")
    pr = set(plans["referral_id"]) if plans is not None else set()
    cp = set(plans.loc[plans["plan_type"] == "CP", "referral_id"]) if plans is not None else set()
    ref["plan"] = ref["referral_id"].isin(pr)
    ref["cp_plan"] = ref["referral_id"].isin(cp)
    r = ref.sort_values(["child_id", "referral_date"])
    prev = r.groupby("child_id")["referral_date"].shift(1)
    r["rereferral"] = (contract.as_datetime(r["referral_date"]) - contract.as_datetime(prev)).dt.days <= DFE_WINDOW_DAYS
    rows = []
    for by, what in GROUPS.items():
        for outcome in AFTER_REFERRAL:
            total_e, total_n = float(r[outcome].sum()), float(len(r))
            g = r.groupby(by)[outcome].agg(["sum", "size"])
            rri = rates.relative_rate_index(g["sum"], g["size"], total_e, total_n, alpha)
            share = rates.proportion(g["sum"], g["size"], alpha)
            for i, (name, row) in enumerate(g.iterrows()):
                rows.append(
                    {
                        "by": by,
                        "group": str(name),
                        "outcome": outcome,
                        "events": float(row["sum"]),
                        "referrals": float(row["size"]),
                        "share": share["share"].iloc[i],
                        "share_low": share["ci_low"].iloc[i],
                        "share_high": share["ci_high"].iloc[i],
                        "overall_share": total_e / total_n if total_n else np.nan,
                        "rri": rri["rri"].iloc[i],
                        "rri_low": rri["ci_low"].iloc[i],
                        "rri_high": rri["ci_high"].iloc[i],
                    }
                )
    return pd.DataFrame(rows)
