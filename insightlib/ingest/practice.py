"""Readers for the published practice-insight sources (DfE, ONS, MHCLG; Open Government Licence).

Two layers, as for the skills data:

* ``read_sources(folder)`` reads the published files under the names SOURCES.md gives them
  (``../shared/reference/practice/``), checks each file's structure and returns small tidy
  tables (only the columns the practice analysis needs). Every problem in every file is
  reported at once (file, row, column, rule) as one ``InputError``; nothing is half-read.
* ``load(name)`` reads the package's shipped copy of one of those tables
  (``insightlib/reference/practice/``, built by ``scripts/build_practice_reference.py``).

DfE's symbols (``c`` suppressed, ``x`` not available, ``u`` low reliability, ``z`` not
applicable, ``low``) are kept: the number is NaN and the symbol sits in ``<column>_symbol``,
so a suppressed cell is never read as zero.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.ingest import published
from insightlib.ingest.published import name_key, read_csv, require_columns, sheet_rows

#: The published files, by the names SOURCES.md gives them.
FILES = {
    "factors": "factors_identified_at_assessment_by_la_2018_2025.csv",
    "children_in_need": "children_in_need_by_la_2013_2025.csv",
    "population": "population_0_17_by_la_2012_2024.csv",
    "workforce": "social_work_workforce_by_la_2017_2025.csv",
    "ethnicity": "census2021_ethnicity_all_ages_by_la.csv",
    "deprivation": "imd2019_upper_tier_la_summaries.xlsx",
}

#: The shipped tables (insightlib/reference/practice/<file>).
CONTRACT = {name: f"{name}.csv" for name in FILES}

SYMBOLS = frozenset({"c", "x", "u", "z", "low"})
ENGLAND = "England"

#: DfE's factor columns, in the CIN census code each one counts (the contract's codes 1A..24A).
FACTOR_COLUMNS = {
    "Alcohol_Misuse_child": "1A",
    "Alcohol_Misuse_parent": "1B",
    "Alcohol_Misuse_person": "1C",
    "Drug_Misuse_child": "2A",
    "Drug_Misuse_parent": "2B",
    "Drug_Misuse_person": "2C",
    "Domestic_Abuse_child": "3A",
    "Domestic_Abuse_parent": "3B",
    "Domestic_Abuse_person": "3C",
    "Mental_Health_child": "4A",
    "Mental_Health_parent": "4B",
    "Mental_Health_person": "4C",
    "Learning_Disability_child": "5A",
    "Learning_Disability_parent": "5B",
    "Learning_Disability_person": "5C",
    "Physical_Disability_child": "6A",
    "Physical_Disability_parent": "6B",
    "Physical_Disability_person": "6C",
    "Young_Carer": "7A",
    "Privately_fostered": "8B",
    "Unaccompanied_asylum_seeker": "9A",
    "Going_missing": "10A",
    "Child_sexual_exploitation": "11A",
    "Trafficking": "12A",
    "Gangs": "13A",
    "Socially_unacceptable_behaviour": "14A",
    "Self_harm": "15A",
    "Neglect": "16A",
    "Emotional_Abuse": "17A",
    "Physical_Abuse_unknown": "18A",
    "Physical_Abuse_child_on_child": "18C",
    "Physical_Abuse_adult_on_child": "18B",
    "Sexual_Abuse_unknown": "19A",
    "Sexual_Abuse_child_on_child": "19C",
    "Sexual_Abuse_adult_on_child": "19B",
    "Female_Genital_Mutilation": "20",
    "Faith_linked_abuse": "21",
    "Child_criminal_exploitation": "22A",
    "Other": "24A",
}

#: Plain-English names of the CIN assessment factor codes (DfE's CIN census guide).
FACTOR_LABELS = {
    "1A": "alcohol misuse (child)",
    "1B": "alcohol misuse (parent)",
    "1C": "alcohol misuse (other person)",
    "2A": "drug misuse (child)",
    "2B": "drug misuse (parent)",
    "2C": "drug misuse (other person)",
    "3A": "domestic abuse (child)",
    "3B": "domestic abuse (parent)",
    "3C": "domestic abuse (other person)",
    "4A": "mental health (child)",
    "4B": "mental health (parent)",
    "4C": "mental health (other person)",
    "5A": "learning disability (child)",
    "5B": "learning disability (parent)",
    "5C": "learning disability (other person)",
    "6A": "physical disability or illness (child)",
    "6B": "physical disability or illness (parent)",
    "6C": "physical disability or illness (other person)",
    "7A": "young carer",
    "8B": "privately fostered",
    "8C": "privately fostered",
    "8D": "privately fostered",
    "8E": "privately fostered",
    "8F": "privately fostered",
    "9A": "unaccompanied asylum-seeking child",
    "10A": "going missing",
    "11A": "child sexual exploitation",
    "12A": "trafficking",
    "13A": "gangs",
    "14A": "socially unacceptable behaviour",
    "15A": "self-harm",
    "16A": "neglect",
    "17A": "emotional abuse",
    "18A": "physical abuse",
    "18B": "physical abuse (adult on child)",
    "18C": "physical abuse (child on child)",
    "19A": "sexual abuse",
    "19B": "sexual abuse (adult on child)",
    "19C": "sexual abuse (child on child)",
    "20": "female genital mutilation",
    "21": "abuse linked to faith or belief",
    "22A": "child criminal exploitation",
    "23A": "other factor",
    "24A": "other factor",
}

WORKFORCE_COLUMNS = ("turnover_rate_fte", "agency_rate_fte", "vacancy_rate_fte", "caseload_fte", "inpost_fte")

#: Census 2021's 20 ethnic groups, as CIN ethnicity codes (so that contract.ETHNICITY_GROUP groups both alike).
CENSUS_ETHNICITY = {
    "Asian, Asian British or Asian Welsh: Bangladeshi": "ABAN",
    "Asian, Asian British or Asian Welsh: Chinese": "CHNE",
    "Asian, Asian British or Asian Welsh: Indian": "AIND",
    "Asian, Asian British or Asian Welsh: Pakistani": "APKN",
    "Asian, Asian British or Asian Welsh: Other Asian": "AOTH",
    "Black, Black British, Black Welsh, Caribbean or African: African": "BAFR",
    "Black, Black British, Black Welsh, Caribbean or African: Caribbean": "BCRB",
    "Black, Black British, Black Welsh, Caribbean or African: Other Black": "BOTH",
    "Mixed or Multiple ethnic groups: White and Asian": "MWAS",
    "Mixed or Multiple ethnic groups: White and Black African": "MWBA",
    "Mixed or Multiple ethnic groups: White and Black Caribbean": "MWBC",
    "Mixed or Multiple ethnic groups: Other Mixed or Multiple ethnic groups": "MOTH",
    "White: English, Welsh, Scottish, Northern Irish or British": "WBRI",
    "White: Irish": "WIRI",
    "White: Gypsy or Irish Traveller": "WIRT",
    "White: Roma": "WROM",
    "White: Other White": "WOTH",
    "Other ethnic group: Arab": "OOTH",
    "Other ethnic group: Any other ethnic group": "OOTH",
}

#: Councils formed after IMD 2019: the county they were split from (its deprivation is used, and said).
DEPRIVATION_FROM = {"940": "928", "941": "928", "942": "909", "943": "909"}

DFE_ID = ["time_period", "geographic_level", "old_la_code", "la_name"]


class Problems(published.Problems):
    """Every problem found in the published practice files, reported together."""

    what = "The published practice data"


def _ons_to_la() -> dict[str, str]:
    """Every ONS code a council has had (live and former), to its 3-digit la_code."""
    la = reference.local_authorities()
    former = reference.former_local_authorities()
    out = dict(zip(former["ons_code"], former["la_code"]))
    out.update(zip(la["ons_code"], la["la_code"]))
    return out


def _numeric(df: pd.DataFrame, columns, file: str, problems: Problems, *, rows=None) -> pd.DataFrame:
    """Each column as numbers (NaN where DfE put a symbol, kept in <column>_symbol); anything else a problem."""
    out = {}
    for col in columns:
        text = df[col].astype(str).str.strip().str.replace(",", "", regex=False)
        lower = text.str.lower()
        is_symbol = lower.isin(SYMBOLS) | (text == "")
        num = pd.to_numeric(text.where(~is_symbol), errors="coerce")
        bad = ~is_symbol & (num.isna() | (num < 0))
        for i in np.flatnonzero(bad.to_numpy())[:20]:
            row = rows[i] if rows is not None else i + 2
            problems.add(
                file,
                f"{df[col].iloc[i]!r} is not a number of 0 or more nor a DfE symbol ({', '.join(sorted(SYMBOLS))})",
                row=int(row),
                column=col,
            )
        out[col] = num.where(~bad)
        out[col + "_symbol"] = lower.where(is_symbol, "").mask(is_symbol & (text == ""), "x")
    return pd.DataFrame(out, index=df.index)


def _dfe_table(path: Path, problems: Problems, value_columns) -> pd.DataFrame | None:
    """A DfE (EES) file: England and council rows, la_code, year and the value columns asked for."""
    file = path.name
    df = read_csv(path, problems)
    if df is None or not require_columns(df, file, DFE_ID + list(value_columns), problems, name_all=False):
        return None
    df = df.reset_index(drop=True)
    file_rows = df.index.to_numpy() + 2
    keep = df["geographic_level"].isin(["National", "Local authority"]).to_numpy()
    df, file_rows = df.loc[keep].reset_index(drop=True), file_rows[keep]
    years = pd.to_numeric(df["time_period"], errors="coerce")
    for i in np.flatnonzero(years.isna().to_numpy())[:20]:
        problems.add(file, f"{df['time_period'].iloc[i]!r} is not a year", row=int(file_rows[i]), column="time_period")
    # rows for two councils' joint service ("940 / 941", "314 / 318") are DfE's own: not one council's
    joint = df["old_la_code"].str.contains("/", regex=False).to_numpy()
    df, file_rows = df.loc[~joint].reset_index(drop=True), file_rows[~joint]
    years = years[~joint].reset_index(drop=True)
    is_la = df["geographic_level"] == "Local authority"
    codes = reference.council_codes()
    bad = is_la & ~df["old_la_code"].isin(codes)
    for i in np.flatnonzero(bad.to_numpy())[:20]:
        problems.add(
            file,
            f"{df['old_la_code'].iloc[i]!r} is not a council's 3-digit code",
            row=int(file_rows[i]),
            column="old_la_code",
        )
    out = pd.DataFrame(
        {
            "year": years.astype("Int64"),
            "la_code": np.where(is_la, df["old_la_code"], ENGLAND),
            "la_name": np.where(is_la, df["la_name"], ENGLAND),
        }
    )
    out = pd.concat([out, _numeric(df, value_columns, file, problems, rows=file_rows)], axis=1)
    dup = out.duplicated(["year", "la_code"], keep="first")
    for i in np.flatnonzero(dup.to_numpy())[:20]:
        problems.add(file, f"a second row for {out['la_code'].iloc[i]} in {out['year'].iloc[i]}", row=int(file_rows[i]))
    return out[~dup & ~bad]


def read_factors(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Factors identified at the end of assessment: episodes with a factor and each factor's count."""
    df = _dfe_table(path, problems, ["Episodes_with_assessment_factor", *FACTOR_COLUMNS])
    if df is None:
        return None
    return df.rename(
        columns={
            "Episodes_with_assessment_factor": "episodes",
            "Episodes_with_assessment_factor_symbol": "episodes_symbol",
        }
    )


def read_children_in_need(path: Path, problems: Problems) -> pd.DataFrame | None:
    df = _dfe_table(path, problems, ["At31_episodes", "Started_episodes"])
    if df is None:
        return None
    return df.rename(columns=lambda c: c.lower())


def read_population(path: Path, problems: Problems) -> pd.DataFrame | None:
    df = _dfe_table(path, problems, ["population_estimate"])
    if df is None:
        return None
    return df.rename(columns={"population_estimate": "population", "population_estimate_symbol": "population_symbol"})


def read_workforce(path: Path, problems: Problems) -> pd.DataFrame | None:
    return _dfe_table(path, problems, list(WORKFORCE_COLUMNS))


def read_ethnicity(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Census 2021 usual residents (ALL AGES) by ethnic group per council, as CIN codes (OOTH = Arab + any other)."""
    file = path.name
    df = read_csv(path, problems)
    code_col, name_col = "2023 Upper tier local authorities Code", "Ethnic group (20 categories)"
    if df is None or not require_columns(df, file, [code_col, name_col, "Observation"], problems, name_all=False):
        return None
    df = df[df[name_col] != "Does not apply"].reset_index(drop=True)
    ons = _ons_to_la()
    england = df[code_col].str.startswith("E")
    df = df[england].reset_index(drop=True)
    unknown = ~df[name_col].isin(CENSUS_ETHNICITY)
    for i in np.flatnonzero(unknown.to_numpy())[:20]:
        problems.add(file, f"{df[name_col].iloc[i]!r} is not one of Census 2021's 20 ethnic groups", column=name_col)
    obs = _numeric(df, ["Observation"], file, problems)["Observation"]
    out = pd.DataFrame(
        {"la_code": df[code_col].map(ons), "ethnicity": df[name_col].map(CENSUS_ETHNICITY), "people": obs}
    )
    missing = out["la_code"].isna()
    for c in sorted(set(df.loc[missing, code_col]))[:20]:
        problems.add(file, f"{c!r} is not the ONS code of any council", column=code_col)
    out = out[~missing & ~unknown].groupby(["la_code", "ethnicity"], as_index=False)["people"].sum()
    return out


#: The deprivation workbook's council code column (2019 boundaries).
UPPER_TIER_CODE = "Upper Tier Local Authority District code (2019)"


def read_deprivation(path: Path, problems: Problems) -> pd.DataFrame | None:
    """IMD 2019 and IDACI 2019 average scores per upper-tier council (2019 boundaries).

    The councils made after 2019 (North and West Northamptonshire, Cumberland, Westmorland and
    Furness) take the county they came from (``deprivation_from`` names it)."""
    file = path.name
    tables, names = {}, {}
    for sheet, prefix in (("IMD", "IMD - Average score"), ("IDACI", "IDACI - Average score")):
        body = _score_sheet(path, sheet, prefix, problems)
        if body is None:
            return None
        tables[sheet] = body.set_index("ons_code")["score"]
        names[sheet] = body.set_index("ons_code")["name"]
    ons = _ons_to_la()
    for sheet in tables:
        tables[sheet] = tables[sheet].rename(index=_mistyped_codes(names[sheet], ons))
    df = pd.DataFrame({"imd_score": tables["IMD"], "idaci_score": tables["IDACI"]})
    df["la_code"] = df.index.map(ons)
    for c in df.index[df["la_code"].isna()]:
        problems.add(file, f"{c!r} is not the ONS code of any council", column=UPPER_TIER_CODE)
    df = df.dropna(subset=["la_code"]).reset_index(names="ons_code_2019")
    for col in ("imd_score", "idaci_score"):
        values = pd.to_numeric(df[col], errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.add(file, f"{df[col].iloc[i]!r} is not a score", row=int(i) + 2, column=col)
        df[col] = values
    df = _with_successor_councils(df)
    return df[df["la_code"].isin(set(reference.local_authorities()["la_code"]))][
        ["la_code", "ons_code_2019", "imd_score", "idaci_score", "deprivation_from"]
    ].reset_index(drop=True)


def _score_sheet(path: Path, sheet: str, score_column: str, problems: Problems) -> pd.DataFrame | None:
    """One sheet of the deprivation workbook as (ons_code, name, score) rows; None where it lacks a column."""
    rows = sheet_rows(path, sheet, problems, f"the {sheet} summaries")
    if rows is None:
        return None
    header = [str(h or "").strip() for h in rows[0]]
    missing = [h for h in (UPPER_TIER_CODE, score_column) if h not in header]
    for h in missing:
        problems.add(path.name, f"sheet '{sheet}' has no column '{h}'")
    if missing:
        return None
    ci, si = header.index(UPPER_TIER_CODE), header.index(score_column)
    ni = 1
    return pd.DataFrame([[r[ci], r[ni], r[si]] for r in rows[1:] if r and r[ci]], columns=["ons_code", "name", "score"])


def _mistyped_codes(names: pd.Series, ons: dict) -> dict:
    """Codes that are no council's, matched by the council's name to its ONS code (the published IMD sheet
    has one mistyped code: Slough, 'E0600003')."""
    la = reference.local_authorities()
    by_name = {name_key(n): c for c, n in zip(la["la_code"], la["la_name"])}
    return {
        c: la.set_index("la_code").loc[by_name[name_key(names[c])], "ons_code"]
        for c, n in names.items()
        if c not in ons and name_key(n) in by_name
    }


def _with_successor_councils(df: pd.DataFrame) -> pd.DataFrame:
    """The councils made after 2019 added with the scores of the county they came from (DEPRIVATION_FROM)."""
    df["deprivation_from"] = ""
    extra = []
    for new, old in DEPRIVATION_FROM.items():
        if old in set(df["la_code"]) and new not in set(df["la_code"]):
            row = df[df["la_code"] == old].iloc[0].copy()
            row["la_code"], row["deprivation_from"] = new, reference.council_name(old)
            extra.append(row)
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True)


READERS = {
    "factors": read_factors,
    "children_in_need": read_children_in_need,
    "population": read_population,
    "workforce": read_workforce,
    "ethnicity": read_ethnicity,
    "deprivation": read_deprivation,
}


def read_sources(folder) -> dict[str, pd.DataFrame]:
    """Every published file in ``folder``, checked; one InputError lists every problem found."""
    folder = Path(folder)
    problems = Problems()
    out = {name: READERS[name](folder / FILES[name], problems) for name in FILES}
    problems.raise_if_any()
    return out


# --- the shipped tables --------------------------------------------------------------------


def _shipped(name: str):
    return resources.files("insightlib") / "reference" / "practice" / CONTRACT[name]


TEXT_COLUMNS = ("la_code", "la_name", "ethnicity", "ons_code_2019", "deprivation_from")


def to_shipped(df: pd.DataFrame) -> pd.DataFrame:
    """A read table as shipped: each value column as DfE published it (the number, or its symbol)."""
    out = df.drop(columns=[c for c in ("la_name",) if c in df]).copy()
    for col in [c for c in out.columns if c.endswith("_symbol")]:
        value = col[: -len("_symbol")]
        num = out[value].map(lambda v: "" if pd.isna(v) else np.format_float_positional(v, trim="-"))
        out[value] = np.where(out[col] != "", out[col], num)
        out = out.drop(columns=col)
    return out


@lru_cache(maxsize=None)
def _load(name: str) -> pd.DataFrame:
    with _shipped(name).open("rb") as fh:
        df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    problems = Problems()
    values = [c for c in df.columns if c not in TEXT_COLUMNS and c != "year"]
    parsed = _numeric(df, values, f"insightlib/reference/practice/{CONTRACT[name]}", problems)
    problems.raise_if_any()
    df = pd.concat([df[[c for c in df.columns if c not in values]], parsed], axis=1)
    if "year" in df:
        df["year"] = df["year"].astype(int)
    return df


def load(name: str) -> pd.DataFrame:
    """The shipped copy of one published table (``CONTRACT``'s names); a fresh copy each call."""
    if name not in CONTRACT:
        raise InputError(f"no published practice table {name!r}; the tables are: {', '.join(CONTRACT)}")
    return _load(name).copy()
