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

from insightlib import contract, reference
from insightlib.readers import CELL_ROW_PREFIX, META, Problem, location, parse_dates, read_directory

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

    @property
    def ok(self) -> bool:
        return not self.problems

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
        return {"ok": self.ok, "councils": self.councils, "clean_councils": self.clean_councils,
                "failed_councils": sorted(self.failed_councils),
                "problems": [p.to_dict() for p in self.problems], "notes": self.notes}


def _council_label(la: str) -> str:
    name = reference.council_name(la)
    return "not a council code" if name == la else name


# --- helpers ----------------------------------------------------------------------------


class _Collector:
    """Turns row masks into Problems, listing at most DETAIL_LIMIT rows per kind and council."""

    def __init__(self):
        self.problems: list[Problem] = []

    def add(self, p: Problem) -> None:
        self.problems.append(p)

    def rows(self, table: str, frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str | None, rule: str,
             describe: Callable[[pd.DataFrame], pd.Series] | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
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
                self.problems.append(Problem(
                    file, row, column, rule, f"{location(file, row, sheet or None, column)}: {text}",
                    la_code=la_code or None, table=table,
                ))
            extra = len(sub) - len(head)
            if extra:
                self.problems.append(Problem(
                    file, None, column, rule,
                    f"{location(file, None, sheet or None, column)}: and {extra:,} more rows break the same rule "
                    f"({rule}: {RULES[rule]}).", la_code=la_code or None, table=table,
                ))


def _fmt(d: pd.Series) -> pd.Series:
    return d.dt.strftime("%Y-%m-%d").fillna("")


def _q(s: pd.Series, limit: int = 40) -> pd.Series:
    return "'" + s.fillna("").astype(str).str.slice(0, limit) + "'"


def _concat(parts: list[pd.DataFrame], columns: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for part in parts:
        f = part.copy()
        for c in columns:
            if c not in f.columns:
                f[c] = ""
        keep = list(columns) + [c for c in f.columns if c in META or c.startswith(CELL_ROW_PREFIX)]
        frames.append(f[keep])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns) + list(META))
    for c in columns:
        out[c] = out[c].fillna("").astype(object)
    for c in out.columns:
        if c.startswith(CELL_ROW_PREFIX):
            out[c] = out[c].fillna(out["_row"]).astype("int64")
    out["_sheet"] = out["_sheet"].fillna("")
    return out


# --- the checks ---------------------------------------------------------------------------


def validate_directory(path: str | Path, today: pd.Timestamp | None = None) -> ValidationReport:
    """Read and check a data directory; never raises on bad data, returns every problem."""
    raw = read_directory(path)
    return validate_raw(raw, today=today)


def validate_raw(raw, today: pd.Timestamp | None = None) -> ValidationReport:
    today = pd.Timestamp.today().normalize() if today is None else pd.Timestamp(today)
    out = _Collector()
    for p in raw.problems:
        out.add(p)
    frames: dict[str, pd.DataFrame] = {}

    # Tables and columns.
    for name, spec in contract.TABLES.items():
        parts = raw.parts.get(name, [])
        if not parts:
            # A file that could not be read is already reported; do not also call its table missing.
            already = any(t is None or t == name for t in raw.unread.values())
            if name in contract.REQUIRED_TABLES and not already:
                out.add(Problem(None, None, None, "missing table",
                                f"No {name} table: the directory needs {name}.csv, {name}.parquet or {name}.xlsx"
                                " (or a CIN census XML return).", table=name))
            continue
        good_parts = []
        for part in parts:
            fname = part.attrs.get("file", f"{name} file")
            missing = [c for c in spec.required if c not in part.columns]
            if missing:
                la = part.attrs.get("la_code")
                for c in missing:
                    out.add(Problem(fname, None, c, "missing column",
                                    f"{fname}: the required column {c!r} is missing (the {name} table needs "
                                    f"{', '.join(spec.required)}).", la_code=la, table=name))
                continue
            good_parts.append(part)
        if not good_parts:
            continue
        frame = _concat(good_parts, spec.columns)
        if len(frame) == 0 and name in contract.REQUIRED_TABLES:
            fname = good_parts[0].attrs.get("file", f"{name} file")
            out.add(Problem(fname, None, None, "empty file",
                            f"{fname} has a header but no rows (the {name} table must have rows).", table=name))
        frames[name] = frame

    # la_code everywhere: known councils, and present in the councils table.
    known = reference.council_codes()
    council_codes_in_table: set[str] = set()
    if "councils" in frames:
        council_codes_in_table = set(frames["councils"]["la_code"]) - {""}
    for name, frame in frames.items():
        la = frame["la_code"]
        out.rows(name, frame, la == "", "la_code", "missing value", "the council code (la_code) is empty.")
        unknown = (la != "") & ~la.isin(known)
        if name == "councils":
            out.rows(name, frame, unknown, "la_code", "unknown council",
                     lambda b: _q(b["la_code"]) + " is not a council code (see insightlib/reference/local_authorities.csv).")
        else:
            unknown_here = unknown & ~la.isin(council_codes_in_table)
            out.rows(name, frame, unknown_here, "la_code", "unknown council",
                     lambda b: _q(b["la_code"]) + " is not a council code (see insightlib/reference/local_authorities.csv).")
            if "councils" in frames:
                out.rows(name, frame, (la != "") & la.isin(known) & ~la.isin(council_codes_in_table), "la_code",
                         "not present", lambda b: "council " + b["la_code"] + " has rows here but no row in the councils table.")

    # Required values, codes, booleans, dates.
    dates: dict[str, dict[str, pd.Series]] = defaultdict(dict)
    for name, frame in frames.items():
        spec = contract.TABLES[name]
        for col in spec.required:
            if col == "la_code":
                continue
            out.rows(name, frame, frame[col] == "", col, "missing value", f"{col} is empty.")
        for col, codes in spec.codes.items():
            frame[col] = frame[col].str.upper()
            bad = (frame[col] != "") & ~frame[col].isin(codes)
            out.rows(name, frame, bad, col, "unknown code",
                     lambda b, col=col, codes=codes: _q(b[col]) + f" is not {_a(CODE_NAMES.get(col, col))} code ("
                     + _codes_text(codes) + ").")
        for col, codes in spec.multi_codes.items():
            frame[col] = frame[col].str.upper().str.replace(r"\s*[;,]\s*", ";", regex=True)
            parts = frame[col].str.split(";").explode()
            parts = parts[parts.notna() & (parts != "")]
            bad_parts = parts[~parts.isin(codes)]
            if len(bad_parts):
                bad_rows = np.zeros(len(frame), dtype=bool)
                bad_rows[bad_parts.index.unique()] = True
                first_bad = bad_parts.groupby(level=0).first()
                out.rows(name, frame, bad_rows, col, "unknown code",
                         lambda b, col=col, codes=codes, fb=first_bad: _q(fb.reindex(b.index)) + f" is not "
                         f"{_a(CODE_NAMES.get(col, col))} code (" + _codes_text(codes) + ").")
        for col in spec.booleans:
            low = frame[col].str.lower()
            bad = (low != "") & ~low.isin(contract.BOOLEAN_VALUES)
            out.rows(name, frame, bad, col, "not yes/no",
                     lambda b, col=col: _q(b[col]) + " is not yes/no (use true/false, yes/no, y/n or 1/0).")
        for col in spec.dates:
            parsed, bad = parse_dates(frame[col])
            dates[name][col] = parsed
            out.rows(name, frame, bad, col, "unparseable date",
                     lambda b, col=col: _q(b[col]) + " is not a date (write dates as YYYY-MM-DD).")

    # Future dates: after the council's extract date, or after today.
    extract = pd.Series(dtype="datetime64[ns]")
    if "councils" in frames:
        c = frames["councils"]
        extract = pd.Series(dates["councils"]["extract_date"].to_numpy(), index=c["la_code"].to_numpy())
        extract = extract[~extract.index.duplicated()]
    for name, frame in frames.items():
        if name == "councils":
            d = dates[name]["extract_date"]
            out.rows(name, frame, d > today, "extract_date", "date in the future",
                     lambda b, d=d: "the extract date " + _fmt(d[b.index]) + " is after today.")
            continue
        limit = frame["la_code"].map(extract).astype("datetime64[ns]")
        limit = limit.where(limit.notna() & (limit <= today), today)
        for col, d in dates[name].items():
            future = d > limit
            out.rows(name, frame, future, col, "date in the future",
                     lambda b, col=col, d=d, limit=limit: col + " " + _fmt(d[b.index]) + " is after the council's "
                     "extract date (" + _fmt(limit[b.index]) + ").")

    # Order of dates within a row.
    pairs = {"referrals": ("referral_date", "closure_date", "closure before referral"),
             "assessments": ("start_date", "authorised_date", "end before start"),
             "plans": ("start_date", "end_date", "end before start"),
             "interventions": ("start_date", "end_date", "end before start"),
             "allocations": ("start_date", "end_date", "end before start")}
    for name, (start_col, end_col, rule) in pairs.items():
        if name not in frames:
            continue
        s, e = dates[name][start_col], dates[name][end_col]
        if name == "referrals":
            text = lambda b, s=s, e=e: ("the case closes (" + _fmt(e[b.index]) + ") before the referral ("
                                        + _fmt(s[b.index]) + ").")
        else:
            text = lambda b, s=s, e=e, end_col=end_col, start_col=start_col: (
                end_col + " " + _fmt(e[b.index]) + " is before " + start_col + " " + _fmt(s[b.index]) + ".")
        out.rows(name, frames[name], e < s, end_col, rule, text)

    # Keys.
    for name, frame in frames.items():
        key = list(contract.TABLES[name].key)
        if not key:
            continue
        present = (frame[key] != "").all(axis=1)
        dup = frame.duplicated(key, keep="first") & present
        if dup.any():
            first_row = frame[present].drop_duplicates(key).set_index(key)["_row"]
            idcol = key[-1]

            def describe(b, key=key, first_row=first_row, idcol=idcol):
                firsts = pd.MultiIndex.from_frame(b[key]) if len(key) > 1 else pd.Index(b[key[0]])
                rows = first_row.reindex(firsts).to_numpy()
                return (idcol + " " + _q(b[idcol]) + " appears more than once (first at row "
                        + pd.Series(rows, index=b.index).astype("Int64").astype(str) + ").")
            out.rows(name, frame, dup, key[-1], "duplicate id", describe)

    # Children and referrals together: age, birth, references.
    child_keys = referral_keys = None
    if "children" in frames:
        ch = frames["children"]
        child_keys = pd.MultiIndex.from_arrays([ch["la_code"], ch["child_id"]])
        dob = pd.Series(dates["children"]["date_of_birth"].to_numpy(), index=child_keys)
        dob = dob[~dob.index.duplicated()]
    if "referrals" in frames:
        rf = frames["referrals"]
        referral_keys = pd.MultiIndex.from_arrays([rf["la_code"], rf["referral_id"]])
        ref_date = pd.Series(dates["referrals"]["referral_date"].to_numpy(), index=referral_keys)
        ref_date = ref_date[~ref_date.index.duplicated()]
        if child_keys is not None:
            keys = pd.MultiIndex.from_arrays([rf["la_code"], rf["child_id"]])
            birth = pd.Series(dob.reindex(keys).to_numpy(), index=rf.index)
            when = dates["referrals"]["referral_date"]
            age = _completed_years(birth, when)
            out.rows("referrals", rf, age > contract.MAX_AGE_YEARS, "referral_date", "over 25",
                     lambda b, age=age, birth=birth: "the child was " + age[b.index].astype(int).astype(str)
                     + " at referral (born " + _fmt(birth[b.index]) + "); the census counts no one over "
                     + str(contract.MAX_AGE_YEARS) + ".")
            out.rows("referrals", rf, when < birth, "referral_date", "referral before birth",
                     lambda b, when=when, birth=birth: "the referral (" + _fmt(when[b.index])
                     + ") is before the child's date of birth (" + _fmt(birth[b.index]) + ").")
    for name, frame in frames.items():
        if name in ("councils", "children"):
            continue
        if child_keys is not None and "child_id" in frame.columns:
            keys = pd.MultiIndex.from_arrays([frame["la_code"], frame["child_id"]])
            missing = (frame["child_id"] != "") & ~keys.isin(child_keys)
            out.rows(name, frame, missing, "child_id", "not present",
                     lambda b: "child " + _q(b["child_id"]) + " is not in the children table.")
        if name != "referrals" and referral_keys is not None and "referral_id" in frame.columns:
            keys = pd.MultiIndex.from_arrays([frame["la_code"], frame["referral_id"]])
            missing = (frame["referral_id"] != "") & ~keys.isin(referral_keys)
            out.rows(name, frame, missing, "referral_id", "not present",
                     lambda b: "referral " + _q(b["referral_id"]) + " is not in the referrals table.")
            if name in ("assessments", "plans"):
                start = dates[name]["start_date"]
                rdate = pd.Series(ref_date.reindex(keys).to_numpy(), index=frame.index)
                out.rows(name, frame, start < rdate, "start_date", "before referral",
                         lambda b, start=start, rdate=rdate: "starts (" + _fmt(start[b.index])
                         + ") before its referral (" + _fmt(rdate[b.index]) + ").")

    tables = {name: _typed(name, frames.get(name), dates.get(name, {})) for name in contract.TABLES}
    councils = sorted(set().union(*[set(f["la_code"]) - {""} for f in frames.values()]) if frames else set())
    problems = sorted(out.problems, key=lambda p: (p.la_code is not None, p.la_code or "", p.table or "",
                                                   p.file or "", p.row if p.row is not None else 1 << 62))
    return ValidationReport(problems=problems, tables=tables, councils=councils, notes=list(raw.notes),
                            files=list(raw.files))


def _completed_years(birth: pd.Series, when: pd.Series) -> pd.Series:
    """Age in whole years on a date (a birthday counts on the day), NaN where either is missing."""
    years = when.dt.year - birth.dt.year
    before_birthday = (when.dt.month < birth.dt.month) | ((when.dt.month == birth.dt.month) & (when.dt.day < birth.dt.day))
    return years - before_birthday.astype(int).where(years.notna())


#: How a code column is named in messages.
CODE_NAMES = {"factors": "assessment factor", "referral_source": "referral source", "primary_need": "primary need",
              "closure_reason": "closure reason", "category_of_abuse": "category of abuse", "plan_type": "plan type",
              "disability": "disability", "sex": "sex", "ethnicity": "ethnicity"}


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
            out[c] = frame[c].str.lower().map(contract.BOOLEAN_VALUES).eq(True).to_numpy()
        else:
            s = frame[c].astype(object)
            out[c] = s.where(s != "", None).to_numpy()
    return pd.DataFrame(out)
