"""Effect estimators for a yes/no outcome and for time to re-referral, each with a valid interval:
IPW, regression adjustment, doubly robust (AIPW) with influence-function errors clustered by child,
propensity matching with Abadie-Imbens errors; inverse-probability-weighted Kaplan-Meier by arm
(stats/survival.weighted_km) with child-cluster bootstrap intervals; E-values (VanderWeele & Ding 2017)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.stats.propensity import fit_logistic, weights_for
from insightlib.stats.survival import km_steps, step_area, weighted_km


@dataclass
class Estimate:
    """A point estimate with its interval; ``method`` says how the interval was made."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float = float("nan")
    method: str = ""

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "se": self.se,
            "interval": self.method,
        }


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2))


def _cluster_se(influence: np.ndarray, clusters: np.ndarray) -> float:
    """SE of a mean-type estimator from its influence values, summed within child."""
    n = len(influence)
    sums = np.bincount(clusters, weights=influence)
    g = len(sums)
    adj = g / (g - 1) if g > 1 else 1.0
    return float(math.sqrt(adj * np.sum(sums**2)) / n)


def _from_if(est: float, infl: np.ndarray, clusters: np.ndarray, level: float, how: str) -> Estimate:
    se = _cluster_se(infl, clusters)
    z = _z(level)
    return Estimate(float(est), float(est - z * se), float(est + z * se), se, how)


def naive_difference(y, t, clusters, level=0.95) -> Estimate:
    """Unadjusted difference in re-referral proportions (what a simple comparison would say)."""
    n = len(y)
    p1, p0 = y[t == 1].mean(), y[t == 0].mean()
    q = t.mean()
    infl = t * (y - p1) / q - (1 - t) * (y - p0) / (1 - q)
    assert n > 0
    return _from_if(p1 - p0, infl, clusters, level, "influence function, clustered by child")


def ipw_estimate(y, t, X, e, clusters, estimand="ATE", level=0.95, info=None):
    """Normalised (Hajek) inverse probability weighting, with the propensity model's
    estimation accounted for in the influence function (Lunceford & Davidian 2004)."""
    n = len(y)
    if info is None:
        info = (X * (e * (1 - e))[:, None]).T @ X / n
    S = X * (t - e)[:, None]  # propensity score contributions
    Iinv_S = np.linalg.solve(info, S.T).T
    if estimand == "ATE":
        w1, w0 = t / e, (1 - t) / (1 - e)
        mu1 = np.sum(w1 * y) / np.sum(w1)
        mu0 = np.sum(w0 * y) / np.sum(w0)
        psi1 = w1 * (y - mu1)
        psi0 = w0 * (y - mu0)
        A1 = -(X * (t * (y - mu1) * (1 - e) / e)[:, None]).mean(axis=0)
        A0 = (X * ((1 - t) * (y - mu0) * e / (1 - e))[:, None]).mean(axis=0)
        if1 = (psi1 + Iinv_S @ A1) / (np.sum(w1) / n)
        if0 = (psi0 + Iinv_S @ A0) / (np.sum(w0) / n)
    else:
        p = t.mean()
        w0 = (1 - t) * e / (1 - e)
        mu1 = y[t == 1].mean()
        mu0 = np.sum(w0 * y) / np.sum(w0)
        if1 = t * (y - mu1) / p
        A0 = (X * (w0 * (y - mu0))[:, None]).mean(axis=0)
        if0 = (w0 * (y - mu0) + Iinv_S @ A0) / (np.sum(w0) / n)
    return _from_if(
        mu1 - mu0, if1 - if0, clusters, level, "influence function with propensity-model correction, clustered by child"
    ), (mu1, mu0, if1, if0)


def regression_estimate(y, t, X, clusters, estimand="ATE", level=0.95):
    """Regression adjustment (g-computation): a logistic model of re-referral in each arm,
    predictions averaged over the target population; delta-method influence function."""
    n = len(y)
    b1, _, info1 = fit_logistic(X[t == 1], y[t == 1])
    b0, _, info0 = fit_logistic(X[t == 0], y[t == 0])
    m1 = 1 / (1 + np.exp(-np.clip(X @ b1, -30, 30)))
    m0 = 1 / (1 + np.exp(-np.clip(X @ b0, -30, 30)))
    # The information of the penalised fit that was actually solved: a covariate level absent
    # from one arm leaves the unpenalised matrix singular, and its inverse is noise (an interval
    # of +-1e14 points); the ridge's direction carries no score, so it adds nothing to the variance.
    I1 = info1 * (np.sum(t == 1) / n)
    I0 = info0 * (np.sum(t == 0) / n)
    U1 = X * (t * (y - m1))[:, None]
    U0 = X * ((1 - t) * (y - m0))[:, None]
    if estimand == "ATE":
        target = np.ones(n)
    else:
        target = t.astype(float)
    q = target.mean()
    tau = np.sum(target * (m1 - m0)) / np.sum(target)
    g1 = (X * (target * m1 * (1 - m1))[:, None]).mean(axis=0) / q
    g0 = (X * (target * m0 * (1 - m0))[:, None]).mean(axis=0) / q
    infl = target * (m1 - m0 - tau) / q + U1 @ np.linalg.solve(I1, g1) - U0 @ np.linalg.solve(I0, g0)
    return _from_if(tau, infl, clusters, level, "delta-method influence function, clustered by child"), (m1, m0)


def aipw_estimate(y, t, e, m1, m0, clusters, estimand="ATE", level=0.95):
    """Augmented IPW (doubly robust): consistent if either the propensity or the outcome
    model is right; influence-function errors. Returns the estimate and the potential-outcome
    means with their influence values (used for the risk ratio and its E-value)."""
    n = len(y)
    if estimand == "ATE":
        phi1 = m1 + t * (y - m1) / e
        phi0 = m0 + (1 - t) * (y - m0) / (1 - e)
        mu1, mu0 = phi1.mean(), phi0.mean()
        if1, if0 = phi1 - mu1, phi0 - mu0
    else:
        p = t.mean()
        mu1 = y[t == 1].mean()
        phi0 = t * m0 + (1 - t) * e / (1 - e) * (y - m0)
        mu0 = phi0.sum() / t.sum()
        if1 = t * (y - mu1) / p
        if0 = (phi0 - t * mu0) / p
    assert n == len(t)
    return _from_if(mu1 - mu0, if1 - if0, clusters, level, "influence function (doubly robust), clustered by child"), (
        mu1,
        mu0,
        if1,
        if0,
    )


def _match(src_e: np.ndarray, pool_e: np.ndarray, pool_y: np.ndarray, tol: float = 1e-12):
    """Nearest neighbour(s) in ``pool`` for each ``src`` score, ties averaged (Abadie & Imbens).

    Returns the imputed outcome for each src, and for each pool unit K (times used, each use
    weighted 1/#matches) and L (sum of 1/#matches squared), for the variance."""
    u, inv, cnt = np.unique(pool_e, return_inverse=True, return_counts=True)
    ysum = np.bincount(inv, weights=pool_y, minlength=len(u))
    pos = np.searchsorted(u, src_e)
    lo, hi = np.clip(pos - 1, 0, len(u) - 1), np.clip(pos, 0, len(u) - 1)
    dl, dh = np.abs(src_e - u[lo]), np.abs(u[hi] - src_e)
    use_lo = dl <= dh + tol
    use_hi = (dh <= dl + tol) & ~(use_lo & (lo == hi))
    size = use_lo * cnt[lo] + use_hi * cnt[hi]
    yhat = (use_lo * ysum[lo] + use_hi * ysum[hi]) / size
    k = np.bincount(lo[use_lo], 1 / size[use_lo], len(u)) + np.bincount(hi[use_hi], 1 / size[use_hi], len(u))
    l2 = np.bincount(lo[use_lo], 1 / size[use_lo] ** 2, len(u)) + np.bincount(hi[use_hi], 1 / size[use_hi] ** 2, len(u))
    return yhat, k[inv], l2[inv]


def _within_variance(e_g: np.ndarray, y_g: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Conditional outcome variance of each unit from its nearest same-group neighbours
    (Abadie & Imbens 2006: J/(J+1) * (Y - mean of the J matches)^2)."""
    u, inv, cnt = np.unique(e_g, return_inverse=True, return_counts=True)
    ysum = np.bincount(inv, weights=y_g, minlength=len(u))
    same = cnt[inv] > 1
    lo, hi = inv - 1, inv + 1
    vlo, vhi = lo >= 0, hi < len(u)
    lo_c, hi_c = np.clip(lo, 0, len(u) - 1), np.clip(hi, 0, len(u) - 1)
    dl = np.where(vlo, u[inv] - u[lo_c], np.inf)
    dh = np.where(vhi, u[hi_c] - u[inv], np.inf)
    ul = vlo & (dl <= dh + tol)
    uh = vhi & (dh <= dl + tol)
    size = np.where(same, cnt[inv] - 1, ul * cnt[lo_c] + uh * cnt[hi_c])
    total = np.where(same, ysum[inv] - y_g, ul * ysum[lo_c] + uh * ysum[hi_c])
    size = np.maximum(size, 1)
    return size / (size + 1) * (y_g - total / size) ** 2


def matching_estimate(y, t, e, estimand="ATE", level=0.95):
    """1:1 nearest-neighbour matching on the propensity score with replacement (as DoWhy's
    propensity_score_matching; tied neighbours averaged) and the Abadie-Imbens (2006)
    variance: the bootstrap is not valid for this estimator. It ignores the estimation of
    the propensity score, which is conservative for the ATE (Abadie & Imbens 2016)."""
    y = y.astype(float)
    i1, i0 = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    y1hat, y0hat = y.copy(), y.copy()
    K, L = np.zeros(len(y)), np.zeros(len(y))
    y0hat[i1], K[i0], L[i0] = _match(e[i1], e[i0], y[i0])
    if estimand == "ATE":
        y1hat[i0], K[i1], L[i1] = _match(e[i0], e[i1], y[i1])
    sigma2 = np.zeros(len(y))
    for grp in (i1, i0):
        if len(grp) > 1:
            sigma2[grp] = _within_variance(e[grp], y[grp])
    if estimand == "ATE":
        tau = float(np.mean(y1hat - y0hat))
        n = len(y)
        var = (np.sum((y1hat - y0hat - tau) ** 2) + np.sum((K**2 + 2 * K - L) * sigma2)) / n**2
    else:
        tau = float(np.mean(y[i1] - y0hat[i1]))
        var = (np.sum((y[i1] - y0hat[i1] - tau) ** 2) + np.sum(((1 - t) * (K**2 - L)) * sigma2)) / len(i1) ** 2
    se = math.sqrt(max(var, 0.0))
    z = _z(level)
    return Estimate(tau, tau - z * se, tau + z * se, se, "Abadie-Imbens matching variance")


class _SurvivalFit:
    """Weighted KM for two fixed arms, sorted once, so each bootstrap replicate costs O(n)."""

    def __init__(self, time, event, horizon, t=None):
        self.horizon = horizon
        jumps = np.unique(time[(event == 1) & (time <= horizon)])
        self.grid = np.unique(np.concatenate([[0.0], jumps, [float(horizon)]]))
        self._arms = {}
        if t is not None:
            for v in (1, 0):
                idx = np.flatnonzero(t == v)
                order = idx[np.argsort(time[idx], kind="stable")]
                tt = time[order]
                uniq, start = np.unique(tt, return_index=True)
                pos = np.searchsorted(uniq, self.grid, side="right") - 1
                self._arms[v] = (order, event[order].astype(float), start, pos)

    def _curve(self, v, w):
        order, ee, start, pos = self._arms[v]
        return km_steps(w[order], ee, start, pos)

    def curves(self, time, event, t, w):
        if self._arms:
            return self._curve(1, w), self._curve(0, w)
        s1 = weighted_km(time[t == 1], event[t == 1], w[t == 1], self.grid)
        s0 = weighted_km(time[t == 0], event[t == 0], w[t == 0], self.grid)
        return s1, s0

    def summary(self, s1, s0):
        h = self.horizon
        r1, r0 = 1 - s1[-1], 1 - s0[-1]
        return r1 - r0, step_area(self.grid, s1, h) - step_area(self.grid, s0, h), r1, r0


def distinct_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(X, axis=0, return_inverse=True), the same rows in the same (lexicographic) order, by one integer
    key per row: each column's sorted codes combined as digits (np.unique's sort of whole rows took a tenth of the
    bootstrap). Falls back to np.unique when the key would not fit in 63 bits."""
    codes, radix = [], []
    for col in X.T:
        c, levels = pd.factorize(col, sort=True)
        codes.append(c.astype(np.int64))
        radix.append(len(levels))
    if not codes or np.sum(np.log2(np.maximum(radix, 1))) >= 62 or any((c < 0).any() for c in codes):
        Xu, inv = np.unique(X, axis=0, return_inverse=True)
        return Xu, np.asarray(inv).ravel()
    key = np.zeros(len(X), dtype=np.int64)
    for c, r in zip(codes, radix):
        key = key * r + c
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return X[first], np.asarray(inv).ravel()


class _GroupedRefit:
    """The propensity model refitted on a bootstrap replicate's counts, fitted on the distinct rows
    of its design (a council's covariates are categories: ~20,000 episodes, a few hundred distinct
    rows) with the treated and total counts of each: the same Newton steps from the same start, so
    the same coefficients (to rounding), at a hundredth of the cost."""

    def __init__(self, Xp, t):
        self.Xu, self.inv = distinct_rows(Xp)
        self.t = t
        self.k = len(self.Xu)

    def __call__(self, cnt, beta0):
        n_g = np.bincount(self.inv, weights=cnt, minlength=self.k)
        s_g = np.bincount(self.inv, weights=cnt * self.t, minlength=self.k)
        y_g = np.divide(s_g, n_g, out=np.zeros(self.k), where=n_g > 0)
        _, p_g, _ = fit_logistic(self.Xu, y_g, n_g, beta0=beta0, max_iter=15, tol=1e-7)
        return p_g[self.inv]

    def many(self, C, beta0, ridge=1e-6, max_iter=15, tol=1e-7):
        """Fitted probabilities (replicates x episodes) for a block of replicates' counts C: fit_logistic's
        Newton steps for all of them at once, each replicate stopping where fit_logistic would stop."""
        X, k = self.Xu, self.Xu.shape[1]
        N = np.stack([np.bincount(self.inv, weights=c, minlength=self.k) for c in C])
        S = np.stack([np.bincount(self.inv, weights=c * self.t, minlength=self.k) for c in C])
        sw = N.sum(axis=1)
        pen = ridge * np.eye(k)
        pen[0, 0] = 0.0
        beta = np.tile(beta0, (len(C), 1)).astype(float)
        active = np.arange(len(C))
        for _ in range(max_iter):
            b, n, y, w_ = beta[active], N[active], S[active], sw[active]
            p = 1.0 / (1.0 + np.exp(-np.clip(b @ X.T, -30, 30)))
            grad = (y - n * p) @ X / w_[:, None] - b @ pen.T
            # X'diag(v)X for each replicate by batched matrix products (BLAS; einsum of three operands was 8x slower)
            info = np.matmul(X.T[None] * (n * p * (1 - p))[:, None, :], X) / w_[:, None, None] + pen
            step = np.linalg.solve(info, grad[:, :, None])[:, :, 0]
            beta[active] = b + step
            active = active[np.max(np.abs(step), axis=1) >= tol]
            if not len(active):
                break
        P = 1.0 / (1.0 + np.exp(-np.clip(beta @ X.T, -30, 30)))
        return P[:, self.inv]


def _km_many(W, ee, start, pos):
    """km_steps for each row of W (replicates x episodes in time order) at once."""
    d = np.add.reduceat(W * ee, start, axis=1)
    leave = np.add.reduceat(W, start, axis=1)
    at_risk = W.sum(axis=1)[:, None] - np.concatenate([np.zeros((len(W), 1)), np.cumsum(leave, axis=1)[:, :-1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        haz = np.where(at_risk > 0, d / at_risk, 0.0)
    s = np.cumprod(1 - haz, axis=1)
    return np.where(pos >= 0, s[:, np.clip(pos, 0, None)], 1.0)


def _bootstrap_block(sf, refit, C, t, beta_ps, estimand):
    """A block of bootstrap replicates (rows of counts C, each with both arms present): the propensity
    refitted, the weighted curves, risk and RMST differences and log risk ratio of each."""
    E = np.clip(refit.many(C, beta_ps), 1e-6, 1 - 1e-6)
    W = weights_for(t, E, estimand) * C
    (o1, e1, st1, p1), (o0, e0, st0, p0) = sf._arms[1], sf._arms[0]
    a1, a0 = _km_many(W[:, o1], e1, st1, p1), _km_many(W[:, o0], e0, st0, p0)
    r1, r0 = 1 - a1[:, -1], 1 - a0[:, -1]
    g = np.append(sf.grid[sf.grid < sf.horizon], sf.horizon)
    dg = np.diff(g)
    rm = (a1[:, : len(dg)] * dg).sum(axis=1) - (a0[:, : len(dg)] * dg).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lrr = np.where((r1 > 0) & (r0 > 0), np.log(r1 / r0), np.nan)
    return np.column_stack([r1 - r0, rm, lrr]), a1, a0


def ipw_survival(
    tm, ev, t, Xp, beta_ps, clusters, horizon, estimand="ATE", reps=200, level=0.95, rng=None, *, grouped: bool = True
) -> dict:
    """Weighted Kaplan-Meier curves per arm, the risk, RMST difference and risk ratio at the
    horizon, with child-cluster bootstrap percentile intervals: children are resampled and the
    propensity model (design Xp, fitted coefficients beta_ps) refitted in each replicate, so the
    intervals carry the uncertainty of the weights. Fewer than 20 replicates: no intervals.
    ``grouped``: refit on the design's distinct rows (_GroupedRefit), a block of replicates at once
    (False refits row by row, one replicate at a time: the slower path the tests compare it with)."""
    rng = np.random.default_rng(0) if rng is None else rng
    e = np.clip(1 / (1 + np.exp(-np.clip(Xp @ beta_ps, -30, 30))), 1e-6, 1 - 1e-6)
    w = weights_for(t, e, estimand)
    sf = _SurvivalFit(tm, ev, horizon, t)
    s1, s0 = sf.curves(tm, ev, t, w)
    rd_km, rmst_d, r1, r0 = sf.summary(s1, s0)
    u1, u0 = sf.curves(tm, ev, t, np.ones_like(w))
    naive_rd_km, naive_rmst, _, _ = sf.summary(u1, u0)
    replicate = _grouped_replicates if grouped else _replicates_one_by_one
    boot, curves1, curves0 = replicate(sf, tm, ev, t, Xp, beta_ps, clusters, estimand, reps, rng)
    if reps >= 20:
        rd_est, rm_est, rr_km = _percentile_estimates(boot, (rd_km, rmst_d, r1 / r0), reps, level)
        c1, c0 = _curve_bands(curves1, curves0, level)
    else:
        rd_est = Estimate(rd_km, float("nan"), float("nan"), float("nan"), "none")
        rm_est = Estimate(rmst_d, float("nan"), float("nan"), float("nan"), "none")
        rr_km = None
        c1 = c0 = np.full((2, len(sf.grid)), np.nan)
    return {
        "fit": sf,
        "s1": s1,
        "s0": s0,
        "c1": c1,
        "c0": c0,
        "risk_difference": rd_est,
        "rmst_difference": rm_est,
        "risk_ratio": rr_km,
        "r1": r1,
        "r0": r0,
        "naive_risk_difference": naive_rd_km,
        "naive_rmst_difference": naive_rmst,
    }


def _empty_replicates(sf: _SurvivalFit, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN rows for each replicate: (risk difference, RMST difference, log risk ratio) and each arm's curve."""
    return np.full((reps, 3), np.nan), np.full((reps, len(sf.grid)), np.nan), np.full((reps, len(sf.grid)), np.nan)


def _grouped_replicates(sf, tm, ev, t, Xp, beta_ps, clusters, estimand, reps, rng):
    """The bootstrap in blocks of replicates (memory: a block is block x episodes), all of a block's refits
    and curves at once; a replicate missing an arm stays NaN."""
    boot, curves1, curves0 = _empty_replicates(sf, reps)
    if reps <= 0:
        return boot, curves1, curves0
    n_cl = clusters.max() + 1
    refit = _GroupedRefit(Xp, t)
    block = max(1, min(reps, 2_000_000 // max(len(t), 1)))
    for b0 in range(0, reps, block):
        ids = np.arange(b0, min(reps, b0 + block))
        C = np.stack([np.bincount(rng.integers(0, n_cl, n_cl), minlength=n_cl)[clusters] for _ in ids]).astype(float)
        ok = (C[:, t == 1].sum(axis=1) > 0) & (C[:, t == 0].sum(axis=1) > 0)
        if ok.any():
            boot[ids[ok]], curves1[ids[ok]], curves0[ids[ok]] = _bootstrap_block(sf, refit, C[ok], t, beta_ps, estimand)
    return boot, curves1, curves0


def _replicates_one_by_one(sf, tm, ev, t, Xp, beta_ps, clusters, estimand, reps, rng):
    """The slower path, replicate by replicate with the propensity refitted row by row (the tests compare)."""
    boot, curves1, curves0 = _empty_replicates(sf, reps)
    n_cl = clusters.max() + 1
    for i in range(reps):
        cnt = np.bincount(rng.integers(0, n_cl, n_cl), minlength=n_cl)[clusters].astype(float)
        if cnt[t == 1].sum() == 0 or cnt[t == 0].sum() == 0:
            continue
        _, eb_i, _ = fit_logistic(Xp, t, cnt, beta0=beta_ps, max_iter=15, tol=1e-7)
        eb_i = np.clip(eb_i, 1e-6, 1 - 1e-6)
        wi = weights_for(t, eb_i, estimand) * cnt
        a1, a0 = sf.curves(tm, ev, t, wi)
        rd_i, rm_i, r1_i, r0_i = sf.summary(a1, a0)
        boot[i] = rd_i, rm_i, (math.log(r1_i / r0_i) if r1_i > 0 and r0_i > 0 else np.nan)
        curves1[i], curves0[i] = a1, a0
    return boot, curves1, curves0


def _percentile_estimates(boot: np.ndarray, points: tuple[float, float, float], reps: int, level: float):
    """The risk difference, RMST difference and risk ratio with percentile intervals from the replicates."""
    alpha = 1 - level
    q = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    # the standard error that goes with the percentile interval (its half-width over z): the plain
    # SD of the replicates is swayed by the odd replicate whose refitted propensity nearly separates
    sd = (q[1] - q[0]) / (2 * _z(level))
    how = f"child-cluster bootstrap, {reps} replicates, propensity refitted each time (percentile)"
    rd, rmst, rr = points
    return (
        Estimate(rd, float(q[0, 0]), float(q[1, 0]), float(sd[0]), how),
        Estimate(rmst, float(q[0, 1]), float(q[1, 1]), float(sd[1]), how),
        Estimate(rr, float(math.exp(q[0, 2])), float(math.exp(q[1, 2])), float(sd[2]), how + " (se on the log scale)"),
    )


def _curve_bands(curves1: np.ndarray, curves0: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile bands of each arm's curve over the replicates that ran (a curve has no NaN)."""
    alpha = 1 - level
    done = ~np.isnan(curves1).any(axis=1) & ~np.isnan(curves0).any(axis=1)
    if not done.any():
        return np.full((2, curves1.shape[1]), np.nan), np.full((2, curves1.shape[1]), np.nan)
    return (
        np.quantile(curves1[done], [alpha / 2, 1 - alpha / 2], axis=0),
        np.quantile(curves0[done], [alpha / 2, 1 - alpha / 2], axis=0),
    )


def evalue_rr(rr: float) -> float:
    """E-value for a risk ratio: the strength of association (risk-ratio scale) an unmeasured
    confounder would need with both treatment and outcome to explain the estimate away."""
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    if rr < 1:
        rr = 1 / rr
    return float(rr + math.sqrt(rr * (rr - 1)))


def hr_to_rr(hr: float, common: bool = True) -> float:
    """Hazard ratio to an approximate risk ratio: as is for a rare outcome (< 15%), else
    VanderWeele's (2020) square-root conversion (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))."""
    if not common:
        return hr
    return (1 - 0.5 ** math.sqrt(hr)) / (1 - 0.5 ** math.sqrt(1 / hr))


def evalue(estimate: float, ci_low: float, ci_high: float, scale: str = "RR", *, common: bool = True) -> dict:
    """E-values for an estimate and for the confidence limit nearer the null (1 if the
    interval crosses the null). ``scale`` is RR or HR (converted to RR)."""
    conv = (lambda v: hr_to_rr(v, common)) if scale == "HR" else (lambda v: v)
    est, lo, hi = conv(estimate), conv(ci_low), conv(ci_high)
    if lo <= 1 <= hi:
        ci_e = 1.0
    elif est > 1:
        ci_e = evalue_rr(lo)
    else:
        ci_e = evalue_rr(hi)
    return {"estimate": evalue_rr(est), "ci": ci_e, "risk_ratio": est, "scale": scale}
