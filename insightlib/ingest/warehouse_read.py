"""Reading councils' tables from a warehouse: one council, or many in one query a table.

Split from warehouse.py. A national report read its councils one at a time: each read scanned every national
table again for one council's rows, so reading 153 councils scanned them 153 times. ``read_councils`` reads
each table once for all of them, with the same rows in the same order (each council's rows as stored, the
councils in the order asked for) and the same types as one council's reads put together.
"""

from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

from insightlib import contract
from insightlib.errors import InputError
from insightlib.ingest.warehouse import _connect
from insightlib.ingest.warehouse_write import COUNCIL_TABLE


def read_councils(source: str | os.PathLike, codes: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Every contract table for these councils (validated codes), their rows one council after another."""
    codes = list(dict.fromkeys(codes))
    con = _connect(source)
    try:
        known = {r[0] for r in con.execute(f'SELECT la_code FROM "{COUNCIL_TABLE}"').fetchall()}
        missing = [c for c in codes if c not in known]
        if missing:
            raise InputError(
                f"Council {missing[0]} is not in the warehouse {source} (it has: {', '.join(sorted(known))})."
            )
        out = {}
        for name, spec in contract.TABLES.items():
            cols = ", ".join(f'"{c}"' for c in spec.columns)
            # the rows in the order they were stored, as one council's scan returns them
            query = f'SELECT {cols} FROM "{name}" WHERE la_code IN (SELECT unnest(?::VARCHAR[])) ORDER BY rowid'
            out[name] = _typed(_councils_in_order(con.execute(query, [codes]).df(), codes), spec)
        return out
    finally:
        con.close()


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
    """Dates as datetime64[ns], yes/no as bool, everything else as Python objects with None where missing."""
    for c in spec.columns:
        if c in spec.dates:
            frame[c] = contract.as_datetime(frame[c]).astype("datetime64[ns]")
        elif c in spec.booleans:
            frame[c] = frame[c].astype(bool)
        else:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame
