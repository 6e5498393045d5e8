"""Closed cases with a known risk of re-referral, for checking the risk model audit.

Each closed case has what is known at closure (age, previous referrals, primary need, whether
the referral was closed with no further action, a child protection plan, disability, sex, broad
ethnic group, a deprivation quintile) and a re-referral within the year drawn from a known
logistic risk function. ``signal`` scales every coefficient (0: no signal, the outcome is a coin
with the base rate). ``shift`` plants a miscalibration: for one group, from one date on, the
log-odds of re-referral rise by a fixed amount that no feature carries, so a model trained on
earlier closures under-predicts for that group on later ones. The truth (the oracle AUC of the
risk function on the later closures, the planted shift) comes back beside the frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEEDS = np.array(["N1", "N2", "N3", "N4", "N5", "N6", "N8", "N9"])
NEED_P = np.array([0.5, 0.07, 0.05, 0.13, 0.11, 0.06, 0.04, 0.04])
NEED_LOGIT = np.array([0.3, -0.4, 0.1, 0.0, 0.25, 0.15, 0.3, -0.5])
ETHNIC_GROUPS = np.array(["White", "Mixed", "Asian", "Black", "Other", "Not known"])
ETHNIC_P = np.array([0.72, 0.07, 0.08, 0.06, 0.03, 0.04])
FEATURES = ["age_at_closure", "previous_referrals", "primary_need", "referral_nfa", "had_cp_plan", "disabled"]


def _draw(rng, n):
    return {
        "age_at_closure": rng.uniform(0, 17.5, n),
        "previous_referrals": np.minimum(rng.poisson(0.9, n), 8).astype(float),
        "primary_need": NEEDS[rng.choice(len(NEEDS), n, p=NEED_P)],
        "referral_nfa": (rng.random(n) < 0.15).astype(int),
        "had_cp_plan": (rng.random(n) < 0.12).astype(int),
        "disabled": (rng.random(n) < 0.11).astype(int),
        "sex": np.where(rng.random(n) < 0.51, "M", "F"),
        "ethnic_group": ETHNIC_GROUPS[rng.choice(len(ETHNIC_GROUPS), n, p=ETHNIC_P)],
        "deprivation_quintile": rng.integers(1, 6, n),
    }


def true_logit(x: dict, signal: float = 1.0, intercept: float = -1.15) -> np.ndarray:
    """The known risk function (log-odds of re-referral within the year)."""
    need_eff = pd.Series(x["primary_need"]).map(dict(zip(NEEDS, NEED_LOGIT))).to_numpy(float)
    lin = (
        -0.06 * (x["age_at_closure"] - 8)
        + 0.45 * x["previous_referrals"]
        + need_eff
        + 0.5 * x["referral_nfa"]
        + 0.7 * x["had_cp_plan"]
        - 0.2 * x["disabled"]
    )
    return intercept + signal * lin


def _oracle_auc(p: np.ndarray) -> float:
    """Population AUC of the true risk as a score: each case counts as re-referred with weight p
    and not with weight 1 - p (exact for the draw, no outcome noise)."""
    order = np.argsort(p, kind="stable")
    ps = p[order]
    pos, neg = ps, 1 - ps
    # for each case, the negative weight strictly below it (ties count half)
    uniq, inv = np.unique(ps, return_inverse=True)
    neg_by = np.bincount(inv, weights=neg)
    below = np.concatenate([[0.0], np.cumsum(neg_by)[:-1]])
    wins = np.sum(pos * (below[inv] + 0.5 * neg_by[inv])) - 0.5 * np.sum(pos * neg)  # drop self-pairs
    return float(wins / (pos.sum() * neg.sum() - np.sum(pos * neg)))


def risk_frame(
    n: int = 8000,
    seed: int = 0,
    *,
    signal: float = 1.0,
    extract_date: str = "2025-03-31",
    years: float = 5.0,
    shift: dict | None = None,
    truth_draws: int = 200_000,
):
    """A frame of closed cases (one row each, several per child) with a known risk, and the truth.

    Closures are spread evenly over ``years`` to the extract date; a case closed in the last
    365 days has no outcome yet (NaN). ``shift``: {"column": "ethnic_group", "level": "Black",
    "logit": 1.0, "from": "2023-04-01"} adds ``logit`` to the log-odds of that group's cases
    closed on or after ``from``.
    """
    rng = np.random.default_rng(seed)
    x = _draw(rng, n)
    end = pd.Timestamp(extract_date)
    closure = end - pd.to_timedelta(rng.integers(0, int(365.25 * years), n), unit="D")
    eta = true_logit(x, signal)
    planted = np.zeros(n, bool)
    if shift:
        planted = (np.asarray(x[shift["column"]]) == shift["level"]) & (closure >= pd.Timestamp(shift["from"]))
        eta = eta + shift["logit"] * planted
    p = 1 / (1 + np.exp(-eta))
    y = (rng.random(n) < p).astype(float)
    known = (end - closure).days >= 365
    y = np.where(known, y, np.nan)
    n_children = max(1, int(n / 1.4))
    frame = pd.DataFrame(
        {
            "la_code": "999",
            "child_id": [f"c{c}" for c in rng.integers(0, n_children, n)],
            "closure_date": closure,
            "rereferred": y,
            **x,
        }
    )
    # truth: the oracle AUC of the risk function (without any planted shift) in a large draw
    t = _draw(np.random.default_rng(seed + 99_999), truth_draws)
    pt = 1 / (1 + np.exp(-true_logit(t, signal)))
    truth = {
        "auc": _oracle_auc(pt) if signal != 0 else 0.5,
        "rate": float(pt.mean()),
        "signal": signal,
        "shift": shift,
        "features": FEATURES,
    }
    return frame, truth
