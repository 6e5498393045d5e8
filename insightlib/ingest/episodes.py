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
from insightlib.ingest.referrals import (
    NAT,
    OPEN,
    as_strings,
    day_numbers,
    integer_codes,
    require_table,
    sorted_referrals,
)

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


def _eighteenth_birthday_days(dob_day: np.ndarray) -> np.ndarray:
    """Day number of the 18th birthday (29 February births: 1 March in a common year);
    no date of birth: no birthday ends observation."""
    ok = dob_day != NAT
    out = np.full(len(dob_day), OPEN, dtype=np.int64)
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
    days = _eighteenth_birthday_days(day_numbers(dob))
    out = np.where(days == OPEN, np.iinfo(np.int64).min, days).astype("datetime64[D]")
    return pd.Series(out.astype("datetime64[ns]"), index=dob.index)


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
    Vectorised over the sorted referrals: spells (_spells), their closure reasons
    (_closure_reasons), the child's details (_ChildDetails) and how each ends (_endings).
    """
    counts = EpisodeCounts()
    r = sorted_referrals(tables, counts)
    if len(r["key"]) == 0:
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in EPISODE_COLUMNS})
        return (out, counts) if with_counts else out
    sp = _spells(r, counts)
    closed = sp["close"] != OPEN
    counts.open_cases = int((~closed).sum())
    s = sp["starts"][closed]
    close_day = sp["close"][closed]
    ep_key = sp["key"][closed]
    nxt, has_nxt = sp["next_start"][closed], sp["has_next"][closed]
    reason, died, moved = _closure_reasons(r, sp["closer"][closed])
    child = _ChildDetails(tables, r, ep_key, counts)
    extract = r["extract"][s]
    next_day = np.where(has_nxt, r["ref"][nxt], OPEN)
    end, event, kind, adult, at_closure = _endings(child.dob_day, close_day, next_day, extract, died, moved)
    ids = as_strings(r["refs"]["referral_id"])
    src = r["src"][s]
    ep = _frame(
        {
            "la_code": r["la_uni"][r["la_idx"][s]],
            "child_id": r["ch_uni"][r["ch_idx"][s]],
            "referral_id": ids[src],
            "episode_number": _number_within(ep_key),
            "closure_date": _as_ns(close_day),
            "closure_reason": reason,
            "referral_date": _as_ns(r["ref"][s]),
            "referral_nfa": sp["nfa"][closed],
            "primary_need": r["refs"]["primary_need"].to_numpy()[src],
            "referral_source": r["refs"]["referral_source"].to_numpy()[src],
            **child.columns(close_day),
            "end_date": _as_ns(end),
            "duration_days": (end - close_day).astype(np.int64),
            "event": event.astype(np.int64),
            "event_type": _EVENT_TYPES[kind],
            "next_referral_id": np.where(has_nxt, ids[r["src"][nxt]], None),
            "previous_referrals": sp["previous_referrals"][closed].astype(np.int64),
        }
    )
    counts.episodes = len(ep)
    counts.not_at_risk_died = int(died.sum())
    counts.not_at_risk_transferred = int(moved.sum())
    counts.not_at_risk_adult = int(adult.sum())
    counts.closed_on_extract_date = int(((close_day == extract) & ~at_closure).sum())
    ep.attrs["counts"] = counts.to_dict()
    return (ep, counts) if with_counts else ep


#: event_type by the code _endings gives
_EVENT_TYPES = np.array(["censored", "rereferral", "turned_18", "died", "transferred"], dtype=object)


def _as_ns(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _spells(r: dict, counts: EpisodeCounts) -> dict:
    """Spells of contact: a child's referral opening on or before the latest closure so far joins the open
    spell. Per spell (in the sorted order): first row, latest closure, the row that closed it, NFA
    (every referral NFA), the child's earlier referrals, and the first row of the child's next spell."""
    key, ref, clo = r["key"], r["ref"], r["closure"]
    n = len(key)
    first_of_child = np.ones(n, dtype=bool)
    first_of_child[1:] = key[1:] != key[:-1]
    # running latest closure within child; a referral at or before it joins the open spell
    # (rows are sorted by child: a composite of child and day makes one running max do it)
    base = int(ref.min())
    rel = np.minimum(clo - base, (1 << 24) - 1)  # still open: beyond any date
    runmax = np.maximum.accumulate(key * (1 << 24) + rel) - key * (1 << 24) + base
    runmax = np.where(runmax - base >= (1 << 24) - 1, OPEN, runmax)
    prev = np.empty(n, dtype=np.int64)
    prev[0] = NAT
    prev[1:] = runmax[:-1]
    new_spell = first_of_child | (ref > prev)
    starts = np.flatnonzero(new_spell)
    counts.merged_overlapping = int(n - len(starts))
    spell = np.cumsum(new_spell) - 1
    spell_close = np.maximum.reduceat(clo, starts)
    is_last_close = clo == spell_close[spell]
    spell_key = key[starts]
    child_first_row = np.maximum.accumulate(np.where(first_of_child, np.arange(n), 0))
    # the next spell of the same child, if any, is the re-referral
    has_next = np.zeros(len(starts), dtype=bool)
    has_next[:-1] = spell_key[1:] == spell_key[:-1]
    return {
        "starts": starts,
        "close": spell_close,
        "closer": np.maximum.reduceat(np.where(is_last_close, np.arange(n), -1), starts),
        "nfa": np.minimum.reduceat(r["nfa"].astype(np.int8), starts).astype(bool),
        "key": spell_key,
        "previous_referrals": starts - child_first_row[starts],
        "has_next": has_next,
        "next_start": np.where(has_next, np.append(starts[1:], 0), 0),
    }


def _closure_reasons(r: dict, c_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The closure reason of the referral that closed each spell (NFA or UNKNOWN where none recorded),
    and whether it was a death (RC2) or a transfer (RC5)."""
    rcode = r["reason"][c_rows]
    labels = np.concatenate([r["reason_uni"].astype(object), np.array([NFA_REASON, UNKNOWN_REASON], dtype=object)])
    m = len(r["reason_uni"])
    rcode = np.where(rcode >= 0, rcode, np.where(r["nfa"][c_rows], m, m + 1))

    def code_of(reason):
        return np.flatnonzero(labels == reason)[0] if (labels == reason).any() else -2

    return labels[rcode], rcode == code_of(contract.CLOSURE_DIED), rcode == code_of(contract.CLOSURE_TRANSFERRED)


class _ChildDetails:
    """The children table's details of each episode's child, joined on the integer child key."""

    def __init__(self, tables: dict, r: dict, ep_key: np.ndarray, counts: EpisodeCounts):
        children = require_table(tables, "children", ("la_code", "child_id", "date_of_birth", "sex", "ethnicity"))
        c_la = pd.Index(r["la_uni"]).get_indexer(as_strings(children["la_code"]))
        c_ch = pd.Index(r["ch_uni"]).get_indexer(as_strings(children["child_id"]))
        c_key = np.where((c_la >= 0) & (c_ch >= 0), c_la.astype(np.int64) * (len(r["ch_uni"]) + 1) + c_ch, -1)
        first_row = ~pd.Series(c_key).duplicated().to_numpy() & (c_key >= 0)
        hit = pd.Index(c_key[first_row]).get_indexer(ep_key)
        c_rows_all = np.flatnonzero(first_row)
        self.found = found = hit >= 0
        self.pos = c_rows_all[np.where(found, hit, 0)] if len(c_rows_all) else np.zeros(len(ep_key), dtype=np.int64)
        counts.unknown_child = int((~found).sum())
        self.children, self.n = children, len(ep_key)
        dob = day_numbers(children["date_of_birth"].to_numpy())[self.pos] if len(children) else np.full(self.n, NAT)
        self.dob_day = np.where(found, dob, NAT)

    def take(self, col: str, fill):
        """A column of the children table for each episode (``fill`` where unknown)."""
        if col not in self.children.columns or not len(self.children):
            return np.full(self.n, fill, dtype=object)
        codes, uniq = integer_codes(self.children[col].to_numpy())
        c = codes[self.pos]
        return np.concatenate([uniq, np.array([fill], dtype=object)])[np.where(self.found & (c >= 0), c, len(uniq))]

    def disability(self) -> np.ndarray:
        """The disability code, "NONE" where blank or unknown."""
        children = self.children
        dis_codes, dis_uni = (
            integer_codes(children["disability"].to_numpy())
            if "disability" in children and len(children)
            else (np.full(len(children), -1, dtype=np.int64), np.array([], dtype=object))
        )
        dis_uni = np.array(
            [("NONE" if str(v).strip() in ("", "nan", "None") else str(v)) for v in dis_uni] + ["NONE"], dtype=object
        )
        dc = dis_codes[self.pos] if len(children) else np.full(self.n, -1)
        return dis_uni[np.where(self.found & (dc >= 0), dc, len(dis_uni) - 1)]

    def columns(self, close_day: np.ndarray) -> dict:
        """The episode columns from date_of_birth to disability."""
        dob_day = self.dob_day
        return {
            "date_of_birth": np.where(dob_day == NAT, np.datetime64("NaT"), dob_day.astype("datetime64[D]")).astype(
                "datetime64[ns]"
            ),
            "age_at_closure": np.where(dob_day == NAT, np.nan, (close_day - dob_day) / 365.25),
            "sex": self.take("sex", None),
            "ethnicity": self.take("ethnicity", None),
            "disability": self.disability(),
        }


def _endings(dob_day, close_day, next_day, extract, died, moved):
    """How each episode ends: end day, event code, _EVENT_TYPES index, closed at 18, ended at closure."""
    b18 = _eighteenth_birthday_days(dob_day)
    adult = (b18 <= close_day) & ~died & ~moved
    at_closure = died | moved | adult
    rerefer = ~at_closure & (next_day != OPEN) & (next_day < b18) & (next_day <= extract)
    turned18 = ~at_closure & ~rerefer & (b18 <= extract)
    end = np.where(at_closure, close_day, np.where(rerefer, next_day, np.where(turned18, b18, extract)))
    event = np.where(at_closure | turned18, COMPETING, np.where(rerefer, REREFERRAL, CENSORED))
    kind = np.select([died, moved, adult | turned18, rerefer], [3, 4, 2, 1], 0)
    return end, event, kind, adult, at_closure


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
    r = sorted_referrals(tables, EpisodeCounts())
    ref = r["ref"]
    r = pd.DataFrame(
        {
            "la_code": r["la_uni"][r["la_idx"]],
            "year": _reporting_year(ref),
            "rereferral": _within_window(r["key"], ref),
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
    out["complete"] = _complete_years(out, r)
    out = _with_published(out)
    if year is not None:
        out = out.loc[out["year"] == int(year)]
    return out.reset_index(drop=True)


def _within_window(key: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Whether the child (sorted ``key``) had a referral on an earlier day within DFE_WINDOW_DAYS."""
    base = ref.min() if len(ref) else 0
    comp = key * (1 << 22) + (ref - base)
    pos = np.searchsorted(comp, comp, side="left") - 1  # last referral on an earlier day
    ok = pos >= 0
    posc = np.where(ok, pos, 0)
    same_child = ok & (key[posc] == key)
    gap = ref - ref[posc]
    return same_child & (gap <= DFE_WINDOW_DAYS)


def _complete_years(out: pd.DataFrame, r: pd.DataFrame) -> np.ndarray:
    """Years ended by the extract date with 12 months of earlier referrals to look back on."""
    first = r.groupby("la_code")["ref"].min()
    extract = r.groupby("la_code")["extract"].first()
    year_end = pd.to_datetime(out["year"].astype(str) + "-03-31").to_numpy(dtype="datetime64[D]").astype(np.int64)
    year_start = (
        pd.to_datetime((out["year"] - 1).astype(str) + "-04-01").to_numpy(dtype="datetime64[D]").astype(np.int64)
    )
    return (year_end <= out["la_code"].map(extract).to_numpy()) & (
        year_start - DFE_WINDOW_DAYS >= out["la_code"].map(first).to_numpy()
    )


def _with_published(out: pd.DataFrame) -> pd.DataFrame:
    """The council's published referrals, re-referrals and rate beside each year, for reconciliation."""
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
        return out.merge(pub, on=["la_code", "year"], how="left")
    except (ImportError, FileNotFoundError):  # pragma: no cover - reference data ships with the package
        return out
