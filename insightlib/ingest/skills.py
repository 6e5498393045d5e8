"""The skills data: the published sources read together, the contract tables the suite uses, the crosswalk.

The readers are in ``ingest.skills_demand`` and ``ingest.skills_supply`` (the lookups and the Skills
Imperative workbook here); the codes they use are ``contract.SOC_SUBMAJOR`` and ``contract.SSA_T1``. The sources are the DfE Local Skills Dashboard's files, DfE's NEET and LAIT files and the Skills
Imperative 2035 workbook, under the names SOURCES.md gives them. Every problem in a file is
reported at once (file, row, column, rule) as one ``InputError``; nothing is half-read.
Published symbols (``c``, ``u``, ``x``, ``low``, ``~``, ``**``) are kept in a ``symbol`` column
and the number is NaN: a suppressed cell is never read as zero.

The contract tables (one per source) are what the rest of the suite uses; the package ships
them, built by ``scripts/build_skills_reference.py`` from these readers, in
``insightlib/reference/skills/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from insightlib.contract import SOC_SUBMAJOR, SSA_T1
from insightlib.errors import InputError
from insightlib.ingest import published
from insightlib.ingest.published import name_key, read_checked, require_columns, sheet_rows
from insightlib.ingest.skills_demand import (
    read_adverts,
    read_adverts_by_profession,
    read_ess,
    read_industry_employment,
    read_occupation_employment,
)
from insightlib.ingest.skills_supply import read_apprenticeships, read_fe_achievements, read_lait_neet, read_neet

#: The source files, by the names SOURCES.md gives them.
FILES = {
    "occupation": "employment_by_occupation_by_area_2017_2021.csv",
    "industry": "employment_by_industry_by_area_2017_2022.csv",
    "fe": "fe_achievements_by_sector_subject_area_by_lad_2021_22.csv",
    "apprenticeships": "apprenticeships_by_learner_home_lad_2022_2026.parquet",
    "adverts": "online_job_adverts_by_area_2017_2022.csv",
    "adverts_profession": "online_job_adverts_by_profession_2022.csv",
    "ess": "employer_skills_survey_2019_by_la.xlsx",
    "neet_2022": "neet_16_17_by_la_2022.csv",
    "neet_2023": "neet_16_17_by_la_2023.csv",
    "lsip": "lad_to_lsip_lookup.xlsx",
    "combined_authority": "lad_to_combined_authority_2025.csv",
    "lait": "la_indicators_lait_2016_2025.parquet",
}


class Problems(published.Problems):
    """Every problem found in the skills source files, reported together."""

    what = "The skills data"


# --- geography --------------------------------------------------------------------------------


def read_geography(lsip_path: Path, ca_path: Path, problems: Problems) -> pd.DataFrame | None:
    """District -> LSIP area (2023) and -> mayoral combined authority (May 2025), joined by name.

    The two lookups use different vintages of district codes (Barnsley and Sheffield changed
    code in 2025), so they are joined on the district's name.
    """
    try:
        lsip = pd.read_excel(lsip_path, dtype=str, engine="calamine")
    except FileNotFoundError:
        problems.add(lsip_path.name, f"no such file in {lsip_path.parent}")
        return None
    if not require_columns(lsip, lsip_path.name, ["LAD23CD", "LAD23NM", "LSIP23NM"], problems):
        return None
    ca = read_checked(ca_path, ["LAD25CD", "LAD25NM", "CAUTH25NM"], problems)
    if ca is None:
        return None
    out = pd.DataFrame(
        {
            "lad_code": lsip["LAD23CD"].str.strip(),
            "lad_name": lsip["LAD23NM"].str.strip(),
            "lsip": lsip["LSIP23NM"].str.strip(),
        }
    )
    by_name = dict(zip(ca["LAD25NM"].map(name_key), ca["CAUTH25NM"].str.strip()))
    out["combined_authority"] = out["lad_name"].map(name_key).map(by_name).fillna("")
    return out


# --- projections (user-supplied, not shipped) --------------------------------------------------


def read_skills_imperative(path: Path, *, min_published: float = 10_000) -> pd.DataFrame:
    """Skills Imperative 2035 employment projections by SOC2020 sub-major group (sheet 'Occ T2').

    Returns people (not thousands): employment 2020 and 2035, net change, replacement demand and
    total requirement 2020-2035, with ``publishable`` False where the cell is below the
    publisher's advice (at least 10,000 people per published cell). The workbook is copyright
    Warwick IER / Cambridge Econometrics: insight reads a copy the user supplies, never ships one.
    """
    problems = Problems()
    file = Path(path).name
    rows = sheet_rows(
        Path(path),
        "Occ T2",
        problems,
        "employment change by occupation, 26 groups; is it a Skills Imperative 2035 workbook?",
    )
    problems.raise_if_any()
    rows = rows[:40]
    title = str(rows[0][0] or "")
    area = title.split(",")[-1].strip() if "," in title else ""
    records = []
    for i, r in enumerate(rows, start=1):
        label = str(r[0] or "").strip()
        m = re.match(r"^(\d{2}) ", label)
        if not m or m.group(1) not in SOC_SUBMAJOR:
            continue
        try:
            e2020, e2035 = float(r[3]), float(r[5])
            net, repl, total = float(r[7]), float(r[8]), float(r[9])
        except (TypeError, ValueError):
            problems.add(
                file,
                "expected numbers in the 2020, 2035, net change, replacement and total columns",
                row=i,
                column="sheet Occ T2",
            )
            continue
        records.append(
            {
                "soc": m.group(1),
                "employment_2020": e2020 * 1000,
                "employment_2035": e2035 * 1000,
                "net_change": net * 1000,
                "replacement_demand": repl * 1000,
                "total_requirement": total * 1000,
            }
        )
    if not records:
        problems.add(file, "no occupation rows ('11 Corporate managers ...') in sheet Occ T2")
    problems.raise_if_any()
    out = pd.DataFrame(records)
    for code in sorted(set(SOC_SUBMAJOR) - set(out["soc"])):
        problems.add(file, f"no row for SOC sub-major group {code} ({SOC_SUBMAJOR[code]})", column="sheet Occ T2")
    problems.raise_if_any()
    out["publishable"] = out["total_requirement"].abs() >= min_published
    out["area"] = area
    return out


# --- everything at once -----------------------------------------------------------------------


def read_sources(directory: str | Path) -> dict[str, pd.DataFrame]:
    """Read every source file in ``directory`` (the names in FILES); all problems reported together."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such folder of skills data.")
    problems = Problems()
    path = lambda key: directory / FILES[key]  # noqa: E731
    tables = {
        "occupation": read_occupation_employment(path("occupation"), problems),
        "industry": read_industry_employment(path("industry"), problems),
        "fe": read_fe_achievements(path("fe"), problems),
        "apprenticeships": read_apprenticeships(path("apprenticeships"), problems),
        "adverts": read_adverts(path("adverts"), problems),
        "adverts_profession": read_adverts_by_profession(path("adverts_profession"), problems),
        "ess": read_ess(path("ess"), problems),
        "geography": read_geography(path("lsip"), path("combined_authority"), problems),
    }
    neet = [read_neet(path(k), problems) for k in ("neet_2022", "neet_2023")]
    lait = path("lait") if path("lait").exists() else directory.parent / FILES["lait"]
    tables["neet_trend"] = read_lait_neet(lait, problems)
    problems.raise_if_any()
    tables["neet"] = pd.concat(neet, ignore_index=True)
    return tables


# --- the contract tables and the shipped copy -------------------------------------------------

#: The contract tables, as shipped in insightlib/reference/skills/ (name -> file).
CONTRACT = {
    name: f"{name}.csv"
    for name in (
        "geography",
        "occupation",
        "industry",
        "fe",
        "apprenticeships",
        "adverts",
        "adverts_profession",
        "ess",
        "neet",
        "neet_trend",
    )
}
REFERENCE = "reference"


def to_contract(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Keep what the skills analysis uses, for England's areas: what the package ships."""
    geo = tables["geography"]
    districts = set(geo["lad_name"].map(name_key))
    in_england = lambda s: s.map(name_key).isin(districts)  # noqa: E731
    occ = tables["occupation"]
    out = {
        "geography": geo,
        "occupation": occ[(occ["level"] == "LADU") & in_england(occ["area"])].reset_index(drop=True),
        "industry": tables["industry"][
            (tables["industry"]["level"] == "LADU") & in_england(tables["industry"]["area"])
        ].reset_index(drop=True),
        "fe": tables["fe"][
            tables["fe"]["level"].isin(["localAuthorityDistrict", "country"])
            & tables["fe"]["area"].ne("Outside of England and unknown")
        ].reset_index(drop=True),
        "apprenticeships": tables["apprenticeships"][in_england(tables["apprenticeships"]["area"])].reset_index(
            drop=True
        ),
        "adverts": tables["adverts"][tables["adverts"]["level"].isin(["LADU", "LSIP", "MCA", "GOR"])].reset_index(
            drop=True
        ),
        "adverts_profession": tables["adverts_profession"][
            tables["adverts_profession"]["level"].isin(["LSIP", "MCA"])
            | tables["adverts_profession"]["area"].eq("England")
        ].reset_index(drop=True),
        "ess": tables["ess"],
        "neet": tables["neet"],
        "neet_trend": tables["neet_trend"],
    }
    return out


def load_tables(source: str | Path = REFERENCE) -> dict[str, pd.DataFrame]:
    """The contract tables: the package's shipped copy ('reference'), or read from a folder of source files."""
    if str(source) == REFERENCE:
        return {name: t.copy() for name, t in _shipped().items()}
    return to_contract(read_sources(source))


_SHIPPED: dict[str, pd.DataFrame] = {}


def _shipped() -> dict[str, pd.DataFrame]:
    from importlib import resources

    if not _SHIPPED:
        folder = resources.files("insightlib") / "reference" / "skills"
        text = {
            "area",
            "level",
            "soc",
            "ssa",
            "symbol",
            "la_code",
            "lad_code",
            "lad_name",
            "lsip",
            "combined_authority",
            "area_code",
            "year",
            "profession",
            "period",
            "region",
            "industry",
        }
        for name, file in CONTRACT.items():
            with (folder / file).open("rb") as fh:
                head = pd.read_csv(fh, nrows=0).columns
            with (folder / file).open("rb") as fh:
                df = pd.read_csv(
                    fh,
                    dtype={c: str for c in head if c in text},
                    keep_default_na=False,
                    na_values={c: [""] for c in head if c not in text},
                )
            if name in ("occupation", "industry", "adverts", "neet", "neet_trend") and "year" in df:
                df["year"] = df["year"].astype(int)
            _SHIPPED[name] = df
    return _SHIPPED


def crosswalk() -> pd.DataFrame:
    """The reviewed occupation-to-subject crosswalk (a judgement, documented in docs/skills.md)."""
    from importlib import resources

    with (resources.files("insightlib") / "reference" / "skills" / "occupation_subject_crosswalk.csv").open("rb") as fh:
        cw = pd.read_csv(fh, dtype={"soc": str, "ssa": str, "reasoning": str})
    return cw


def check_crosswalk(cw: pd.DataFrame) -> list[str]:
    """Each occupation's weights sum to 1; every code and subject is a real one."""
    problems = []
    for soc, w in cw.groupby("soc")["weight"].sum().items():
        if abs(w - 1) > 1e-9:
            problems.append(f"SOC {soc}: weights sum to {w:g}, not 1")
    problems += [f"unknown SOC sub-major group {c!r}" for c in sorted(set(cw["soc"]) - set(SOC_SUBMAJOR))]
    problems += [f"unknown sector subject area {s!r}" for s in sorted(set(cw["ssa"]) - set(SSA_T1))]
    problems += [f"SOC {c} ({SOC_SUBMAJOR[c]}) has no subject" for c in sorted(set(SOC_SUBMAJOR) - set(cw["soc"]))]
    return problems
