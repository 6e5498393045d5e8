"""A funnel of each council's rate against the rate its deprivation predicts (pure statistics).

So that a council sees whether it is high *for its deprivation*, not merely high
(docs/practice.md has the model and its fit):

1. **Expected count.** A Poisson log-linear model across councils,
   ``log E[O_i] = log(population_i) + b0 + b1 * deprivation_i``, fitted by iteratively
   reweighted least squares; ``E_i`` is each council's fitted count (its population times the
   rate its deprivation predicts). The fitted counts add up to the observed total.
2. **Ratio.** ``R_i = O_i / E_i`` (1 = as its deprivation predicts); on the log scale
   ``y_i = log R_i`` with Poisson standard error ``s_i = 1 / sqrt(E_i)``.
3. **Over-dispersion.** Councils differ by far more than Poisson chance (recording, thresholds,
   services), so the limits allow for it, following Spiegelhalter (2005, Statistics in Medicine
   24:1185-1202) "additive random effects": the z-scores ``z_i = y_i / s_i`` are winsorised at
   their 10th and 90th centiles, ``phi = sum(z_w^2) / n`` (stats/funnel.winsorised_phi, as in the
   re-referral funnel's multiplicative factor), and if ``n * phi > n - p`` the
   between-council variance is ``tau^2 = (n phi - (n - p)) / (sum w - sum w^2 / sum w)``
   with ``w_i = 1 / s_i^2 = E_i`` (else 0).
4. **Limits.** At level ``L`` (0.95 and 0.998), ``exp(+/- z_L * sqrt(1 / E + tau^2))`` on the
   ratio scale; a council is above (below) where its ratio is beyond the limit for its ``E``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.stats.funnel import winsorised_phi

LEVELS = (0.95, 0.998)


@dataclass
class PoissonFit:
    coef: np.ndarray
    se: np.ndarray
    expected: np.ndarray
    deviance: float
    null_deviance: float
    pearson_phi: float
    iterations: int

    @property
    def deviance_explained(self) -> float:
        return float(1 - self.deviance / self.null_deviance) if self.null_deviance > 0 else float("nan")


def poisson_fit(observed, exposure, X: np.ndarray, max_iter: int = 100, tol: float = 1e-10) -> PoissonFit:
    """Poisson regression with a log(exposure) offset (IRLS). X includes the intercept column."""
    y = np.asarray(observed, dtype=float)
    off = np.log(np.asarray(exposure, dtype=float))
    X = np.asarray(X, dtype=float)
    beta = np.zeros(X.shape[1])
    beta[0] = np.log(y.sum() / np.exp(off).sum())
    for it in range(1, max_iter + 1):
        eta = off + X @ beta
        mu = np.exp(eta)
        info = X.T @ (X * mu[:, None])
        step = np.linalg.solve(info, X.T @ (y - mu))
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    mu = np.exp(off + X @ beta)
    info = X.T @ (X * mu[:, None])
    n, p = X.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_terms = 2 * (np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
        mu0 = np.exp(off) * y.sum() / np.exp(off).sum()
        null_terms = 2 * (np.where(y > 0, y * np.log(y / mu0), 0.0) - (y - mu0))
    phi = float(np.sum((y - mu) ** 2 / mu) / (n - p))
    se = np.sqrt(np.diag(np.linalg.inv(info)) * max(phi, 1.0))  # quasi-Poisson standard errors
    return PoissonFit(beta, se, mu, float(dev_terms.sum()), float(null_terms.sum()), phi, it)


def additive_tau2(y: np.ndarray, s: np.ndarray, n_params: int, winsor: float = 0.1) -> tuple[float, float]:
    """Spiegelhalter's additive random-effects variance tau^2 from winsorised z-scores, and phi."""
    z = y / s
    n = len(z)
    phi = winsorised_phi(z, winsor)
    w = 1 / s**2
    if n * phi <= n - n_params:
        return 0.0, phi
    return float((n * phi - (n - n_params)) / (w.sum() - (w**2).sum() / w.sum())), phi


@dataclass
class DeprivationFunnel:
    """Each council's observed and expected count, ratio, limits and verdict; the model's fit."""

    table: pd.DataFrame  # la_code, observed, population, deprivation, expected, ratio, lower_95 ... verdict
    coef: dict
    tau2: float
    phi: float
    deviance_explained: float
    covariate: str
    per: float

    def limits_at(self, expected, level: float) -> tuple[np.ndarray, np.ndarray]:
        z = stats.norm.ppf(1 - (1 - level) / 2)
        half = z * np.sqrt(1 / np.asarray(expected, dtype=float) + self.tau2)
        return np.exp(-half), np.exp(half)

    def to_dict(self) -> dict:
        cols = [
            "la_code",
            "observed",
            "population",
            "deprivation",
            "expected",
            "ratio",
            "rate",
            "expected_rate",
            "verdict",
        ]
        return {
            "covariate": self.covariate,
            "coef": self.coef,
            "tau2": self.tau2,
            "phi_winsorised": self.phi,
            "deviance_explained": self.deviance_explained,
            "n_councils": int(len(self.table)),
            "councils": {r["la_code"]: {c: r[c] for c in cols[1:]} for r in self.table[cols].to_dict("records")},
        }


def deprivation_funnel(
    df: pd.DataFrame,
    *,
    observed: str = "observed",
    population: str = "population",
    deprivation: str = "deprivation",
    per: float = 10_000,
) -> DeprivationFunnel:
    """The funnel for one row per council (rows with a missing value are dropped by the caller)."""
    d = df.reset_index(drop=True).copy()
    x = d[deprivation].to_numpy(float)
    X = np.column_stack([np.ones(len(d)), x])
    fit = poisson_fit(d[observed], d[population], X)
    d["expected"] = fit.expected
    d["ratio"] = d[observed] / d["expected"]
    d["rate"] = d[observed] / d[population] * per
    d["expected_rate"] = d["expected"] / d[population] * per
    y = np.log(d["ratio"].to_numpy(float).clip(1e-9))
    s = 1 / np.sqrt(d["expected"].to_numpy(float))
    tau2, phi = additive_tau2(y, s, X.shape[1])
    out = DeprivationFunnel(
        d,
        {"intercept": float(fit.coef[0]), "slope": float(fit.coef[1]), "slope_se": float(fit.se[1])},
        tau2,
        phi,
        fit.deviance_explained,
        deprivation,
        per,
    )
    verdict = np.full(len(d), "as expected", dtype=object)
    for level in LEVELS:
        lo, hi = out.limits_at(d["expected"], level)
        key = f"{level * 100:g}".replace(".", "_")
        d[f"lower_{key}"], d[f"upper_{key}"] = lo, hi
    verdict[d["ratio"] > d["upper_95"]] = "above (95%)"
    verdict[d["ratio"] < d["lower_95"]] = "below (95%)"
    verdict[d["ratio"] > d["upper_99_8"]] = "above (99.8%)"
    verdict[d["ratio"] < d["lower_99_8"]] = "below (99.8%)"
    d["verdict"] = verdict
    out.table = d
    return out
