"""Readers for the published skills sources: each checks its file's structure and returns a tidy table.

The sources are the DfE Local Skills Dashboard's files, DfE's NEET and LAIT files and the Skills
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

import numpy as np
import pandas as pd

from insightlib.errors import InputError
from insightlib.ingest import published
from insightlib.ingest.published import name_key, number, numbers, read_csv, read_parquet, require_columns, sheet_rows

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

#: SOC sub-major groups (2-digit codes; SOC2010 and SOC2020 share them, 63 is new in SOC2020).
SOC_SUBMAJOR = {
    "11": "Corporate managers and directors",
    "12": "Other managers and proprietors",
    "21": "Science, research, engineering and technology professionals",
    "22": "Health professionals",
    "23": "Teaching and educational professionals",
    "24": "Business, media and public service professionals",
    "31": "Science, engineering and technology associate professionals",
    "32": "Health and social care associate professionals",
    "33": "Protective service occupations",
    "34": "Culture, media and sports occupations",
    "35": "Business and public service associate professionals",
    "41": "Administrative occupations",
    "42": "Secretarial and related occupations",
    "51": "Skilled agricultural and related trades",
    "52": "Skilled metal, electrical and electronic trades",
    "53": "Skilled construction and building trades",
    "54": "Textiles, printing and other skilled trades",
    "61": "Caring personal service occupations",
    "62": "Leisure, travel and related personal service occupations",
    "63": "Community and civil enforcement occupations",
    "71": "Sales occupations",
    "72": "Customer service occupations",
    "81": "Process, plant and machine operatives",
    "82": "Transport and mobile machine drivers and operatives",
    "91": "Elementary trades and related occupations",
    "92": "Elementary administration and service occupations",
}

#: FE sector subject areas (tier 1) as the FE file names them.
SSA_T1 = (
    "Agriculture, Horticulture and Animal Care",
    "Arts, Media and Publishing",
    "Business, Administration and Law",
    "Construction, Planning and the Built Environment",
    "Education and Training",
    "Engineering and Manufacturing Technologies",
    "Health, Public Services and Care",
    "History, Philosophy and Theology",
    "Information and Communication Technology",
    "Languages, Literature and Culture",
    "Leisure, Travel and Tourism",
    "Preparation for Life and Work",
    "Retail and Commercial Enterprise",
    "Science and Mathematics",
    "Social Sciences",
)
SSA_NOT_KNOWN = "Not Applicable/ Not Known"


class Problems(published.Problems):
    """Every problem found in the skills source files, reported together."""

    what = "The skills data"


# --- demand ----------------------------------------------------------------------------------


def read_occupation_employment(path: Path, problems: Problems) -> pd.DataFrame | None:
    """APS employment by SOC2010 sub-major group, per district and LEP, 2017-2021, with 95% CI half-widths.

    The file's ``year`` column reads 2017 on every row (a defect of the published file); each
    area has five rows, which are 2017-2021 in order, so the year is taken from the row's position.
    """
    file = path.name
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, ["area", "geographic_level", "year"], problems):
        return None
    names = {name_key(v): k for k, v in SOC_SUBMAJOR.items()}
    columns = list(df.columns)
    pairs = []
    for i, col in enumerate(columns):
        code = names.get(name_key(col).replace("teaching and educational", "teaching and educational"))
        if code is None:
            continue
        conf = columns[i + 1] if i + 1 < len(columns) else None
        if conf is None or not conf.lower().startswith("conf"):
            problems.add(file, "an occupation column must be followed by its confidence column (Conf...)", column=col)
            continue
        pairs.append((code, col, conf))
    before = len(problems.items)
    found = {p[0] for p in pairs}
    for code in sorted(set(SOC_SUBMAJOR) - found - {"63"}):
        problems.add(file, f"no column for SOC sub-major group {code} ({SOC_SUBMAJOR[code]})")
    rows_per_area = df.groupby("area", sort=False).size()
    for area, n in rows_per_area.items():
        if n % 5:
            problems.add(
                file, f"area '{area}' has {n} rows; expected 5 per geography (2017-2021 in order)", column="area"
            )
    broken = len(problems.items) > before  # the cells are still checked, so that every problem is reported at once
    df = df.copy()
    df["year"] = df.groupby(["area", "geographic_level"], sort=False).cumcount() + 2017
    out = []
    symbols = {"c", "u", "x", "low", "*", "!", "-"}
    for code, col, conf in pairs:
        est, est_sym = numbers(df, col, file, symbols, problems)
        ci, ci_sym = numbers(df, conf, file, symbols, problems)
        out.append(
            pd.DataFrame(
                {
                    "area": df["area"].str.strip(),
                    "level": df["geographic_level"].str.strip(),
                    "year": df["year"],
                    "soc": code,
                    "employed": est,
                    "ci95": ci,
                    "symbol": est_sym,
                }
            )
        )
    return None if broken or not out else pd.concat(out, ignore_index=True)


def read_industry_employment(path: Path, problems: Problems) -> pd.DataFrame | None:
    """APS employment by nine industry groups (SIC 2007 sections grouped), per district and LEP, 2017-2022."""
    file = path.name
    df = read_csv(path, problems)
    if df is None or not require_columns(
        df, file, ["year", "geographic_level", "area", "variable", "value", "Total"], problems
    ):
        return None
    values, flags = numbers(df, "value", file, {"c", "u", "x", "low", "*", "!", "-"}, problems)
    totals, _ = numbers(df, "Total", file, {"c", "u", "x", "low", "*", "!", "-", ""}, problems)
    years = pd.to_numeric(df["year"], errors="coerce")
    for i in np.flatnonzero(years.isna()):
        problems.add(file, f"{df['year'].iloc[i]!r} is not a year", row=i + 2, column="year")
    return pd.DataFrame(
        {
            "area": df["area"].str.strip(),
            "level": df["geographic_level"].str.strip(),
            "year": years.astype("Int64"),
            "industry": df["variable"].str.strip(),
            "employed": values,
            "all_employed": totals,
            "symbol": flags,
        }
    )


def read_adverts(path: Path, problems: Problems) -> pd.DataFrame | None:
    """ONS online job adverts (Textkernel), annual average per area 2017-2022, in the file's own unit."""
    file = path.name
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, ["year", "area", "geographic_level", "vacancy_unit"], problems):
        return None
    values, flags = numbers(df, "vacancy_unit", file, {"c", "x"}, problems)
    years = pd.to_numeric(df["year"], errors="coerce")
    for i in np.flatnonzero(years.isna() | (years < 2000) | (years > 2100)):
        problems.add(file, f"{df['year'].iloc[i]!r} is not a year", row=i + 2, column="year")
    return pd.DataFrame(
        {
            "area": df["area"].str.strip(),
            "level": df["geographic_level"].str.strip(),
            "year": years.astype("Int64"),
            "adverts": values,
            "symbol": flags,
        }
    )


def read_adverts_by_profession(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Job adverts by the 25 summary profession categories (October 2022 snapshot) per LEP, LSIP, MCA."""
    file = path.name
    need = [
        "geographic_level",
        "area",
        "Summary Profession Category",
        "Detailed Profession Category",
        "time_period",
        "vacancies",
    ]
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, need, problems):
        return None
    values, flags = numbers(df, "vacancies", file, {"c", "x", "[c]"}, problems)
    df = df.assign(adverts=values)
    level = df["geographic_level"].replace(
        {"Local Skills Improvement Plan": "LSIP", "Mayoral Combined Authorities": "MCA"}
    )
    out = (
        df.assign(level=level)
        .groupby(["level", "area", "Summary Profession Category"], as_index=False)["adverts"]
        .sum(min_count=1)
        .rename(columns={"Summary Profession Category": "profession"})
    )
    out["period"] = "October 2022"
    return out


def read_ess(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Employer Skills Survey 2019, the ALL_LEAS sheet: one column per council, England first.

    Returns one row per council (and England) with the number of establishments interviewed
    (``sampled``: the survey's sample size, for intervals), establishments, staff, vacancies,
    hard-to-fill and skill-shortage vacancies (SSVs), skills gaps and the published shares.
    """
    file = path.name
    rows = sheet_rows(path, "ALL_LEAS", problems, "the sheet with one column per council")
    if rows is None:
        return None
    labels = {  # published row label -> our column
        "Unweighted row": "sampled",
        "Total (establishments)": "establishments",
        "Total number of staff": "staff",
        "Establishments with any vacancies": "share_establishments_with_vacancy",
        "Have at least one vacancy that is hard to fill": "share_establishments_with_htf",
        "Have a skills shortage vacancy (prompted or unprompted)": "share_establishments_with_ssv",
        "Number of vacancies": "vacancies",
        "Number of skill-shortage vacancies": "ssv",
        "% of all vacancies which are SSVs": "ssv_share_of_vacancies",
        "Number of skills gaps": "skills_gaps",
        "% of establishments training staff over the last 12 months": "share_establishments_training",
    }
    header_at = next(
        (i for i, r in enumerate(rows) if "England Total" in [str(v).strip() for v in r if v is not None]), None
    )
    if header_at is None:
        problems.add(file, "sheet ALL_LEAS has no header row with 'England Total'")
        return None
    first = [str(v).strip() if v is not None else "" for v in rows[header_at]].index("England Total")
    councils = [str(v).strip() for v in rows[header_at][first:] if v is not None]
    found = {}
    for i, r in enumerate(rows[header_at + 1 :], start=header_at + 2):
        label = str(r[first - 1] or "").strip() if r and first >= 1 else ""
        if label in labels:
            found[labels[label]] = (i, r[first : first + len(councils)])
    for label, col in labels.items():
        if col not in found:
            problems.add(file, f"sheet ALL_LEAS has no row '{label}'")
    if len(found) < len(labels):
        return None
    out = pd.DataFrame({"area": councils})
    for col, (row_no, values) in found.items():
        nums = []
        for j, v in enumerate(values):
            try:
                nums.append(number(v, {"**", "*", "-"})[0])
            except ValueError:
                problems.add(
                    file, f"{v!r} is not a number nor '**'", row=row_no, column=f"sheet ALL_LEAS, {councils[j]}"
                )
                nums.append(np.nan)
        out[col] = nums
    out["area"] = out["area"].replace({"England Total": "England"})
    return out


# --- supply ----------------------------------------------------------------------------------


def read_fe_achievements(path: Path, problems: Problems) -> pd.DataFrame | None:
    """FE education and training achievements by sector subject area (tier 1), per district, 2021/22.

    Counts are published rounded to the nearest 10; '~' means fewer than 5 (kept as a symbol).
    """
    file = path.name
    need = [
        "location",
        "location_code",
        "geographic_level",
        "time_period",
        "notional_nvq_level",
        "ethnicity_group",
        "gender",
        "ssa_t1_desc",
        "e_and_t_aims_ach",
    ]
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, need, problems):
        return None
    unknown = sorted(set(df["ssa_t1_desc"]) - set(SSA_T1) - {"Total", SSA_NOT_KNOWN})
    for name in unknown:
        i = int(np.flatnonzero(df["ssa_t1_desc"] == name)[0])
        problems.add(file, f"{name!r} is not a tier 1 sector subject area", row=i + 2, column="ssa_t1_desc")
    values, flags = numbers(df, "e_and_t_aims_ach", file, {"~", "c", "x", "low"}, problems)
    keep = (df["notional_nvq_level"] == "Total") & (df["ethnicity_group"] == "Total") & (df["gender"] == "Total")
    out = pd.DataFrame(
        {
            "area": df["location"].str.strip(),
            "area_code": df["location_code"].str.strip(),
            "level": df["geographic_level"].str.strip(),
            "year": df["time_period"].str.strip(),
            "ssa": df["ssa_t1_desc"].str.strip(),
            "achievements": values,
            "symbol": flags,
        }
    )[keep.to_numpy()]
    return out.reset_index(drop=True)


def read_apprenticeships(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Apprenticeship starts and achievements by the learner's home district and academic year.

    The published file is by provider and delivery district too (provider cells rounded); they
    are summed here to the learner's home district, which is where the careers service's young
    people live. It has no subject, so apprenticeships enter the report as totals and trends.
    """
    file = path.name
    df = read_parquet(path, problems)
    if df is None or not require_columns(df, file, ["year", "learner_home_lad", "starts", "achievements"], problems):
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
    need = [
        "time_period",
        "geographic_level",
        "region_name",
        "old_la_code",
        "la_name",
        "Cohort_DJFavg",
        "NEET_percent",
        "Notknown_percent",
        "NEET_not_known_percent",
        "TOTAL_participating_in_education_and_training_percent",
        "Apprenticeship_percent",
    ]
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, need, problems):
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
    for src, col in (
        ("Cohort_DJFavg", "cohort"),
        ("NEET_percent", "neet_pct"),
        ("Notknown_percent", "not_known_pct"),
        ("NEET_not_known_percent", "neet_or_not_known_pct"),
        ("TOTAL_participating_in_education_and_training_percent", "participation_pct"),
        ("Apprenticeship_percent", "apprenticeship_pct"),
    ):
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
    df = read_parquet(path, problems)
    if df is None or not require_columns(
        df, file, ["Short Desc", "Years", "LA and Regions", "Values", "LA Number"], problems
    ):
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
    ca = read_csv(ca_path, problems)
    if ca is None or not require_columns(ca, ca_path.name, ["LAD25CD", "LAD25NM", "CAUTH25NM"], problems):
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
