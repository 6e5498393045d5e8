"""Loading in batches of councils: the extract is read once, then checked, pseudonymised and written a few
councils at a time, so the cost of a council does not grow with the number of councils and the working
memory follows the batch, not the nation.

Every rule of validation compares rows of one council only (keys are council + id, an extract date is its
council's), so a council checked in a batch has exactly the problems it has in the national tables, and the
problems come out in the order ``insight validate`` gives them. Each batch holds about ``BATCH_ROWS`` rows:
enough that each pandas and Arrow step's fixed cost is paid once for many councils.
:func:`insightlib.ingest.warehouse.load_directory` drives it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc  # noqa: F401 - pa.ipc

from insightlib import contract
from insightlib.ingest import pseudonymise, warehouse_write
from insightlib.ingest.files import STR, Problem
from insightlib.ingest.validate import check_parts, check_rows, empty_table, joined, sorted_problems
from insightlib.ingest.validate_rules import Collector, as_arrow
from insightlib.ingest.validation_report import ValidationReport

#: Why a row was left out when it broke no rule of its own.
WITH_CHILD, WITH_REFERRAL = "belongs to a left-out child", "belongs to a left-out referral"
#: Rows of all tables checked together (about two or three councils of 12,700 children: at 153 councils the
#: workers' peak is 0.3 GB lower than with a million, for about 2 s more CPU).
BATCH_ROWS = 500_000


@dataclass
class Extract:
    """What was read, the parts of each table that have its columns, and the problems found before any row."""

    parts: dict[str, list[pd.DataFrame]]
    #: la_code -> its problems found reading its files ("" holds those that belong to no council)
    early: dict[str, list[Problem]]
    #: every la_code the rows name ("" for rows that name none), in order, with its rows in all tables
    sizes: dict[str, int]
    #: the councils that have a row in the councils table
    present: set[str]
    #: for each part, the location columns taken out of it because they hold one value (a file's name)
    located: dict[str, list[dict]] = field(default_factory=dict)

    def part(self, name: str, k: int, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """Part ``k`` of table ``name`` (rows ``start:stop``) with its location columns."""
        part = self.parts[name][k].iloc[start:stop]
        where = self.located.get(name, [{}] * (k + 1))[k]
        return part.assign(**where) if where else part

    def problems(self, today: pd.Timestamp | None) -> list[Problem]:
        """Every problem of the whole extract, as ``insight validate`` reports them (checked in one pass)."""
        out = Collector()
        for ps in self.early.values():
            for p in ps:
                out.add(p)
        frames = {name: joined(name, [self.part(name, k) for k in range(len(ps))]) for name, ps in self.parts.items()}
        check_rows(frames, out, today)
        return sorted_problems(out.problems)


@dataclass
class Checked:
    """One batch of councils checked: its problems and, for the councils to load, their pseudonymised tables."""

    councils: list[str]
    problems: list[Problem]
    typed_councils: pd.DataFrame
    loaded: list[str] = field(default_factory=list)
    trimmed: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    left_out: list[dict] = field(default_factory=list)


def _codes(frame: pd.DataFrame) -> pd.Series:
    return frame["la_code"].astype(STR).fillna("")


def extract(raw) -> Extract:
    """The national stage: parts with their columns (problems of missing tables and columns), and councils' sizes.

    Takes the parts out of ``raw`` (so that what is dropped can be freed), and from each part its file and
    sheet columns when each holds one value (16 bytes a row: 240 MB for all 153 councils)."""
    out = Collector()
    for p in raw.problems:
        out.add(p)
    parts = check_parts(raw, out)
    raw.parts = {}
    located = {name: [_lean(frames, k) for k in range(len(frames))] for name, frames in parts.items()}
    early: dict[str, list[Problem]] = {}
    for p in out.problems:
        early.setdefault(p.la_code or "", []).append(p)
    sizes: dict[str, int] = {}
    for frames in parts.values():
        for part in frames:
            for la, n in _codes(part).value_counts(sort=False).items():
                sizes[la] = sizes.get(la, 0) + int(n)
    for la in early:
        sizes.setdefault(la, 0)
    present = set()
    for part in parts.get("councils", []):
        present |= set(_codes(part)) - {""}
    return Extract(parts, early, dict(sorted(sizes.items())), present, located)


def _lean(frames: list[pd.DataFrame], k: int) -> dict:
    """Part ``k`` without the location columns that hold one value; returns those values."""
    part, where = frames[k], {}
    for c in ("_file", "_sheet"):
        values = part[c].to_numpy() if c in part.columns else None
        if values is not None and len(values) and values.dtype == object and (values == values[0]).all():
            where[c] = values[0]
    if where:
        frames[k] = part.drop(columns=list(where))
    return where


def batches(sizes: dict[str, int], limit: int | None = None) -> list[list[str]]:
    """Councils in order, a few together up to about ``limit`` rows (BATCH_ROWS); rows naming no council ("")
    first, alone."""
    limit = BATCH_ROWS if limit is None else limit
    out, current, n = [], [], 0
    for la, rows in sizes.items():
        if la == "":
            out.insert(0, [la])
            continue
        current.append(la)
        n += rows
        if n >= limit:
            out.append(current)
            current, n = [], 0
    return out + ([current] if current else [])


def batch_slices(ext: Extract, groups: list[list[str]]):
    """A function giving batch ``i``'s parts of each table, cut to its councils' rows (in file order within a
    council). A part already in batch order is cut into slices (no copy); one that is not is put in order once."""
    index = {la: i for i, group in enumerate(groups) for la in group}
    group_of = np.array(list(index.values()), dtype=np.int64)
    bounds: dict[str, list[np.ndarray]] = {}
    for name, frames in ext.parts.items():
        cuts = []
        for k, part in enumerate(frames):
            pos = pc.index_in(as_arrow(_codes(part)), value_set=as_arrow(list(index)))
            which = group_of[pc.fill_null(pos, 0).to_numpy(zero_copy_only=False)]
            if len(which) and (np.diff(which) < 0).any():
                order = np.argsort(which, kind="stable")
                frames[k] = part = part.take(order)
                which = which[order]
            cuts.append(np.searchsorted(which, np.arange(len(groups) + 1), side="left"))
        bounds[name] = cuts

    def parts(i: int) -> dict[str, list[pd.DataFrame]]:
        """Only the parts with rows in the batch (the first part's empty slice when none has, for its columns):
        with one folder a council, each part is one council's file, and slicing every part for every batch
        made the cost of a council grow with the number of councils."""
        out = {}
        for name, cuts in bounds.items():
            ks = [k for k, cut in enumerate(cuts) if cut[i + 1] > cut[i]] or ([0] if cuts else [])
            out[name] = [ext.part(name, k, cuts[k][i], cuts[k][i + 1]) for k in ks]
        return out

    return parts


def check_batch(
    ext: Extract,
    group: list[str],
    parts: dict[str, list[pd.DataFrame]],
    key: bytes,
    today: pd.Timestamp | None,
    skip_invalid_rows: bool,
) -> Checked:
    """Check a batch of councils (their problems found reading first, as ``insight validate`` lists them);
    pseudonymise what is to be loaded: each clean council, and with ``skip_invalid_rows`` each council whose
    problems are all about single rows, without those rows and what depends on them."""
    out, frames, typed = _checked(ext, group, parts, today)
    early = {id(p) for la in group for p in ext.early.get(la, [])}
    mine: dict[str, list[Problem]] = {}
    for p in out.problems:
        mine.setdefault(p.la_code or "", []).append(p)
    result = Checked(group, out.problems, typed["councils"])
    for la in group:
        if la not in ext.present:
            continue
        problems = mine.get(la, [])
        if not problems:
            result.loaded.append(la)
        elif skip_invalid_rows and all(id(p) in out.row_level and id(p) not in early for p in problems):
            result.loaded.append(la)
            result.trimmed.append(la)
    if not result.loaded:
        return result
    keep = {}
    if result.trimmed:
        report = ValidationReport(
            problems=out.problems,
            typed=typed,
            row_faults={name: out.faults.get(name, np.full(len(t), None, dtype=object)) for name, t in typed.items()},
            row_files={name: pd.Categorical(frames[name]["_file"]) for name in frames},
        )
        keep, result.left_out = leave_out(report, result.trimmed)
    clean = {name: rows_to_load(frame, result.loaded, keep.get(name)) for name, frame in typed.items()}
    result.tables = pseudonymise.pseudonymise_tables(clean, key)
    assert_no_raw_identifiers(result.tables)
    return result


def _checked(ext: Extract, group: list[str], parts: dict[str, list[pd.DataFrame]], today):
    """A batch's problems (those found reading first), its joined tables and its typed tables."""
    out = Collector()
    for la in group:
        for p in ext.early.get(la, []):
            out.add(p)
    frames = {name: joined(name, ps) for name, ps in parts.items()}
    return out, frames, check_rows(frames, out, today)


def validate_batch(ext: Extract, group: list[str], parts: dict[str, list[pd.DataFrame]], today) -> Checked:
    """Check a batch of councils and keep only what ``insight validate`` reports: the problems, the typed
    councils table and the rows of each table."""
    out, _, typed = _checked(ext, group, parts, today)
    return Checked(group, out.problems, typed["councils"], tables={name: len(t) for name, t in typed.items()})


def rows_to_load(frame: pd.DataFrame, loaded: list[str], keep: np.ndarray | None) -> pd.DataFrame:
    """The rows of loaded councils that are kept (the frame itself, not a copy, when that is every row)."""
    mask = frame["la_code"].isin(loaded).to_numpy(dtype=bool, na_value=False)
    if keep is not None:
        mask &= keep
    return frame if mask.all() else frame[mask].reset_index(drop=True)


def leave_out(report: ValidationReport, councils: list[str]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Which rows to keep, and what was left out (by council, table and rule), for councils loaded trimmed."""
    tables = report.typed
    why: dict[str, np.ndarray] = {}
    for name, frame in tables.items():
        in_scope = frame["la_code"].isin(councils).to_numpy()
        why[name] = np.where(in_scope, report.row_faults.get(name, np.full(len(frame), None, dtype=object)), None)

    def key(frame: pd.DataFrame, col: str) -> pd.Series:
        return frame["la_code"].astype(str) + "\x1f" + frame[col].astype(str)

    def cascade(parent: str, col: str, reason: str, children: tuple[str, ...]) -> None:
        gone = set(key(tables[parent], col)[why[parent] != None])  # noqa: E711
        if not gone:
            return
        for name in children:
            frame = tables[name]
            if col not in frame.columns or not len(frame):
                continue
            hit = (why[name] == None) & frame[col].notna().to_numpy() & key(frame, col).isin(gone).to_numpy()  # noqa: E711
            why[name][hit] = reason

    cascade("children", "child_id", WITH_CHILD, ("referrals", "assessments", "plans", "interventions", "allocations"))
    cascade("referrals", "referral_id", WITH_REFERRAL, ("assessments", "plans", "interventions"))
    keep = {name: why[name] == None for name in tables}  # noqa: E711
    return keep, _left_out_records(report, why)


def _left_out_records(report: ValidationReport, why: dict[str, np.ndarray]) -> list[dict]:
    """What was left out, by table, then council and rule."""
    left_out = []
    for name, frame in report.typed.items():
        out = why[name] != None  # noqa: E711
        if not out.any():
            continue
        files = report.row_files.get(name, np.full(len(frame), "", dtype=object))
        grouped = pd.DataFrame(
            {
                "la_code": frame["la_code"].to_numpy()[out],
                "rule": why[name][out],
                "file": np.asarray(files[out], dtype=object),
            }
        )
        for (la, rule), sub in grouped.groupby(["la_code", "rule"], sort=True):
            left_out.append(
                {
                    "la_code": la,
                    "table": name,
                    "rule": rule,
                    "rows": int(len(sub)),
                    "files": ";".join(sorted(set(sub["file"].astype(str)))),
                }
            )
    return left_out


@dataclass
class Gathered:
    """What the checked batches found, gathered: problems, typed councils tables and rows of each table."""

    problems: list[Problem] = field(default_factory=list)
    councils: list[pd.DataFrame] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(contract.TABLES, 0))

    def add(self, checked: Checked) -> None:
        self.problems += checked.problems
        self.councils.append(checked.typed_councils)
        for name, n in checked.tables.items():  # with a key, rows of the councils loaded
            self.rows[name] += n

    def report(self, raw, ext: Extract, rows: bool = True) -> ValidationReport:
        """What ``insight validate`` reports, from the batches: of the typed tables only the councils table."""
        return ValidationReport(
            problems=sorted_problems(self.problems),
            typed={name: empty_table(name) for name in contract.TABLES}
            | ({"councils": pd.concat(self.councils, ignore_index=True)} if self.councils else {}),
            councils=_councils(ext),
            notes=list(raw.notes),
            files=list(raw.files),
            rows=dict(self.rows) if rows else {},
        )


def whole_report(raw, ext: Extract, today) -> ValidationReport:
    """Problems that belong to no council: the report of one pass over the whole extract."""
    return ValidationReport(
        problems=ext.problems(today), typed={}, councils=_councils(ext), notes=list(raw.notes), files=list(raw.files)
    )


def _councils(ext: Extract) -> list[str]:
    return [la for la, n in ext.sizes.items() if la and n]


def in_national_order(left_out: list[dict]) -> list[dict]:
    """Batches' left-out records in the order one national pass gives them: by table, then council and rule."""
    order = {name: i for i, name in enumerate(contract.TABLES)}
    return sorted(left_out, key=lambda r: order[r["table"]])


def assert_no_raw_identifiers(clean: dict[str, pd.DataFrame]) -> None:
    """Belt and braces: no identifier column may still hold a raw value."""
    for name, frame in clean.items():
        for col in contract.TABLES[name].identifiers:
            values = frame[col].dropna()
            prefix = pseudonymise.PREFIX[col]
            if len(values) and not values.str.startswith(prefix).all():
                raise RuntimeError(f"{name}.{col} was not pseudonymised")


# --- worker processes -------------------------------------------------------------------------

#: What forked workers inherit (set before the fork, so nothing national is sent to them).
_SHARED: dict = {}


@dataclass
class Ready:
    """A checked batch ready to write: what was checked, and its loaded councils' tables as the warehouse stores them."""

    checked: Checked
    tables: dict = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)


def _validated(i: int) -> Checked:
    """Batch ``i`` checked, for ``insight validate`` (in a worker, or in this process)."""
    s = _SHARED
    return validate_batch(s["ext"], s["groups"][i], s["slices"](i), s["today"])


def _ready(i: int) -> Ready:
    """Batch ``i``: checked, pseudonymised, fingerprinted and made Arrow (in a worker, or in this process)."""
    s = _SHARED
    group = s["groups"][i]
    checked = check_batch(s["ext"], group, s["slices"](i), s["key"], s["today"], s["skip"])
    ready = Ready(checked)
    if checked.loaded:
        ready.tables, ready.fingerprints, ready.rows = warehouse_write.arrow_batch(checked.tables, checked.loaded)
    checked.tables = {name: len(frame) for name, frame in checked.tables.items()}  # rows only: the tables go apart
    if s["spool"] is not None:  # from a worker: as Arrow files (a pickled slice would carry its whole buffers)
        ready.tables = {name: _spooled(s["spool"] / f"{i}-{name}.arrow", t) for name, t in ready.tables.items()}
    return ready


def _spooled(path: Path, table: pa.Table) -> Path:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def read_spooled(tables: dict) -> Iterator[tuple[str, pa.Table]]:
    """A ready batch's tables, each read from its Arrow file (memory-mapped, then removed) when it was spooled."""
    for name, table in tables.items():
        if isinstance(table, Path):
            with pa.memory_map(str(table)) as source:
                yield name, pa.ipc.open_file(source).read_all()
            table.unlink()
        else:
            yield name, table


def default_workers() -> int:
    """Processes that check batches: the cores this process may use, at most two (``INSIGHT_LOAD_WORKERS``)."""
    text = os.environ.get("INSIGHT_LOAD_WORKERS", "").strip()
    if text.isdigit():
        return max(1, int(text))
    try:
        return min(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return min(2, os.cpu_count() or 1)


class Batches:
    """Every batch ready to write, in order (:class:`Ready`); with several workers, made in forked processes
    while this one writes. Start it before the warehouse's DuckDB connection is opened; close it after.

    Without a ``key`` the batches are only checked (:class:`Checked`, for ``insight validate``): nothing is
    pseudonymised or spooled."""

    def __init__(
        self,
        ext: Extract,
        key: bytes | None,
        today,
        skip_invalid_rows: bool = False,
        spool: Path | None = None,
        workers: int | None = None,
    ):
        groups = batches(ext.sizes)
        self.count = len(groups)
        self.job = _ready if key is not None else _validated
        workers = default_workers() if workers is None else workers
        self.pool = self.spool = None
        parallel = workers > 1 and self.count > 1
        if parallel and key is not None:
            spool.mkdir(parents=True, exist_ok=True)
            self.spool = Path(tempfile.mkdtemp(prefix=".insight-load-", dir=spool))
        _SHARED.clear()
        _SHARED.update(
            ext=ext,
            groups=groups,
            slices=batch_slices(ext, groups),
            key=key,
            today=today,
            skip=skip_invalid_rows,
            spool=self.spool,
        )
        if parallel:
            self.pool = multiprocessing.get_context("fork").Pool(min(workers, self.count))

    def __iter__(self) -> Iterator:
        if self.pool is None:
            return map(self.job, range(self.count))
        return self.pool.imap(self.job, range(self.count), chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)
            self.spool = None
        _SHARED.clear()
