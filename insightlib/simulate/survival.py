"""Referral tables with a known re-referral hazard: the survival estimators' test data and the national benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_tables(
    n_children: int,
    seed: int = 0,
    la_codes=("201",),
    start="2016-04-01",
    extract="2024-03-31",
    need_log_hr=None,
    base_rate: float = 1 / 700,
    max_referrals: int = 8,
) -> dict[str, pd.DataFrame]:
    """Councils, children and referrals in which the time from closure to the next referral
    is exponential with log hazard ratio ``need_log_hr[need]`` (default N1 0, N2 -0.5, N4 0.4).

    Vectorised: a few seconds for a million children. Includes NFA referrals (some with no
    closure date), deaths (RC2) and transfers (RC5) that end a child's referrals, cases still
    open at the extract, and children who turn 18 during follow-up.
    """
    rng = np.random.default_rng(seed)
    need_log_hr = need_log_hr or {"N1": 0.0, "N2": -0.5, "N4": 0.4}
    needs = np.array(list(need_log_hr))
    t0 = np.datetime64(start, "D").astype(np.int64)
    t_end = np.datetime64(extract, "D").astype(np.int64)
    n = n_children
    la = np.asarray(la_codes)[rng.integers(0, len(la_codes), n)]
    dob = t0 - rng.integers(0, 17 * 365, n)
    need = needs[rng.integers(0, len(needs), n)]
    lhr = np.array([need_log_hr[k] for k in need])
    chains = _referral_chains(rng, t0, t_end, dob, base_rate * np.exp(lhr), max_referrals)
    child_ids = ("C" + pd.Index(np.arange(n)).astype(str)).to_numpy()
    referrals = _referrals_table(rng, chains, la, need, child_ids, t_end)
    children = pd.DataFrame(
        {
            "la_code": la,
            "child_id": child_ids,
            "date_of_birth": dob.astype("datetime64[D]").astype("datetime64[ns]"),
            "sex": np.array(["M", "F"])[rng.integers(0, 2, n)],
            "ethnicity": np.array(["WBRI", "MWBC", "APKN", "BAFR", "OOTH"])[rng.integers(0, 5, n)],
            "disability": np.where(rng.random(n) < 0.1, "LD", "NONE"),
        }
    )
    councils = pd.DataFrame(
        {
            "la_code": list(la_codes),
            "la_name": [f"Council {c}" for c in la_codes],
            "extract_date": pd.Timestamp(extract),
        }
    )
    return {"councils": councils, "children": children, "referrals": referrals}


def _referral_chains(rng, t0: int, t_end: int, dob: np.ndarray, rate: np.ndarray, K: int) -> dict:
    """Each child's chain of up to ``K`` referrals (day numbers), the gap after each closure exponential
    with the child's ``rate``; a death or transfer ends the chain, as do the extract and the 18th
    birthday. Returns the kept (child, referral number) cells with their days, open lengths and reasons."""
    n = len(dob)
    first = t0 + rng.integers(0, t_end - t0, n)
    open_len = np.where(rng.random((n, K)) < 0.3, 0, rng.exponential(90, (n, K)).astype(np.int64) + 1)
    gaps = np.ceil(rng.exponential(1.0, (n, K)) / rate[:, None]).astype(np.int64)
    ref = np.empty((n, K), dtype=np.int64)
    clo = np.empty((n, K), dtype=np.int64)
    ref[:, 0] = first
    for k in range(K):
        clo[:, k] = ref[:, k] + open_len[:, k]
        if k + 1 < K:
            ref[:, k + 1] = clo[:, k] + gaps[:, k]
    u = rng.random((n, K))
    reason = np.where(open_len == 0, "RC8", np.where(u < 0.6, "RC7", "RC9")).astype(object)
    ends = rng.random((n, K))
    reason[ends < 0.002] = "RC2"
    reason[(ends >= 0.002) & (ends < 0.02)] = "RC5"
    stop = np.cumsum(np.isin(reason, ["RC2", "RC5"]), axis=1)
    alive = np.concatenate([np.ones((n, 1), bool), stop[:, :-1] == 0], axis=1)
    keep = alive & (ref <= t_end) & (ref < (dob + 18 * 365)[:, None])
    rows, cols = np.nonzero(keep)
    return {
        "rows": rows,
        "ref": ref[rows, cols],
        "close": clo[rows, cols],
        "open_len": open_len[rows, cols],
        "reason": reason[rows, cols],
    }


def _referrals_table(rng, chains: dict, la, need, child_ids, t_end: int) -> pd.DataFrame:
    """The referrals table of the chains: cases still open at the extract have no closure, and half the
    NFA referrals no closure date."""
    rows, r_day, c_day = chains["rows"], chains["ref"], chains["close"]
    still_open = c_day > t_end
    nfa = chains["open_len"] == 0
    no_date = nfa & (rng.random(len(rows)) < 0.5)
    closure = np.where(still_open | no_date, np.datetime64("NaT"), c_day.astype("datetime64[D]"))
    return pd.DataFrame(
        {
            "la_code": la[rows],
            "referral_id": ("R" + pd.Index(np.arange(len(rows))).astype(str)).to_numpy(),
            "child_id": child_ids[rows],
            "referral_date": r_day.astype("datetime64[D]").astype("datetime64[ns]"),
            "referral_source": np.array(["6", "2A", "3A", "1A"])[rng.integers(0, 4, len(rows))],
            "primary_need": need[rows],
            "referral_nfa": nfa,
            "closure_date": pd.to_datetime(closure),
            "closure_reason": np.where(still_open, None, chains["reason"]),
        }
    )
