"""Latent class analysis of binary indicators (assessment factors): fit, choose, check stability.

The model is the classic one (Lazarsfeld; Goodman 1974) that StepMix's ``measurement="binary"``
fits: each row belongs to one of K classes with probability ``pi_k``; given its class, each
indicator j is present independently with probability ``theta_kj``. It is fitted here by EM on
the distinct rows with their counts (assessments share few factor patterns, so this is tens of
times faster than fitting every row; tests check it reaches StepMix's log-likelihood on the same
data). Several random starts; the best log-likelihood is kept.

* ``choose_classes`` : BIC = -2 logL + p log n, p = (K - 1) + K J, for each K; the smallest wins.
* ``stability`` : adjusted Rand index between the chosen fit's classes and (a) fits from other
  random starts and (b) fits to bootstrap resamples, each classifying every row.
* ``distinctive`` : each class's factors ranked by lift (theta_kj over the indicator's overall share)
  among those present in at least ``min_prob`` of the class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score

EPS = 1e-6


@dataclass
class LCAFit:
    weights: np.ndarray  # (K,) class shares pi_k
    theta: np.ndarray  # (K, J) probability of each indicator given the class
    loglik: float
    n: int
    iterations: int
    converged: bool
    columns: list = field(default_factory=list)

    @property
    def k(self) -> int:
        return len(self.weights)

    @property
    def n_parameters(self) -> int:
        return (self.k - 1) + self.theta.size

    @property
    def bic(self) -> float:
        return -2 * self.loglik + self.n_parameters * np.log(self.n)

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        lt, l1t = np.log(self.theta), np.log1p(-self.theta)
        return X @ lt.T + (1 - X) @ l1t.T + np.log(self.weights)

    def posterior(self, X: np.ndarray) -> np.ndarray:
        lj = self.log_joint(np.asarray(X, dtype=float))
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.log_joint(np.asarray(X, dtype=float)).argmax(axis=1)

    def entropy_r2(self, X: np.ndarray) -> float:
        """Relative entropy (1 = every row clearly in one class; 0 = no separation)."""
        p = self.posterior(X).clip(1e-300)
        if self.k == 1:
            return 1.0
        return float(1 - (-(p * np.log(p)).sum()) / (len(X) * np.log(self.k)))


def patterns(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of a 0/1 matrix, their counts and each row's pattern index."""
    X = np.asarray(X, dtype=np.uint8)
    if X.ndim == 2 and 0 < X.shape[1] <= 62 and len(X) and X.max() <= 1:
        # each row as one integer, its first column the highest bit: np.unique(axis=0)'s rows in its order
        # (first column first), at a fraction of its cost
        key = X.astype(np.int64) @ (np.int64(1) << np.arange(X.shape[1] - 1, -1, -1, dtype=np.int64))
        _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        return X[first].astype(float), counts.astype(float), inverse.reshape(-1)
    uniq, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    return uniq.astype(float), counts.astype(float), inverse.reshape(-1)


def _em(U: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator, max_iter: int, tol: float):
    # classes by rows, patterns by columns: each reduction over the few classes then runs along whole rows,
    # several times faster than along the short rows of (patterns, classes) (issue 17)
    Ut = np.ascontiguousarray(U.T)
    resp = np.ascontiguousarray(rng.dirichlet(np.ones(k), size=len(U)).T)  # a random soft start
    prev = -np.inf
    for it in range(1, max_iter + 1):
        rw = resp * w
        nk = rw.sum(axis=1) + 1e-12
        pi = nk / nk.sum()
        theta = ((rw @ U) / nk[:, None]).clip(EPS, 1 - EPS)
        lt = np.log(theta)
        l1 = np.log1p(-theta)
        lj = (lt - l1) @ Ut
        lj += (l1.sum(axis=1) + np.log(pi))[:, None]
        top = lj.max(axis=0)
        np.exp(lj - top, out=resp)
        tot = resp.sum(axis=0)
        resp /= tot
        ll = float(w @ (top + np.log(tot)))
        if abs(ll - prev) <= tol * abs(ll):
            return pi, theta, ll, it, True
        prev = ll
    return pi, theta, ll, max_iter, False


def fit_lca(
    X, k: int, seed: int = 0, n_init: int = 10, max_iter: int = 500, tol: float = 1e-6, columns=None, counts=None
) -> LCAFit:
    """The best of ``n_init`` EM runs with K = ``k`` classes (classes ordered largest first).

    ``X`` may already be distinct patterns with ``counts``."""
    if counts is None:
        U, w, _ = patterns(X)
    else:
        U, w = np.asarray(X, dtype=float), np.asarray(counts, dtype=float)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        pi, theta, ll, it, ok = _em(U, w, k, rng, max_iter, tol)
        if best is None or ll > best[2]:
            best = (pi, theta, ll, it, ok)
    pi, theta, ll, it, ok = best
    order = np.argsort(-pi, kind="stable")
    return LCAFit(pi[order], theta[order], ll, int(w.sum()), it, ok, list(columns or []))


@dataclass
class ClassChoice:
    bic: pd.DataFrame  # k, loglik, n_parameters, bic, entropy
    chosen: int
    fits: dict

    @property
    def fit(self) -> LCAFit:
        return self.fits[self.chosen]


def choose_classes(X, ks=range(1, 11), seed: int = 0, n_init: int = 3, columns=None) -> ClassChoice:
    """Fit every K in ``ks`` (``n_init`` starts each) and choose the one with the smallest BIC."""
    U, w, _ = patterns(X)
    fits, rows = {}, []
    for k in ks:
        f = fit_lca(U, k, seed=seed + k, n_init=n_init, columns=columns, counts=w)
        fits[k] = f
        rows.append(
            {
                "k": k,
                "loglik": f.loglik,
                "n_parameters": f.n_parameters,
                "bic": f.bic,
                "entropy": f.entropy_r2(U) if k > 1 else 1.0,
                "converged": f.converged,
            }
        )
    table = pd.DataFrame(rows)
    chosen = int(table.loc[table["bic"].idxmin(), "k"])
    # the chosen number of classes refitted from more starts (EM finds local optima)
    final = fit_lca(U, chosen, seed=seed + 1000 + chosen, n_init=max(10, n_init), columns=columns, counts=w)
    if final.loglik > fits[chosen].loglik:
        fits[chosen] = final
        table.loc[table["k"] == chosen, ["loglik", "bic"]] = [final.loglik, final.bic]
    return ClassChoice(table, chosen, fits)


def stability(X, fit: LCAFit, seeds=(101, 102, 103), n_boot: int = 5, seed: int = 7, n_init: int = 2) -> dict:
    """Adjusted Rand index of the classes against refits from other starts and on bootstrap samples."""
    X = np.asarray(X, dtype=float)
    ref = fit.predict(X)
    U, w, inv = patterns(X)
    by_seed = [adjusted_rand_score(ref, fit_lca(U, fit.k, seed=s, n_init=n_init, counts=w).predict(X)) for s in seeds]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        counts = np.bincount(inv[rng.integers(0, len(X), len(X))], minlength=len(U)).astype(float)
        keep = counts > 0
        f = fit_lca(U[keep], fit.k, seed=int(rng.integers(1 << 30)), n_init=n_init, counts=counts[keep])
        boot.append(adjusted_rand_score(ref, f.predict(X)))
    return {
        "seeds": [float(v) for v in by_seed],
        "bootstrap": [float(v) for v in boot],
        "seed_min": float(min(by_seed)) if by_seed else np.nan,
        "bootstrap_median": float(np.median(boot)) if boot else np.nan,
        "bootstrap_min": float(min(boot)) if boot else np.nan,
    }


def distinctive(fit: LCAFit, X, min_prob: float = 0.3, top: int = 4) -> list[list[tuple[str, float, float]]]:
    """Per class: (indicator, probability in the class, lift over its overall share), most distinctive first."""
    overall = np.asarray(X, dtype=float).mean(axis=0).clip(EPS)
    out = []
    for k in range(fit.k):
        lift = fit.theta[k] / overall
        cand = [j for j in np.argsort(-lift) if fit.theta[k, j] >= min_prob]
        if not cand:  # a class of rare factors: its most likely ones
            cand = list(np.argsort(-fit.theta[k])[:top])
        out.append(
            [(fit.columns[j] if fit.columns else str(j), float(fit.theta[k, j]), float(lift[j])) for j in cand[:top]]
        )
    return out
