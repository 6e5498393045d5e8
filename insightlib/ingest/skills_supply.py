"""Readers for the published skills sources on supply: FE achievements by sector subject area,
apprenticeships by the learner's home district, and 16-17 year olds NEET (DfE's files and LAIT).

Each checks its file's structure and returns a tidy table; every problem goes into ``problems``
(file, row, column, rule) so that ``ingest.skills.read_sources`` reports them all at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from insightlib.contract import SSA_NOT_KNOWN, SSA_T1
from insightlib.ingest.published import Problems, numbers, read_checked

#: The FE file's place and year columns (as ours are named), and the breakdowns kept at their "Total" rows.
FE_PLACE = {"location": "area", "location_code": "area_code", "geographic_level": "level", "time_period": "year"}
FE_BREAKDOWNS = ("notional_nvq_level", "ethnicity_group", "gender")
#: The NEET file's measures (as ours are named).
NEET_MEASURES = {
    "Cohort_DJFavg": "cohort",
    "NEET_percent": "neet_pct",
    "Notknown_percent": "not_known_pct",
    "NEET_not_known_percent": "neet_or_not_known_pct",
    "TOTAL_participating_in_education_and_training_percent": "participation_pct",
    "Apprenticeship_percent": "apprenticeship_pct",
}


def read_fe_achievements(path: Path, problems: Problems) -> pd.DataFrame | None:
    """FE education and training achievements by sector subject area (tier 1), per district, 2021/22.

    Counts are published rounded to the nearest 10; '~' means fewer than 5 (kept as a symbol).
    """
    file = path.name
    df = read_checked(path, [*FE_PLACE, *FE_BREAKDOWNS, "ssa_t1_desc", "e_and_t_aims_ach"], problems)
    if df is None:
        return None
    unknown = sorted(set(df["ssa_t1_desc"]) - set(SSA_T1) - {"Total", SSA_NOT_KNOWN})
    for name in unknown:
        i = int(np.flatnonzero(df["ssa_t1_desc"] == name)[0])
        problems.add(file, f"{name!r} is not a tier 1 sector subject area", row=i + 2, column="ssa_t1_desc")
    values, flags = numbers(df, "e_and_t_aims_ach", file, {"~", "c", "x", "low"}, problems)
    out = pd.DataFrame({ours: df[theirs].str.strip() for theirs, ours in {**FE_PLACE, "ssa_t1_desc": "ssa"}.items()})
    out["achievements"] = values
    out["symbol"] = flags
    out = out[(df[list(FE_BREAKDOWNS)] == "Total").all(axis=1).to_numpy()]
    return out.reset_index(drop=True)


def read_apprenticeships(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Apprenticeship starts and achievements by the learner's home district and academic year.

    The published file is by provider and delivery district too (provider cells rounded); they
    are summed here to the learner's home district, which is where the careers service's young
    people live. It has no subject, so apprenticeships enter the report as totals and trends.
    """
    file = path.name
    df = read_checked(path, ["year", "learner_home_lad", "starts", "achievements"], problems)
    if df is None:
        return None
    for col in ("starts", "achievements"):
        bad = np.flatnonzero(
            pd.to_numeric(df[col], errors="coerce").isna() | (pd.to_numeric(df[col], errors="coerce") < 0)
        )
        for i in bad[:10]:
            problems.add(file, f"{df[col].iloc[i]!r} is not a count of 0 or more", row=int(i) + 1, column=col)
    if problems.items:
        return None
    out = df.groupby(["learner_home_lad", "year"], as_index=False)[["starts", "achievements"]].sum()
    out = out.rename(columns={"learner_home_lad": "area"})
    out["partial_year"] = out["year"].str.contains(r"\(", regex=True)
    return out


def read_neet(path: Path, problems: Problems) -> pd.DataFrame | None:
    """16-17 year olds NEET, not known and participating, per council, region and England (one year's file)."""
    file = path.name
    need = ["time_period", "geographic_level", "region_name", "old_la_code", "la_name", *NEET_MEASURES]
    df = read_checked(path, need, problems)
    if df is None:
        return None
    out = pd.DataFrame(
        {
            "year": pd.to_numeric(df["time_period"], errors="coerce").astype("Int64"),
            "level": df["geographic_level"],
            "region": df["region_name"],
            "la_code": df["old_la_code"],
            "area": np.where(
                df["geographic_level"] == "National",
                "England",
                np.where(df["geographic_level"] == "Regional", df["region_name"], df["la_name"]),
            ),
        }
    )
    for src, col in NEET_MEASURES.items():
        values, _ = _signed(df, src, file, problems)
        out[col] = values
    return out


def _signed(df: pd.DataFrame, column: str, file: str, problems: Problems):
    """Percentages (never negative here) and cohort sizes; symbols become NaN."""
    values = []
    for i, raw in enumerate(df[column].tolist()):
        text = str(raw).strip()
        if text in {"c", "x", "z", "u", ""}:
            values.append(np.nan)
            continue
        try:
            v = float(text)
            if v < 0 or (column.endswith("percent") and v > 100):
                raise ValueError
            values.append(v)
        except ValueError:
            problems.add(
                file, f"{raw!r} is not a percentage from 0 to 100 nor a published symbol", row=i + 2, column=column
            )
            values.append(np.nan)
    return values, None


def read_lait_neet(path: Path, problems: Problems) -> pd.DataFrame | None:
    """The LAIT series of 16-17 year olds NEET and NEET-or-not-known (%), per council, region, England."""
    file = path.name
    df = read_checked(path, ["Short Desc", "Years", "LA and Regions", "Values", "LA Number"], problems)
    if df is None:
        return None
    keep = df[df["Short Desc"].isin(["16-17 NEET", "16-17_not known_NEET"])].copy()
    if keep.empty:
        problems.add(file, "no rows for the indicators '16-17 NEET' and '16-17_not known_NEET'", column="Short Desc")
        return None
    keep["value"] = pd.to_numeric(keep["Values"], errors="coerce")
    keep["year"] = pd.to_numeric(keep["Years"], errors="coerce").astype("Int64")
    keep["measure"] = keep["Short Desc"].map(
        {"16-17 NEET": "neet_pct", "16-17_not known_NEET": "neet_or_not_known_pct"}
    )
    keep["la_code"] = keep["LA Number"].map(lambda v: "" if pd.isna(v) else f"{int(v):03d}")
    out = keep.pivot_table(
        index=["la_code", "LA and Regions", "year"], columns="measure", values="value", aggfunc="first"
    )
    return out.reset_index().rename(columns={"LA and Regions": "area"}).rename_axis(columns=None)
