"""Writing a warehouse file: every table, each council's fingerprint and row counts, and what the load was.

Everything goes into a temporary file beside the target, in one connection, and replaces the target
with one ``os.replace`` only when complete: a failed write leaves nothing half-written and an existing
warehouse untouched. Every step is one pass over the national tables (no step repeated per council),
so the time grows with the rows, not with councils times rows. :mod:`.warehouse` loads and reads.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from insightlib import __version__, contract
from insightlib.errors import InputError
from insightlib.ingest import fingerprint, pseudonymise

FORMAT_VERSION = 1
META_TABLE = "_insight_load"
COUNCIL_TABLE = "_insight_councils"
#: What a load left out (insight load --skip-invalid-rows): council, table, rule, rows, files.
LEFT_OUT_TABLE = "_insight_left_out"

_COLUMNS = {name: spec.columns for name, spec in contract.TABLES.items()}
_DATES = {name: spec.dates for name, spec in contract.TABLES.items()}
_VERSION = f"insight-fingerprint-v{FORMAT_VERSION}"


def _sql_type(table: contract.Table, column: str) -> str:
    if column in table.dates:
        return "DATE"
    if column in table.booleans:
        return "BOOLEAN"
    return "VARCHAR"


def council_fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    """sha256 over one council's pseudonymised rows, independent of row order (so stable across runs)."""
    return fingerprint.rows_fingerprint(tables, _COLUMNS, _DATES, _VERSION)


def council_fingerprints(tables: dict[str, pd.DataFrame], councils: list[str]) -> dict[str, str]:
    """Every council's :func:`council_fingerprint`, from the national tables in one pass."""
    return fingerprint.rows_fingerprints(tables, _COLUMNS, _DATES, _VERSION, councils)


def council_rows(tables: dict[str, pd.DataFrame], councils: list[str]) -> dict[str, dict[str, int]]:
    """la_code -> table -> rows, counted in one pass over each table."""
    counts = {}
    for name, frame in tables.items():
        codes = pd.Categorical(frame["la_code"], categories=councils).codes
        counts[name] = np.bincount(codes[codes >= 0], minlength=len(councils))
    return {la: {name: int(counts[name][i]) for name in tables} for i, la in enumerate(councils)}


def remove(path: Path) -> None:
    """A file and its DuckDB write-ahead log, if they exist."""
    for p in (path, Path(str(path) + ".wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def write_file(
    tables: dict[str, pd.DataFrame],
    target: Path,
    metadata: dict | None = None,
    key: bytes | None = None,
    left_out: list[dict] | None = None,
) -> dict[str, str]:
    """Write pseudonymised contract tables into a new file that replaces ``target`` when complete.

    Returns the per-council fingerprints. The caller has checked ``target`` is a warehouse or absent."""
    councils = sorted(tables["councils"]["la_code"].dropna().unique())
    with Writer(target) as writer:
        writer.append(tables, councils)
        writer.finish(metadata, key, left_out)
    return writer.fingerprints


class Writer:
    """A new warehouse file written a batch of councils at a time, which replaces ``target`` only when
    :meth:`finish` was called and the ``with`` block ends without an error; otherwise nothing is left.

    Each batch's tables are appended in one transaction; the fingerprints and row counts of its councils are
    computed from the batch (each is one council's rows only, so the same as from the national tables)."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.tmp = self.target.parent / f".{self.target.name}.{uuid.uuid4().hex[:8]}.tmp"
        self.loaded_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        self.fingerprints: dict[str, str] = {}
        self.rows: dict[str, dict[str, int]] = {}
        self.con = None
        self._done = False

    def __enter__(self) -> Writer:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(self.tmp))
            self.con.execute("SET threads = 1")  # one thread writes with less work; the other core checks
            for name, spec in contract.TABLES.items():
                cols = ", ".join(f'"{c}" {_sql_type(spec, c)}' for c in spec.columns)
                self.con.execute(f'CREATE TABLE "{name}" ({cols})')
        except BaseException as exc:
            self._close()
            _raise_plainly(exc, self.target)
        return self

    def append(self, tables: dict[str, pd.DataFrame], councils: list[str]) -> None:
        """Pseudonymised contract tables of ``councils`` (those in its councils table), in one transaction."""
        arrow, fingerprints, rows = arrow_batch(tables, councils)
        self.append_arrow(arrow.items(), fingerprints, rows)

    def append_arrow(
        self, tables: Iterable[tuple[str, pa.Table]], fingerprints: dict[str, str], rows: dict[str, dict[str, int]]
    ) -> None:
        """A batch from :func:`arrow_batch` (made in this process or another), table by table, in one transaction."""
        self.fingerprints.update(fingerprints)
        self.rows.update(rows)
        try:
            self.con.execute("BEGIN TRANSACTION")
            for name, table in tables:
                self.con.register("_frame", table)
                self.con.execute(f'INSERT INTO "{name}" SELECT * FROM _frame')
                self.con.unregister("_frame")
            self.con.execute("COMMIT")
        except BaseException as exc:
            self._close()
            _raise_plainly(exc, self.target)

    def finish(self, metadata: dict | None, key: bytes | None, left_out: list[dict] | None) -> None:
        """The councils' fingerprints and rows, what the load was, and the file made complete."""
        meta = {
            "format_version": FORMAT_VERSION,
            "insightlib_version": __version__,
            "loaded_at": self.loaded_at,
            **({"key_check": pseudonymise.key_check(key)} if key else {}),
            **(metadata or {}),
        }
        try:
            fingerprints = dict(sorted(self.fingerprints.items()))
            _write_councils(self.con, fingerprints, self.rows, self.loaded_at)
            _write_meta(self.con, meta, left_out or [])
            self.con.execute("CHECKPOINT")
        except BaseException as exc:
            self._close()
            _raise_plainly(exc, self.target)
        self._done = True

    def __exit__(self, kind, exc, tb) -> None:
        self._close()
        if kind is not None or not self._done:
            remove(self.tmp)
            return
        try:
            os.replace(self.tmp, self.target)
        except BaseException as err:
            remove(self.tmp)
            _raise_plainly(err, self.target)
        remove(Path(str(self.tmp)))  # a stray .wal, if any

    def _close(self) -> None:
        if self.con is not None:
            try:
                self.con.close()
            finally:
                self.con = None
        if not self._done:
            remove(self.tmp)


def arrow_batch(
    tables: dict[str, pd.DataFrame], councils: list[str]
) -> tuple[dict[str, pa.Table], dict[str, str], dict[str, dict[str, int]]]:
    """Pseudonymised tables of ``councils`` as the warehouse stores them, with each council's fingerprint and rows."""
    arrow = {
        name: as_arrow_table(spec, tables[name])
        for name, spec in contract.TABLES.items()
        if tables.get(name) is not None and len(tables[name])
    }
    return arrow, council_fingerprints(tables, councils), council_rows(tables, councils)


def as_arrow_table(spec: contract.Table, frame: pd.DataFrame) -> pa.Table:
    """A contract table as Arrow with the warehouse's types: dates as days, booleans, text (no copy of it)."""
    cols = {}
    for c in spec.columns:
        s = frame[c]
        if c in spec.dates:
            days = s.to_numpy(dtype="datetime64[ns]")
            cols[c] = pa.array(days.astype("datetime64[D]"), mask=np.isnat(days), type=pa.date32())
        elif c in spec.booleans:
            cols[c] = pa.array(s.to_numpy(dtype=bool))
        elif isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
            cols[c] = pa.chunked_array(pa.array(s.array)).cast(pa.large_string())
        else:
            cols[c] = pa.array(s.astype(object).where(s.notna(), None), type=pa.large_string())
    return pa.table(cols)


def _write_councils(con, fingerprints: dict[str, str], rows: dict[str, dict[str, int]], loaded_at: str) -> None:
    con.execute(
        f'CREATE TABLE "{COUNCIL_TABLE}" (la_code VARCHAR, fingerprint VARCHAR, loaded_at VARCHAR, rows VARCHAR)'
    )
    if fingerprints:
        con.executemany(
            f'INSERT INTO "{COUNCIL_TABLE}" VALUES (?, ?, ?, ?)',
            [[la, fp, loaded_at, json.dumps(rows[la])] for la, fp in fingerprints.items()],
        )


def _write_meta(con, meta: dict, left_out: list[dict]) -> None:
    con.execute(
        f'CREATE TABLE "{LEFT_OUT_TABLE}" (la_code VARCHAR, "table" VARCHAR, rule VARCHAR, rows BIGINT, files VARCHAR)'
    )
    if left_out:
        con.executemany(
            f'INSERT INTO "{LEFT_OUT_TABLE}" VALUES (?, ?, ?, ?, ?)',
            [[r["la_code"], r["table"], r["rule"], int(r["rows"]), r["files"]] for r in left_out],
        )
    con.execute(f'CREATE TABLE "{META_TABLE}" (name VARCHAR, value VARCHAR)')
    con.executemany(
        f'INSERT INTO "{META_TABLE}" VALUES (?, ?)',
        [[k, json.dumps(v) if not isinstance(v, str) else v] for k, v in meta.items()],
    )


def _raise_plainly(exc: BaseException, target: Path) -> None:
    """A full disk or an unwritable place as a plain sentence (nothing was written); anything else as it is."""
    if _disk_full(exc):
        raise InputError(
            f"The disk is full: writing the warehouse {target} needed more space than {target.parent} has. "
            f"Nothing was written{' and the existing ' + target.name + ' is unchanged' if target.exists() else ''}; "
            "free some space (or give --warehouse on another disk) and load again."
        ) from None
    if isinstance(exc, (OSError, duckdb.IOException)):
        raise InputError(
            f"Cannot write the warehouse {target}: {str(exc).splitlines()[0][:200]}. Nothing was written."
        ) from None
    raise exc


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC from Python, or DuckDB's own IO error saying the same."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, duckdb.Error) and "no space left" in str(exc).lower()
