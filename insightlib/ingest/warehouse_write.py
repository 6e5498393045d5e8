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

import duckdb
import numpy as np
import pandas as pd

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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    councils = sorted(tables["councils"]["la_code"].dropna().unique())
    fingerprints = council_fingerprints(tables, councils)
    loaded_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    meta = {
        "format_version": FORMAT_VERSION,
        "insightlib_version": __version__,
        "loaded_at": loaded_at,
        **({"key_check": pseudonymise.key_check(key)} if key else {}),
        **(metadata or {}),
    }
    try:
        con = duckdb.connect(str(tmp))
        try:
            _write_tables(con, tables)
            _write_councils(con, fingerprints, council_rows(tables, councils), loaded_at)
            _write_meta(con, meta, left_out or [])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException as exc:
        remove(tmp)
        _raise_plainly(exc, target)
    remove(Path(str(tmp)))  # a stray .wal, if any
    return fingerprints


def _write_tables(con, tables: dict[str, pd.DataFrame]) -> None:
    """Every contract table, typed as the contract says (an absent table is created empty)."""
    for name, spec in contract.TABLES.items():
        cols = ", ".join(f'"{c}" {_sql_type(spec, c)}' for c in spec.columns)
        con.execute(f'CREATE TABLE "{name}" ({cols})')
        frame = tables.get(name)
        if frame is not None and len(frame):
            con.register("_frame", frame[list(spec.columns)])
            select = ", ".join(f'CAST("{c}" AS {_sql_type(spec, c)})' for c in spec.columns)
            con.execute(f'INSERT INTO "{name}" SELECT {select} FROM _frame')
            con.unregister("_frame")


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
