"""Randomisation inference for the two-stage difference-in-differences: honest intervals with few adopters.

Under the sharp null "the programme changed the outcome by delta", y - delta * D is what would have been
seen without it, and the councils' adoption dates could as well have fallen on any other councils. The
dates are reassigned among the councils (every arrangement when there are few enough, else a random
sample); the estimator is linear in y, so each arrangement is one least-squares fit of several columns at
once. Intervals are every delta not rejected (test inversion). ``d`` is a ``did.Sample``'s data.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping

import numpy as np
import pandas as pd


def _anchored(u: np.ndarray, t: np.ndarray, treated: np.ndarray, n_units: int, n_times: int) -> np.ndarray:
    """Rows kept: councils and periods with fewer than two untreated rows cannot anchor the imputation, and
    leaving them out can leave others short, so they are dropped in turn until none is."""
    keep = np.ones(len(u), bool)
    while True:
        un = keep & ~treated
        ok_u = np.bincount(u[un], minlength=n_units) >= 2
        ok_t = np.bincount(t[un], minlength=n_times) >= 2
        bad = keep & ~(ok_u[u] & ok_t[t])
        if not bad.any():
            return keep
        keep &= ~bad


def _untreated_fit(u: np.ndarray, t: np.ndarray, Y: np.ndarray, keep: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """The imputation's first stage under one assignment: council and period effects fitted by least squares
    on the kept untreated rows, for each column of ``Y``; returns the treated rows' residuals (what they saw
    less what those effects predict). The overall and the event-time estimates both average these."""
    rows = np.flatnonzero(keep)
    us, ui = np.unique(u[rows], return_inverse=True)
    ts, ti = np.unique(t[rows], return_inverse=True)
    tr, un = treated[rows], ~treated[rows]
    _, cu, ct = _fe_least_squares(np.zeros((int(un.sum()), 0)), ui[un], ti[un], len(us), len(ts), Y[rows][un])
    return Y[rows][tr] - (cu[ui[tr]] + ct[ti[tr]])


def _fe_least_squares(E: np.ndarray, ui: np.ndarray, ti: np.ndarray, nu: int, nt: int, Y: np.ndarray):
    """Least squares of each column of ``Y`` on [E, council indicators, period indicators but the first]:
    (E's coefficients, the councils', the periods' with 0 for the first).

    The normal equations are built from counts and sums (bincount), not from the indicator matrix, and
    solved: a system of councils + periods unknowns instead of a least-squares fit of rows x (councils +
    periods), whose cost grew with the cube of the councils (153 councils: 6,000 rows x 200 columns, six
    thousand fits). Where the system is singular, the minimum-norm solution, as ``lstsq`` of the rows gives."""
    k, m = E.shape[1], Y.shape[1]
    p = k + nu + nt - 1
    N = np.zeros((p, p))
    N[:k, :k] = E.T @ E
    for j in range(k):
        N[j, k : k + nu] = np.bincount(ui, weights=E[:, j], minlength=nu)
        N[j, k + nu :] = np.bincount(ti, weights=E[:, j], minlength=nt)[1:]
    units = np.arange(k, k + nu)
    N[units, units] = np.bincount(ui, minlength=nu)
    periods = np.arange(k + nu, p)
    N[periods, periods] = np.bincount(ti, minlength=nt)[1:]
    N[k : k + nu, k + nu :] = np.bincount(ui * nt + ti, minlength=nu * nt).reshape(nu, nt)[:, 1:]
    N = np.triu(N) + np.triu(N, 1).T
    B = np.vstack(
        [E.T @ Y]
        + [np.column_stack([np.bincount(ui, weights=Y[:, c], minlength=nu) for c in range(m)])]
        + [np.column_stack([np.bincount(ti, weights=Y[:, c], minlength=nt)[1:] for c in range(m)]).reshape(nt - 1, m)]
    )
    try:
        coef = np.linalg.solve(N, B)
    except np.linalg.LinAlgError:
        coef = np.linalg.lstsq(N, B, rcond=None)[0]
    return coef[:k], coef[k : k + nu], np.vstack([np.zeros((1, m)), coef[k + nu :]])


def _ri_statistics(u: np.ndarray, t: np.ndarray, Y: np.ndarray, adopt: np.ndarray, n_units: int, n_times: int):
    """The two-stage ATT (as ``did.did2s_fast``: council and period effects from untreated rows, then the mean
    adjusted outcome over treated rows) under one assignment ``adopt`` (period per council, -1 never), for
    each column of ``Y`` at once (the outcome and the actual treatment indicator: the estimator is linear in
    y, so y - delta * D needs no refit). Plain numpy: it runs once per arrangement."""
    a = adopt[u]
    treated = (a >= 0) & (t >= a)
    keep = _anchored(u, t, treated, n_units, n_times)
    if not (keep & treated).any() or not (keep & ~treated).any():
        return None
    return _untreated_fit(u, t, Y, keep, treated).mean(axis=0)


def randomisation_interval(d: pd.DataFrame, alpha: float = 0.05, max_draws: int = 1999, seed: int = 0) -> dict:
    """Randomisation inference for the headline ATT: honest with few adopting councils.

    Under the hypothesis that the programme changed the outcome by delta in every adopting
    council-period, y - delta * D is what would have been seen without it, and the councils' adoption
    dates could as well have fallen on any other councils. The adoption dates are reassigned among the
    councils (every arrangement when there are at most ``max_draws``, else a random ``max_draws``); the
    p-value of delta is the share of arrangements whose estimate is at least as far from zero as the
    actual one. The interval is every delta not rejected at ``alpha`` (test inversion). Its coverage is
    nominal whatever the number of councils, if adoption is as good as random among them (a
    simulation test checks it with 3 adopters of 8); with too few arrangements no 95% interval exists,
    and it is reported as unbounded.
    """
    units, u = np.unique(d["unit"].to_numpy(), return_inverse=True)
    times, t = np.unique(d["time"].to_numpy(int), return_inverse=True)
    adopt_by_unit = d.groupby("unit")["adopt"].first().reindex(units)
    # adoption as an index into the sorted periods (adoption can fall before the first observed period)
    actual_assign = np.array([-1 if pd.isna(v) else int(np.searchsorted(times, int(v))) for v in adopt_by_unit])
    Y = np.column_stack([d["y"].to_numpy(float), d["treated"].to_numpy(float)])
    arrangements, exact = _arrangements(actual_assign, max_draws, seed)
    stats_ = [_ri_statistics(u, t, Y, a, len(units), len(times)) for a in arrangements]
    observed = _ri_statistics(u, t, Y, actual_assign, len(units), len(times))
    pairs = np.array([s_ for s_ in stats_ if s_ is not None], dtype=float)
    if observed is None or len(pairs) < 2:
        return {
            "estimate": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": float("nan"),
            "arrangements": 0,
            "exact": exact,
            "method": "randomisation inference",
        }
    a0, b0 = observed
    lo, hi, p0 = _ri_invert(pairs[:, 0], pairs[:, 1], a0, b0, alpha)
    return {
        "estimate": float(a0),
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p0,
        "arrangements": int(len(pairs)),
        "exact": exact,
        "method": (
            "randomisation inference: adoption dates reassigned among the councils "
            f"({'every' if exact else 'a random'} {len(pairs):,} arrangements), interval by test inversion"
        ),
    }


def _arrangements(actual_assign: np.ndarray, max_draws: int, seed: int) -> tuple[list[np.ndarray], bool]:
    """The adoption dates (period index per council, -1 never) rearranged among the councils: every
    arrangement when there are at most ``max_draws`` (exact), else the actual one and ``max_draws`` random."""
    n_units, n_adopt = len(actual_assign), int((actual_assign >= 0).sum())
    n_arrangements = math.perm(n_units, n_adopt) if n_adopt else 1
    rng = np.random.default_rng(seed)
    dates = actual_assign[actual_assign >= 0]
    if n_arrangements <= max_draws:
        arrangements = []
        for chosen in itertools.permutations(range(n_units), n_adopt):
            a = np.full(n_units, -1)
            a[list(chosen)] = dates
            arrangements.append(a)
        return arrangements, True
    return [actual_assign] + [rng.permutation(actual_assign) for _ in range(max_draws)], False


def _ri_event_means(u, t_real, t, Y, adopt_idx, adopt_real, n_units, n_times, event_times):
    """Per period since adoption, the two-stage estimate under one assignment, for each column of ``Y``:
    council and period effects from the untreated rows, then the mean adjusted value over the treated
    rows at that event time (as ``_ri_statistics`` does for all treated rows together). NaN where an
    event time has no row under this assignment."""
    a = adopt_idx[u]
    treated = (a >= 0) & (t >= a)
    keep = _anchored(u, t, treated, n_units, n_times)
    out = np.full((len(event_times), Y.shape[1]), np.nan)
    tr = keep & treated
    if not tr.any() or not (keep & ~treated).any():
        return out
    resid = _untreated_fit(u, t, Y, keep, treated)
    event = (t_real - adopt_real[u])[tr]
    for i, e in enumerate(event_times):
        at = event == e
        if at.any():
            out[i] = resid[at].mean(axis=0)
    return out


def _ri_invert(A: np.ndarray, B: np.ndarray, a0: float, b0: float, alpha: float) -> tuple[float, float, float]:
    """Test inversion of the sharp null "the effect is delta": (low, high, p-value of no effect)."""

    def p_of(delta: float) -> float:
        return float(np.mean(np.abs(A - delta * B) >= np.abs(a0 - delta * b0) * (1 - 1e-12)))

    spread = float(np.std(A)) or 1.0
    grid = np.linspace(a0 - 12 * spread, a0 + 12 * spread, 1201)
    accepted = np.array([p_of(g) > alpha for g in grid])
    if not accepted.any():
        return float(a0), float(a0), p_of(0.0)
    idx = np.flatnonzero(accepted)

    def edge(inside: float, outside: float) -> float:
        for _ in range(40):
            mid = 0.5 * (inside + outside)
            inside, outside = (mid, outside) if p_of(mid) > alpha else (inside, mid)
        return inside

    lo = -np.inf if idx[0] == 0 else edge(grid[idx[0]], grid[idx[0] - 1])
    hi = np.inf if idx[-1] == len(grid) - 1 else edge(grid[idx[-1]], grid[idx[-1] + 1])
    return float(lo), float(hi), p_of(0.0)


class _RiSetup:
    """The councils, periods and adoption dates of a sample, and the arrangements of the dates among the
    councils that randomisation inference goes through (every one when at most ``max_draws``)."""

    def __init__(self, d: pd.DataFrame, max_draws: int, seed: int):
        units, self.u = np.unique(d["unit"].to_numpy(), return_inverse=True)
        self.t_real = d["time"].to_numpy(int)
        times, self.t = np.unique(self.t_real, return_inverse=True)
        self.n_units, self.n_times = len(units), len(times)
        adopt_by_unit = d.groupby("unit")["adopt"].first().reindex(units)
        self.idx0 = np.array([-1 if pd.isna(v) else int(np.searchsorted(times, int(v))) for v in adopt_by_unit])
        self.real0 = np.array([0 if pd.isna(v) else int(v) for v in adopt_by_unit])
        self.event0 = np.where(d["treated"].to_numpy(bool), self.t_real - self.real0[self.u], np.iinfo(np.int64).min)
        self.adopters = np.flatnonzero(self.idx0 >= 0)
        k = len(self.adopters)
        rng = np.random.default_rng(seed)
        if (math.perm(self.n_units, k) if k else 1) <= max_draws:
            self.orders = [np.array(c) for c in itertools.permutations(range(self.n_units), k)]
        else:
            self.orders = [self.adopters] + [rng.permutation(self.n_units)[:k] for _ in range(max_draws)]

    def assignments(self):
        """(adoption as a period index, adoption period) per council, for each arrangement."""
        for chosen in self.orders:
            ai, ar = np.full(self.n_units, -1), np.zeros(self.n_units, dtype=np.int64)
            ai[chosen], ar[chosen] = self.idx0[self.adopters], self.real0[self.adopters]
            yield ai, ar


def _ri_lead_coefficients(u, t_real, t, Y, adopt_idx, adopt_real, n_units, n_times, leads):
    """The pre-trend regression under one assignment (``did.pretrend_test``: untreated rows, council and period
    effects, one indicator per lead), for each column of ``Y``: leads x columns, NaN for a lead with no row."""
    a = adopt_idx[u]
    untreated = ~((a >= 0) & (t >= a))
    event = np.where(a >= 0, t_real - adopt_real[u], np.iinfo(np.int64).min)
    rows = np.flatnonzero(untreated)
    L = np.column_stack([(event[rows] == -k).astype(float) for k in leads])
    out = np.full((len(leads), Y.shape[1]), np.nan)
    present = L.sum(axis=0) > 0
    if not present.any():
        return out
    us, ui = np.unique(u[rows], return_inverse=True)
    ts, ti = np.unique(t[rows], return_inverse=True)
    out[np.flatnonzero(present)] = _fe_least_squares(L[:, present], ui, ti, len(us), len(ts), Y[rows])[0]
    return out


def randomisation_lead_intervals(
    d: pd.DataFrame,
    leads: Mapping[int, float],
    effects: Mapping[int, float],
    alpha: float = 0.05,
    max_draws: int = 1999,
    seed: int = 0,
) -> pd.DataFrame:
    """Randomisation inference for each pre-trend lead (periods before adoption), as for the effects.

    The sharp null for lead k is "the lead's coefficient is delta, the other leads' and the effects after
    adoption are their estimates": y less all of those is the outcome without the programme or any
    anticipation, and the adoption dates are reassigned among the councils. Columns as
    ``randomisation_event_intervals`` (event_time negative)."""
    ks = sorted(-int(e) for e in leads)
    post = sorted(int(e) for e in effects)
    r = _RiSetup(d, max_draws, seed)
    before = np.where(
        d["adopt"].notna().to_numpy() & ~d["treated"].to_numpy(bool), r.t_real - r.real0[r.u], np.iinfo(np.int64).min
    )
    Y = np.column_stack(
        [d["y"].to_numpy(float)]
        + [(before == -k).astype(float) for k in ks]
        + [(r.event0 == e).astype(float) for e in post]
    )
    C = np.array(
        [_ri_lead_coefficients(r.u, r.t_real, r.t, Y, ai, ar, r.n_units, r.n_times, ks) for ai, ar in r.assignments()]
    )  # arrangements x leads x columns
    b = np.array([float(leads[-k]) for k in ks])
    tau = np.array([float(effects[e]) for e in post])
    rows = []
    for i, k in enumerate(ks):
        others = np.delete(np.arange(len(ks)), i)
        A = C[:, i, 0] - C[:, i, 1 + others] @ b[others] - C[:, i, 1 + len(ks) :] @ tau
        B = C[:, i, 1 + i]
        ok = np.isfinite(A) & np.isfinite(B)
        if ok.sum() < 2:
            rows.append({"event_time": -k, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "arrangements": 0})
            continue
        lo, hi, p0 = _ri_invert(A[ok], B[ok], float(b[i]), 1.0, alpha)
        rows.append({"event_time": -k, "ci_low": lo, "ci_high": hi, "p_value": p0, "arrangements": int(ok.sum())})
    return pd.DataFrame(rows)


def randomisation_event_intervals(
    d: pd.DataFrame, estimates: Mapping[int, float], alpha: float = 0.05, max_draws: int = 1999, seed: int = 0
) -> pd.DataFrame:
    """Randomisation inference for each period since adoption (the event study), as for the headline.

    For event time e the sharp null is "the effect at e is delta, and at every other event time it is
    the estimate there": y less those effects is what would have been seen without the programme, and
    the adoption dates could as well have fallen on any other councils. The dates are reassigned among
    the councils (every arrangement when there are at most ``max_draws``); the estimator is linear in y,
    so each arrangement is one fit of the outcome and of each event-time indicator. The interval is
    every delta not rejected at ``alpha``. Columns: event_time, ci_low, ci_high, p_value, arrangements."""
    event_times = sorted(int(e) for e in estimates)
    r = _RiSetup(d, max_draws, seed)
    Y = np.column_stack([d["y"].to_numpy(float)] + [(r.event0 == e).astype(float) for e in event_times])
    M = np.array(
        [
            _ri_event_means(r.u, r.t_real, r.t, Y, ai, ar, r.n_units, r.n_times, event_times)
            for ai, ar in r.assignments()
        ]
    )  # arrangements x event times x (1 + event times)
    tau = np.array([float(estimates[e]) for e in event_times])
    rows = []
    for i, e in enumerate(event_times):
        others = np.delete(np.arange(len(event_times)), i)
        A = M[:, i, 0] - M[:, i, 1 + others] @ tau[others]
        B = M[:, i, 1 + i]
        ok = np.isfinite(A) & np.isfinite(B)
        if ok.sum() < 2:
            rows.append({"event_time": e, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "arrangements": 0})
            continue
        lo, hi, p0 = _ri_invert(A[ok], B[ok], float(tau[i]), 1.0, alpha)
        rows.append({"event_time": e, "ci_low": lo, "ci_high": hi, "p_value": p0, "arrangements": int(ok.sum())})
    return pd.DataFrame(rows)
