"""The warehouse: one DuckDB file holding every clean council's pseudonymised tables.

A load validates the directory, pseudonymises identifiers and writes all clean councils
into a new file beside the target, then swaps it in with one ``os.replace``: a failed load
leaves no half-written warehouse, and an existing one untouched. Councils whose data has
problems are left out and reported; problems that belong to no council stop the load.
Reads open the file read-only, so many notebook processes can read it at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from insightlib import contract
from insightlib.errors import InputError
from insightlib.ingest import load_stream, pseudonymise, warehouse_write
from insightlib.ingest.directory import read_directory
from insightlib.ingest.files import Problem
from insightlib.ingest.load_stream import WITH_CHILD, WITH_REFERRAL
from insightlib.ingest.validation_report import ValidationReport
from insightlib.ingest.warehouse_write import COUNCIL_TABLE, META_TABLE

#: Written by ``insight synth`` into every data directory it makes (never by a council's extract):
#: load carries it into the warehouse, and every report and page of synthetic data then says so.
SYNTHETIC_FILE = "SYNTHETIC.json"


@dataclass
class LoadSummary:
    """What a load did: councils loaded, councils left out with their problems, rows per table."""

    loaded: list[str]
    failed: dict[str, list[Problem]]
    rows: dict[str, int]
    problems: list[Problem]
    warehouse: Path | None = None
    report: ValidationReport | None = field(default=None, repr=False)
    #: Rows left out with --skip-invalid-rows: dicts of la_code, table, rule, rows, files.
    left_out: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "failed": {la: [p.to_dict() for p in ps] for la, ps in self.failed.items()},
            "rows": self.rows,
            "warehouse": str(self.warehouse) if self.warehouse else None,
        }

    def format_text(self, max_lines: int | None = 200) -> str:
        lines = [
            f"Loaded {len(self.loaded)} council(s) into {self.warehouse}: {', '.join(self.loaded) or 'none'}.",
            "Rows: " + ", ".join(f"{t} {n:,}" for t, n in self.rows.items()) + ".",
        ]
        if self.failed:
            lines.append(f"Left out {len(self.failed)} council(s) with problems: {', '.join(sorted(self.failed))}.")
            if self.report is not None:
                lines.append("")
                lines.append(self.report.format_text(max_lines))
        return "\n".join(lines)


def default_warehouse_path(data_dir: str | os.PathLike) -> Path:
    """``<DIR>.duckdb`` beside the directory, its whole name kept: extract.2024 and extract.2025 never share a file."""
    folder = Path(data_dir).resolve()
    return folder.with_name(folder.name + ".duckdb")


def check_target(target: str | os.PathLike) -> None:
    """Refuse a warehouse path that holds anything but a warehouse (a source CSV, a folder, someone's file)."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give the warehouse a file name, e.g. -w {target}.duckdb.")
    if target.exists() and not is_warehouse(target):
        raise InputError(
            f"{target} already exists and is not a warehouse made by 'insight load', so it was left "
            "as it is; give another warehouse path with -w."
        )


def write_warehouse(
    tables: dict[str, pd.DataFrame],
    warehouse_path: str | os.PathLike,
    metadata: dict | None = None,
    key: bytes | None = None,
    left_out: list[dict] | None = None,
) -> dict[str, str]:
    """Write already pseudonymised contract tables into a new warehouse file, atomically (never over
    a file that is not a warehouse). Returns the per-council fingerprints."""
    check_target(warehouse_path)
    return warehouse_write.write_file(tables, Path(warehouse_path), metadata, key, left_out)


def load_directory(
    data_dir: str | os.PathLike,
    warehouse_path: str | os.PathLike,
    key: bytes | str | None = None,
    key_file: str | os.PathLike | None = None,
    today: pd.Timestamp | None = None,
    limits=None,
    skip_invalid_rows: bool = False,
) -> LoadSummary:
    """Validate, pseudonymise and load every clean council; report the others.

    Councils are checked and written a batch at a time (:mod:`.load_stream`), with the same problems as
    ``insight validate``. With ``skip_invalid_rows`` a council whose problems are all about single rows is
    loaded without those rows and without what depends on them (a left-out child's referrals, a left-out
    referral's assessments and plans); what was left out, counted by rule, is stored in the warehouse for
    reports to state (:func:`left_out_caveats`).

    Raises InputError (with the report) when a problem belongs to no council (a missing column, an
    unreadable file) or when no council is clean; the existing warehouse is then untouched. The summary's
    report holds every problem and the councils table (not the other tables: they went batch by batch).
    """
    check_target(warehouse_path)  # before the work, not after it
    key_bytes = pseudonymise.load_key(key, key_file)
    raw = read_directory(data_dir, limits)
    ext = load_stream.extract(raw)
    stop = lambda: _stop(data_dir, raw, ext, today)  # noqa: E731
    if ext.early.get(""):
        stop()
    work = load_stream.Batches(ext, key_bytes, today, skip_invalid_rows, Path(warehouse_path).resolve().parent)
    try:
        with warehouse_write.Writer(Path(warehouse_path)) as writer:
            done = _write_batches(work, writer, stop)
            work.close()
            summary = _summary(data_dir, raw, ext, done, Path(warehouse_path))
            metadata = {
                "source": str(Path(data_dir).resolve()),
                "councils_loaded": summary.loaded,
                "councils_failed": sorted(summary.failed),
                "files": summary.report.files,
                "synthetic": (Path(data_dir) / SYNTHETIC_FILE).is_file(),
            } | ({"skip_invalid_rows": True} if skip_invalid_rows else {})
            writer.finish(metadata, key_bytes, summary.left_out)
    finally:
        work.close()
    return summary


def _summary(data_dir, raw, ext: load_stream.Extract, done: _Written, warehouse_path: Path) -> LoadSummary:
    """What the load did, with the problems ``insight validate`` reports (of its tables, the report holds only
    the councils table); InputError when no council was clean."""
    report = done.report(raw, ext, rows=False)
    if not done.loaded:
        raise InputError(f"Cannot load {data_dir}: no council's data is clean.\n\n" + report.format_text())
    return LoadSummary(
        loaded=sorted(done.loaded),
        failed={la: ps for la, ps in report.failed_councils.items() if la not in done.loaded},
        rows=done.rows,
        problems=report.problems,
        warehouse=warehouse_path,
        report=report,
        left_out=load_stream.in_national_order(done.left_out),
    )


@dataclass
class _Written(load_stream.Gathered):
    """The batches gathered (their rows: of the councils loaded), and which councils were loaded."""

    loaded: list[str] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)


def _write_batches(work: load_stream.Batches, writer: warehouse_write.Writer, stop) -> _Written:
    """Each batch's loaded councils into the warehouse, as the batches come; ``stop`` when rows name no council."""
    done = _Written()
    for ready in work:
        checked = ready.checked
        if checked.councils == [""] and checked.problems:
            stop()
        done.add(checked)
        done.loaded += checked.loaded
        done.left_out += checked.left_out
        if checked.loaded:
            writer.append_arrow(load_stream.read_spooled(ready.tables), ready.fingerprints, ready.rows)
    return done


def _stop(data_dir, raw, ext: load_stream.Extract, today) -> None:
    """Problems that belong to no council: the whole extract's report (as ``insight validate`` gives it)."""
    report = load_stream.whole_report(raw, ext, today)
    raise InputError(f"Cannot load {data_dir}: these problems stop every council.\n\n" + report.format_text())


# --- reading --------------------------------------------------------------------------


def warehouse_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a readable warehouse, in one plain sentence; None when it is one.

    Cheap: the header, the insight tables, and the file's size against the blocks DuckDB says it
    has (a truncated copy opens and lists its tables, then fails on the first read of its data).
    """
    problem, con = _checked(path)
    if con is not None:
        con.close()
    return problem


def _checked(path: str | os.PathLike):
    """warehouse_problem's sentence (or None) and, for a warehouse, the read-only connection it checked, so that
    a read opens the file once: each DuckDB open costs about 45 ms of CPU, and every council's report reads."""
    path = Path(path)
    if not path.exists():
        return (
            f"{path}: not found (no such warehouse file). Make one with 'insight load DIR', "
            "or run 'make demo' for the demo warehouse data/demo.duckdb."
        ), None
    if not path.is_file():
        return f"{path} is not a file.", None
    plain = f"{path} is not an insight warehouse (a .duckdb file written by insight load)"
    con = None
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head[8:12] != b"DUCK":
            return plain + ".", None
        con = duckdb.connect(str(path), read_only=True)
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        size = con.execute("SELECT block_size, total_blocks FROM pragma_database_size()").fetchone()
    except (OSError, duckdb.Error):
        problem = (
            plain + ": it cannot be opened (damaged, truncated or from another DuckDB version). Load the data again."
        )
    else:
        problem = None
        if META_TABLE not in names or COUNCIL_TABLE not in names:
            problem = plain + ": it is a DuckDB file without insight's tables."
        elif size and path.stat().st_size < int(size[0]) * int(size[1]):
            problem = (
                f"{path} is damaged: it is {path.stat().st_size:,} bytes but its contents need "
                f"{int(size[0]) * int(size[1]):,} (a copy cut short?). Load the data again with insight load."
            )
    if problem and con is not None:
        con.close()
        con = None
    return problem, con


def is_warehouse(path: str | os.PathLike) -> bool:
    """True for a complete, readable file written by load_directory/write_warehouse."""
    return warehouse_problem(path) is None


def _connect(source: str | os.PathLike):
    path = Path(source)
    if path.is_dir():
        raise InputError(f"{path} is a data directory, not a warehouse: load it first (insight load {path}).")
    problem, con = _checked(path)
    if problem:
        raise InputError(problem)
    return _Reading(con, path)


class _Reading:
    """A read-only connection whose DuckDB errors (a file damaged after it was checked) become plain sentences."""

    def __init__(self, con, path: Path):
        self._con, self._path = con, path

    def execute(self, *args, **kwargs):
        try:
            return _Result(self._con.execute(*args, **kwargs), self._path)
        except duckdb.Error as err:
            raise _damaged(self._path, err) from None

    def close(self) -> None:
        self._con.close()


class _Result:
    def __init__(self, result, path: Path):
        self._result, self._path = result, path

    def __getattr__(self, name):
        method = getattr(self._result, name)

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except duckdb.Error as err:
                raise _damaged(self._path, err) from None

        return call


def _damaged(path: Path, err: Exception) -> InputError:
    return InputError(
        f"{path} cannot be read: the warehouse is damaged ({str(err).splitlines()[0][:160]}). "
        "Load the data again with insight load."
    )


def council_codes(source: str | os.PathLike) -> list[str]:
    con = _connect(source)
    try:
        return [r[0] for r in con.execute(f'SELECT la_code FROM "{COUNCIL_TABLE}" ORDER BY la_code').fetchall()]
    finally:
        con.close()


def recorded_values(source: str | os.PathLike, table: str, column: str) -> dict[str, list[str]]:
    """The distinct values of one contract column, by council (e.g. the interventions each recorded)."""
    if table not in contract.TABLES or column not in contract.TABLES[table].columns:
        raise ValueError(f"{table}.{column} is not a column of the data contract")
    con = _connect(source)
    try:
        rows = con.execute(
            f'SELECT DISTINCT la_code, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL ORDER BY 1, 2'
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[str]] = {}
    for la, value in rows:
        out.setdefault(la, []).append(str(value))
    return out


def data_fingerprint(source: str | os.PathLike, la_code: str) -> str:
    """The council's data fingerprint stored at load (sha256 of its pseudonymised rows)."""
    from insightlib.ingest.warehouse_read import catalogue

    la_code = contract.council_code(la_code)
    row = next((c for c in catalogue(source).councils if c[0] == str(la_code)), None)
    if row is None:
        raise InputError(f"Council {la_code} is not in the warehouse {source}.")
    return row[1]


def is_synthetic(source: str | os.PathLike) -> bool:
    """Whether data are synthetic (made by ``insight synth``): a data directory holding its marker
    file, or a warehouse loaded from one. A council's own extract has no marker, so never this."""
    path = Path(source)
    if path.is_dir():
        return (path / SYNTHETIC_FILE).is_file()
    try:
        return load_metadata(path).get("synthetic") is True
    except Exception:  # noqa: BLE001 - unreadable or not a warehouse: not known to be synthetic
        return False


def load_metadata(source: str | os.PathLike) -> dict:
    from insightlib.ingest.warehouse_read import catalogue

    stored = catalogue(source)
    out = {}
    for k, v in stored.meta:
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    out["councils"] = {
        la: {"fingerprint": fp, "loaded_at": at, "rows": json.loads(rows)} for la, fp, at, rows in stored.councils
    }
    return out


def left_out(source: str | os.PathLike, la_code: str | None = None) -> list[dict]:
    """What `insight load --skip-invalid-rows` left out: la_code, table, rule, rows, files (empty if nothing)."""
    from insightlib.ingest.warehouse_read import catalogue

    rows = catalogue(source).left_out
    if la_code is not None:
        la_code = contract.council_code(la_code)
        rows = [r for r in rows if r[0] == la_code]
    return [dict(zip(("la_code", "table", "rule", "rows", "files"), r)) for r in rows]


#: How left-out rows are named in a report (singular, plural); CIN census returns call referrals CINdetails.
_ROW_WORDS = {
    "children": ("child", "children"),
    "referrals": ("referral", "referrals"),
    "assessments": ("assessment", "assessments"),
    "plans": ("plan", "plans"),
    "interventions": ("intervention", "interventions"),
    "allocations": ("worker allocation", "worker allocations"),
}
_WHY = {
    "date in the future": "for dates after the {extract}",
    "closure before referral": "because the case closed before the referral",
    "end before start": "because they end before they start",
    "before referral": "because they start before their referral",
    "unknown code": "for codes not in the CIN census code lists",
    "missing value": "for a required value left empty",
    "unparseable date": "for dates that are not real dates",
    "duplicate id": "because their id appears more than once (every copy was left out)",
    "over 25": "because the child was over 25 at referral",
    "referral before birth": "because they are dated before the child's birth",
    "not present": "because the child or referral they name is not in the data",
    "not yes/no": "for a yes/no field holding another value",
    "unknown council": "for a council code that is not a council's",
    WITH_CHILD: "because they belong to a child left out",
    WITH_REFERRAL: "because they belong to a referral left out",
}


def left_out_caveats(source: str | os.PathLike, la_code: str | None = None) -> list[str]:
    """The caveats every report of a council loaded with --skip-invalid-rows states: what was left out, and why.

    ``la_code=None`` gives every council's (for reports across councils), each named.
    """
    from insightlib import reference

    records = left_out(source, la_code)
    if not records:
        return []
    out = []
    for la in sorted({r["la_code"] for r in records}):
        parts = []
        for r in (r for r in records if r["la_code"] == la):
            xml = all(f.lower().endswith(".xml") for f in r["files"].split(";") if f)
            one, many = _ROW_WORDS.get(r["table"], (r["table"], r["table"]))
            if xml and r["table"] == "referrals":
                one = many = "CINdetails"
            n = int(r["rows"])
            why = _WHY.get(r["rule"], f"for breaking the rule '{r['rule']}'")
            why = why.format(extract="return's reference date" if xml else "extract date")
            parts.append(f"{n:,} {one if n == 1 else many} {why}")
        total = sum(int(r["rows"]) for r in records if r["la_code"] == la)
        who = "" if la_code is not None else f"{reference.council_name(la)} ({la}): "
        listed = "; ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
        out.append(
            f"{who}{total:,} record{'' if total == 1 else 's'} in the council's data broke the data rules and "
            f"{'was' if total == 1 else 'were'} left out when it was loaded (insight load --skip-invalid-rows): "
            f"{listed}. Every figure here is without them; if they differ from the rest, figures may be biased."
        )
    return out


def read_council(source: str | os.PathLike, la_code: str) -> dict[str, pd.DataFrame]:
    """Every contract table for one council (empty tables with the right columns where it has none)."""
    from insightlib.ingest.warehouse_read import read_councils

    return read_councils(source, [contract.council_code(la_code)])
