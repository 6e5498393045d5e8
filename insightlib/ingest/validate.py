"""Check a data directory against the data contract and report every problem at once.

Each problem names the file, the row the user sees, the column and the rule, in plain
English, and belongs to a council where that can be told, so that one council's bad data
never stops the others from loading. All checks are vectorised (pandas), so a national
referrals table of millions of rows is checked in seconds.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightlib import contract, reference
from insightlib.ingest.directory import read_directory
from insightlib.ingest.files import CELL_ROW_PREFIX, META, STR, Problem, location, parse_dates

__all__ = ["Problem", "ValidationReport", "validate_directory", "validate_raw", "RULES"]

#: Every rule, with what it means (docs/data-contract.md lists the same).
RULES = {
    "missing table": "a required table (councils, children, referrals) has no file",
    "empty file": "a file with nothing in it, or a required table with a header but no rows",
    "missing column": "a required column is not in the file's header",
    "unreadable file": "the file cannot be read in its format (ragged CSV rows, a damaged workbook ...)",
    "wrong encoding": "the file is not UTF-8 text",
    "broken XML": "the XML is not well formed, or has stray text between elements",
    "missing value": "a required column is empty in a row",
    "unparseable date": "a date that is not YYYY-MM-DD (or DD/MM/YYYY)",
    "date in the future": "a date after the council's extract date (or today)",
    "closure before referral": "a case closes before its referral",
    "end before start": "a plan, assessment, intervention or allocation ends before it starts",
    "before referral": "an assessment or plan starts before its referral",
    "unknown code": "a value that is not in the CIN code list for that column",
    "unknown council": "an la_code that is not a council code",
    "duplicate id": "the table's key (e.g. referral_id) appears more than once",
    "over 25": "the child was over 25 at referral",
    "referral before birth": "a referral dated before the child's date of birth",
    "not present": "a row refers to a council, child or referral that the data does not have",
    "not yes/no": "a yes/no field with another value",
    "too big": "a workbook or sheet past the size or row limit (a damaged file or a zip bomb?)",
    "duplicate list": "two sheets of an Annex A workbook claim the same list",
}

#: Rows listed one by one per (file, column, rule, council); the rest are counted in one line.
DETAIL_LIMIT = 50


@dataclass
class ValidationReport:
    """Every problem found, the typed tables, and which councils are clean."""

    problems: list[Problem]
    tables: dict[str, pd.DataFrame]
    councils: list[str] = field(default_factory=list)  # every la_code seen in the data
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: table -> for each row of ``tables[table]``, the first rule it breaks (None: no fault of its own).
    row_faults: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: ids of the problems that are about one row of a table other than councils (those rows can be left out).
    row_level: set[int] = field(default_factory=set, repr=False)
    #: table -> the file each row of ``tables[table]`` came from.
    row_files: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def skippable(self, la_code: str) -> bool:
        """True when every problem of this council is about single rows that can be left out."""
        return all(id(p) in self.row_level for p in self.problems_by_council().get(la_code, []))

    def problems_by_council(self) -> dict[str | None, list[Problem]]:
        """la_code -> its problems; None holds problems that belong to no one council."""
        out: dict[str | None, list[Problem]] = defaultdict(list)
        for p in self.problems:
            out[p.la_code].append(p)
        return dict(out)

    @property
    def unattributed(self) -> list[Problem]:
        """Problems that stop every council (a missing column, an unreadable file)."""
        return [p for p in self.problems if p.la_code is None]

    @property
    def failed_councils(self) -> dict[str, list[Problem]]:
        return {la: ps for la, ps in self.problems_by_council().items() if la is not None}

    @property
    def clean_councils(self) -> list[str]:
        """Councils in the councils table with no problem of their own (and none unattributed)."""
        if self.unattributed:
            return []
        failed = self.failed_councils
        councils = self.tables.get("councils")
        present = [] if councils is None else list(councils["la_code"].dropna().unique())
        return sorted(la for la in present if la not in failed)

    def summary(self) -> str:
        if self.ok:
            return f"All well: {len(self.councils)} council(s), no problems."
        counts = Counter(p.rule for p in self.problems)
        rules = ", ".join(f"{rule}: {n:,}" for rule, n in counts.most_common())
        failed = sorted(self.failed_councils)
        text = f"{len(self.problems):,} problem(s) ({rules})."
        if failed:
            text += f" Councils with problems: {', '.join(failed)}."
        clean = self.clean_councils
        if clean:
            text += f" Clean councils: {', '.join(clean)}."
        if self.unattributed:
            text += " Some problems stop every council until they are fixed."
        return text

    def format_text(self, max_lines: int | None = 200) -> str:
        """The report for the command line: a summary, then one line per problem, grouped by council."""
        lines = [self.summary()]
        if self.ok:
            return "\n".join(lines + [f"note: {n}" for n in self.notes])
        shown = 0
        groups = self.problems_by_council()
        order = sorted(groups, key=lambda la: (la is not None, la or ""))
        total = len(self.problems)
        for la in order:
            title = "Problems for every council" if la is None else f"Council {la} ({_council_label(la)})"
            lines.append("")
            lines.append(f"{title}: {len(groups[la]):,}")
            for p in groups[la]:
                if max_lines is not None and shown >= max_lines:
                    break
                lines.append(f"  - {p.message}")
                shown += 1
        if max_lines is not None and shown < total:
            lines.append("")
            lines.append(f"... and {total - shown:,} more problem(s) not shown.")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "councils": self.councils,
            "clean_councils": self.clean_councils,
            "failed_councils": sorted(self.failed_councils),
            "problems": [p.to_dict() for p in self.problems],
            "notes": self.notes,
        }


def _council_label(la: str) -> str:
    name = reference.council_name(la)
    return "not a council code" if name == la else name


# --- helpers ----------------------------------------------------------------------------


class _Collector:
    """Turns row masks into Problems, listing at most DETAIL_LIMIT rows per kind and council."""

    def __init__(self):
        self.problems: list[Problem] = []
        self.faults: dict[str, np.ndarray] = {}
        self.row_level: set[int] = set()

    def mark(self, table: str, frame: pd.DataFrame, mask, rule: str) -> None:
        """Remember the first rule each row breaks (for loading what is clean)."""
        mask = np.asarray(mask, dtype=bool)
        faults = self.faults.setdefault(table, np.full(len(frame), None, dtype=object))
        faults[mask & (faults == None)] = rule  # noqa: E711 - elementwise

    def add(self, p: Problem) -> None:
        self.problems.append(p)

    def rows(
        self,
        table: str,
        frame: pd.DataFrame,
        mask: pd.Series | np.ndarray,
        column: str | None,
        rule: str,
        describe: Callable[[pd.DataFrame], pd.Series] | str,
    ) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        row_level = table != "councils"
        if row_level:
            self.mark(table, frame, mask, rule)
        bad = frame.loc[mask]
        row_col = CELL_ROW_PREFIX + column if column and CELL_ROW_PREFIX + column in bad.columns else "_row"
        la = bad["la_code"] if "la_code" in bad.columns else pd.Series("", index=bad.index)
        la = la.fillna("").astype(str)
        groups = bad.groupby([bad["_file"], bad["_sheet"], la], sort=False, dropna=False)
        for (file, sheet, la_code), sub in groups:
            head = sub.head(DETAIL_LIMIT)
            texts = describe(head) if callable(describe) else pd.Series(describe, index=head.index)
            for row, text in zip(head[row_col].to_numpy(), texts.to_numpy()):
                row = int(row)
                self.problems.append(
                    Problem(
                        file,
                        row,
                        column,
                        rule,
                        f"{location(file, row, sheet or None, column)}: {text}",
                        la_code=la_code or None,
                        table=table,
                    )
                )
                if row_level:
                    self.row_level.add(id(self.problems[-1]))
            extra = len(sub) - len(head)
            if extra:
                self.problems.append(
                    Problem(
                        file,
                        None,
                        column,
                        rule,
                        f"{location(file, None, sheet or None, column)}: and {extra:,} more rows break the same rule "
                        f"({rule}: {RULES[rule]}).",
                        la_code=la_code or None,
                        table=table,
                    )
                )
                if row_level:
                    self.row_level.add(id(self.problems[-1]))


def _fmt(d: pd.Series) -> pd.Series:
    return d.dt.strftime("%Y-%m-%d").fillna("")


def _q(s: pd.Series, limit: int = 40) -> pd.Series:
    return "'" + s.fillna("").astype(str).str.slice(0, limit) + "'"


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


def _mask(x) -> np.ndarray:
    """A plain numpy bool mask from a pandas/Arrow boolean result (missing counts as False)."""
    if isinstance(x, np.ndarray):
        return x.astype(bool)
    return pd.Series(x).to_numpy(dtype=bool, na_value=False)


def _arrow(values) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(pa.large_string())
    return pa.array(values, type=pa.large_string())


def _isin(series: pd.Series, values) -> np.ndarray:
    """Membership in Arrow (pandas' isin on Arrow strings loops in Python over the value set)."""
    return _mask(
        pc.is_in(_arrow(series), value_set=_arrow(list(values) if isinstance(values, (set, tuple)) else values))
    )


def _key(frame: pd.DataFrame, *cols: str) -> pd.Series:
    """A composite key (council + id) as one Arrow string column, for joins without Python loops."""
    out = frame[cols[0]]
    for c in cols[1:]:
        out = out + "\x1f" + frame[c]
    return out


def _lookup(keys: pd.Series, table_keys: pd.Series, values: np.ndarray) -> np.ndarray:
    """values[i] of the first row of table_keys equal to each key (NaT/NaN where none)."""
    uniq = ~table_keys.duplicated().to_numpy()
    table_arr = pa.array(table_keys[uniq], type=pa.large_string())
    pos = pc.index_in(pa.array(keys, type=pa.large_string()), value_set=table_arr)
    pos = pos.to_numpy(zero_copy_only=False)
    found = ~np.isnan(pos.astype(float))
    vals = values[uniq]
    out = (
        np.full(len(keys), np.datetime64("NaT"), dtype=vals.dtype)
        if vals.dtype.kind == "M"
        else np.full(len(keys), None, dtype=object)
    )
    out[found] = vals[pos[found].astype(np.int64)]
    return out


# --- the checks ---------------------------------------------------------------------------


def validate_directory(path: str | Path, today: pd.Timestamp | None = None, limits=None) -> ValidationReport:
    """Read and check a data directory; never raises on bad data, returns every problem.

    ``limits`` (files.Limits) bounds workbooks; by default from the environment.
    """
    raw = read_directory(path, limits)
    return validate_raw(raw, today=today)


def validate_raw(raw, today: pd.Timestamp | None = None) -> ValidationReport:
    """Every rule of the data contract over what the readers found, each problem with its file, row and rule.

    One stage per kind of rule, in the order a reader of the problems list expects them."""
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today)
    out = _Collector()
    for p in raw.problems:
        out.add(p)
    frames = _check_tables(raw, out)
    _check_council_codes(frames, out)
    dates = _check_values(frames, out)
    _check_future_dates(frames, dates, today, out)
    _check_date_order(frames, dates, out)
    keys = _check_keys(frames, out)
    _check_references(frames, dates, keys, out)
    tables = {name: _typed(name, frames.get(name), dates.get(name, {})) for name in contract.TABLES}
    councils = sorted(set().union(*[set(f["la_code"].unique()) - {""} for f in frames.values()]) if frames else set())
    problems = sorted(
        out.problems,
        key=lambda p: (
            p.la_code is not None,
            p.la_code or "",
            p.table or "",
            p.file or "",
            p.row if p.row is not None else 1 << 62,
        ),
    )
    faults = {name: out.faults.get(name, np.full(len(tables[name]), None, dtype=object)) for name in tables}
    return ValidationReport(
        problems=problems,
        tables=tables,
        councils=councils,
        notes=list(raw.notes),
        files=list(raw.files),
        row_faults=faults,
        row_level=out.row_level,
        row_files={name: frames[name]["_file"].to_numpy() for name in frames},
    )


def _check_tables(raw, out: _Collector) -> dict[str, pd.DataFrame]:
    """Tables and columns: each table's parts with their required columns, joined into one frame."""
    frames: dict[str, pd.DataFrame] = {}
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
        frame = _concat(good_parts, spec.columns)
        if len(frame) == 0 and name in contract.REQUIRED_TABLES:
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
        frames[name] = frame
    return frames


def _check_council_codes(frames: dict[str, pd.DataFrame], out: _Collector) -> None:
    """la_code everywhere: known councils, and present in the councils table."""
    known = sorted(reference.council_codes())
    council_codes_in_table: list[str] = []
    if "councils" in frames:
        council_codes_in_table = sorted(set(frames["councils"]["la_code"].unique()) - {""})
    for name, frame in frames.items():
        la = frame["la_code"]
        empty = _mask(la == "")
        out.rows(name, frame, empty, "la_code", "missing value", "the council code (la_code) is empty.")
        in_known = _isin(la, known)
        unknown = ~empty & ~in_known
        unknown_text = lambda b: (
            _q(b["la_code"]) + " is not a council code (see insightlib/reference/local_authorities.csv)."
        )
        if name == "councils":
            out.rows(name, frame, unknown, "la_code", "unknown council", unknown_text)
        else:
            in_table = _isin(la, council_codes_in_table)
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


def _check_values(frames: dict[str, pd.DataFrame], out: _Collector) -> dict[str, dict[str, pd.Series]]:
    """Required values, codes, booleans and dates (codes are upper-cased in place); returns the parsed dates."""
    dates: dict[str, dict[str, pd.Series]] = defaultdict(dict)
    for name, frame in frames.items():
        spec = contract.TABLES[name]
        for col in spec.required:
            if col == "la_code":
                continue
            out.rows(name, frame, _mask(frame[col] == ""), col, "missing value", f"{col} is empty.")
        for col, codes in spec.codes.items():
            frame[col] = frame[col].str.upper()
            bad = _mask(frame[col] != "") & ~_isin(frame[col], codes)
            out.rows(
                name,
                frame,
                bad,
                col,
                "unknown code",
                lambda b, col=col, codes=codes: (
                    _q(b[col]) + f" is not {_a(CODE_NAMES.get(col, col))} code (" + _codes_text(codes) + ")."
                ),
            )
        for col, codes in spec.multi_codes.items():
            frame[col] = frame[col].str.upper().str.replace(r"\s*[;,]\s*", ";", regex=True)
            lists = pc.split_pattern(pa.array(frame[col], type=pa.large_string()), ";")
            flat = pc.list_flatten(lists)
            parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
            bad_part = _mask(pc.not_equal(flat, "")) & ~_mask(pc.is_in(flat, value_set=pa.array(list(codes))))
            if bad_part.any():
                bad_rows = np.zeros(len(frame), dtype=bool)
                bad_rows[parent[bad_part]] = True
                first_bad = pd.Series(flat.to_numpy(zero_copy_only=False)[bad_part], index=parent[bad_part])
                first_bad = first_bad[~first_bad.index.duplicated()]
                out.rows(
                    name,
                    frame,
                    bad_rows,
                    col,
                    "unknown code",
                    lambda b, col=col, codes=codes, fb=first_bad: (
                        _q(fb.reindex(b.index)) + " is not "
                        f"{_a(CODE_NAMES.get(col, col))} code (" + _codes_text(codes) + ")."
                    ),
                )
        for col in spec.booleans:
            low = frame[col].str.lower()
            bad = _mask(low != "") & ~_isin(low, list(contract.BOOLEAN_VALUES))
            out.rows(
                name,
                frame,
                bad,
                col,
                "not yes/no",
                lambda b, col=col: _q(b[col]) + " is not yes/no (use true/false, yes/no, y/n or 1/0).",
            )
        for col in spec.dates:
            parsed, bad = parse_dates(frame[col])
            dates[name][col] = parsed
            out.rows(
                name,
                frame,
                bad.to_numpy(),
                col,
                "unparseable date",
                lambda b, col=col: _q(b[col]) + " is not a date (write dates as YYYY-MM-DD).",
            )
    return dates


def _check_future_dates(frames, dates, today: pd.Timestamp, out: _Collector) -> None:
    """Future dates: after the council's extract date, or after today."""
    extract = pd.Series(dtype="datetime64[ns]")
    if "councils" in frames:
        c = frames["councils"]
        extract = pd.Series(dates["councils"]["extract_date"].to_numpy(), index=c["la_code"].astype(object).to_numpy())
        extract = extract[~extract.index.duplicated()]
    for name, frame in frames.items():
        if name == "councils":
            d = dates[name]["extract_date"]
            out.rows(
                name,
                frame,
                _mask(d > today),
                "extract_date",
                "date in the future",
                lambda b, d=d: "the extract date " + _fmt(d[b.index]) + " is after today.",
            )
            continue
        codes, uniques = pd.factorize(frame["la_code"])
        per_council = extract.reindex(np.asarray(uniques, dtype=object)).to_numpy(dtype="datetime64[ns]")
        per_council = np.where(
            np.isnat(per_council) | (per_council > today.to_datetime64()), today.to_datetime64(), per_council
        )
        limit = pd.Series(per_council[codes] if len(codes) else np.array([], dtype="datetime64[ns]"), index=frame.index)
        for col, d in dates[name].items():
            out.rows(
                name,
                frame,
                _mask(d > limit),
                col,
                "date in the future",
                lambda b, col=col, d=d, limit=limit: (
                    col + " " + _fmt(d[b.index]) + " is after the council's "
                    "extract date (" + _fmt(limit[b.index]) + ")."
                ),
            )


def _check_date_order(frames, dates, out: _Collector) -> None:
    """Order of dates within a row (a closure before its referral, an end before its start)."""
    pairs = {
        "referrals": ("referral_date", "closure_date", "closure before referral"),
        "assessments": ("start_date", "authorised_date", "end before start"),
        "plans": ("start_date", "end_date", "end before start"),
        "interventions": ("start_date", "end_date", "end before start"),
        "allocations": ("start_date", "end_date", "end before start"),
    }
    for name, (start_col, end_col, rule) in pairs.items():
        if name not in frames:
            continue
        s, e = dates[name][start_col], dates[name][end_col]
        if name == "referrals":
            text = lambda b, s=s, e=e: (
                "the case closes (" + _fmt(e[b.index]) + ") before the referral (" + _fmt(s[b.index]) + ")."
            )
        else:
            text = lambda b, s=s, e=e, end_col=end_col, start_col=start_col: (
                end_col + " " + _fmt(e[b.index]) + " is before " + start_col + " " + _fmt(s[b.index]) + "."
            )
        out.rows(name, frames[name], _mask(e < s), end_col, rule, text)


def _check_keys(frames, out: _Collector) -> dict[str, pd.Series]:
    """Keys: a duplicated identifier is a problem, and every copy is left out (which is right cannot be told)."""
    keys: dict[str, pd.Series] = {}
    for name, frame in frames.items():
        key = list(contract.TABLES[name].key)
        if not key:
            continue
        keys[name] = k = _key(frame, *key)
        present = np.logical_and.reduce([_mask(frame[c] != "") for c in key])
        dup = _mask(k.duplicated(keep="first")) & present
        if dup.any():
            first_row = pd.Series(frame["_row"].to_numpy(), index=k.astype(object).to_numpy())
            first_row = first_row[~first_row.index.duplicated()]
            idcol = key[-1]

            def describe(b, key=key, first_row=first_row, idcol=idcol):
                rows = first_row.reindex(_key(b, *key).astype(object).to_numpy()).to_numpy()
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
            out.mark(name, frame, _mask(k.duplicated(keep=False)) & present, "duplicate id")
    return keys


def _check_references(frames, dates, keys, out: _Collector) -> None:
    """Children and referrals together: age, birth, and every reference to a child or referral present."""
    if "children" in frames and "referrals" in frames:
        rf = frames["referrals"]
        birth = pd.Series(
            _lookup(_key(rf, "la_code", "child_id"), keys["children"], dates["children"]["date_of_birth"].to_numpy()),
            index=rf.index,
        )
        when = dates["referrals"]["referral_date"]
        age = _completed_years(birth, when)
        out.rows(
            "referrals",
            rf,
            _mask(age > contract.MAX_AGE_YEARS),
            "referral_date",
            "over 25",
            lambda b: (
                "the child was "
                + age[b.index].astype(int).astype(str)
                + " at referral (born "
                + _fmt(birth[b.index])
                + "); the census counts no one over "
                + str(contract.MAX_AGE_YEARS)
                + "."
            ),
        )
        out.rows(
            "referrals",
            rf,
            _mask(when < birth),
            "referral_date",
            "referral before birth",
            lambda b: (
                "the referral ("
                + _fmt(when[b.index])
                + ") is before the child's date of birth ("
                + _fmt(birth[b.index])
                + ")."
            ),
        )
    for name, frame in frames.items():
        if name in ("councils", "children"):
            continue
        if "children" in frames:
            missing = _mask(frame["child_id"] != "") & ~_isin(_key(frame, "la_code", "child_id"), keys["children"])
            out.rows(
                name,
                frame,
                missing,
                "child_id",
                "not present",
                "the child_id on this row is not in the children table.",
            )
        if name != "referrals" and "referrals" in frames and "referral_id" in frame.columns:
            fkey = _key(frame, "la_code", "referral_id")
            missing = _mask(frame["referral_id"] != "") & ~_isin(fkey, keys["referrals"])
            out.rows(
                name,
                frame,
                missing,
                "referral_id",
                "not present",
                "the referral_id on this row is not in the referrals table.",
            )
            if name in ("assessments", "plans"):
                start = dates[name]["start_date"]
                rdate = pd.Series(
                    _lookup(fkey, keys["referrals"], dates["referrals"]["referral_date"].to_numpy()), index=frame.index
                )
                out.rows(
                    name,
                    frame,
                    _mask(start < rdate),
                    "start_date",
                    "before referral",
                    lambda b, start=start, rdate=rdate: (
                        "starts (" + _fmt(start[b.index]) + ") before its referral (" + _fmt(rdate[b.index]) + ")."
                    ),
                )


def _completed_years(birth: pd.Series, when: pd.Series) -> pd.Series:
    """Age in whole years on a date (a birthday counts on the day), NaN where either is missing."""
    years = when.dt.year - birth.dt.year
    before_birthday = (when.dt.month < birth.dt.month) | (
        (when.dt.month == birth.dt.month) & (when.dt.day < birth.dt.day)
    )
    return years - before_birthday.astype(int).where(years.notna())


#: How a code column is named in messages.
CODE_NAMES = {
    "factors": "assessment factor",
    "referral_source": "referral source",
    "primary_need": "primary need",
    "closure_reason": "closure reason",
    "category_of_abuse": "category of abuse",
    "plan_type": "plan type",
    "disability": "disability",
    "sex": "sex",
    "ethnicity": "ethnicity",
}


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _codes_text(codes: tuple[str, ...]) -> str:
    return ", ".join(codes) if len(codes) <= 12 else ", ".join(codes[:10]) + f" ... {codes[-1]}"


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
    """Contract columns with their types: dates datetime64[ns], booleans bool, text str (None if empty)."""
    if frame is None:
        return empty_table(name)
    spec = contract.TABLES[name]
    out = {}
    for c in spec.columns:
        if c in spec.dates:
            out[c] = dates[c].astype("datetime64[ns]").to_numpy()
        elif c in spec.booleans:
            yes = [k for k, v in contract.BOOLEAN_VALUES.items() if v]
            out[c] = _isin(frame[c].str.lower(), yes)
        else:
            values = frame[c].to_numpy(dtype=object)
            values[_mask(frame[c] == "")] = None
            out[c] = values
    return pd.DataFrame(out)
