"""Readers for the published skills sources on demand: APS employment by occupation and by industry,
online job adverts (by area and by profession) and the Employer Skills Survey 2019.

Each checks its file's structure and returns a tidy table; every problem goes into ``problems``
(file, row, column, rule) so that ``ingest.skills.read_sources`` reports them all at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from insightlib.contract import SOC_SUBMAJOR
from insightlib.ingest.published import Problems, name_key, number, numbers, read_checked, sheet_rows

#: The adverts file's profession column (its 25 summary categories).
PROFESSION = "Summary Profession Category"


def read_occupation_employment(path: Path, problems: Problems) -> pd.DataFrame | None:
    """APS employment by SOC2010 sub-major group, per district and LEP, 2017-2021, with 95% CI half-widths.

    The file's ``year`` column reads 2017 on every row (a defect of the published file); each
    area has five rows, which are 2017-2021 in order, so the year is taken from the row's position.
    """
    file = path.name
    df = read_checked(path, ["area", "geographic_level", "year"], problems)
    if df is None:
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
    df = read_checked(path, ["year", "geographic_level", "area", "variable", "value", "Total"], problems)
    if df is None:
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
    df = read_checked(path, ["year", "area", "geographic_level", "vacancy_unit"], problems)
    if df is None:
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
    need = ["geographic_level", "area", PROFESSION, "Detailed Profession Category", "time_period", "vacancies"]
    df = read_checked(path, need, problems)
    if df is None:
        return None
    values, flags = numbers(df, "vacancies", file, {"c", "x", "[c]"}, problems)
    df = df.assign(adverts=values)
    level = df["geographic_level"].replace(
        {"Local Skills Improvement Plan": "LSIP", "Mayoral Combined Authorities": "MCA"}
    )
    out = (
        df.assign(level=level)
        .groupby(["level", "area", PROFESSION], as_index=False)["adverts"]
        .sum(min_count=1)
        .rename(columns={PROFESSION: "profession"})
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
