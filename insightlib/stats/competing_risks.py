"""Aalen-Johansen cumulative incidence of re-referral with the competing events (18th birthday,
death, transfer): delta-method variance as lifelines, or the infinitesimal jackknife summed by
child (R's ``survfit(Surv(time, state) ~ 1, cluster=id)``); checked in tests/test_survival*.py.

The share actually re-referred by a given day, allowing for children who can no longer be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.stats.survival import DEFAULT_HORIZONS, _as_arrays, _cluster_ids, _clustered_sumsq, _event_table, _split


def _cif_influence_sumsq(t, e, cause, cl, times, n, dk, d, lag) -> np.ndarray:
    """Infinitesimal-jackknife variance of the Aalen-Johansen F(t) summed by cluster (R's
    ``survfit(Surv(time, state) ~ 1, cluster=id)``).

    F(t) = sum over t_j <= t of S(t_j-) h1_j, S the all-cause Kaplan-Meier. Episode i's influence
    is sum_j S(t_j-) (dN1_i - Y_i h1_j) / n_j + h1_j dS(t_j-), with dS(t_j-) = S(t_j-) L_i(t_j-) and
    L_i the Kaplan-Meier log influence: before its own time a common function of t, after it
    b_i - L_i G(t), so _clustered_sumsq applies.
    """
    slot = np.searchsorted(times, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > d, 1.0 / (n - d), 0.0)
    h1 = dk / n
    Q = np.cumsum(d / n * a)
    Q_lag = np.concatenate([[0.0], Q[:-1]])
    g = lag * h1
    G = np.cumsum(g)
    C1 = np.cumsum(lag * h1 / n)
    P = np.cumsum(g * Q_lag)
    ell = Q[slot] - (e != 0) * a[slot]  # -L_i(T_i): the all-cause log influence once the episode ends
    b = (e == cause) * lag[slot] / n[slot] - C1[slot] + P[slot] - ell * G[slot]
    return _clustered_sumsq(slot, cl, b, -ell, C1 - P, G, len(times))


def cif_table(durations, events, cause: int = 1, alpha: float = 0.05, clusters=None) -> pd.DataFrame:
    """Aalen-Johansen cumulative incidence of ``cause`` with the other causes competing.

    Variance: the delta-method (Greenwood-type) formula of Collett / Marubini and
    Valsecchi that lifelines uses, computed with prefix sums; with ``clusters`` the
    infinitesimal jackknife summed by child, as R's ``survfit(..., cluster=id)``; log(-log) band.
    """
    t, e = _as_arrays(durations, events)
    times, n, dk, d, _ = _event_table(t, e, cause)
    cl = _cluster_ids(clusters, len(t))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n)
        lag = np.concatenate([[1.0], surv[:-1]])
        F = np.cumsum(lag * dk / n)
        if cl is None:
            a = np.where(n > d, d / (n * (n - d)), 0.0)
            b = lag**2 * dk * (n - dk) / n**3
            cc = lag * dk / n**2
            A, AF, AF2 = np.cumsum(a), np.cumsum(a * F), np.cumsum(a * F**2)
            B = np.cumsum(b)
            C, CF = np.cumsum(cc), np.cumsum(cc * F)
            var = F**2 * A - 2 * F * AF + AF2 + B - 2 * (F * C - CF)
        else:
            var = _cif_influence_sumsq(t, e, cause, cl, times, n, dk, d, lag)
        var = np.maximum(var, 0.0)
        z = stats.norm.ppf(1 - alpha / 2)
        se_t = np.sqrt(var) / (F * np.abs(np.log(F)))
        lo = np.exp(-np.exp(np.log(-np.log(F)) + z * se_t))
        hi = np.exp(-np.exp(np.log(-np.log(F)) - z * se_t))
    lo = np.where(F <= 0, 0.0, lo)
    hi = np.where(F <= 0, 0.0, hi)
    return pd.DataFrame(
        {
            "time": times,
            "at_risk": n,
            "events": dk,
            "cumulative_incidence": F,
            "se": np.sqrt(var),
            "ci_low": lo,
            "ci_high": hi,
        }
    )


@dataclass
class CumulativeIncidenceResult:
    """Share re-referred (and share ending for a competing reason) by each day, by group."""

    curves: dict[str, pd.DataFrame]  # re-referral
    competing: dict[str, pd.DataFrame]  # 18th birthday, death, transfer
    horizons: tuple[int, ...]
    labels: dict[str, str] = field(default_factory=dict)
    durations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # sorted, for numbers at risk

    def at(self, group: str, horizon: float) -> dict:
        c, k = self.curves[group], self.competing[group]
        t = c["time"].to_numpy()
        idx = np.searchsorted(t, horizon, side="right") - 1
        get = lambda df, col: 0.0 if idx < 0 else float(df[col].iloc[idx])
        return {
            "rereferral": get(c, "cumulative_incidence"),
            "ci_low": get(c, "ci_low"),
            "ci_high": get(c, "ci_high"),
            "competing": get(k, "cumulative_incidence"),
        }

    def to_dict(self) -> dict:
        return {g: {str(int(h)): self.at(g, h) for h in self.horizons} for g in self.curves}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"group": g, "days": int(h), **self.at(g, h)} for g in self.curves for h in self.horizons])


def cumulative_incidence(
    durations, events, groups=None, horizons=DEFAULT_HORIZONS, alpha=0.05, clusters=None
) -> CumulativeIncidenceResult:
    """Aalen-Johansen by group; ``clusters`` (the child): re-referral bands from the jackknife summed by child."""
    t, e = _as_arrays(durations, events)
    cl = _cluster_ids(clusters, len(t))
    curves, comp, durs = {}, {}, {}
    for name, rows in _split(groups, len(t)):
        curves[name] = cif_table(t[rows], e[rows], 1, alpha, None if cl is None else cl[rows])
        comp[name] = cif_table(t[rows], e[rows], 2, alpha)  # its share only is shown, not its band
        durs[name] = np.sort(t[rows])
    return CumulativeIncidenceResult(
        curves=curves, competing=comp, horizons=tuple(int(h) for h in horizons), durations=durs
    )
