"""The test that groups share one re-referral hazard: log-rank (as R's ``survdiff``) or, where children
have several episodes, the child-clustered robust score test (R's ``coxph(Surv ~ group + cluster(id))``
robust score test), linear in the episodes. Checked against lifelines and R (tests/test_survival*.py).
Its words are in report/survival_words.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.errors import InputError
from insightlib.stats.survival import _as_arrays, _cluster_ids, _factorize_labels


@dataclass
class LogRankResult:
    """The test that the groups share one re-referral hazard.

    ``method`` names it: R's ``survdiff`` log-rank where each child has one episode, else the
    child-clustered robust score test (R's robust score test of ``coxph(Surv ~ group +
    cluster(id))``, ``summary(fit)$robscore``), since one child's episodes are not independent.
    """

    statistic: float
    df: int
    p_value: float
    groups: pd.DataFrame  # group, episodes, observed, expected
    method: str = "log-rank"
    logrank_statistic: float | None = None  # the unclustered log-rank, for comparison

    def to_dict(self) -> dict:
        return {
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "method": self.method,
            "logrank_statistic": self.logrank_statistic,
        }

    def table(self) -> pd.DataFrame:
        return self.groups.copy()


def logrank_test(durations, events, groups, clusters=None, ties: str = "efron") -> LogRankResult:
    """Test of equal re-referral hazards across two or more groups.

    Without ``clusters``, or where no child has two episodes: the log-rank test (R's survdiff,
    rho = 0). Otherwise the child-clustered robust score test of the Cox model with the group
    as factor, at coefficients 0 (R's ``coxph(Surv ~ group + cluster(id))$rscore``, Efron ties
    by default): U' (sum over children of U_c U_c')^-1 U, linear in the episodes.
    """
    t, e = _as_arrays(durations, events)
    out, (gi, inv, nk, dk) = _logrank(t, e, groups)
    cl = _cluster_ids(clusters, len(t))
    if cl is None or len(out.groups) < 2 or np.bincount(cl).max() < 2:
        return out
    if ties not in ("efron", "breslow"):
        raise InputError("ties must be 'efron' or 'breslow'.")
    stat, df = _robust_group_score(gi, inv, e == 1, nk, dk, cl, ties)
    return LogRankResult(
        statistic=stat,
        df=df,
        p_value=float(stats.chi2.sf(stat, df)) if df else np.nan,
        groups=out.groups,
        method="robust score, clustered by child",
        logrank_statistic=out.statistic,
    )


def _robust_group_score(gi, inv, ev, nk, dk, cl, ties="efron") -> tuple[float, int]:
    """Robust score test of no group effect (Cox, coefficients 0) with score residuals summed by cluster.

    At coefficients 0 every weight is 1, so each episode's score residual depends only on its
    group, its time and whether it is an event: built from per-time sums over the groups' numbers
    at risk (``nk``) and events (``dk``), then summed by child with one bincount per group.
    The same residuals as R's ``residuals(coxph, "score")`` (Efron or Breslow).
    """
    k, J = nk.shape
    n, d = nk.sum(0), dk.sum(0)
    if d.sum() == 0:
        return np.nan, 0
    di = d.astype(np.int64)
    rep = np.repeat(np.arange(J), di)  # one entry per event, at its time
    rank = np.arange(len(rep)) - (np.cumsum(di) - di)[rep]  # each event's place among its tied events
    f = rank / d[rep] if ties == "efron" else np.zeros(len(rep))
    den = n[rep] - f * d[rep]
    add = lambda wt: np.bincount(rep, weights=wt, minlength=J)  # noqa: E731
    a, b = add(1 / den), add(f / den)
    c0, c1, c2 = add(1 / den**2), add(f / den**2), add(f * f / den**2)
    S1, T1 = nk.T, dk.T  # J x k
    G = S1 * c0[:, None] - T1 * c1[:, None]
    Gp = S1 * (c0 - c1)[:, None] - T1 * (c1 - c2)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        XB = np.where(d[:, None] > 0, (S1 * a[:, None] - T1 * b[:, None]) / d[:, None], 0.0)
    CH, CG = np.cumsum(a), np.cumsum(G, axis=0)
    # residual of episode i, column m: A[time, event][m] + (m == its group) * B_i
    A = np.concatenate([CG, CG - G - XB + Gp])
    idx = inv + J * ev
    B = -CH[inv] + ev * (a[inv] + 1 - (a - b)[inv])
    n_cl = int(cl.max()) + 1
    Uc = np.bincount(cl * k + gi, weights=B, minlength=n_cl * k).reshape(n_cl, k)
    for m in range(k):
        Uc[:, m] += np.bincount(cl, weights=A[idx, m], minlength=n_cl)
    Uc = Uc[:, 1:]  # the first group is the reference (any choice gives the same test)
    u = Uc.sum(0)
    meat = Uc.T @ Uc
    return float(u @ np.linalg.pinv(meat) @ u), int(np.linalg.matrix_rank(meat))


def _logrank(t, e, groups):
    """R's survdiff (rho = 0), and the per-group, per-time counts the clustered test reuses."""
    gi, names = _factorize_labels(groups)
    present = np.flatnonzero(np.bincount(gi, minlength=len(names)))
    names = names[present]
    gi = np.searchsorted(present, gi)
    order = np.argsort(names.astype(str))
    codes = names[order]
    gi = np.argsort(order)[gi]
    k = len(codes)
    times, inv = np.unique(t, return_inverse=True)
    J = len(times)
    ev = (e == 1).astype(float)
    # per group and time: total leaving and events, then at risk by reverse cumsum
    flat = gi * J + inv
    leave = np.bincount(flat, minlength=k * J).reshape(k, J).astype(float)
    dk = np.bincount(flat, weights=ev, minlength=k * J).reshape(k, J)
    nk = np.cumsum(leave[:, ::-1], axis=1)[:, ::-1]
    nk_all, dk_all = nk, dk
    n = nk.sum(0)
    d = dk.sum(0)
    keep = d > 0
    nk, dk, n, d = nk[:, keep], dk[:, keep], n[keep], d[keep]
    p = nk / n
    observed = dk.sum(1)
    expected = (p * d).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    V = np.diag((p * c).sum(1)) - (p * c) @ p.T
    diff = observed - expected
    if k < 2:
        stat, df, pval = np.nan, 0, np.nan
    else:
        Vr = V[:-1, :-1]
        stat = float(diff[:-1] @ np.linalg.pinv(Vr) @ diff[:-1])
        df = int(np.linalg.matrix_rank(Vr))
        pval = float(stats.chi2.sf(stat, df))
    tab = pd.DataFrame(
        {"group": codes, "episodes": np.bincount(gi, minlength=k), "observed": observed, "expected": expected}
    )
    return LogRankResult(statistic=stat, df=df, p_value=pval, groups=tab), (gi, inv, nk_all, dk_all)
