"""Episodes: from a case closure to the child's next referral (or the end of observation).

An episode is the time a child spends out of children's social care after a referral
closes. It ends with a re-referral (event 1), with a competing event that ends
observation for another reason (event 2: the 18th birthday, death RC2, transfer to
another council RC5), or is censored at the council's extract date (event 0).
The rules for awkward cases are set out in docs/survival.md and tested in
tests/test_episodes.py. Everything is vectorised (numpy sorts and reductions), so the
national data (about 3.4 million referrals) is built in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.errors import InputError

#: Columns of the episode frame, in order (docs/survival.md; other modules rely on exactly these).
EPISODE_COLUMNS = (
    "la_code",
    "child_id",
    "referral_id",
    "episode_number",
    "closure_date",
    "closure_reason",
    "referral_date",
    "referral_nfa",
    "primary_need",
    "referral_source",
    "date_of_birth",
    "age_at_closure",
    "sex",
    "ethnicity",
    "disability",
    "end_date",
    "duration_days",
    "event",
    "event_type",
    "next_referral_id",
    "previous_referrals",
)

#: event codes
CENSORED, REREFERRAL, COMPETING = 0, 1, 2
#: closure reason recorded for an NFA referral that has none
NFA_REASON = "NFA"
#: closure reason for a closed referral whose reason was not recorded
UNKNOWN_REASON = "UNKNOWN"
#: DfE's window: a referral within 12 months of a previous one is a re-referral
DFE_WINDOW_DAYS = 365

_OPEN = np.iinfo(np.int64).max // 4  # "still open" as a day number beyond any date


@dataclass
class EpisodeCounts:
    """What happened to every referral on the way to episodes (reported, never silent)."""

    referrals: int = 0
    referrals_after_extract: int = 0  # dated after the extract date: excluded
    closures_after_extract: int = 0  # closed after the extract date: treated as open at extract
    nfa_closed_at_referral: int = 0  # NFA with no closure date: closed on the referral date
    merged_overlapping: int = 0  # opened while another referral of the child was open
    open_cases: int = 0  # spells still open at the extract: no episode
    episodes: int = 0
    not_at_risk_died: int = 0  # closed RC2: episode kept, not in the risk set
    not_at_risk_transferred: int = 0  # closed RC5
    not_at_risk_adult: int = 0  # closed on or after the 18th birthday
    closed_on_extract_date: int = 0  # zero follow-up
    unknown_child: int = 0  # referral whose child is not in the children table

    def to_dict(self) -> dict:
        return asdict(self)


def _require(tables: dict, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if name not in tables or tables[name] is None:
        raise InputError(f"The {name} table is missing: episodes need councils, children and referrals.")
    df = tables[name]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"The {name} table has no column {', '.join(missing)} (required by the data contract).")
    return df


def _days(values) -> np.ndarray:
    """Dates as int64 day numbers; NaT becomes the minimum int64."""
    return contract.as_datetime(values).to_numpy(dtype="datetime64[D]").astype(np.int64)


_NAT = np.iinfo(np.int64).min


def _as_bool(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    mapped = values.map(
        lambda v: v if isinstance(v, (bool, np.bool_)) else contract.BOOLEAN_VALUES.get(str(v).strip().lower())
    )
    if mapped.isna().any():
        row = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        raise InputError(f"referrals: row {row + 1}: referral_nfa is {values.iloc[row]!r}, not a yes/no value.")
    return mapped.astype(bool).to_numpy()


def _eighteenth_birthday_days(dob_day: np.ndarray) -> np.ndarray:
    """Day number of the 18th birthday (29 February births: 1 March in a common year);
    no date of birth: no birthday ends observation."""
    ok = dob_day != _NAT
    out = np.full(len(dob_day), _OPEN, dtype=np.int64)
    if ok.any():
        d = dob_day[ok].astype("datetime64[D]")
        y = d.astype("datetime64[Y]")
        month_start = d.astype("datetime64[M]")
        month = month_start.astype(np.int64) % 12  # 0-based
        day = (d - month_start.astype("datetime64[D]")).astype(np.int64)  # 0-based
        year = y.astype(np.int64) + 1970 + contract.ADULT_AGE_YEARS
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        shift = (month == 1) & (day == 28) & ~leap
        month = np.where(shift, 2, month)
        day = np.where(shift, 0, day)
        first = ((year - 1970) * 12 + month).astype("datetime64[M]").astype("datetime64[D]")
        out[ok] = (first + day).astype(np.int64)
    return out


def eighteenth_birthday(dates_of_birth) -> pd.Series:
    """The 18th birthday of each date of birth, by the one rule every analysis uses (29 February
    births: 1 March in a common year); a missing date of birth gives NaT."""
    dob = pd.Series(dates_of_birth)
    days = _eighteenth_birthday_days(_days(dob))
    out = np.where(days == _OPEN, np.iinfo(np.int64).min, days).astype("datetime64[D]")
    return pd.Series(out.astype("datetime64[ns]"), index=dob.index)


def _strings(col: pd.Series) -> np.ndarray:
    """A column as an array of str (object columns are taken to hold strings already)."""
    values = col.to_numpy()
    return values if values.dtype == object else col.astype(str).to_numpy()


def _codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 for missing) and the distinct values: string work done once per value."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _sorted_referrals(tables: dict, counts: EpisodeCounts) -> dict:
    """Referrals as arrays sorted by child, referral date and closure; bad input refused.

    Strings become integer codes first (hash-based, linear): at national scale, sorting
    and copying Python strings costs far more than the arithmetic.
    """
    # Long (~70 lines) on purpose: the referrals' columns checked and turned into integer arrays one after
    # another, then one sort; each check names its file and row.
    councils = _require(tables, "councils", ("la_code", "extract_date"))
    refs = _require(
        tables,
        "referrals",
        ("la_code", "referral_id", "child_id", "referral_date", "referral_source", "primary_need", "referral_nfa"),
    )
    n = len(refs)
    counts.referrals = n
    la_idx, la_uni = _codes(_strings(refs["la_code"]))
    extract_of = pd.to_datetime(
        councils.drop_duplicates("la_code").set_index(councils.drop_duplicates("la_code")["la_code"].astype(str))[
            "extract_date"
        ]
    )
    la_extract = _days(extract_of.reindex(la_uni).to_numpy())
    if (la_extract == _NAT).any():
        bad_la = la_uni[np.flatnonzero(la_extract == _NAT)[0]]
        i = int(np.flatnonzero(la_uni[la_idx] == bad_la)[0])
        raise InputError(
            f"referrals: row {i + 1}: council {bad_la} is not in the councils table (or has no extract date), "
            "so the end of observation is unknown."
        )
    extract = la_extract[la_idx]
    ref = _days(refs["referral_date"].to_numpy())
    if (ref == _NAT).any():
        i = int(np.flatnonzero(ref == _NAT)[0])
        raise InputError(f"referrals: row {i + 1}: referral_date is missing.")
    closure = _days(refs["closure_date"].to_numpy()) if "closure_date" in refs else np.full(n, _NAT)
    bad = (closure != _NAT) & (closure < ref)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"referrals: row {i + 1}: referral {refs['referral_id'].iloc[i]} closes before it opens "
            "(closure_date before referral_date)."
        )
    nfa = _as_bool(refs["referral_nfa"])
    # A referral dated after the extract cannot be in a true extract: excluded and counted.
    after = ref > extract
    counts.referrals_after_extract = int(after.sum())
    # A closure after the extract date was not known at the extract: the case was open then.
    late = (closure != _NAT) & (closure > extract) & ~after
    counts.closures_after_extract = int(late.sum())
    closure = np.where(late, _NAT, closure)
    # An NFA referral with no closure date closed the day it came in.
    fill = nfa & (closure == _NAT) & ~after & ~late
    counts.nfa_closed_at_referral = int(fill.sum())
    closure = np.where(fill, ref, closure)
    closure = np.where(closure == _NAT, _OPEN, closure)
    keep = np.flatnonzero(~after)
    # one child = (council, child_id): the same pseudonym in two councils is two children
    ch_idx, ch_uni = _codes(_strings(refs["child_id"]))
    key = la_idx * (len(ch_uni) + 1) + ch_idx
    key, ref, clo = key[keep], ref[keep], closure[keep]
    order = _order_by(key, ref, clo)
    # ties on child, referral date and closure: broken by referral_id, so input order never matters
    k, rf, c = key[order], ref[order], clo[order]
    tie = (k[1:] == k[:-1]) & (rf[1:] == rf[:-1]) & (c[1:] == c[:-1])
    if tie.any():
        involved = np.zeros(len(order), dtype=bool)
        involved[1:] |= tie
        involved[:-1] |= tie
        rows = order[involved]
        rank = np.zeros(len(keep), dtype=np.int64)
        ids = _strings(refs["referral_id"])[keep[rows]].astype(str)
        rank[rows] = np.argsort(np.argsort(ids, kind="stable"), kind="stable")
        order = np.lexsort((rank, clo, ref, key))
    src = keep[order]  # row in the referrals table
    reason_codes, reason_uni = (
        _codes(refs["closure_reason"].to_numpy())
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


def _order_by(key: np.ndarray, ref: np.ndarray, clo: np.ndarray) -> np.ndarray:
    """np.lexsort((clo, ref, key)) as one stable sort of a packed int64 (child, referral day, closure
    day): a three-key lexsort of the national referrals was four times slower. Falls back to lexsort
    where the three do not fit in 63 bits."""
    if len(key) == 0:
        return np.arange(0)
    k = key - key.min()
    r = ref - ref.min()
    open_ = clo == _OPEN
    c_min = int(clo[~open_].min()) if (~open_).any() else 0
    c_top = int(clo[~open_].max()) - c_min + 1 if (~open_).any() else 0
    c = np.where(open_, c_top, clo - c_min)  # still open: after every closure, as _OPEN sorts
    bk, br, bc = (max(int(x.max()).bit_length(), 1) for x in (k, r, c))
    if bk + br + bc > 63:
        return np.lexsort((clo, ref, key))
    return np.argsort((k << (br + bc)) | (r << bc) | c, kind="stable")


def _number_within(sorted_key: np.ndarray) -> np.ndarray:
    """1, 2, 3 ... within runs of equal (sorted) keys."""
    n = len(sorted_key)
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    return np.arange(n) - start + 1


def _frame(columns: dict) -> pd.DataFrame:
    """A DataFrame from arrays, object columns passed as such (pandas would otherwise scan
    every string to guess whether it is a date), put side by side without copying them into one
    block (copy=False: pandas would stack the object columns into one block, a fifth of building national episodes)."""
    return pd.DataFrame(
        {
            k: pd.Series(v, dtype=object, copy=False) if getattr(v, "dtype", None) == object else v  # noqa: E721 (numpy dtype("O") equals object, is not it)
            for k, v in columns.items()
        },
        copy=False,
    )


def build_episodes(tables: dict[str, pd.DataFrame], *, with_counts: bool = False):
    """One row per closed spell of contact (EPISODE_COLUMNS); counts of every exclusion.

    Overlapping referrals of a child (one opening on or before the day another closes)
    are one spell: the later one is not a re-referral after closure. The spell takes its
    referral details from its first referral and its closure from the referral that
    closed last. Returns the frame, or (frame, EpisodeCounts) with ``with_counts=True``.
    """
    # Long (~130 lines) on purpose: the episode rules in one vectorised pass over the sorted referrals (spells
    # of overlapping referrals, closure reasons, the end of observation, the next referral); each rule is a
    # few array lines that read the previous ones.
    counts = EpisodeCounts()
    r = _sorted_referrals(tables, counts)
    refs = r["refs"]
    key, ref, clo = r["key"], r["ref"], r["closure"]
    n = len(key)
    first_of_child = np.ones(n, dtype=bool)
    first_of_child[1:] = key[1:] != key[:-1]
    # running latest closure within child; a referral at or before it joins the open spell
    # (rows are sorted by child: a composite of child and day makes one running max do it)
    base = int(ref.min()) if n else 0
    rel = np.minimum(clo - base, (1 << 24) - 1)  # still open: beyond any date
    runmax = np.maximum.accumulate(key * (1 << 24) + rel) - key * (1 << 24) + base if n else clo
    runmax = np.where(runmax - base >= (1 << 24) - 1, _OPEN, runmax)
    prev = np.empty(n, dtype=np.int64)
    if n:
        prev[0] = _NAT
        prev[1:] = runmax[:-1]
    new_spell = first_of_child | (ref > prev)
    starts = np.flatnonzero(new_spell)
    counts.merged_overlapping = int(n - len(starts))
    if n == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in EPISODE_COLUMNS})
        return (out, counts) if with_counts else out
    spell = np.cumsum(new_spell) - 1
    spell_close = np.maximum.reduceat(clo, starts)
    is_last_close = clo == spell_close[spell]
    closer = np.maximum.reduceat(np.where(is_last_close, np.arange(n), -1), starts)
    spell_nfa = np.minimum.reduceat(r["nfa"].astype(np.int8), starts).astype(bool)
    spell_key = key[starts]
    child_first_row = np.maximum.accumulate(np.where(first_of_child, np.arange(n), 0))
    previous_referrals = starts - child_first_row[starts]
    # the next spell of the same child, if any, is the re-referral
    has_next = np.zeros(len(starts), dtype=bool)
    has_next[:-1] = spell_key[1:] == spell_key[:-1]
    next_start = np.where(has_next, np.append(starts[1:], 0), 0)
    closed = spell_close != _OPEN
    counts.open_cases = int((~closed).sum())

    s = starts[closed]
    src = r["src"][s]
    close_day = spell_close[closed]
    ep_key = spell_key[closed]
    # closure reason of the referral that closed the spell; NFA or UNKNOWN where none recorded
    c_rows = closer[closed]
    rcode = r["reason"][c_rows]
    labels = np.concatenate([r["reason_uni"].astype(object), np.array([NFA_REASON, UNKNOWN_REASON], dtype=object)])
    m = len(r["reason_uni"])
    rcode = np.where(rcode >= 0, rcode, np.where(r["nfa"][c_rows], m, m + 1))
    reason = labels[rcode]
    died = rcode == (
        np.flatnonzero(labels == contract.CLOSURE_DIED)[0] if (labels == contract.CLOSURE_DIED).any() else -2
    )
    moved = rcode == (
        np.flatnonzero(labels == contract.CLOSURE_TRANSFERRED)[0]
        if (labels == contract.CLOSURE_TRANSFERRED).any()
        else -2
    )
    nxt = next_start[closed]
    has_nxt = has_next[closed]
    ids = _strings(refs["referral_id"])

    # the child's characteristics, joined on the integer child key
    children = _require(tables, "children", ("la_code", "child_id", "date_of_birth", "sex", "ethnicity"))
    c_la = pd.Index(r["la_uni"]).get_indexer(_strings(children["la_code"]))
    c_ch = pd.Index(r["ch_uni"]).get_indexer(_strings(children["child_id"]))
    c_key = np.where((c_la >= 0) & (c_ch >= 0), c_la.astype(np.int64) * (len(r["ch_uni"]) + 1) + c_ch, -1)
    first_row = ~pd.Series(c_key).duplicated().to_numpy() & (c_key >= 0)
    hit = pd.Index(c_key[first_row]).get_indexer(ep_key)
    c_rows_all = np.flatnonzero(first_row)
    found = hit >= 0
    pos = c_rows_all[np.where(found, hit, 0)] if len(c_rows_all) else np.zeros(len(ep_key), dtype=np.int64)
    counts.unknown_child = int((~found).sum())

    def take(col, fill):
        if col not in children.columns or not len(children):
            return np.full(len(ep_key), fill, dtype=object)
        codes, uniq = _codes(children[col].to_numpy())
        c = codes[pos]
        out = np.concatenate([uniq, np.array([fill], dtype=object)])[np.where(found & (c >= 0), c, len(uniq))]
        return out

    dob_day = _days(children["date_of_birth"].to_numpy())[pos] if len(children) else np.full(len(ep_key), _NAT)
    dob_day = np.where(found, dob_day, _NAT)
    dis_codes, dis_uni = (
        _codes(children["disability"].to_numpy())
        if "disability" in children and len(children)
        else (np.full(len(children), -1, dtype=np.int64), np.array([], dtype=object))
    )
    dis_uni = np.array(
        [("NONE" if str(v).strip() in ("", "nan", "None") else str(v)) for v in dis_uni] + ["NONE"], dtype=object
    )
    dc = dis_codes[pos] if len(children) else np.full(len(ep_key), -1)
    disability = dis_uni[np.where(found & (dc >= 0), dc, len(dis_uni) - 1)]

    # how each episode ends
    extract = r["extract"][s]
    b18 = _eighteenth_birthday_days(dob_day)
    next_day = np.where(has_nxt, ref[nxt], _OPEN)
    adult = (b18 <= close_day) & ~died & ~moved
    at_closure = died | moved | adult
    rerefer = ~at_closure & has_nxt & (next_day < b18) & (next_day <= extract)
    turned18 = ~at_closure & ~rerefer & (b18 <= extract)
    end = np.where(at_closure, close_day, np.where(rerefer, next_day, np.where(turned18, b18, extract)))
    event = np.where(at_closure | turned18, COMPETING, np.where(rerefer, REREFERRAL, CENSORED))
    kinds = np.array(["censored", "rereferral", "turned_18", "died", "transferred"], dtype=object)
    kind = np.select([died, moved, adult | turned18, rerefer], [3, 4, 2, 1], 0)
    as_ns = lambda d: d.astype("datetime64[D]").astype("datetime64[ns]")  # noqa: E731
    ep = _frame(
        {
            "la_code": r["la_uni"][r["la_idx"][s]],
            "child_id": r["ch_uni"][r["ch_idx"][s]],
            "referral_id": ids[src],
            "episode_number": _number_within(ep_key),
            "closure_date": as_ns(close_day),
            "closure_reason": reason,
            "referral_date": as_ns(ref[s]),
            "referral_nfa": spell_nfa[closed],
            "primary_need": refs["primary_need"].to_numpy()[src],
            "referral_source": refs["referral_source"].to_numpy()[src],
            "date_of_birth": np.where(dob_day == _NAT, np.datetime64("NaT"), dob_day.astype("datetime64[D]")).astype(
                "datetime64[ns]"
            ),
            "age_at_closure": np.where(dob_day == _NAT, np.nan, (close_day - dob_day) / 365.25),
            "sex": take("sex", None),
            "ethnicity": take("ethnicity", None),
            "disability": disability,
            "end_date": as_ns(end),
            "duration_days": (end - close_day).astype(np.int64),
            "event": event.astype(np.int64),
            "event_type": kinds[kind],
            "next_referral_id": np.where(has_nxt, ids[r["src"][nxt]], None),
            "previous_referrals": previous_referrals[closed].astype(np.int64),
        }
    )
    counts.episodes = len(ep)
    counts.not_at_risk_died = int(died.sum())
    counts.not_at_risk_transferred = int(moved.sum())
    counts.not_at_risk_adult = int(adult.sum())
    counts.closed_on_extract_date = int(((close_day == extract) & ~at_closure).sum())
    ep.attrs["counts"] = counts.to_dict()
    return (ep, counts) if with_counts else ep


def at_risk(episodes: pd.DataFrame, *, renumber: bool = False) -> pd.DataFrame:
    """Episodes that contribute follow-up time (duration > 0); ``renumber``: index 0..n-1, as
    ``.reset_index(drop=True)`` gives, without its copy of every column.

    Closures for death (RC2), transfer (RC5) or at 18 are counted as episodes but are
    never at risk of re-referral, nor are cases closed on the extract date itself.
    Filtered column by column: ``episodes.loc[mask]`` first consolidates the frame's many object
    columns into one block, seconds at national size for the same result.
    """
    keep = (episodes["duration_days"] > 0).to_numpy()
    columns = {c: (s.to_numpy()[keep] if isinstance(s.dtype, np.dtype) else s.array[keep]) for c, s in episodes.items()}
    index = pd.RangeIndex(int(keep.sum())) if renumber else episodes.index[keep]
    return pd.DataFrame(columns, index=index, copy=False)


def _reporting_year(days: np.ndarray) -> np.ndarray:
    """DfE reporting year (1 April to 31 March), labelled by the year it ends in."""
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (d.astype("datetime64[M]").astype(np.int64) % 12) + 1
    return np.where(month >= 4, year + 1, year)


def dfe_rereferral_measure(tables: dict[str, pd.DataFrame], year: int | None = None) -> pd.DataFrame:
    """DfE's re-referral rate: the share of referrals within 12 months of a previous one.

    Counted the DfE way, on referrals (not episodes): a referral is a re-referral when the
    same child had a referral on an earlier day no more than 365 days before, whether or
    not that one had closed. One row per council and reporting year (to 31 March), with
    the council's published figure beside it for reconciliation. ``complete`` is False for
    years the extract does not fully cover (year not ended by the extract date, or less
    than 12 months of earlier data to look back on).
    """
    counts = EpisodeCounts()
    r = _sorted_referrals(tables, counts)
    key = r["key"]
    ref = r["ref"]
    base = ref.min() if len(ref) else 0
    comp = key * (1 << 22) + (ref - base)
    pos = np.searchsorted(comp, comp, side="left") - 1  # last referral on an earlier day
    ok = pos >= 0
    posc = np.where(ok, pos, 0)
    same_child = ok & (key[posc] == key)
    gap = ref - ref[posc]
    rerefer = same_child & (gap <= DFE_WINDOW_DAYS)
    r = pd.DataFrame(
        {
            "la_code": r["la_uni"][r["la_idx"]],
            "year": _reporting_year(ref),
            "rereferral": rerefer,
            "ref": ref,
            "extract": r["extract"],
        }
    )
    out = (
        r.groupby(["la_code", "year"])
        .agg(referrals=("rereferral", "size"), rereferrals=("rereferral", "sum"))
        .reset_index()
    )
    out["rate"] = out["rereferrals"] / out["referrals"]
    first = r.groupby("la_code")["ref"].min()
    extract = r.groupby("la_code")["extract"].first()
    year_end = pd.to_datetime(out["year"].astype(str) + "-03-31").to_numpy(dtype="datetime64[D]").astype(np.int64)
    year_start = (
        pd.to_datetime((out["year"] - 1).astype(str) + "-04-01").to_numpy(dtype="datetime64[D]").astype(np.int64)
    )
    out["complete"] = (year_end <= out["la_code"].map(extract).to_numpy()) & (
        year_start - DFE_WINDOW_DAYS >= out["la_code"].map(first).to_numpy()
    )
    try:
        from insightlib.reference import rereferral_rates

        pub = rereferral_rates()[["la_code", "year", "referral_count", "rereferral_count", "rereferral_percent"]]
        pub = pub.drop_duplicates(["la_code", "year"]).rename(
            columns={
                "referral_count": "published_referrals",
                "rereferral_count": "published_rereferrals",
                "rereferral_percent": "published_rate",
            }
        )
        pub["published_rate"] = pub["published_rate"] / 100.0
        out = out.merge(pub, on=["la_code", "year"], how="left")
    except (ImportError, FileNotFoundError):  # pragma: no cover - reference data ships with the package
        pass
    if year is not None:
        out = out.loc[out["year"] == int(year)]
    return out.reset_index(drop=True)
