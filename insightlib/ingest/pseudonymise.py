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

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.errors import InputError

#: Readable prefix per kind of identifier.
PREFIX = {"child_id": "c_", "upn": "u_", "referral_id": "r_", "worker_id": "w_"}
HEX_CHARS = 16
MIN_KEY_BYTES = 16
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


def pseudonymise_series(
    values: pd.Series, la_codes: pd.Series, column: str, key: bytes, known: dict[str, str] | None = None
) -> pd.Series:
    """Vectorised over distinct (council, value) pairs; empty stays empty (None).

    ``known`` (message -> pseudonym, for this column's kind and key) is used and filled, so that a child
    or referral id met in several tables is hashed once."""
    kind = _kind(column)
    present = values.notna() & (values.astype(object) != "")
    out = pd.Series(None, index=values.index, dtype=object)
    if not present.any():
        return out
    msgs = la_codes[present].astype(str) + f"\x1f{kind}\x1f" + values[present].astype(str)
    codes, uniques = pd.factorize(msgs, sort=False)
    digest = hmac.digest
    prefix = PREFIX[kind]
    if known is None:
        hashed = [prefix + digest(key, m.encode(), "sha256").hex()[:HEX_CHARS] for m in uniques]
    else:
        hashed = [
            known.get(m) or known.setdefault(m, prefix + digest(key, m.encode(), "sha256").hex()[:HEX_CHARS])
            for m in uniques
        ]
    if len(set(hashed)) != len(hashed):  # 64 bits: practically never, but never silently
        raise InputError(f"Two different {column} values got the same pseudonym; use a new key (make_key_file).")
    values_out = np.full(len(values), None, dtype=object)
    values_out[present.to_numpy()] = np.asarray(hashed, dtype=object)[codes]
    return pd.Series(values_out, index=values.index, dtype=object)


def pseudonymise_tables(tables: dict[str, pd.DataFrame], key: bytes) -> dict[str, pd.DataFrame]:
    """Copies of the tables with every identifier column (contract.IDENTIFIER_COLUMNS) replaced."""
    out = {}
    known: dict[str, dict[str, str]] = {}  # kind -> message -> pseudonym, shared by the tables
    for name, frame in tables.items():
        spec = contract.TABLES.get(name)
        frame = frame.copy()
        cols = spec.identifiers if spec else tuple(c for c in frame.columns if c in contract.IDENTIFIER_COLUMNS)
        for col in cols:
            if col in frame.columns:
                frame[col] = pseudonymise_series(
                    frame[col], frame["la_code"], col, key, known.setdefault(_kind(col), {})
                )
        out[name] = frame
    return out
