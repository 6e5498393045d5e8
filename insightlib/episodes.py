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

#: Columns of the episode frame, in order (COMMON.md; other modules rely on exactly these).
EPISODE_COLUMNS = (
    "la_code", "child_id", "referral_id", "episode_number", "closure_date", "closure_reason",
    "referral_date", "referral_nfa", "primary_need", "referral_source", "date_of_birth",
    "age_at_closure", "sex", "ethnicity", "disability", "end_date", "duration_days", "event",
    "event_type", "next_referral_id", "previous_referrals",
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
    return pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[D]").astype(np.int64)


_NAT = np.iinfo(np.int64).min


def _as_bool(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return values.to_numpy()
    mapped = values.map(lambda v: v if isinstance(v, (bool, np.bool_)) else contract.BOOLEAN_VALUES.get(str(v).strip().lower()))
    if mapped.isna().any():
        row = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        raise InputError(f"referrals: row {row + 1}: referral_nfa is {values.iloc[row]!r}, not a yes/no value.")
    return mapped.astype(bool).to_numpy()


def _eighteenth_birthday(dob: pd.Series) -> np.ndarray:
    """Day number of the 18th birthday (29 February births: 1 March in a common year)."""
    dob = pd.to_datetime(dob)
    ok = dob.notna().to_numpy()
    out = np.full(len(dob), _OPEN, dtype=np.int64)  # no date of birth: no birthday ends observation
    if ok.any():
        d = dob[ok]
        year = d.dt.year.to_numpy() + contract.ADULT_AGE_YEARS
        month = d.dt.month.to_numpy()
        day = d.dt.day.to_numpy()
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        shift = (month == 2) & (day == 29) & ~leap
        day = np.where(shift, 1, day)
        month = np.where(shift, 3, month)
        b = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}))
        out[ok] = b.to_numpy(dtype="datetime64[D]").astype(np.int64)
    return out


def _sorted_referrals(tables: dict, counts: EpisodeCounts) -> pd.DataFrame:
    """Referrals with the extract date attached, bad ones refused, sorted by child and date."""
    councils = _require(tables, "councils", ("la_code", "extract_date"))
    refs = _require(
        tables, "referrals",
        ("la_code", "referral_id", "child_id", "referral_date", "referral_source", "primary_need", "referral_nfa"),
    )
    extract = councils.drop_duplicates("la_code").set_index("la_code")["extract_date"]
    extract = pd.to_datetime(extract)
    r = pd.DataFrame(
        {
            "la_code": refs["la_code"].astype(str).to_numpy(),
            "child_id": refs["child_id"].astype(str).to_numpy(),
            "referral_id": refs["referral_id"].astype(str).to_numpy(),
            "referral_source": refs["referral_source"].to_numpy(),
            "primary_need": refs["primary_need"].to_numpy(),
        }
    )
    r["row"] = np.arange(len(r))
    counts.referrals = len(r)
    unknown = ~r["la_code"].isin(extract.index)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"referrals: row {i + 1}: council {r['la_code'].iloc[i]} is not in the councils table, "
            "so its extract date (the end of observation) is unknown."
        )
    r["extract"] = _days(r["la_code"].map(extract).to_numpy())
    r["ref"] = _days(refs["referral_date"].to_numpy())
    if (r["ref"] == _NAT).any():
        i = int(np.flatnonzero((r["ref"] == _NAT).to_numpy())[0])
        raise InputError(f"referrals: row {i + 1}: referral_date is missing.")
    closure = _days(refs["closure_date"].to_numpy()) if "closure_date" in refs else np.full(len(r), _NAT)
    reason = (
        refs["closure_reason"].astype(object).where(refs["closure_reason"].notna(), None).to_numpy()
        if "closure_reason" in refs
        else np.full(len(r), None, dtype=object)
    )
    nfa = _as_bool(refs["referral_nfa"])
    bad = (closure != _NAT) & (closure < r["ref"].to_numpy())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"referrals: row {i + 1}: referral {r['referral_id'].iloc[i]} closes before it opens "
            "(closure_date before referral_date)."
        )
    r["nfa"] = nfa
    r["reason"] = reason
    # A referral dated after the extract cannot be in a true extract: excluded and counted.
    after = r["ref"].to_numpy() > r["extract"].to_numpy()
    counts.referrals_after_extract = int(after.sum())
    # A closure after the extract date was not known at the extract: the case was open then.
    late = (closure != _NAT) & (closure > r["extract"].to_numpy()) & ~after
    counts.closures_after_extract = int(late.sum())
    closure = np.where(late, _NAT, closure)
    # An NFA referral with no closure date closed the day it came in.
    fill = nfa & (closure == _NAT) & ~after & ~late
    counts.nfa_closed_at_referral = int(fill.sum())
    closure = np.where(fill, r["ref"].to_numpy(), closure)
    r["closure"] = np.where(closure == _NAT, _OPEN, closure)
    r = r.loc[~after].reset_index(drop=True)
    # one child = (council, child_id): the same pseudonym in two councils is two children
    la_codes, la_idx = np.unique(r["la_code"].to_numpy(), return_inverse=True)
    child_codes, child_idx = np.unique(r["child_id"].to_numpy(), return_inverse=True)
    r["key"] = la_idx.astype(np.int64) * (len(child_codes) + 1) + child_idx
    ref_rank = np.argsort(np.argsort(r["referral_id"].to_numpy(), kind="stable"), kind="stable")
    order = np.lexsort((ref_rank, r["closure"].to_numpy(), r["ref"].to_numpy(), r["key"].to_numpy()))
    return r.iloc[order].reset_index(drop=True)


def build_episodes(tables: dict[str, pd.DataFrame], *, with_counts: bool = False):
    """One row per closed spell of contact (COMMON.md columns); counts of every exclusion.

    Overlapping referrals of a child (one opening on or before the day another closes)
    are one spell: the later one is not a re-referral after closure. The spell takes its
    referral details from its first referral and its closure from the referral that
    closed last. Returns the frame, or (frame, EpisodeCounts) with ``with_counts=True``.
    """
    counts = EpisodeCounts()
    r = _sorted_referrals(tables, counts)
    n = len(r)
    key = r["key"].to_numpy()
    ref = r["ref"].to_numpy()
    clo = r["closure"].to_numpy()
    first_of_child = np.ones(n, dtype=bool)
    first_of_child[1:] = key[1:] != key[:-1]
    # running latest closure within child; a referral at or before it joins the open spell
    runmax = pd.Series(clo).groupby(key).cummax().to_numpy() if n else clo
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
    spell_nfa = np.minimum.reduceat(r["nfa"].to_numpy().astype(np.int8), starts).astype(bool)
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
    ep = pd.DataFrame(
        {
            "la_code": r["la_code"].to_numpy()[s],
            "child_id": r["child_id"].to_numpy()[s],
            "referral_id": r["referral_id"].to_numpy()[s],
        }
    )
    ep_key = spell_key[closed]
    close_day = spell_close[closed]
    ep["episode_number"] = pd.Series(ep_key).groupby(ep_key).cumcount().to_numpy() + 1
    ep["closure_date"] = close_day.astype("datetime64[D]").astype("datetime64[ns]")
    reason = r["reason"].to_numpy()[closer[closed]]
    nfa = spell_nfa[closed]
    missing_reason = pd.isna(reason)
    closer_nfa = r["nfa"].to_numpy()[closer[closed]]
    reason = np.where(missing_reason & closer_nfa, NFA_REASON, np.where(missing_reason, UNKNOWN_REASON, reason))
    ep["closure_reason"] = reason.astype(str)
    ep["referral_date"] = ref[s].astype("datetime64[D]").astype("datetime64[ns]")
    ep["referral_nfa"] = nfa
    ep["primary_need"] = r["primary_need"].to_numpy()[s]
    ep["referral_source"] = r["referral_source"].to_numpy()[s]

    # the child's characteristics
    children = _require(tables, "children", ("la_code", "child_id", "date_of_birth", "sex", "ethnicity"))
    ch = children.drop_duplicates(["la_code", "child_id"]).set_index(
        [children["la_code"].astype(str), children["child_id"].astype(str)]
    ) if len(children) else children
    idx = pd.MultiIndex.from_arrays([ep["la_code"], ep["child_id"]])
    pos = ch.index.get_indexer(idx) if len(children) else np.full(len(ep), -1)
    found = pos >= 0
    counts.unknown_child = int((~found).sum())

    def take(col, fill):
        if col not in children.columns or not len(children):
            return pd.Series([fill] * len(ep))
        vals = ch[col].to_numpy()[np.where(found, pos, 0)]
        out = pd.Series(vals).where(found, fill)
        return out

    dob = pd.to_datetime(take("date_of_birth", pd.NaT))
    ep["date_of_birth"] = dob.to_numpy()
    dob_day = _days(dob.to_numpy())
    ep["age_at_closure"] = np.where(dob_day == _NAT, np.nan, (close_day - dob_day) / 365.25)
    ep["sex"] = take("sex", None).to_numpy()
    ep["ethnicity"] = take("ethnicity", None).to_numpy()
    dis = take("disability", "NONE")
    dis = dis.where(dis.notna() & (dis.astype(str).str.strip() != ""), "NONE").astype(str)
    ep["disability"] = dis.to_numpy()

    # how each episode ends
    extract = r["extract"].to_numpy()[s]
    b18 = _eighteenth_birthday(dob)
    nxt = next_start[closed]
    has_nxt = has_next[closed]
    next_day = np.where(has_nxt, ref[nxt], _OPEN)
    died = reason == contract.CLOSURE_DIED
    moved = reason == contract.CLOSURE_TRANSFERRED
    adult = (b18 <= close_day) & ~died & ~moved
    at_closure = died | moved | adult
    rerefer = ~at_closure & has_nxt & (next_day < b18) & (next_day <= extract)
    turned18 = ~at_closure & ~rerefer & (b18 <= extract)
    end = np.where(
        at_closure, close_day, np.where(rerefer, next_day, np.where(turned18, b18, extract))
    )
    event = np.where(at_closure | turned18, COMPETING, np.where(rerefer, REREFERRAL, CENSORED))
    event_type = np.select(
        [died, moved, adult | turned18, rerefer], ["died", "transferred", "turned_18", "rereferral"], "censored"
    )
    ep["end_date"] = end.astype("datetime64[D]").astype("datetime64[ns]")
    ep["duration_days"] = (end - close_day).astype(np.int64)
    ep["event"] = event.astype(np.int64)
    ep["event_type"] = event_type
    ep["next_referral_id"] = np.where(has_nxt, r["referral_id"].to_numpy()[nxt], None)
    ep["previous_referrals"] = previous_referrals[closed].astype(np.int64)

    counts.episodes = len(ep)
    counts.not_at_risk_died = int(died.sum())
    counts.not_at_risk_transferred = int(moved.sum())
    counts.not_at_risk_adult = int(adult.sum())
    counts.closed_on_extract_date = int(((close_day == extract) & ~at_closure).sum())
    ep = ep.loc[:, list(EPISODE_COLUMNS)]
    ep.attrs["counts"] = counts.to_dict()
    return (ep, counts) if with_counts else ep


def at_risk(episodes: pd.DataFrame) -> pd.DataFrame:
    """Episodes that contribute follow-up time (duration > 0).

    Closures for death (RC2), transfer (RC5) or at 18 are counted as episodes but are
    never at risk of re-referral, nor are cases closed on the extract date itself.
    """
    return episodes.loc[episodes["duration_days"] > 0]


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
    key = r["key"].to_numpy()
    ref = r["ref"].to_numpy()
    base = ref.min() if len(ref) else 0
    comp = key * (1 << 22) + (ref - base)
    pos = np.searchsorted(comp, comp, side="left") - 1  # last referral on an earlier day
    ok = pos >= 0
    posc = np.where(ok, pos, 0)
    same_child = ok & (key[posc] == key)
    gap = ref - ref[posc]
    rerefer = same_child & (gap <= DFE_WINDOW_DAYS)
    r["year"] = _reporting_year(ref)
    r["rereferral"] = rerefer
    out = (
        r.groupby(["la_code", "year"])
        .agg(referrals=("rereferral", "size"), rereferrals=("rereferral", "sum"))
        .reset_index()
    )
    out["rate"] = out["rereferrals"] / out["referrals"]
    first = r.groupby("la_code")["ref"].min()
    extract = r.groupby("la_code")["extract"].first()
    year_end = pd.to_datetime(out["year"].astype(str) + "-03-31").to_numpy(dtype="datetime64[D]").astype(np.int64)
    year_start = pd.to_datetime((out["year"] - 1).astype(str) + "-04-01").to_numpy(dtype="datetime64[D]").astype(np.int64)
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
