"""Loading council by council: each council's rows are checked, pseudonymised and made ready to write on
their own, so memory follows one council (not the nation) and the cost of a council does not grow with
the number loaded before it.

Every rule of validation compares rows of one council only (keys are council + id), so a council checked
on its own has exactly the problems it has in the national tables. A national extract of one file per
table is read once and cut into councils; an extract of one folder per council is read folder by folder,
and a problem in a folder that names no council (an unreadable file, a missing column) belongs to that
folder's council, so it stops only that council. With ``workers`` > 1, councils are checked in forked
worker processes while the main process writes what they hand back.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from insightlib import contract
from insightlib.ingest import pseudonymise, warehouse_write
from insightlib.ingest.directory import (
    DATA_SUFFIXES,
    council_folders,
    files_in,
    merge_folder,
    read_directory,
    read_folder,
)
from insightlib.ingest.files import Limits, RawData
from insightlib.ingest.validate import check_rows, check_tables
from insightlib.ingest.validate_rules import Collector
from insightlib.ingest.validation_report import ValidationReport

#: Why a row was left out when it broke no rule of its own.
WITH_CHILD, WITH_REFERRAL = "belongs to a left-out child", "belongs to a left-out referral"
#: Below this many rows in all, councils are checked in the main process (forking would cost more).
PARALLEL_ROWS = 200_000


@dataclass
class Options:
    """What every council's check needs (sent to worker processes)."""

    key: bytes
    today: pd.Timestamp | None = None
    limits: object = None
    skip_invalid_rows: bool = False


@dataclass
class CouncilLoad:
    """One council checked: its problems, and, when it is to be loaded, its pseudonymised tables."""

    la_code: str
    problems: list
    #: indices into ``problems`` of those about one row (which --skip-invalid-rows may leave out)
    row_level: list[int]
    #: the council's rows of the councils table, typed (for the load's report)
    councils: pd.DataFrame
    has_rows: bool = False
    tables: dict[str, pa.Table] | None = None
    fingerprint: str | None = None
    rows: dict[str, int] | None = None
    trimmed: bool = False
    left_out: list[dict] = field(default_factory=list)


@dataclass
class FolderLoad:
    """What reading one folder found beside its councils (notes and files are reported for the whole load)."""

    councils: list[CouncilLoad]
    notes: list[str]
    files: list[str]


def split_councils(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, pd.DataFrame]]:
    """la_code -> that council's rows of every table (every table present, empty where it has none).

    Rows keep their order within a council. A table already in council order is cut into slices (no copy)."""
    bounds: dict[str, dict[str, tuple[int, int]]] = {}
    for name, frame in list(frames.items()):
        codes, uniques = pd.factorize(frame["la_code"])
        if len(codes) and (np.diff(codes) < 0).any():  # councils interleaved: put them in order once
            order = np.argsort(codes, kind="stable")
            frame = frames[name] = frame.take(order).reset_index(drop=True)
            codes = codes[order]
        starts = np.searchsorted(codes, np.arange(len(uniques)), side="left")
        ends = np.searchsorted(codes, np.arange(len(uniques)), side="right")
        for la, a, b in zip(uniques, starts, ends):
            bounds.setdefault(str(la), {})[name] = (int(a), int(b))
    return {
        la: {name: frame.iloc[slice(*where.get(name, (0, 0)))] for name, frame in frames.items()}
        for la, where in sorted(bounds.items())
    }


def check_council(la: str, frames: dict[str, pd.DataFrame], early: list, options: Options) -> CouncilLoad:
    """Check one council's rows (``early``: its problems found before, reading its files); pseudonymise
    and type what is to be loaded."""
    out = Collector()
    for p in early:
        out.add(p)
    frames = {name: frame.reset_index(drop=True) for name, frame in frames.items()}
    typed = check_rows(frames, out, options.today)
    problems = out.problems
    present = bool(typed["councils"]["la_code"].notna().any()) and la != ""
    trimmed = bool(problems) and options.skip_invalid_rows and present and not early
    trimmed = trimmed and all(id(p) in out.row_level for p in problems)
    result = CouncilLoad(
        la_code=la,
        problems=problems,
        row_level=[i for i, p in enumerate(problems) if id(p) in out.row_level],
        councils=typed["councils"],
        has_rows=any(len(f) for f in frames.values()),
    )
    if not present or (problems and not trimmed):
        return result
    keep, result.left_out = {}, []
    if trimmed:
        report = ValidationReport(
            problems=problems,
            typed=typed,
            row_faults={name: out.faults.get(name, np.full(len(t), None, dtype=object)) for name, t in typed.items()},
            row_files={name: pd.Categorical(frames[name]["_file"]) for name in frames},
        )
        keep, result.left_out = leave_out(report, [la])
    clean = {name: _rows_to_load(frame, keep.get(name)) for name, frame in typed.items()}
    clean = pseudonymise.pseudonymise_tables(clean, options.key)
    assert_no_raw_identifiers(clean)
    result.fingerprint = warehouse_write.council_fingerprints(clean, [la])[la]
    result.rows = {name: len(frame) for name, frame in clean.items()}
    result.tables = {name: _arrow_table(name, frame) for name, frame in clean.items() if len(frame)}
    result.trimmed = trimmed
    return result


def _rows_to_load(frame: pd.DataFrame, keep: np.ndarray | None) -> pd.DataFrame:
    return frame if keep is None or keep.all() else frame[keep].reset_index(drop=True)


def _arrow_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """A contract table as Arrow with the warehouse's types (dates as days), cheap to hand between processes."""
    spec = contract.TABLES[name]
    cols = {}
    for c in spec.columns:
        s = frame[c]
        if c in spec.dates:
            days = s.to_numpy(dtype="datetime64[ns]")
            cols[c] = pa.array(days.astype("datetime64[D]"), mask=np.isnat(days), type=pa.date32())
        elif c in spec.booleans:
            cols[c] = pa.array(s.to_numpy(dtype=bool))
        else:
            cols[c] = pa.array(s.array, type=pa.large_string()) if len(s) else pa.array([], pa.large_string())
    return pa.table(cols)


def check_folder(folder: Path, name: str, options: Options) -> FolderLoad:
    """One council's folder of a national extract: read, checked and made ready to load on its own.

    Problems of the folder that belong to no council (an unreadable file, a missing column or table)
    are given to the folder's council: the council its rows name (one), else the folder's name."""
    raw = RawData()
    read_folder(folder, options.limits or Limits.from_env(), raw)
    raw = _named(raw, name)
    early = Collector()
    for p in raw.problems:
        early.add(p)
    frames = check_tables(raw, early)
    by_council = split_councils(frames) if frames else {}
    owner = _folder_council(by_council, name)
    early_by = _by_council(early.problems, owner)
    nameless = by_council.pop("", None)
    if nameless is not None:  # rows naming no council: their problems are the folder's council's
        found = check_council("", nameless, [], options).problems
        early_by.setdefault(owner, []).extend(dataclasses.replace(p, la_code=p.la_code or owner) for p in found)
    empty = {t: f.iloc[0:0] for t, f in frames.items()}
    councils = [
        check_council(la, by_council.get(la, empty), early_by.get(la, []), options)
        for la in sorted(set(by_council) | set(early_by))
    ]
    return FolderLoad(councils, [f"{name}: {n}" for n in raw.notes], list(raw.files))


def _named(raw: RawData, folder: str) -> RawData:
    """A folder's reading with every file named ``folder/file`` (as read_directory names them)."""
    out = RawData()
    merge_folder(out, raw, folder)
    return out


def _folder_council(by_council: dict, folder: str) -> str:
    named = [la for la, frames in by_council.items() if la and len(frames.get("councils", ())) > 0]
    return named[0] if len(named) == 1 else folder


def _by_council(problems: list, owner: str | None) -> dict[str, list]:
    """Problems grouped by council, those naming none given to ``owner`` (None: kept apart, under "")."""
    out: dict[str, list] = {}
    for p in problems:
        if p.la_code is None and owner is not None:
            p = dataclasses.replace(p, la_code=owner)
        out.setdefault(p.la_code if p.la_code is not None else "", []).append(p)
    return out


# --- worker processes -------------------------------------------------------------------------

_SHARED: dict = {}


def _check_shared(la: str) -> CouncilLoad:
    shared = _SHARED
    return check_council(la, shared["frames"][la], shared["early"].get(la, []), shared["options"])


def _check_folder_task(task: tuple[str, str]) -> FolderLoad:
    return check_folder(Path(task[0]), task[1], _SHARED["options"])


def default_workers() -> int:
    """Processes that check councils: the cores this process may use, at most two (the main one writes)."""
    text = os.environ.get("INSIGHT_LOAD_WORKERS", "").strip()
    if text.isdigit():
        return int(text)
    try:
        return min(2, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return min(2, os.cpu_count() or 1)


class _Tasks:
    """``function`` over ``tasks``, in order, in forked worker processes when there are several: the
    workers start here (before the caller opens its warehouse connection), results come as iterated."""

    def __init__(self, function, tasks: list, workers: int):
        self.function, self.tasks = function, tasks
        self.pool = None
        if workers > 1 and len(tasks) > 1:
            self.pool = multiprocessing.get_context("fork").Pool(min(workers, len(tasks)))

    def __iter__(self):
        if self.pool is None:
            return map(self.function, self.tasks)
        return self.pool.imap(self.function, self.tasks, chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None
        _SHARED.clear()


def council_loads(data_dir: str | os.PathLike, options: Options, workers: int | None = None):
    """(problems for every council, what was read, the councils' tasks): iterate the tasks for each
    folder's FolderLoad (one file per table: one FolderLoad of every council), in order; close them after.

    Problems for every council (one file per table: a missing column, an unreadable file) are returned
    before any council is checked."""
    workers = default_workers() if workers is None else workers
    root = Path(data_dir)
    folders = council_folders(root) if root.is_dir() and not _has_data_files(root) else []
    _SHARED.clear()
    _SHARED.update(options=options)
    if folders:
        return [], FolderLoad([], [], []), _Tasks(_check_folder_task, [(str(f), f.name) for f in folders], workers)
    raw = read_directory(root, options.limits)
    early = Collector()
    for p in raw.problems:
        early.add(p)
    frames = check_tables(raw, early)
    read = FolderLoad([], list(raw.notes), list(raw.files))
    del raw
    early_by = _by_council(early.problems, None)
    unattributed = early_by.pop("", [])
    by_council = split_councils(frames) if frames else {}
    empty = {t: f.iloc[0:0] for t, f in frames.items()}
    for la in early_by:
        by_council.setdefault(la, empty)
    _SHARED.update(frames=by_council, early=early_by)
    rows = sum(len(f) for f in frames.values())
    # "" (rows naming no council) sorts first: its problems stop the load before any council is written
    tasks = _Tasks(_check_shared_folder, sorted(by_council), workers if rows >= PARALLEL_ROWS else 1)
    return unattributed, read, tasks


def _has_data_files(root: Path) -> bool:
    return any(p.suffix.lower() in DATA_SUFFIXES for p in files_in(root))


def _check_shared_folder(la: str) -> FolderLoad:
    return FolderLoad([_check_shared(la)], [], [])


# --- rows left out with --skip-invalid-rows ------------------------------------------------------


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


def assert_no_raw_identifiers(clean: dict[str, pd.DataFrame]) -> None:
    """Belt and braces: no identifier column may still hold a raw value."""
    for name, frame in clean.items():
        for col in contract.TABLES[name].identifiers:
            values = frame[col].dropna()
            prefix = pseudonymise.PREFIX[col]
            if len(values) and not values.str.startswith(prefix).all():
                raise RuntimeError(f"{name}.{col} was not pseudonymised")
