"""Random-effects meta-analysis: one pooled answer from several councils' estimates.

Each council's estimate (with its standard error) is a study. Councils differ in more than
chance (practice, thresholds, who is offered the intervention), so the pooled estimate allows
for a between-council variance tau^2, estimated by DerSimonian and Laird's method of moments or
by restricted maximum likelihood (REML, the default of R's metafor). The result carries what a
reader needs to judge it: Cochran's Q, I^2 (the share of the spread that is not chance) and the
95% prediction interval for a new council (Higgins, Thompson and Spiegelhalter 2009, on t with
k - 2 degrees of freedom), which is wider than the interval for the average effect whenever
councils differ.

Pure statistics: numbers in, a small result out; words and charts are in insightlib.report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from insightlib.errors import InputError

METHODS = ("REML", "DL")


@dataclass(frozen=True)
class RandomEffects:
    """A pooled random-effects estimate and its heterogeneity."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    tau2: float
    q: float
    df: int
    p_heterogeneity: float
    i2: float  # 0 to 1
    pred_low: float | None  # the prediction interval needs at least 3 councils
    pred_high: float | None
    k: int
    method: str
    confidence_level: float

    @property
    def tau(self) -> float:
        return float(np.sqrt(self.tau2))

    def to_dict(self) -> dict:
        return asdict(self)


def _pool(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return mu, float(np.sqrt(1.0 / np.sum(w)))


def _tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    w = 1.0 / v
    mu = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - mu) ** 2))
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    return max(0.0, (q - (len(y) - 1)) / c) if c > 0 else 0.0


def _tau2_reml(y: np.ndarray, v: np.ndarray, tol: float = 1e-12, max_iter: int = 1000) -> float:
    """Fisher scoring on the restricted likelihood (as metafor does), from the DL estimate, kept at 0 or above."""
    tau2 = _tau2_dl(y, v)
    for _ in range(max_iter):
        w = 1.0 / (v + tau2)
        sw = np.sum(w)
        mu = np.sum(w * y) / sw
        # P-matrix quantities for the fixed-mean model: score and expected information of tau2
        p_diag_trace = np.sum(w) - np.sum(w**2) / sw
        r = y - mu
        score = 0.5 * (np.sum((w * r) ** 2) - p_diag_trace)
        # trace(P P) with P = W - w w' / sw
        info = 0.5 * (np.sum(w**2) - 2 * np.sum(w**3) / sw + (np.sum(w**2) / sw) ** 2)
        step = score / info
        new = max(0.0, tau2 + step)
        if abs(new - tau2) < tol * max(1.0, tau2):
            return float(new)
        tau2 = new
    raise InputError("The random-effects model did not converge (REML); try method='DL'.")


def random_effects(
    estimates, standard_errors, *, method: str = "REML", confidence_level: float = 0.95
) -> RandomEffects:
    """Pool ``estimates`` (one per council) with their ``standard_errors`` under a random-effects model.

    Councils without a finite estimate or a positive standard error are not given (the caller
    says which were left out and why)."""
    if method not in METHODS:
        raise InputError(f"Meta-analysis method must be one of {', '.join(METHODS)}, not {method!r}.")
    y = np.asarray(estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    if y.shape != se.shape or y.ndim != 1:
        raise InputError("Meta-analysis needs one standard error per estimate.")
    if len(y) < 2:
        raise InputError("Pooling needs at least two councils' estimates.")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise InputError("Every estimate pooled must be a number with a positive standard error.")
    v = se**2
    k = len(y)
    w = 1.0 / v
    mu_fixed = np.sum(w * y) / np.sum(w)
    q = float(np.sum(w * (y - mu_fixed) ** 2))
    tau2 = _tau2_reml(y, v) if method == "REML" else _tau2_dl(y, v)
    mu, mu_se = _pool(y, v, tau2)
    z = stats.norm.ppf(0.5 + confidence_level / 2)
    # I^2 as metafor gives it for any tau2 estimator: tau2 over tau2 plus the typical within-council variance
    typical = (k - 1) * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))
    i2 = float(tau2 / (tau2 + typical)) if tau2 > 0 else 0.0
    pred_low = pred_high = None
    if k >= 3:
        t = stats.t.ppf(0.5 + confidence_level / 2, k - 2)
        half = t * np.sqrt(tau2 + mu_se**2)
        pred_low, pred_high = float(mu - half), float(mu + half)
    return RandomEffects(
        estimate=mu,
        se=mu_se,
        ci_low=float(mu - z * mu_se),
        ci_high=float(mu + z * mu_se),
        tau2=float(tau2),
        q=q,
        df=k - 1,
        p_heterogeneity=float(stats.chi2.sf(q, k - 1)),
        i2=i2,
        pred_low=pred_low,
        pred_high=pred_high,
        k=k,
        method=method,
        confidence_level=confidence_level,
    )
