"""Fingerprints: what data (or which files) made a result, as a short hash. One module, so each kind
is computed one way wherever it is needed.

* ``file_sha256``: a file's bytes (the run manifest's output hashes).
* ``folder_sha256``: the names and bytes of the files in a folder (a folder of data files).
* ``folder_stamp``: names, sizes and modification times only: a cheap test of whether a folder
  changed since it was last loaded (never a record of what the data were).
* ``rows_fingerprint``: a council's tables as rows of text, independent of row order (the
  warehouse stores it at load; it is each council's ``data_fingerprint``).
* ``rows_fingerprints``: the same for every council of national tables at once.
* ``frames_fingerprint``: tables as pandas hashes them, in their order (the published tables
  the skills explorer reads).
* ``combined``: several fingerprints as one (a report across councils).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.core.util.hashing import combine_hash_arrays

#: Fingerprints are shortened to this many hex digits (64 bits), except a file's full sha256.
SHORT = 16


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a notebook or results.json of any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file())


def folder_sha256(folder: str | Path) -> str:
    """The names and bytes of every file directly in ``folder``, in name order."""
    digest = hashlib.sha256()
    for path in _files(Path(folder)):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:SHORT]


def folder_stamp(folder: str | Path) -> str:
    """Names, sizes and modification times of the files in ``folder`` and in its folders (a national
    extract of one folder per council): changes when any file does."""
    digest = hashlib.sha256()
    inner = [p for p in Path(folder).glob("*/*") if p.is_file() and not p.parent.name.startswith((".", "_"))]
    for path in sorted(inner) + _files(Path(folder)):
        stat = path.stat()
        name = path.name if path.parent == Path(folder) else f"{path.parent.name}/{path.name}"
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:SHORT]


def rows_fingerprint(
    tables: Mapping[str, pd.DataFrame | None],
    columns: Mapping[str, Sequence[str]],
    dates: Mapping[str, Iterable[str]],
    version: str,
) -> str:
    """sha256 over tables' rows as text, independent of row order (so stable across loads).

    Each table in ``columns`` (name -> its columns, in that order) adds its name and columns, then,
    if it has rows, the sorted hashes of its rows (dates as YYYY-MM-DD, missing values as "") and
    their count. ``version`` starts the hash: a change to what is hashed changes it."""
    h = hashlib.sha256(version.encode())
    for name, cols in columns.items():
        frame = tables.get(name)
        h.update(f"\x1e{name}\x1f{','.join(cols)}\x1f".encode())
        if frame is None or frame.empty:
            continue
        day = set(dates.get(name, ()))
        text = {}
        for c in cols:
            s = frame[c]
            if c in day:
                text[c] = s.dt.strftime("%Y-%m-%d").fillna("")
            else:
                text[c] = s.astype(object).where(s.notna(), "").astype(str)
        rows = pd.util.hash_pandas_object(pd.DataFrame(text), index=False).to_numpy()
        h.update(np.sort(rows).tobytes())
        h.update(str(len(rows)).encode())
    return h.hexdigest()


def rows_fingerprints(
    tables: Mapping[str, pd.DataFrame | None],
    columns: Mapping[str, Sequence[str]],
    dates: Mapping[str, Iterable[str]],
    version: str,
    keys: Sequence[str],
    by: str = "la_code",
) -> dict[str, str]:
    """``rows_fingerprint`` of each key's rows (every council's at once), equal to it, in time linear in rows.

    Each column is hashed over its distinct values (what pandas does inside ``hash_pandas_object``) and the
    rows' hashes are sorted once per table, not once per council."""
    sorted_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, cols in columns.items():
        frame = tables.get(name)
        if frame is None or frame.empty:
            continue
        day = set(dates.get(name, ()))
        rows = combine_hash_arrays((_column_hashes(frame[c], c in day) for c in cols), len(cols))
        owner = pd.Categorical(frame[by], categories=list(keys)).codes
        order = np.lexsort((rows, owner))
        counts = np.bincount(owner[owner >= 0], minlength=len(keys))
        start = int((owner < 0).sum())
        sorted_rows[name] = (rows[order], np.concatenate([[start], start + np.cumsum(counts)]))
    out = {}
    for i, key in enumerate(keys):
        h = hashlib.sha256(version.encode())
        for name, cols in columns.items():
            h.update(f"\x1e{name}\x1f{','.join(cols)}\x1f".encode())
            if name not in sorted_rows:
                continue
            rows, bounds = sorted_rows[name]
            if bounds[i + 1] > bounds[i]:
                h.update(rows[bounds[i] : bounds[i + 1]].tobytes())
                h.update(str(int(bounds[i + 1] - bounds[i])).encode())
        out[key] = h.hexdigest()
    return out


def _column_hashes(s: pd.Series, is_date: bool) -> np.ndarray:
    """pandas' hash of each value as rows_fingerprint writes it (dates YYYY-MM-DD, booleans True/False, missing "")."""
    if is_date:
        days = s.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        uniques, codes = np.unique(days, return_inverse=True)
        text = np.where(np.isnat(uniques), "", np.datetime_as_string(uniques, unit="D")).astype(object)
    elif s.dtype == bool:
        codes, text = s.to_numpy().astype(np.intp), np.array(["False", "True"], dtype=object)
    elif isinstance(s.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(s.fillna(""))
        text = np.asarray(uniques, dtype=object)
    else:
        codes, uniques = pd.factorize(s.astype(object).where(s.notna(), "").astype(str))
        text = np.asarray(uniques, dtype=object)
    return pd.util.hash_array(text, categorize=False)[codes.reshape(-1)]


def frames_fingerprint(tables: Mapping[str, pd.DataFrame]) -> str:
    """Tables as pandas hashes their rows, in name order and row order."""
    digest = hashlib.sha256()
    for name, table in sorted(tables.items()):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:SHORT]


def combined(fingerprints: Iterable[str]) -> str:
    """Several fingerprints (e.g. each council's) as one, in the order given."""
    return hashlib.sha256("".join(fingerprints).encode()).hexdigest()[:SHORT]
