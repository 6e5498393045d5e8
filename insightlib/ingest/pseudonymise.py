"""Replace identifiers by a keyed hash before anything reaches the warehouse.

HMAC-SHA256 with a key the council keeps outside the repository, over the council code,
the kind of identifier and the value: the same child gets the same pseudonym in every table
of its council, but the same raw id in two councils gives two different pseudonyms, and
nobody without the key can recompute or reverse one. A pseudonym is a readable prefix per
kind plus 16 hex characters (64 bits), e.g. ``c_3f9a0c1e5b7d2a48`` for a child.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from insightlib import contract
from insightlib.errors import InputError

#: Text columns are Arrow strings (as the readers make them): no Python object per value.
STR = pd.StringDtype("pyarrow")

#: Readable prefix per kind of identifier.
PREFIX = {"child_id": "c_", "upn": "u_", "referral_id": "r_", "worker_id": "w_"}
HEX_CHARS = 16
MIN_KEY_BYTES = 16
#: SHA-256's block size in bytes (HMAC pads or hashes the key to it).
_BLOCK = 64
KEY_ENV = "INSIGHT_KEY"
KEY_FILE_ENV = "INSIGHT_KEY_FILE"

NO_KEY_MESSAGE = (
    "No pseudonymisation key. Set INSIGHT_KEY_FILE to a file kept outside the repository "
    "(create one with insightlib.ingest.pseudonymise.make_key_file(path)), "
    "or set INSIGHT_KEY to the key itself."
)


def make_key_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """A new random 256-bit key (64 hex characters) in a file only its owner can read (0600)."""
    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise InputError(f"{path} already exists; a key is never overwritten silently (pass overwrite=True).")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    os.chmod(path, 0o600)
    return path


def _read_key_file(path: str | os.PathLike, source: str) -> bytes:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"The key file {path} (from {source}) does not exist. {NO_KEY_MESSAGE}")
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise InputError(f"The key in {path} is too short ({len(key)} bytes; at least {MIN_KEY_BYTES}).")
    return key


def load_key(key: bytes | str | None = None, key_file: str | os.PathLike | None = None) -> bytes:
    """The key: given directly, else $INSIGHT_KEY, else the file named by $INSIGHT_KEY_FILE, else key_file.

    A key handed over by the caller wins over the environment; the environment wins over
    a default key-file argument.
    """
    if key is not None:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        raw = raw.strip()
        if len(raw) < MIN_KEY_BYTES:
            raise InputError(f"The pseudonymisation key is too short ({len(raw)} bytes; at least {MIN_KEY_BYTES}).")
        return raw
    env = os.environ.get(KEY_ENV, "").strip()
    if env:
        if len(env.encode()) < MIN_KEY_BYTES:
            raise InputError(f"INSIGHT_KEY is too short ({len(env.encode())} bytes; at least {MIN_KEY_BYTES}).")
        return env.encode()
    env_file = os.environ.get(KEY_FILE_ENV, "").strip()
    if env_file:
        return _read_key_file(env_file, "INSIGHT_KEY_FILE")
    if key_file is not None:
        return _read_key_file(key_file, "the key file argument")
    raise InputError(NO_KEY_MESSAGE)


def key_check(key: bytes) -> str:
    """A short value that tells whether two loads used the same key, revealing nothing about it."""
    return hmac.new(key, b"insight key check", hashlib.sha256).hexdigest()[:12]


def _kind(column: str) -> str:
    if column not in PREFIX:
        raise ValueError(f"{column!r} is not an identifier column ({', '.join(sorted(PREFIX))})")
    return column


def pseudonymise_value(value: str, column: str, la_code: str, key: bytes) -> str:
    """One pseudonym (for checks and tests; tables go through pseudonymise_tables)."""
    kind = _kind(column)
    msg = f"{la_code}\x1f{kind}\x1f{value}".encode()
    return PREFIX[kind] + hmac.new(key, msg, hashlib.sha256).hexdigest()[:HEX_CHARS]


def _hmac_hex(messages: pa.Array, key: bytes) -> pa.Array:
    """HMAC-SHA256 (RFC 2104) of each message, as hex, with hashlib: the key's inner and outer states are
    made once and copied per message (a tenth of the cost of hashing through DuckDB at a council's size).

    Equal to ``hmac.new(key, message, "sha256").hexdigest()`` for every message (tests check it)."""
    block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    out = []
    for message in messages.to_pylist():
        h = inner.copy()
        h.update(message.encode())
        o = outer.copy()
        o.update(h.digest())
        out.append(o.hexdigest())
    return pa.array(out, type=pa.large_string())


def _pseudonyms(la_codes: pa.ChunkedArray, values: pa.ChunkedArray, kind: str, key: bytes) -> pa.Array:
    """The pseudonym of each (council, value), null where the value is missing or empty; each distinct one hashed once."""
    values = pc.cast(values, pa.large_string())
    present = pc.and_kleene(pc.is_valid(values), pc.not_equal(values, ""))
    sep = pa.scalar("\x1f", pa.large_string())
    msgs = pc.binary_join_element_wise(
        pc.cast(la_codes, pa.large_string()), pa.scalar(kind, pa.large_string()), values, sep
    )
    msgs = pc.if_else(present, msgs, None)
    uniques = pc.drop_null(pc.unique(msgs))
    digest = pc.cast(pc.utf8_slice_codeunits(_hmac_hex(uniques, key), 0, HEX_CHARS), pa.large_string())
    hashed = pc.binary_join_element_wise(
        pa.scalar(PREFIX[kind], pa.large_string()), digest, pa.scalar("", pa.large_string())
    )
    if len(pc.unique(hashed)) != len(hashed):  # 64 bits: practically never, but never silently
        raise InputError(f"Two different {kind} values got the same pseudonym; use a new key (make_key_file).")
    return pc.take(hashed, pc.index_in(msgs, value_set=uniques))


def _arrow(series: pd.Series) -> pa.ChunkedArray:
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        return pa.chunked_array(pa.array(series.array)).cast(pa.large_string())  # no copy of the text
    return pa.chunked_array([pa.array(series.astype(object).where(series.notna(), None), type=pa.large_string())])


def _series(values: pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(pc.cast(values, pa.large_string())), index=index).astype(STR)


def pseudonymise_series(values: pd.Series, la_codes: pd.Series, column: str, key: bytes) -> pd.Series:
    """Vectorised over distinct (council, value) pairs; empty stays empty (missing)."""
    kind = _kind(column)
    return _series(_pseudonyms(_arrow(la_codes), _arrow(values), kind, key), values.index)


def pseudonymise_tables(tables: dict[str, pd.DataFrame], key: bytes) -> dict[str, pd.DataFrame]:
    """Copies of the tables with every identifier column (contract.IDENTIFIER_COLUMNS) replaced.

    The columns of one kind (a child_id in six tables) are hashed together, so each distinct id once."""
    out = {name: frame.copy() for name, frame in tables.items()}
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for name, frame in tables.items():
        spec = contract.TABLES.get(name)
        cols = spec.identifiers if spec else tuple(c for c in frame.columns if c in contract.IDENTIFIER_COLUMNS)
        for col in cols:
            if col in frame.columns:
                by_kind.setdefault(_kind(col), []).append((name, col))
    for kind, places in by_kind.items():
        la = pa.chunked_array(
            [c for name, _ in places for c in _arrow(tables[name]["la_code"]).chunks], pa.large_string()
        )
        values = pa.chunked_array(
            [c for name, col in places for c in _arrow(tables[name][col]).chunks], pa.large_string()
        )
        hashed = _pseudonyms(la, values, kind, key)
        start = 0
        for name, col in places:
            n = len(tables[name])
            out[name][col] = _series(hashed.slice(start, n), tables[name].index)
            start += n
    return out
