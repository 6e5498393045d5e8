"""What the synthetic councils' model implies: the true effects an estimator should recover (truth.json).

The intervention's true risk and RMST differences averaged over the episodes at risk, by subgroup;
the programme's true effect by council-quarter and event time, and what a two-way fixed-effects
regression converges to. docs/synthetic-data.md lists every field.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import special

from insightlib import contract
from insightlib.simulate.synth_model import (
    _REASONS,
    INTERVENTION,
    MODEL,
    PROGRAMME,
    _log_fgc_by_need,
    _quarter,
    _quarter_label,
    _quarter_start,
)


def weibull_risk(log_a, horizon_days, shape: float = MODEL.weibull_shape) -> np.ndarray:
    """F(h) = 1 - exp(-a h^shape): probability of a re-referral within h days."""
    h = np.maximum(np.asarray(horizon_days, dtype=float), 0.0)
    return -np.expm1(-np.exp(log_a) * h**shape)


def weibull_rmst(log_a, horizon_days, shape: float = MODEL.weibull_shape) -> np.ndarray:
    """Restricted mean time without re-referral to the horizon (days): the integral of S."""
    a = np.exp(np.asarray(log_a, dtype=float))
    s = 1.0 / shape
    x = a * float(horizon_days) ** shape
    return special.gamma(s) * special.gammainc(s, x) / (shape * a**s)


def _subgroup_truth(rd, need, age, prev, disabled) -> dict:
    """True average risk difference in each subgroup, labelled as the intervention analysis labels them
    (primary_need codes; age_group bands; previous_referrals_group 0, 1, 2, 3+; disabled 1 or 0)."""
    out = {}
    labels = {
        "primary_need": np.array(contract.PRIMARY_NEED)[need],
        "age_group": np.asarray(contract.age_band(age)).astype(str),
        "previous_referrals_group": np.where(prev >= 3, "3+", prev.astype(str)),
        "disabled": disabled.astype(int).astype(str),
    }
    for var, lab in labels.items():
        out[var] = {
            str(v): {"ate_risk_difference": float(rd[lab == v].mean()), "episodes": int((lab == v).sum())}
            for v in np.unique(lab)
        }
    return out


def _intervention_truth(rec, ch, model):
    closed = rec["close"] >= 0
    at_risk = (
        closed
        & ~np.isin(rec["reason"], [_REASONS.index("RC2"), _REASONS.index("RC5")])
        & (rec["close"] < ch.b18[rec["child"]])
    )
    t = rec["treated"][at_risk]
    log_fgc = _log_fgc_by_need(model)[rec["need"][at_risk]]
    log_a0 = rec["log_a"][at_risk] - log_fgc * t
    log_a1 = log_a0 + log_fgc
    h, k = model.horizon_days, model.weibull_shape
    f0, f1 = weibull_risk(log_a0, h, k), weibull_risk(log_a1, h, k)
    m0, m1 = weibull_rmst(log_a0, h, k), weibull_rmst(log_a1, h, k)
    rd, rmst = f1 - f0, m1 - m0
    child = rec["child"][at_risk]
    age = (rec["close"][at_risk] - ch.dob[child]) / 365.25
    subgroups = _subgroup_truth(rd, rec["need"][at_risk], age, rec["j"][at_risk], ch.disabled[child])
    return {
        "hazard_ratio_by_need": {k: float(math.exp(v)) for k, v in zip(contract.PRIMARY_NEED, _log_fgc_by_need(model))},
        "subgroups": subgroups,
        "name": INTERVENTION,
        "true_hazard_ratio": model.intervention_hr,
        "horizon_days": h,
        "ate_risk_difference": float(rd.mean()),
        "att_risk_difference": float(rd[t].mean()),
        "ate_rmst_difference": float(rmst.mean()),
        "att_rmst_difference": float(rmst[t].mean()),
        "risk_untreated_all": float(f0.mean()),
        "risk_treated_all": float(f1.mean()),
        "naive_risk_difference": float(f1[t].mean() - f0[~t].mean()),
        "treated_share": float(t.mean()),
        "episodes": int(at_risk.sum()),
        "treated_episodes": int(t.sum()),
        "confounders": ["primary_need", "age_at_closure", "previous_referrals", "referral_nfa", "disability"],
        "propensity": {
            "formula": "logit p = intercept + gamma * (x'beta - log(referral_nfa_hr) * referral_nfa) "
            "+ nfa_logit * referral_nfa, clipped to bounds",
            "intercept": model.propensity_intercept,
            "gamma": model.propensity_gamma,
            "nfa_logit": model.propensity_nfa_logit,
            "bounds": list(model.propensity_bounds),
        },
        "episodes_averaged": "closed referrals at risk of re-referral: not closed RC2 or RC5, closed before "
        "the 18th birthday; the extract date and competing events are ignored",
        "risk_difference_unit": "fraction (risk treated minus risk untreated)",
        "rmst_unit": "days",
    }


def _twfe_estimand(cell: pd.DataFrame, n_la: int, q_first: int, q_last: int):
    """TWFE's coefficient on the true effects in a balanced council-by-quarter panel.

    TWFE is linear in the outcome, so with parallel trends it converges to its
    coefficient on the effects alone: sum(D~ tau) / sum(D~^2), D~ the two-way demeaned
    treatment dummy. With effects that grow after adoption this differs from the ATT.
    """
    n_q = q_last - q_first + 1
    if n_q < 2 or n_la < 2 or not len(cell):
        return None
    d = np.zeros((n_la, n_q))
    tau = np.zeros((n_la, n_q))
    inside = (cell["q"] >= q_first) & (cell["q"] <= q_last)
    rows, cols = cell["la"][inside].to_numpy(), (cell["q"][inside] - q_first).to_numpy()
    d[rows, cols] = 1.0
    tau[rows, cols] = cell["att"][inside].to_numpy()
    dt = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + d.mean()
    denom = float((dt**2).sum())
    return float((dt * tau).sum() / denom) if denom > 0 else None


def _programme_truth(rec, ch, councils, adopt_q, model, extract, start):
    h, k = model.horizon_days, model.weibull_shape
    closed = rec["close"] >= 0
    child = rec["child"][closed]
    close = rec["close"][closed]
    la = ch.la_index[child]
    reason = rec["reason"][closed]
    q = _quarter(close)
    follow = np.minimum(h, ch.b18[child] - close).astype(float)
    can = ~np.isin(reason, [_REASONS.index("RC2"), _REASONS.index("RC5")]) & (follow > 0)
    prog = rec["prog"][closed]
    log_a0 = rec["log_a"][closed] - np.log(prog)
    r1 = np.where(can, weibull_risk(log_a0 + np.log(prog), follow, k), 0.0)
    r0 = np.where(can, weibull_risk(log_a0, follow, k), 0.0)
    aq = adopt_q[la]
    full = _quarter_start(q + 1) - 1 + h <= extract
    treated = (aq >= 0) & (q >= aq) & full
    df = pd.DataFrame({"la": la[treated], "q": q[treated], "e": (q - aq)[treated], "d": (r1 - r0)[treated] * 100.0})
    cell = df.groupby(["la", "q", "e"], as_index=False).agg(att=("d", "mean"), n=("d", "size"))
    by_e = cell.groupby("e")["att"].mean()
    codes = councils["la_code"].to_numpy()
    adoption = {
        codes[i]: (str(np.datetime64(int(_quarter_start(adopt_q[i])), "D")) if adopt_q[i] >= 0 else None)
        for i in range(len(codes))
    }
    hr_q = {str(i): float(model.programme_hr(i)) for i in range(model.programme_ramp_quarters + 1)}
    twfe = _twfe_estimand(
        cell, len(codes), int(_quarter(np.array([start]))[0]), int(_quarter(np.array([extract - h + 1]))[0]) - 1
    )
    return {
        "name": PROGRAMME,
        "adoption": adoption,
        "hazard_ratio_by_quarters_since_adoption": hr_q,
        "hazard_ratio_note": f"quarters since adoption >= {model.programme_ramp_quarters} keep the last value; "
        "before adoption and in never-adopting councils the ratio is 1",
        "att_by_event_time": {str(int(e)): float(v) for e, v in by_e.items()},
        "att": float(cell["att"].mean()) if len(cell) else None,
        "att_closure_weighted": float(np.average(cell["att"], weights=cell["n"])) if len(cell) else None,
        "att_by_council_quarter": {
            codes[i]: {_quarter_label(int(qq)): float(v) for qq, v in zip(g["q"], g["att"])}
            for i, g in cell.groupby("la")
        },
        "treated_council_quarters": int(len(cell)),
        "twfe_estimand": twfe,
        "twfe_bias": None if twfe is None or not len(cell) else twfe - float(cell["att"].mean()),
        "twfe_note": "what a two-way fixed-effects regression of the council-quarter outcome on a post-adoption "
        "dummy converges to, given parallel trends: its coefficient on the true effects, over every "
        "council and every full-follow-up quarter from the window start (a balanced panel)",
        "outcome": "share of closures in the quarter re-referred within 365 days",
        "unit": "percentage points",
        "horizon_days": h,
        "follow_up": "council-quarters whose last day plus 365 days is on or before the extract date",
    }
