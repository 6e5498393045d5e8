"""Episodes with a known intervention effect (confounded by need, age and earlier referrals): the
intervention-effect estimators' test data."""

from __future__ import annotations

import numpy as np
import pandas as pd


SIM_GRAPH = """digraph {
  age_at_closure -> intervention;
  previous_referrals -> intervention; previous_referrals -> rereferral;
  had_cp_plan -> intervention; had_cp_plan -> rereferral;
  primary_need -> intervention; primary_need -> rereferral;
  intervention -> rereferral;
}"""
SIM_COVARIATES = ["age_at_closure", "previous_referrals", "had_cp_plan", "primary_need"]
_NEEDS = np.array(["N1", "N2", "N4", "N5"])
_NEED_P = np.array([0.45, 0.15, 0.25, 0.15])
_NEED_RISK = np.array([0.3, -0.4, 0.0, 0.2])
_NEED_PS = np.array([0.4, -0.6, 0.0, 0.3])


def _sim_x(rng, n):
    age = rng.uniform(0, 17, n)
    prev = np.minimum(rng.poisson(0.8, n), 6)
    cp = rng.random(n) < 0.2
    need = rng.choice(4, n, p=_NEED_P)
    return age, prev, cp, need


def _sim_rates(age, prev, cp, need, base_rate):
    lam = base_rate * np.exp(0.35 * prev + 0.6 * cp + _NEED_RISK[need])
    logit = -2.0 + 0.06 * (age - 8) + 0.55 * prev + 1.1 * cp + _NEED_PS[need]
    return lam, 1 / (1 + np.exp(-logit))


def simulate_frame(
    n: int = 4000,
    seed: int = 0,
    *,
    hazard_ratio: float = 0.7,
    horizon_days: int = 365,
    base_rate: float = 1 / 900,
    followup_days: float = 1500.0,
    truth_draws: int = 1_000_000,
):
    """An analysis frame with confounded assignment and a known effect, plus the truths.

    Children who were re-referred before and those on a child protection plan are both
    likelier to receive the intervention and likelier to come back (confounding); the
    intervention multiplies the re-referral hazard by ``hazard_ratio`` for every child.
    Closures are spread over ``followup_days`` before the extract date; the 18th birthday
    is a competing event. Truths are exact given the covariates, averaged over a large draw.
    """
    rng = np.random.default_rng(seed)
    frame = _episodes(rng, n, hazard_ratio, horizon_days, base_rate, followup_days)
    return frame, _truths(seed, truth_draws, hazard_ratio, horizon_days, base_rate)


def _episodes(rng, n: int, hazard_ratio: float, h: int, base_rate: float, followup_days: float) -> pd.DataFrame:
    """The generative model in order: covariates, propensity and treatment, event times, censoring (the
    extract date and the 18th birthday, a competing event), the horizon outcome and the children."""
    age, prev, cp, need = _sim_x(rng, n)
    lam, ps = _sim_rates(age, prev, cp, need, base_rate)
    t = (rng.random(n) < ps).astype(int)
    tstar = rng.exponential(1 / (lam * hazard_ratio**t))
    admin = rng.uniform(1, followup_days, n)
    adult = (18 - age) * 365.25
    end = np.minimum.reduce([tstar, admin, adult])
    time_ = np.maximum(np.ceil(end), 1.0)
    event = (tstar <= np.minimum(admin, adult)).astype(int)
    competing = ((adult < tstar) & (adult <= admin)).astype(int)
    followup = np.floor(np.minimum(admin, adult))
    binary = np.where(followup >= h, ((event == 1) & (time_ <= h)).astype(float), np.nan)
    n_children = max(1, int(n / 1.3))
    child = rng.integers(0, n_children, n)
    return pd.DataFrame(
        {
            "la_code": "999",
            "child_id": [f"c{c}" for c in child],
            "treatment": t,
            "time": time_,
            "event": event,
            "competing": competing,
            "followup": followup,
            "outcome_binary": binary,
            "age_at_closure": age,
            "previous_referrals": prev.astype(float),
            "had_cp_plan": cp.astype(int),
            "primary_need": _NEEDS[need],
        }
    )


def _truths(seed: int, draws: int, hazard_ratio: float, h: int, base_rate: float) -> dict:
    """The effects exactly given the covariates, averaged over ``draws`` fresh children (their own stream)."""
    trng = np.random.default_rng(seed + 10_000)
    a2, p2, c2, n2 = _sim_x(trng, draws)
    lam2, ps2 = _sim_rates(a2, p2, c2, n2, base_rate)
    r1 = 1 - np.exp(-lam2 * hazard_ratio * h)
    r0 = 1 - np.exp(-lam2 * h)
    m1 = (1 - np.exp(-lam2 * hazard_ratio * h)) / (lam2 * hazard_ratio)
    m0 = (1 - np.exp(-lam2 * h)) / lam2
    return {
        "ate_risk_difference": float(np.mean(r1 - r0)),
        "att_risk_difference": float(np.sum(ps2 * (r1 - r0)) / np.sum(ps2)),
        "ate_rmst_difference": float(np.mean(m1 - m0)),
        "att_rmst_difference": float(np.sum(ps2 * (m1 - m0)) / np.sum(ps2)),
        "ate_risk_ratio": float(np.mean(r1) / np.mean(r0)),
        "conditional_hazard_ratio": hazard_ratio,
        "horizon_days": h,
    }
