"""Rates, rate ratios and relative rate indices with confidence intervals (pure statistics, no words).

* ``rate`` : events per ``per`` people (default 10,000) with the exact Poisson (Garwood) interval.
* ``proportion`` : a share with the Wilson interval.
* ``rate_ratio`` : two independent groups' rates, Katz's log interval
  ``exp(log RR +/- z sqrt(1/a - 1/n1 + 1/c - 1/n2))`` (Katz et al. 1978, Biometrics 34:469-474).
* ``relative_rate_index`` : a group's rate against the whole it belongs to (a group against its
  council's overall rate, a council against England). The group is part of the whole, so the
  two rates are not independent: with ``a`` of ``n`` in the group and ``b`` of ``m`` in the rest,
  ``T = a + b``, the delta method on ``log(a/n) - log(T/(n+m))`` with binomial counts gives
  ``var = (1/a - 1/T)^2 a(1 - a/n) + b(1 - b/m) / T^2`` (Katz's log method with the covariance
  of a part and its whole). When the rates are small it is ``1/a - 1/T``.
* ``two_proportion_p_value`` : two independent samples' shares compared by the pooled z-test.

The interval functions take arrays (one value per group) and return a DataFrame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

Z95 = stats.norm.ppf(0.975)


def _z(alpha: float) -> float:
    return float(stats.norm.ppf(1 - alpha / 2))


def rate(events, population, per: float = 10_000, alpha: float = 0.05) -> pd.DataFrame:
    """Events per ``per`` people with the exact Poisson interval (Garwood 1936)."""
    d = np.asarray(events, dtype=float)
    n = np.asarray(population, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(d > 0, stats.chi2.ppf(alpha / 2, 2 * d) / 2, 0.0)
        hi = stats.chi2.ppf(1 - alpha / 2, 2 * (d + 1)) / 2
        scale = np.where(n > 0, per / n, np.nan)
    return pd.DataFrame({"events": d, "population": n, "rate": d * scale, "ci_low": lo * scale, "ci_high": hi * scale})


def proportion(events, n, alpha: float = 0.05) -> pd.DataFrame:
    """A share with the Wilson score interval (sound near 0 and 1, unlike the normal one)."""
    x = np.asarray(events, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return pd.DataFrame({"events": x, "n": n, "share": p, "ci_low": centre - half, "ci_high": centre + half})


def rate_ratio(a, n1, c, n2, alpha: float = 0.05) -> pd.DataFrame:
    """(a/n1) / (c/n2) for two independent groups, Katz's log interval; NaN where a or c is 0."""
    a, n1, c, n2 = (np.asarray(v, dtype=float) for v in (a, n1, c, n2))
    z = _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rr = (a / n1) / (c / n2)
        se = np.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n2)
        ok = (a > 0) & (c > 0)
        lo, hi = rr * np.exp(-z * se), rr * np.exp(z * se)
    return pd.DataFrame(
        {
            "ratio": np.where(ok, rr, np.nan),
            "ci_low": np.where(ok, lo, np.nan),
            "ci_high": np.where(ok, hi, np.nan),
            "se_log": np.where(ok, se, np.nan),
        }
    )


def relative_rate_index(a, n, total_events, total_n, alpha: float = 0.05) -> pd.DataFrame:
    """A group's rate (a/n) against the rate of the whole it is part of (total_events/total_n).

    The variance of log RRI takes the overlap into account (module docstring). NaN where a is 0
    or the group is the whole."""
    a, n, T, N = (np.asarray(v, dtype=float) for v in (a, n, total_events, total_n))
    b, m = T - a, N - n
    z = _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rri = (a / n) / (T / N)
        pa = np.where(n > 0, a / n, 0.0)
        pb = np.where(m > 0, b / m, 0.0)
        var = (1 / a - 1 / T) ** 2 * a * (1 - pa) + b * (1 - pb) / T**2
        se = np.sqrt(var)
        ok = (a > 0) & (m > 0) & (b >= 0)
    return pd.DataFrame(
        {
            "rri": np.where(ok, rri, np.nan),
            "ci_low": np.where(ok, rri * np.exp(-z * se), np.nan),
            "ci_high": np.where(ok, rri * np.exp(z * se), np.nan),
            "se_log": np.where(ok, se, np.nan),
        }
    )


def two_proportion_p_value(events1: float, n1: float, rate1: float, rate2: float, n2: float) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test of ``rate1`` (``events1`` of ``n1``) against
    ``rate2`` (of ``n2``); None when the pooled share is 0 or 1 (no variation to test against)."""
    pooled = (events1 + rate2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
    return float(2 * stats.norm.sf(abs(rate1 - rate2) / se)) if se > 0 else None


def correlation(x, y, alpha: float = 0.05, method: str = "pearson") -> dict:
    """Correlation of two series (pairs with a missing value dropped), Fisher's z interval."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 4:
        return {"n": n, "r": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "slope": np.nan}
    if method == "spearman":
        r, p = stats.spearmanr(x, y)
    else:
        r, p = stats.pearsonr(x, y)
    zr, se = np.arctanh(r), 1 / np.sqrt(n - 3)
    slope = np.polyfit(x, y, 1)[0]
    return {
        "n": int(n),
        "r": float(r),
        "ci_low": float(np.tanh(zr - _z(alpha) * se)),
        "ci_high": float(np.tanh(zr + _z(alpha) * se)),
        "p_value": float(p),
        "slope": float(slope),
        "method": method,
    }
