"""Referrals as integer arrays sorted by child, referral date and closure: what episodes
(ingest/episodes.py) and DfE's re-referral measure are both counted from.

Strings become integer codes first (hash-based, linear) and dates day numbers: at national
scale, sorting and copying Python strings costs far more than the arithmetic. Bad input is
refused with the table, row and rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.errors import InputError

#: "still open" as a day number beyond any date
OPEN = np.iinfo(np.int64).max // 4
#: a missing date as a day number
NAT = np.iinfo(np.int64).min


def require_table(tables: dict, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    """The table ``name`` with every one of ``columns``, or a clear InputError."""
    if name not in tables or tables[name] is None:
        raise InputError(f"The {name} table is missing: episodes need councils, children and referrals.")
    df = tables[name]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"The {name} table has no column {', '.join(missing)} (required by the data contract).")
    return df


def day_numbers(values) -> np.ndarray:
    """Dates as int64 day numbers; NaT becomes NAT (the minimum int64)."""
    return contract.as_datetime(values).to_numpy(dtype="datetime64[D]").astype(np.int64)


def as_bool(values: pd.Series) -> np.ndarray:
    """referral_nfa as booleans (yes/no words understood), or an InputError naming the row."""
    if values.dtype == bool:
        return values.to_numpy()
    mapped = values.map(
        lambda v: v if isinstance(v, (bool, np.bool_)) else contract.BOOLEAN_VALUES.get(str(v).strip().lower())
    )
    if mapped.isna().any():
        row = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        raise InputError(f"referrals: row {row + 1}: referral_nfa is {values.iloc[row]!r}, not a yes/no value.")
    return mapped.astype(bool).to_numpy()


def as_strings(col: pd.Series) -> np.ndarray:
    """A column as an array of str (object columns are taken to hold strings already)."""
    values = col.to_numpy()
    return values if values.dtype == object else col.astype(str).to_numpy()


def integer_codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for missing) and the distinct values: string work done once per value."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _extract_days(councils: pd.DataFrame, la_idx: np.ndarray, la_uni: np.ndarray) -> np.ndarray:
    """Each referral's council extract date (day number); a council with none is refused."""
    first = councils.drop_duplicates("la_code")
    extract_of = pd.to_datetime(first.set_index(first["la_code"].astype(str))["extract_date"])
    la_extract = day_numbers(extract_of.reindex(la_uni).to_numpy())
    if (la_extract == NAT).any():
        bad_la = la_uni[np.flatnonzero(la_extract == NAT)[0]]
        i = int(np.flatnonzero(la_uni[la_idx] == bad_la)[0])
        raise InputError(
            f"referrals: row {i + 1}: council {bad_la} is not in the councils table (or has no extract date), "
            "so the end of observation is unknown."
        )
    return la_extract[la_idx]


def _referral_and_closure_days(refs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Referral and closure day numbers (closure NAT where none); a missing referral date or a closure
    before the referral is refused."""
    ref = day_numbers(refs["referral_date"].to_numpy())
    if (ref == NAT).any():
        i = int(np.flatnonzero(ref == NAT)[0])
        raise InputError(f"referrals: row {i + 1}: referral_date is missing.")
    closure = day_numbers(refs["closure_date"].to_numpy()) if "closure_date" in refs else np.full(len(refs), NAT)
    bad = (closure != NAT) & (closure < ref)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"referrals: row {i + 1}: referral {refs['referral_id'].iloc[i]} closes before it opens "
            "(closure_date before referral_date)."
        )
    return ref, closure


def _closures_at_extract(ref, closure, nfa, extract, counts) -> tuple[np.ndarray, np.ndarray]:
    """Referrals after the extract (excluded) and each closure as known at the extract (OPEN if none)."""
    # A referral dated after the extract cannot be in a true extract: excluded and counted.
    after = ref > extract
    counts.referrals_after_extract = int(after.sum())
    # A closure after the extract date was not known at the extract: the case was open then.
    late = (closure != NAT) & (closure > extract) & ~after
    counts.closures_after_extract = int(late.sum())
    closure = np.where(late, NAT, closure)
    # An NFA referral with no closure date closed the day it came in.
    fill = nfa & (closure == NAT) & ~after & ~late
    counts.nfa_closed_at_referral = int(fill.sum())
    closure = np.where(fill, ref, closure)
    return after, np.where(closure == NAT, OPEN, closure)


def _tie_broken(order, key, ref, clo, ids) -> np.ndarray:
    """Ties on child, referral date and closure broken by referral_id, so input order never matters."""
    k, rf, c = key[order], ref[order], clo[order]
    tie = (k[1:] == k[:-1]) & (rf[1:] == rf[:-1]) & (c[1:] == c[:-1])
    if not tie.any():
        return order
    involved = np.zeros(len(order), dtype=bool)
    involved[1:] |= tie
    involved[:-1] |= tie
    rows = order[involved]
    rank = np.zeros(len(key), dtype=np.int64)
    rank[rows] = np.argsort(np.argsort(ids(rows), kind="stable"), kind="stable")
    return np.lexsort((rank, clo, ref, key))


def sorted_referrals(tables: dict, counts) -> dict:
    """Referrals as arrays sorted by child, referral date and closure; bad input refused.

    ``counts`` (an episodes.EpisodeCounts) takes the referrals, those after the extract, the closures
    after it and the NFA referrals closed on their referral date."""
    councils = require_table(tables, "councils", ("la_code", "extract_date"))
    refs = require_table(tables, "referrals", contract.TABLES["referrals"].required)
    n = len(refs)
    counts.referrals = n
    la_idx, la_uni = integer_codes(as_strings(refs["la_code"]))
    extract = _extract_days(councils, la_idx, la_uni)
    ref, closure = _referral_and_closure_days(refs)
    nfa = as_bool(refs["referral_nfa"])
    after, closure = _closures_at_extract(ref, closure, nfa, extract, counts)
    keep = np.flatnonzero(~after)
    # one child = (council, child_id): the same pseudonym in two councils is two children
    ch_idx, ch_uni = integer_codes(as_strings(refs["child_id"]))
    key = la_idx * (len(ch_uni) + 1) + ch_idx
    key, ref, clo = key[keep], ref[keep], closure[keep]
    ids = lambda rows: as_strings(refs["referral_id"])[keep[rows]].astype(str)  # noqa: E731
    order = _tie_broken(order_by(key, ref, clo), key, ref, clo, ids)
    src = keep[order]  # row in the referrals table
    reason_codes, reason_uni = (
        integer_codes(refs["closure_reason"].to_numpy())
        if "closure_reason" in refs
        else (np.full(n, -1, dtype=np.int64), np.array([], dtype=object))
    )
    return {
        "src": src,
        "key": key[order],
        "ref": ref[order],
        "closure": clo[order],
        "extract": extract[src],
        "nfa": nfa[src],
        "reason": reason_codes[src],
        "reason_uni": reason_uni,
        "la_idx": la_idx[src],
        "la_uni": la_uni,
        "ch_idx": ch_idx[src],
        "ch_uni": ch_uni,
        "refs": refs,
    }


def order_by(key: np.ndarray, ref: np.ndarray, clo: np.ndarray) -> np.ndarray:
    """np.lexsort((clo, ref, key)) as one stable sort of a packed int64 (child, referral day, closure
    day): a three-key lexsort of the national referrals was four times slower. Falls back to lexsort
    where the three do not fit in 63 bits."""
    if len(key) == 0:
        return np.arange(0)
    k = key - key.min()
    r = ref - ref.min()
    open_ = clo == OPEN
    c_min = int(clo[~open_].min()) if (~open_).any() else 0
    c_top = int(clo[~open_].max()) - c_min + 1 if (~open_).any() else 0
    c = np.where(open_, c_top, clo - c_min)  # still open: after every closure, as OPEN sorts
    bk, br, bc = (max(int(x.max()).bit_length(), 1) for x in (k, r, c))
    if bk + br + bc > 63:
        return np.lexsort((clo, ref, key))
    return np.argsort((k << (br + bc)) | (r << bc) | c, kind="stable")
