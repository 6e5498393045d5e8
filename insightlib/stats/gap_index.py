"""The skills gap index: demand share against supply share, on a log scale, with simulated intervals.

For each unit u (an occupation group or a sector subject area) and each signal k (employment,
projected requirement, FE achievements ...), the share is

    share[k, u] = (x[k, u] + 0.5) / sum_u (x[k, u] + 0.5)

(half a person added to every cell so that an empty cell has a finite log). Demand D[u] and
supply S[u] are weighted means of the demand and the supply signals' shares (weights summing
to one), and the gap index is

    G[u] = ln(D[u] / S[u])

0 means the unit's share of local demand equals its share of local learners; +0.69 means
twice the share of demand (short of local learners); -0.69 half (more learners than jobs).
Relative to England, G[u] - G_England[u] removes what is national structure (every area has
more care learners than care jobs, say) and leaves what is local.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Added to every cell before shares are taken (so that ln(0) never arises).
CONTINUITY = 0.5


def shares(values) -> np.ndarray:
    """Shares of the total along the last axis, with the continuity correction."""
    x = np.asarray(values, dtype=float) + CONTINUITY
    return x / x.sum(axis=-1, keepdims=True)


def _weighted(signals: dict[str, np.ndarray], weights: dict[str, float] | None) -> np.ndarray:
    names = list(signals)
    w = np.array([1.0 if weights is None else float(weights.get(n, 0.0)) for n in names])
    if w.sum() <= 0:
        raise ValueError("at least one signal needs a positive weight")
    w = w / w.sum()
    return sum(wi * shares(signals[n]) for wi, n in zip(w, names))


def gap_index(
    demand: dict[str, np.ndarray],
    supply: dict[str, np.ndarray],
    demand_weights: dict[str, float] | None = None,
    supply_weights: dict[str, float] | None = None,
) -> dict:
    """Demand share, supply share and the gap index; arrays may carry leading draw axes (B, U)."""
    d = _weighted(demand, demand_weights)
    s = _weighted(supply, supply_weights)
    return {"demand_share": d, "supply_share": s, "gap": np.log(d / s)}


def allocate_to_subjects(
    by_occupation: pd.Series | np.ndarray, crosswalk: pd.DataFrame, occupations, subjects
) -> np.ndarray:
    """Occupation counts spread over the subjects that feed them, by the crosswalk's weights.

    ``crosswalk`` has columns soc, ssa, weight (each occupation's weights sum to 1). Works on
    the last axis, so draws (B, n_occupations) give (B, n_subjects).
    """
    m = crosswalk_matrix(crosswalk, occupations, subjects)
    return np.asarray(by_occupation, dtype=float) @ m


def apportion_to_occupations(by_subject, crosswalk: pd.DataFrame, occupations, subjects) -> np.ndarray:
    """Subject counts (learners) split over the occupations each subject feeds, in proportion to weights."""
    m = crosswalk_matrix(crosswalk, occupations, subjects)
    col = m.sum(axis=0, keepdims=True)
    share = np.divide(m, col, out=np.zeros_like(m), where=col > 0)
    return np.asarray(by_subject, dtype=float) @ share.T


def crosswalk_matrix(crosswalk: pd.DataFrame, occupations, subjects) -> np.ndarray:
    """The (n_occupations, n_subjects) weight matrix."""
    occ = {o: i for i, o in enumerate(occupations)}
    sub = {s: j for j, s in enumerate(subjects)}
    m = np.zeros((len(occ), len(sub)))
    for row in crosswalk.itertuples(index=False):
        if row.soc in occ and row.ssa in sub:
            m[occ[row.soc], sub[row.ssa]] += float(row.weight)
    return m


# --- uncertainty ---------------------------------------------------------------------------


def draw_survey_estimates(estimate, ci95, draws: int, rng: np.random.Generator, unpublished=None) -> np.ndarray:
    """Draws of survey estimates (APS) with the published mean and 95% margin, never below zero.

    sd = ci95 / 1.96 (the published interval is estimate +- 1.96 sd). Draws are log-normal with
    that mean and sd (sigma^2 = ln(1 + (sd / estimate)^2)): survey estimates of employment are
    positive and, for small groups, skewed; a normal draw cut at zero would pile draws at 0.
    ``unpublished`` is, per unit, the most that cells too small to publish could add; a uniform
    share of it is drawn.
    """
    est = np.asarray(estimate, dtype=float)
    sd = np.nan_to_num(np.asarray(ci95, dtype=float), nan=0.0) / 1.96
    cv = np.divide(sd, est, out=np.zeros_like(est), where=est > 0)
    sigma = np.sqrt(np.log1p(cv**2))
    out = est * np.exp(sigma * rng.standard_normal((draws, est.size)) - sigma**2 / 2)
    if unpublished is not None:
        out = out + rng.uniform(0, 1, (draws, est.size)) * np.asarray(unpublished, dtype=float)
    return out


def draw_rounded_counts(counts, draws: int, rng: np.random.Generator, base: float = 10, small: float = 5) -> np.ndarray:
    """Draws of administrative counts published rounded to ``base`` ('~', NaN here, meaning fewer than ``small``).

    The counts are whole populations (no sampling error); what is unknown is the rounding and
    the suppressed cells, so each is drawn uniformly within what the published figure allows.
    """
    c = np.asarray(counts, dtype=float)
    out = c + rng.uniform(-base / 2, base / 2, (draws, c.size))
    missing = np.isnan(c)
    if missing.any():
        out[:, missing] = rng.uniform(0, small, (draws, int(missing.sum())))
    return np.clip(out, 0, None)


def summarise_draws(point: np.ndarray, draws: np.ndarray, level: float = 0.95) -> pd.DataFrame:
    """Percentile interval of each unit's value and of its rank (1 = largest), across the draws."""
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    ranks = (-draws).argsort(axis=1).argsort(axis=1) + 1
    point_rank = (-np.asarray(point)).argsort().argsort() + 1
    return pd.DataFrame(
        {
            "value": point,
            "ci_low": np.quantile(draws, lo, axis=0),
            "ci_high": np.quantile(draws, hi, axis=0),
            "rank": point_rank,
            "rank_low": np.quantile(ranks, lo, axis=0, method="lower").astype(int),
            "rank_high": np.quantile(ranks, hi, axis=0, method="higher").astype(int),
            "prob_positive": (draws > 0).mean(axis=0),
        }
    )
