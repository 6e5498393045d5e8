"""Kaplan-Meier (weighted or not), log-rank and restricted mean survival time: the one implementation.

Estimators, all vectorised over sorted times so that the national data (3.4 million
episodes) runs in seconds, and each checked against lifelines and R's survival package
(tests/test_survival.py, tests/test_survival_r.py):

- Kaplan-Meier by group, Greenwood variance or, with the child as cluster, the
  infinitesimal jackknife summed by child (R's ``survfit(..., cluster=id)``), log-log
  confidence bands (as lifelines and R's ``conf.type="log-log"``), numbers at risk at horizons;
  with case weights (``weighted_km``, inverse probability weighting in stats/effects);
- restricted mean survival time (RMST), each group and the differences between groups
  with the infinitesimal-jackknife variance summed within child (R's ``se(rmean)`` when
  each child has one episode); ``step_area`` is the area under any step curve.

The test that groups differ (log-rank or its child-clustered robust score test) is in stats/logrank.py,
Aalen-Johansen cumulative incidence in stats/competing_risks.py, Cox in stats/cox.py.
Every clustered variance is linear in the episodes: cumulative sums over sorted times
and one sort by child, never a child-by-time matrix. No words, no files, no charts: those
are in report/rereferral*.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.errors import InputError

DEFAULT_HORIZONS = (91, 182, 365)


def _factorize_labels(labels) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names (as strings; missing becomes "nan") without string work per row."""
    codes, uniq = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=True)
    names = np.array([str(u) for u in uniq] + ["nan"], dtype=object)
    codes = np.where(codes < 0, len(uniq), codes)
    return codes, names


def _as_arrays(durations, events, event_of_interest=1):
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events)
    if t.ndim != 1 or len(t) != len(e):
        raise InputError("durations and events must be one-dimensional and of the same length.")
    if np.isnan(t).any() or (t < 0).any():
        raise InputError("Durations must be present and not negative.")
    return t, e


def _event_table(t: np.ndarray, e: np.ndarray, event_of_interest=1):
    """Distinct times with numbers at risk, events of interest, all events, censored."""
    times, inv = np.unique(t, return_inverse=True)
    total = np.bincount(inv, minlength=len(times)).astype(float)
    d = np.bincount(inv, weights=(e == event_of_interest).astype(float), minlength=len(times))
    d_all = np.bincount(inv, weights=(e != 0).astype(float), minlength=len(times))
    at_risk = np.cumsum(total[::-1])[::-1]
    return times, at_risk, d, d_all, total - d_all


def _at_risk_at(t_sorted: np.ndarray, at) -> np.ndarray:
    """Numbers with duration >= each horizon (R's n.risk at that time)."""
    return len(t_sorted) - np.searchsorted(t_sorted, np.asarray(at, dtype=float), side="left")


def _cluster_ids(clusters, n: int) -> np.ndarray | None:
    """Integer cluster codes (None: every episode its own cluster)."""
    if clusters is None:
        return None
    cl = pd.factorize(np.asarray(clusters))[0]
    if len(cl) != n:
        raise InputError("clusters must have one value per episode.")
    return cl


def _clustered_sumsq(slot: np.ndarray, cl: np.ndarray, b: np.ndarray, L, R: np.ndarray, G, J: int) -> np.ndarray:
    """Sum over clusters of the squared summed influence, at each of ``J`` distinct times, in linear time.

    Episode i adds ``-R[j]`` to its cluster's influence at times j before its own slot and
    ``b[i] - L[i] * G[j]`` from its slot on (the form every Kaplan-Meier, Aalen-Johansen and
    RMST influence function here takes). With D_c = B_c - Lambda_c G - m_c R (m_c: members
    not yet at their slot) the sum of D_c^2 needs six running sums over clusters, each
    changed only when an episode reaches its slot: one sort by (child, time) and cumulative
    sums, never a child-by-time matrix.
    """
    n = len(slot)
    L = np.zeros(n) if L is None else L
    G = np.zeros(J) if G is None else G
    order = np.lexsort((slot, cl))
    c, sl, bb, ll = cl[order], slot[order], b[order], L[order]
    first = np.ones(n, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    excl_b = np.cumsum(bb) - bb
    excl_l = np.cumsum(ll) - ll
    B = excl_b - excl_b[start]  # the cluster's sums before this episode reaches its slot
    Lam = excl_l - excl_l[start]
    size = np.bincount(c)
    m = size[c] - (np.arange(n) - start)
    deltas = np.stack(
        [
            2 * B * bb + bb * bb,
            2 * Lam * ll + ll * ll,
            1.0 - 2 * m,
            B * ll + bb * Lam + bb * ll,
            bb * m - B - bb,
            ll * m - Lam - ll,
        ]
    )
    sums = np.cumsum(np.stack([np.bincount(sl, weights=dd, minlength=J) for dd in deltas]), axis=1)
    sums[2] += float(np.sum(size.astype(float) ** 2))
    bsq, lsq, msq, bl, bm, lm = sums
    out = bsq + G * G * lsq + R * R * msq - 2 * G * bl - 2 * R * bm + 2 * G * R * lm
    return np.maximum(out, 0.0)


def _km_log_influence_sumsq(t, e, cl, times, n, d) -> np.ndarray:
    """Infinitesimal-jackknife variance of log S(t) summed by cluster (R's ``survfit(..., cluster=id)``).

    Episode i's influence on log S(t) is -sum over t_j <= t of (dN_i(t_j) - Y_i(t_j) d_j/n_j) / (n_j - d_j);
    with one episode per cluster the sum of squares is Greenwood's exactly.
    """
    slot = np.searchsorted(times, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > d, 1.0 / (n - d), 0.0)
    Q = np.cumsum(d / n * a)
    f = (e == 1) * a[slot] - Q[slot]
    return _clustered_sumsq(slot, cl, f, None, Q, None, len(times))


def km_table(durations, events, alpha: float = 0.05, clusters=None) -> pd.DataFrame:
    """Kaplan-Meier at every distinct time with a log-log band (lifelines' and R's log-log).

    Variance: Greenwood; with ``clusters`` (one child's episodes are not independent) the
    infinitesimal jackknife summed by child, as R's ``survfit(..., cluster=id)``.
    """
    t, e = _as_arrays(durations, events)
    times, n, d, _, c = _event_table(t, e, 1)
    cl = _cluster_ids(clusters, len(t))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n)
        if cl is None:
            green = np.cumsum(np.where(n > d, d / (n * (n - d)), np.where(d > 0, np.inf, 0.0)))
        else:
            green = _km_log_influence_sumsq(t, e, cl, times, n, d)
        z = stats.norm.ppf(1 - alpha / 2)
        logs = np.log(surv)
        se_loglog = np.sqrt(green) / np.abs(logs)
        lo = np.exp(-np.exp(np.log(-logs) + z * se_loglog))
        hi = np.exp(-np.exp(np.log(-logs) - z * se_loglog))
        se = np.where(surv > 0, surv * np.sqrt(green), 0.0)
    lo = np.where(surv >= 1.0, 1.0, np.where(surv <= 0, 0.0, lo))
    hi = np.where(surv >= 1.0, 1.0, np.where(surv <= 0, 0.0, hi))
    return pd.DataFrame(
        {
            "time": times,
            "at_risk": n,
            "events": d,
            "censored": c,
            "survival": surv,
            "se": se,
            "ci_low": lo,
            "ci_high": hi,
        }
    )


@dataclass
class KMResult:
    """Kaplan-Meier curves by group (competing events treated as censoring)."""

    curves: dict[str, pd.DataFrame]
    horizons: tuple[int, ...]
    group_by: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    alpha: float = 0.05
    labels: dict[str, str] = field(default_factory=dict)  # group names in words for legends
    durations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # sorted, for numbers at risk

    def at(self, group: str, horizon: float) -> dict:
        c = self.curves[group]
        t = c["time"].to_numpy()
        idx = np.searchsorted(t, horizon, side="right") - 1
        if idx < 0:
            s, lo, hi = 1.0, 1.0, 1.0
        else:
            s, lo, hi = (float(c[k].iloc[idx]) for k in ("survival", "ci_low", "ci_high"))
        d = self.durations[group]
        n = int(len(d) - np.searchsorted(d, horizon, side="left"))
        return {"survival": s, "ci_low": lo, "ci_high": hi, "at_risk": n}

    def to_dict(self) -> dict:
        return {g: {str(int(h)): self.at(g, h) for h in self.horizons} for g in self.curves}

    def table(self) -> pd.DataFrame:
        rows = []
        for g in self.curves:
            for h in self.horizons:
                a = self.at(g, h)
                rows.append(
                    {"group": g, "days": int(h), "episodes": self.sizes.get(g), **a, "rereferred": 1 - a["survival"]}
                )
        return pd.DataFrame(rows)


def _split(groups, n):
    """Group names and the row indices of each (one factorisation, no per-group string scans)."""
    if groups is None:
        return [("All", np.arange(n))]
    codes, names = _factorize_labels(groups)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = [(str(names[k]), order[bounds[k] : bounds[k + 1]]) for k in range(len(names)) if bounds[k + 1] > bounds[k]]
    return sorted(out, key=lambda kv: kv[0])


def kaplan_meier(
    durations,
    events,
    groups=None,
    horizons=DEFAULT_HORIZONS,
    alpha: float = 0.05,
    group_by: str | None = None,
    clusters=None,
) -> KMResult:
    """Kaplan-Meier of time to re-referral (event 1) by group; other events are censoring.

    ``clusters`` (the child): bands from the infinitesimal jackknife summed by child.
    """
    t, e = _as_arrays(durations, events)
    cl = _cluster_ids(clusters, len(t))
    curves, sizes, durs = {}, {}, {}
    for name, rows in _split(groups, len(t)):
        curves[name] = km_table(t[rows], e[rows], alpha, None if cl is None else cl[rows])
        sizes[name] = len(rows)
        durs[name] = np.sort(t[rows])
    return KMResult(
        curves=curves,
        horizons=tuple(int(h) for h in horizons),
        group_by=group_by,
        sizes=sizes,
        alpha=alpha,
        durations=durs,
    )


def _rmst_parts(t: np.ndarray, e: np.ndarray, tau: float):
    """RMST to ``tau``, R's variance (``se(rmean)``), and each episode's influence (sums to zero).

    The influence is the infinitesimal jackknife of the area under the Kaplan-Meier curve:
    -sum over event times t_j <= tau of A_j (dN_i(t_j) - Y_i(t_j) d_j / n_j) / (n_j - d_j), where
    A_j is the area from t_j to tau. Its sum of squares is R's variance exactly.
    """
    times, n, d, _, _ = _event_table(t, e, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n)
    ev = (d > 0) & (times <= tau)
    # area under the step function from each distinct time to tau
    pieces = step_pieces(np.concatenate([[0.0], times]), np.concatenate([[1.0], surv]), tau)
    rmst = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1]  # tail[k] = area from grid[k] to tau
    # A_j: area from time j to tau (times strictly below tau)
    A = np.zeros(len(times))
    below = times < tau
    A[below] = tail[1:][: below.sum()]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ev & (n > d), d / (n * (n - d)), 0.0)
        a = np.where(ev & (n > d), A / (n - d), 0.0)  # where n_j = d_j the curve is 0 after t_j, so A_j = 0
    var = float(np.sum(A**2 * w))
    slot = np.searchsorted(times, t)
    comp = np.cumsum(a * d / n)  # compensator: sum over t_j <= T_i of A_j (d_j / n_j) / (n_j - d_j)
    infl = -(np.where(e == 1, a[slot], 0.0) - comp[slot])
    return rmst, var, infl


@dataclass
class RMSTResult:
    """Average days out of contact within the first ``horizon`` days after closure."""

    horizon: int
    groups: pd.DataFrame  # group, episodes, rmst, se, ci_low, ci_high
    differences: pd.DataFrame  # group, reference, difference, se, ci_low, ci_high, p_value

    def to_dict(self) -> dict:
        return {
            "horizon": self.horizon,
            "groups": {
                r.group: {"rmst": r.rmst, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high}
                for r in self.groups.itertuples()
            },
            "differences": {
                r.group: {
                    "reference": r.reference,
                    "difference": r.difference,
                    "se": r.se,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "p_value": r.p_value,
                }
                for r in self.differences.itertuples()
            },
        }

    def table(self) -> pd.DataFrame:
        return self.groups.merge(
            self.differences[["group", "difference", "ci_low", "ci_high", "p_value"]],
            on="group",
            how="left",
            suffixes=("", "_difference"),
        )


def rmst(
    durations, events, groups=None, horizon: int = 365, clusters=None, reference: str | None = None, alpha: float = 0.05
) -> RMSTResult:
    """RMST by group and each group's difference from ``reference`` (default: the largest group).

    Every variance is the infinitesimal jackknife summed by child (``clusters``): each
    child's influence across all their episodes, so it is right when one child's episodes
    fall in the same or different groups. Without clusters it is R's ``se(rmean)``.
    """
    t, e = _as_arrays(durations, events)
    cl = np.arange(len(t)) if clusters is None else pd.factorize(np.asarray(clusters))[0]
    n_cl = int(cl.max()) + 1 if len(cl) else 0
    z = stats.norm.ppf(1 - alpha / 2)
    parts = _split(groups, len(t))
    if reference is None:
        reference = max(parts, key=lambda kv: len(kv[1]))[0]
    if reference not in dict(parts):
        raise InputError(f"The reference group {reference!r} is not among the groups.")
    rows_out, per_child, rmsts = [], {}, {}
    for name, rows in parts:
        r, v, inf = _rmst_parts(t[rows], e[rows], horizon)
        per_child[name] = np.bincount(cl[rows], weights=inf, minlength=n_cl)  # each child's influence
        rmsts[name] = r
        # infinitesimal jackknife summed by child (R's se(rmean) when each child has one episode)
        se = float(np.sqrt(np.sum(per_child[name] ** 2)))
        rows_out.append(
            {
                "group": name,
                "episodes": len(rows),
                "rmst": r,
                "se": se,
                "ci_low": max(0.0, r - z * se),
                "ci_high": min(float(horizon), r + z * se),
            }
        )  # within [0, horizon]
    groups_df = pd.DataFrame(rows_out)
    diffs = []
    for name, _ in parts:
        if name == reference:
            continue
        se = float(np.sqrt(np.sum((per_child[name] - per_child[reference]) ** 2)))
        diff = rmsts[name] - rmsts[reference]
        p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else np.nan
        diffs.append(
            {
                "group": name,
                "reference": reference,
                "difference": diff,
                "se": se,
                "ci_low": diff - z * se,
                "ci_high": diff + z * se,
                "p_value": p,
            }
        )
    diff_df = pd.DataFrame(diffs, columns=["group", "reference", "difference", "se", "ci_low", "ci_high", "p_value"])
    return RMSTResult(horizon=int(horizon), groups=groups_df, differences=diff_df)


def step_pieces(grid: np.ndarray, surv: np.ndarray, tau: float) -> np.ndarray:
    """The pieces of area under a step curve up to ``tau``: ``surv[k]`` holds from ``grid[k]`` to the next
    grid point (grid sorted, starting at 0). Their sum is the restricted mean survival time."""
    g = np.append(grid[grid < tau], tau)
    return surv[: len(g) - 1] * np.diff(g)


def step_area(grid: np.ndarray, surv: np.ndarray, tau: float) -> float:
    """Area under a step survival curve from 0 to ``tau`` (RMST), the grid holding 0 and every jump time."""
    return float(np.sum(step_pieces(grid, surv, tau)))


def km_steps(weights: np.ndarray, events: np.ndarray, start: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Weighted Kaplan-Meier on a grid from episodes already sorted by time.

    ``weights`` and ``events`` in time order, ``start`` the first row of each distinct time, ``pos`` the
    last distinct time at or before each grid point (-1 before the first). Sorting once and calling
    this per replicate keeps a bootstrap of weighted curves linear in the episodes.
    """
    d = np.add.reduceat(weights * events, start)
    leave = np.add.reduceat(weights, start)
    at_risk = weights.sum() - np.concatenate([[0.0], np.cumsum(leave)[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        haz = np.where(at_risk > 0, d / at_risk, 0.0)
    s = np.cumprod(1 - haz)
    return np.where(pos >= 0, s[np.clip(pos, 0, None)], 1.0)


def weighted_km(time: np.ndarray, event: np.ndarray, w: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival with case weights (e.g. inverse probability weights), on ``grid`` (right-continuous)."""
    order = np.argsort(time, kind="stable")
    uniq, start = np.unique(time[order], return_index=True)
    pos = np.searchsorted(uniq, grid, side="right") - 1
    return km_steps(w[order], event[order], start, pos)
