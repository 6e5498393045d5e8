"""Reading councils' tables from a warehouse: one council, or many in one query a table.

Split from warehouse.py. A national report read its councils one at a time: each read scanned every national
table again for one council's rows, so reading 153 councils scanned them 153 times. ``read_councils`` reads
each table once for all of them, with the same rows in the same order (each council's rows as stored, the
councils in the order asked for) and the same types as one council's reads put together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from insightlib import contract
from insightlib.errors import InputError
from insightlib.ingest.warehouse import _connect
from insightlib.ingest.warehouse_write import COUNCIL_TABLE, LEFT_OUT_TABLE, META_TABLE


def read_councils(source: str | os.PathLike, codes: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Every contract table for these councils (validated codes), their rows one council after another."""
    codes = list(dict.fromkeys(codes))
    key = _identity(source)
    con = _connect(source)
    try:
        # the catalogue read on the same connection: the report's later questions (synthetic? fingerprint?
        # left out?) then open nothing
        known = {c[0] for c in (_CATALOGUES.get(key) or _remember(key, _read_catalogue(con))).councils}
        missing = [c for c in codes if c not in known]
        if missing:
            raise InputError(
                f"Council {missing[0]} is not in the warehouse {source} (it has: {', '.join(sorted(known))})."
            )
        # one council: a plain equality, which DuckDB answers from the row groups holding it (a third cheaper)
        where, args = (
            ("la_code = ?", codes) if len(codes) == 1 else ("la_code IN (SELECT unnest(?::VARCHAR[]))", [codes])
        )
        out = {}
        for name, spec in contract.TABLES.items():
            # dates come as datetime64[ns] (no conversion in pandas); the rows in the order they were stored
            cols = ", ".join(
                f'CAST("{c}" AS TIMESTAMP_NS) AS "{c}"' if c in spec.dates else f'"{c}"' for c in spec.columns
            )
            query = f'SELECT {cols} FROM "{name}" WHERE {where} ORDER BY rowid'
            out[name] = _typed(_councils_in_order(con.execute(query, args).df(), codes), spec)
        return out
    finally:
        con.close()


@dataclass(frozen=True)
class Catalogue:
    """What a warehouse says about itself: its metadata rows (name, value), its councils (la_code, fingerprint,
    loaded_at, rows) and what a load left out (la_code, table, rule, rows, files), each as stored."""

    meta: tuple
    councils: tuple
    left_out: tuple


#: Catalogues read, by the warehouse file's identity (path, inode, size, modification time): a load writes a new
#: file and moves it into place, so a new load is a new key.
_CATALOGUES: dict[tuple, Catalogue] = {}


def catalogue(source: str | os.PathLike) -> Catalogue:
    """The warehouse's catalogue, read once for each version of the file.

    Every council's report asks whether its data are synthetic, for its fingerprint and for what was left out,
    and each question opened the warehouse (about 50 ms of CPU an open, four reports a council); now a warm
    kernel reads them with the first council's tables and opens the file once a report."""
    key = _identity(source)
    if key in _CATALOGUES:
        return _CATALOGUES[key]
    con = _connect(source)
    try:
        return _remember(key, _read_catalogue(con))
    finally:
        con.close()


def _identity(source) -> tuple | None:
    path = Path(source)
    try:
        st, wal = path.stat(), Path(str(path) + ".wal")
        return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, wal.exists() and wal.stat().st_mtime_ns)
    except OSError:
        return None  # _connect says why


def _remember(key, found: Catalogue) -> Catalogue:
    if key is not None:
        if len(_CATALOGUES) >= 8:
            _CATALOGUES.pop(next(iter(_CATALOGUES)))
        _CATALOGUES[key] = found
    return found


def _read_catalogue(con) -> Catalogue:
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    left_out = (
        con.execute(
            f'SELECT la_code, "table", rule, rows, files FROM "{LEFT_OUT_TABLE}" ORDER BY la_code, "table", rows DESC, rule'
        ).fetchall()
        if LEFT_OUT_TABLE in names  # none in a warehouse loaded before what was left out was recorded
        else ()
    )
    return Catalogue(
        tuple(con.execute(f'SELECT name, value FROM "{META_TABLE}"').fetchall()),
        tuple(con.execute(f'SELECT la_code, fingerprint, loaded_at, rows FROM "{COUNCIL_TABLE}"').fetchall()),
        tuple(left_out),
    )


def data_fingerprints(source: str | os.PathLike) -> dict[str, str]:
    """Every council's data fingerprint stored at load, in one query (planning a run of 153 councils asked for
    them one connection at a time, for every evaluation)."""
    con = _connect(source)
    try:
        return dict(con.execute(f'SELECT la_code, fingerprint FROM "{COUNCIL_TABLE}" ORDER BY la_code').fetchall())
    finally:
        con.close()


def _councils_in_order(frame: pd.DataFrame, codes: list[str]) -> pd.DataFrame:
    """The rows of each council together, in the order of ``codes``; each council's rows keep their order."""
    if len(codes) < 2 or frame.empty:
        return frame
    position = frame["la_code"].map({code: i for i, code in enumerate(codes)}).to_numpy()
    if (position[1:] >= position[:-1]).all():
        return frame
    return frame.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def _typed(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """Dates as datetime64[ns], yes/no as bool, everything else as Python objects with None where missing.

    What DuckDB gives is mostly that already (its text as str or None, its dates cast in the query): only
    what is not is converted, as converting every column was a third of reading a council."""
    for c in spec.columns:
        values = frame[c]
        if c in spec.dates:
            if values.dtype != "datetime64[ns]":
                frame[c] = contract.as_datetime(values).astype("datetime64[ns]")
        elif c in spec.booleans:
            if values.dtype != bool:
                frame[c] = values.astype(bool)
        elif values.dtype != object:  # DuckDB's text is already str, with None where missing
            frame[c] = values.astype(object).where(values.notna(), None)
    return frame
