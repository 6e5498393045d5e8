"""Check a data directory against the data contract and report every problem at once.

Each problem names the file, the row the user sees, the column and the rule, in plain
English, and belongs to a council where that can be told, so that one council's bad data
never stops the others from loading. All checks are vectorised (pandas), so a national
referrals table of millions of rows is checked in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import contract, reference
from insightlib.ingest.directory import read_directory
from insightlib.ingest.files import CELL_ROW_PREFIX, META, STR, Problem
from insightlib.ingest.validate_rules import Collector, as_mask, fmt_date, isin, join_key, lookup, quoted
from insightlib.ingest.validate_values import check_date_order, check_future_dates, check_values
from insightlib.ingest.validation_report import ValidationReport

__all__ = ["ValidationReport", "check_directory", "validate_directory", "validate_raw"]


def _concat(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for part in parts:
        f = (
            part
            if all(c in part.columns for c in columns)
            else part.assign(**{c: "" for c in columns if c not in part.columns})
        )
        keep = list(columns) + [c for c in f.columns if c in META or c.startswith(CELL_ROW_PREFIX)]
        frames.append(f[keep])
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True).copy()
    for c in columns:
        out[c] = out[c].astype(STR).fillna("")
    for c in out.columns:
        if c.startswith(CELL_ROW_PREFIX):
            out[c] = out[c].fillna(out["_row"]).astype("int64")
    out["_sheet"] = out["_sheet"].fillna("")
    return out


# --- the checks ---------------------------------------------------------------------------


def validate_directory(path: str | Path, today: pd.Timestamp | None = None, limits=None) -> ValidationReport:
    """Read and check a data directory; never raises on bad data, returns every problem.

    ``limits`` (files.Limits) bounds workbooks; by default from the environment.
    """
    raw = read_directory(path, limits)
    return validate_raw(raw, today=today)


def check_directory(path: str | Path, today: pd.Timestamp | None = None, limits=None) -> ValidationReport:
    """What :func:`validate_directory` reports (the same problems, in its order), checked a few councils at a
    time as ``insight load`` checks them, so that a national extract needs the memory of a batch, not of the
    nation's typed tables. The report holds the typed councils table and each table's rows, no other table."""
    from insightlib.ingest import load_stream  # it builds on this module

    raw = read_directory(path, limits)
    ext = load_stream.extract(raw)
    if ext.early.get(""):
        return load_stream.whole_report(raw, ext, today)
    found = load_stream.Gathered()
    work = load_stream.Batches(ext, None, today)
    try:
        for checked in work:
            if checked.councils == [""] and checked.problems:
                # rows naming no council: reported as one pass over the extract reports them
                return load_stream.whole_report(raw, ext, today)
            found.add(checked)
    finally:
        work.close()
    return found.report(raw, ext)


def validate_raw(raw, today: pd.Timestamp | None = None) -> ValidationReport:
    """Every rule of the data contract over what the readers found, each problem with its file, row and rule.

    One stage per kind of rule, in the order a reader of the problems list expects them."""
    out = Collector()
    for p in raw.problems:
        out.add(p)
    frames = {name: joined(name, parts) for name, parts in check_parts(raw, out).items()}
    tables = check_rows(frames, out, today)
    councils = sorted(set().union(*[set(f["la_code"].unique()) - {""} for f in frames.values()]) if frames else set())
    faults = {name: out.faults.get(name, np.full(len(tables[name]), None, dtype=object)) for name in tables}
    return ValidationReport(
        problems=sorted_problems(out.problems),
        typed=tables,
        councils=councils,
        notes=list(raw.notes),
        files=list(raw.files),
        row_faults=faults,
        row_level=out.row_level,
        row_files={name: pd.Categorical(frames[name]["_file"]) for name in frames},
        rows={name: len(t) for name, t in tables.items()},
    )


def check_rows(frames: dict[str, pd.DataFrame], out: Collector, today: pd.Timestamp | None) -> dict[str, pd.DataFrame]:
    """The rules about rows, over joined tables (national, or a few councils' rows: every rule compares rows of
    one council only, keys being council + id, so a council's problems are the same either way); the typed tables.

    ``frames`` must hold every table the extract has (a table with none of these councils' rows empty)."""
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today)
    _check_council_codes(frames, out)
    dates = check_values(frames, out)
    check_future_dates(frames, dates, today, out)
    check_date_order(frames, dates, out)
    keys = _check_keys(frames, out)
    _check_references(frames, dates, keys, out)
    return {name: _typed(name, frames.get(name), dates.get(name, {})) for name in contract.TABLES}


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems for every council first, then by council, table, file and row (stable: rule order within a row)."""
    return sorted(
        problems,
        key=lambda p: (
            p.la_code is not None,
            p.la_code or "",
            p.table or "",
            p.file or "",
            p.row if p.row is not None else 1 << 62,
        ),
    )


def check_parts(raw, out: Collector) -> dict[str, list[pd.DataFrame]]:
    """Tables and columns: each table's parts (files, sheets) that have its required columns (:func:`joined`
    makes them one frame)."""
    frames: dict[str, list[pd.DataFrame]] = {}
    for name, spec in contract.TABLES.items():
        parts = raw.parts.get(name, [])
        if not parts:
            # A file that could not be read is already reported; do not also call its table missing.
            already = any(t is None or t == name for t in raw.unread.values())
            if name in contract.REQUIRED_TABLES and not already:
                out.add(
                    Problem(
                        None,
                        None,
                        None,
                        "missing table",
                        f"No {name} table: the directory needs {name}.csv, {name}.parquet or {name}.xlsx"
                        " (or a CIN census XML return).",
                        table=name,
                    )
                )
            continue
        good_parts = []
        for part in parts:
            fname = part.attrs.get("file", f"{name} file")
            missing = [c for c in spec.required if c not in part.columns]
            if missing:
                la = part.attrs.get("la_code")
                for c in missing:
                    out.add(
                        Problem(
                            fname,
                            None,
                            c,
                            "missing column",
                            f"{fname}: the required column {c!r} is missing (the {name} table needs "
                            f"{', '.join(spec.required)}).",
                            la_code=la,
                            table=name,
                        )
                    )
                continue
            good_parts.append(part)
        if not good_parts:
            continue
        if sum(len(part) for part in good_parts) == 0 and name in contract.REQUIRED_TABLES:
            fname = good_parts[0].attrs.get("file", f"{name} file")
            out.add(
                Problem(
                    fname,
                    None,
                    None,
                    "empty file",
                    f"{fname} has a header but no rows (the {name} table must have rows).",
                    table=name,
                )
            )
        frames[name] = good_parts
    return frames


def joined(name: str, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """A table's parts as one frame of its contract columns (an optional column a part lacks is empty)."""
    return _concat(parts, contract.TABLES[name].columns)


def _check_council_codes(frames: dict[str, pd.DataFrame], out: Collector) -> None:
    """la_code everywhere: known councils, and present in the councils table."""
    known = sorted(reference.council_codes())
    council_codes_in_table: list[str] = []
    if "councils" in frames:
        council_codes_in_table = sorted(set(frames["councils"]["la_code"].unique()) - {""})
    for name, frame in frames.items():
        la = frame["la_code"]
        empty = as_mask(la == "")
        out.rows(name, frame, empty, "la_code", "missing value", "the council code (la_code) is empty.")
        in_known = isin(la, known)
        unknown = ~empty & ~in_known
        unknown_text = lambda b: (
            quoted(b["la_code"]) + " is not a council code (see insightlib/reference/local_authorities.csv)."
        )
        if name == "councils":
            out.rows(name, frame, unknown, "la_code", "unknown council", unknown_text)
        else:
            in_table = isin(la, council_codes_in_table)
            out.rows(name, frame, unknown & ~in_table, "la_code", "unknown council", unknown_text)
            if "councils" in frames:
                out.rows(
                    name,
                    frame,
                    ~empty & in_known & ~in_table,
                    "la_code",
                    "not present",
                    lambda b: "council " + b["la_code"] + " has rows here but no row in the councils table.",
                )


def _check_keys(frames, out: Collector) -> dict[str, pd.Series]:
    """Keys: a duplicated identifier is a problem, and every copy is left out (which is right cannot be told)."""
    keys: dict[str, pd.Series] = {}
    for name, frame in frames.items():
        key = list(contract.TABLES[name].key)
        if not key:
            continue
        keys[name] = k = join_key(frame, *key)
        present = np.logical_and.reduce([as_mask(frame[c] != "") for c in key])
        dup = as_mask(k.duplicated(keep="first")) & present
        if dup.any():
            first_row = pd.Series(frame["_row"].to_numpy(), index=k.astype(object).to_numpy())
            first_row = first_row[~first_row.index.duplicated()]
            idcol = key[-1]

            def describe(b, key=key, first_row=first_row, idcol=idcol):
                rows = first_row.reindex(join_key(b, *key).astype(object).to_numpy()).to_numpy()
                # an identifier's value is never quoted (messages reach logs and run.json): the row says which
                return (
                    "the "
                    + idcol
                    + " on this row appears more than once (first at row "
                    + pd.Series(rows, index=b.index).astype("Int64").astype(str)
                    + ")."
                )

            out.rows(name, frame, dup, idcol, "duplicate id", describe)
            # Left out, every copy goes: which of them is right cannot be told.
            out.mark(name, frame, as_mask(k.duplicated(keep=False)) & present, "duplicate id")
    return keys


def _check_references(frames, dates, keys, out: Collector) -> None:
    """Children and referrals together: age, birth, and every reference to a child or referral present."""
    if "children" in frames and "referrals" in frames:
        _check_ages(frames["referrals"], dates, keys, out)
    for name, frame in frames.items():
        if name in ("councils", "children"):
            continue
        if "children" in frames:
            missing = as_mask(frame["child_id"] != "") & ~isin(join_key(frame, "la_code", "child_id"), keys["children"])
            text = "the child_id on this row is not in the children table."
            out.rows(name, frame, missing, "child_id", "not present", text)
        if name != "referrals" and "referrals" in frames and "referral_id" in frame.columns:
            _check_referral_ids(name, frame, dates, keys, out)


def _check_ages(rf: pd.DataFrame, dates, keys, out: Collector) -> None:
    """Each referral against its child's date of birth: not over 25, not before birth."""
    birth = pd.Series(
        lookup(join_key(rf, "la_code", "child_id"), keys["children"], dates["children"]["date_of_birth"].to_numpy()),
        index=rf.index,
    )
    when = dates["referrals"]["referral_date"]
    age = _completed_years(birth, when)
    out.rows(
        "referrals",
        rf,
        as_mask(age > contract.MAX_AGE_YEARS),
        "referral_date",
        "over 25",
        lambda b: (
            "the child was "
            + age[b.index].astype(int).astype(str)
            + " at referral (born "
            + fmt_date(birth[b.index])
            + "); the census counts no one over "
            + str(contract.MAX_AGE_YEARS)
            + "."
        ),
    )
    out.rows(
        "referrals",
        rf,
        as_mask(when < birth),
        "referral_date",
        "referral before birth",
        lambda b: (
            "the referral ("
            + fmt_date(when[b.index])
            + ") is before the child's date of birth ("
            + fmt_date(birth[b.index])
            + ")."
        ),
    )


def _check_referral_ids(name: str, frame: pd.DataFrame, dates, keys, out: Collector) -> None:
    """A row naming a referral: the referral is present, and an assessment or plan starts no earlier than it."""
    fkey = join_key(frame, "la_code", "referral_id")
    missing = as_mask(frame["referral_id"] != "") & ~isin(fkey, keys["referrals"])
    text = "the referral_id on this row is not in the referrals table."
    out.rows(name, frame, missing, "referral_id", "not present", text)
    if name not in ("assessments", "plans"):
        return
    start = dates[name]["start_date"]
    rdate = pd.Series(
        lookup(fkey, keys["referrals"], dates["referrals"]["referral_date"].to_numpy()), index=frame.index
    )
    out.rows(
        name,
        frame,
        as_mask(start < rdate),
        "start_date",
        "before referral",
        lambda b: "starts (" + fmt_date(start[b.index]) + ") before its referral (" + fmt_date(rdate[b.index]) + ").",
    )


def _completed_years(birth: pd.Series, when: pd.Series) -> pd.Series:
    """Age in whole years on a date (a birthday counts on the day), NaN where either is missing."""
    years = when.dt.year - birth.dt.year
    before_birthday = (when.dt.month < birth.dt.month) | (
        (when.dt.month == birth.dt.month) & (when.dt.day < birth.dt.day)
    )
    return years - before_birthday.astype(int).where(years.notna())


def empty_table(name: str) -> pd.DataFrame:
    """A contract table with no rows and the right column types."""
    spec = contract.TABLES[name]
    cols = {}
    for c in spec.columns:
        if c in spec.dates:
            cols[c] = pd.Series([], dtype="datetime64[ns]")
        elif c in spec.booleans:
            cols[c] = pd.Series([], dtype=bool)
        else:
            cols[c] = pd.Series([], dtype=object)
    return pd.DataFrame(cols)


def _typed(name: str, frame: pd.DataFrame | None, dates: dict[str, pd.Series]) -> pd.DataFrame:
    """Contract columns with their types: dates datetime64[ns], booleans bool, text Arrow strings (missing if empty)."""
    if frame is None:
        return empty_table(name)
    spec = contract.TABLES[name]
    out = {}
    for c in spec.columns:
        if c in spec.dates:
            out[c] = dates[c].astype("datetime64[ns]").to_numpy()
        elif c in spec.booleans:
            yes = [k for k, v in contract.BOOLEAN_VALUES.items() if v]
            out[c] = isin(frame[c].str.lower(), yes)
        else:  # Arrow strings, missing where empty: no Python object per value
            out[c] = frame[c].mask(as_mask(frame[c] == ""))
    return pd.DataFrame(out)
