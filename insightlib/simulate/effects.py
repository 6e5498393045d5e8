"""Closed cases with an intervention whose effect differs by subgroup, and the known effects.

Re-referral within the horizon has probability ``p0(x)`` without the intervention and
``p0(x) + effect[primary_need]`` with it (a risk difference, so each subgroup's true effect is
exactly its entry, and "no modification" means every entry equal). Children with previous
referrals or a child protection plan are likelier both to receive it and to come back
(confounding), as in the intervention analysis's own simulation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NEEDS = np.array(["N1", "N2", "N4", "N5"])
NEED_P = np.array([0.45, 0.15, 0.25, 0.15])
NEED_BASE = np.array([0.06, -0.06, 0.0, 0.04])
NEED_PS = np.array([0.4, -0.6, 0.0, 0.3])
#: Known effects by primary need (risk differences) in the modified world
MODIFIED = {"N1": -0.15, "N2": 0.0, "N4": -0.05, "N5": -0.10}
COVARIATES = ["age_at_closure", "previous_referrals", "had_cp_plan", "primary_need"]


def modified_frame(n: int = 3000, seed: int = 0, *, effects: dict | None = None):
    """An analysis frame (one row per closed case followed for the whole horizon) and the truth:
    {"primary_need": {level: true effect}} and the average effect over the population."""
    eff = MODIFIED if effects is None else effects
    rng = np.random.default_rng(seed)
    age = rng.uniform(0, 17, n)
    prev = np.minimum(rng.poisson(0.8, n), 6)
    cp = rng.random(n) < 0.2
    need = rng.choice(len(NEEDS), n, p=NEED_P)
    p0 = np.clip(0.22 + 0.05 * prev + 0.08 * cp + NEED_BASE[need] - 0.004 * (age - 8), 0.03, 0.75)
    logit = -1.2 + 0.04 * (age - 8) + 0.45 * prev + 0.9 * cp + NEED_PS[need]
    ps = np.clip(1 / (1 + np.exp(-logit)), 0.05, 0.9)
    t = (rng.random(n) < ps).astype(int)
    tau = np.array([eff[k] for k in NEEDS])[need]
    y = (rng.random(n) < p0 + tau * t).astype(float)
    frame = pd.DataFrame(
        {
            "la_code": "999",
            "child_id": [f"c{c}" for c in rng.integers(0, max(1, int(n / 1.3)), n)],
            "treatment": t,
            "outcome_binary": y,
            "age_at_closure": age,
            "previous_referrals": prev.astype(float),
            "had_cp_plan": cp.astype(int),
            "primary_need": NEEDS[need],
        }
    )
    share = np.array([np.mean(need == i) for i in range(len(NEEDS))])
    truth = {
        "primary_need": {k: float(eff[k]) for k in NEEDS},
        "ate": float(np.sum(NEED_P * np.array([eff[k] for k in NEEDS]))),
        "sample_shares": share.tolist(),
        "effect_scale": "risk difference (fraction)",
        "modified": len({eff[k] for k in NEEDS}) > 1,
    }
    return frame, truth
