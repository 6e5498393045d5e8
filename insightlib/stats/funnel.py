"""Funnel plots' statistics: control limits for a proportion, over-dispersion, each council's place (no words).

Following Spiegelhalter (2005, *Statistics in Medicine* 24:1185-1202): the target is a
reference rate (England's); the 95% and 99.8% control limits are **exact binomial** limits
with his interpolation between the integer quantiles (so the limits are smooth in n):
with ``r`` the smallest count whose binomial probability ``F(r) >= p``,
``alpha = (F(r) - p) / (F(r) - F(r - 1))`` and the limit is ``(r - alpha) / n``.
``method="normal"`` gives ``target +/- z * sqrt(target * (1 - target) / n)`` instead.
Between councils, rates vary more than chance alone allows (over-dispersion); with
``overdispersion=True`` the limits are widened by the multiplicative factor estimated from
10%-winsorised z-scores (``winsorised_phi``, the same estimate the deprivation funnel's additive
random effects start from), and the factor is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from insightlib import reference
from insightlib.errors import InputError

#: Control limit levels: two-sided coverage (95% ~ 2 standard errors, 99.8% ~ 3).
LEVELS = (0.95, 0.998)
BANDS = ("above 99.8% limit", "above 95% limit", "within limits", "below 95% limit", "below 99.8% limit")


def level_key(level: float) -> str:
    """The column suffix of a level: 0.95 -> "95", 0.998 -> "99_8"."""
    return f"{level * 100:g}".replace(".", "_")


def control_limits(
    n: Iterable[float] | float,
    target: float,
    levels: Iterable[float] = LEVELS,
    *,
    method: str = "exact",
    phi: float = 1.0,
) -> pd.DataFrame:
    """Lower and upper control limits for a proportion at each denominator ``n``.

    Columns ``n``, ``lower_95``, ``upper_95``, ``lower_99_8``, ``upper_99_8`` (one pair per
    level). ``phi`` > 1 widens the limits for over-dispersion (normal form, as in the paper).
    """
    if not 0 < target < 1:
        raise InputError(f"Funnel plot: the target rate must be between 0 and 1, not {target}.")
    if method not in ("exact", "normal"):
        raise InputError(f"Funnel plot: method must be 'exact' or 'normal', not {method!r}.")
    n_arr = np.atleast_1d(np.asarray(n, dtype=float))
    if (n_arr <= 0).any():
        raise InputError("Funnel plot: every denominator must be 1 or more.")
    out = pd.DataFrame({"n": n_arr})
    for level in levels:
        key = level_key(level)
        lo_p, hi_p = (1 - level) / 2, 1 - (1 - level) / 2
        if method == "normal" or phi > 1:
            z = stats.norm.ppf(hi_p)
            half = z * np.sqrt(phi * target * (1 - target) / n_arr)
            lower, upper = target - half, target + half
        else:
            lower, upper = _exact_limit(n_arr, target, lo_p), _exact_limit(n_arr, target, hi_p)
        out[f"lower_{key}"] = np.clip(lower, 0.0, 1.0)
        out[f"upper_{key}"] = np.clip(upper, 0.0, 1.0)
    return out


def _exact_limit(n: np.ndarray, target: float, p: float) -> np.ndarray:
    n_int = np.round(n).astype(int)
    r = stats.binom.ppf(p, n_int, target)
    f_r = stats.binom.cdf(r, n_int, target)
    f_r1 = stats.binom.cdf(r - 1, n_int, target)
    alpha = (f_r - p) / (f_r - f_r1)
    return (r - alpha) / n_int


def winsorised_phi(z: np.ndarray, winsor: float = 0.1) -> float:
    """Spiegelhalter's dispersion estimate: the mean square of the z-scores winsorised at their
    ``winsor`` and ``1 - winsor`` quantiles (1 expected when councils differ by chance only)."""
    z = np.asarray(z, dtype=float)
    lo, hi = np.quantile(z, [winsor, 1 - winsor])
    zw = np.clip(z, lo, hi)
    return float(np.mean(zw**2))


def overdispersion_factor(events: np.ndarray, n: np.ndarray, target: float, winsor: float = 0.1) -> float:
    """Spiegelhalter's multiplicative over-dispersion factor phi from winsorised z-scores (1 if none)."""
    rate = events / n
    z = (rate - target) / np.sqrt(target * (1 - target) / n)
    phi = winsorised_phi(z, winsor)
    # Only widen when the excess variation is beyond chance (chi-squared test on I - 1 df).
    if len(z) > 1 and len(z) * phi > stats.chi2.ppf(0.95, len(z) - 1):
        return phi
    return 1.0


@dataclass
class FunnelResult:
    """Councils placed against a target rate with control limits (numbers only: report/national draws it)."""

    points: pd.DataFrame  # la_code, la_name, n, events, rate, z, band
    target: float
    method: str
    phi: float
    limits: pd.DataFrame  # control_limits on a grid of n spanning the councils, for drawing
    year: int | None = None
    excluded: pd.DataFrame = field(default_factory=pd.DataFrame)

    def band_of(self, la_code: str) -> str:
        row = self.points.loc[self.points["la_code"] == la_code]
        return row["band"].iat[0] if len(row) else "not shown"

    def outliers(self, level: float = 0.998) -> list[str]:
        """Councils outside the limits at ``level`` (0.95 includes those outside 99.8%)."""
        bands = {BANDS[0], BANDS[4]} if level == 0.998 else {BANDS[0], BANDS[1], BANDS[3], BANDS[4]}
        return self.points.loc[self.points["band"].isin(bands), "la_code"].tolist()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "method": self.method,
            "overdispersion_phi": self.phi,
            "year": self.year,
            "councils": {
                r.la_code: {"n": int(r.n), "events": int(r.events), "rate": float(r.rate), "band": r.band}
                for r in self.points.itertuples()
            },
        }

    def table(self) -> pd.DataFrame:
        t = self.points[["la_code", "la_name", "n", "events", "rate", "band"]].copy()
        return t.sort_values("rate", ascending=False).reset_index(drop=True)


def funnel(
    data: pd.DataFrame,
    *,
    events: str = "rereferrals",
    n: str = "referrals",
    target: float | None = None,
    method: str = "exact",
    overdispersion: bool = False,
    year: int | None = None,
    phi: float | None = None,
) -> FunnelResult:
    """Place each council (rows with la_code, ``events``, ``n``) in a funnel around ``target``.

    The target defaults to the pooled rate of the councils given. Rows without both counts
    (DfE symbols, suppressed figures) are left out of the plot and listed in ``excluded``.
    ``phi`` gives the over-dispersion factor to widen the limits by (a funnel of a few councils takes
    the one estimated from every council's published figures, so both funnels are read alike).
    """
    df, excluded = _usable_counts(data, events, n)
    if "la_name" not in df.columns:
        df["la_name"] = df["la_code"].map(reference.council_name)
    if target is None:
        target = float(df["events"].sum() / df["n"].sum())
    df["rate"] = df["events"] / df["n"]
    df["z"] = (df["rate"] - target) / np.sqrt(target * (1 - target) / df["n"])
    if phi is None:
        phi = (
            overdispersion_factor(df["events"].to_numpy(float), df["n"].to_numpy(float), target)
            if overdispersion
            else 1.0
        )
    df["band"] = _bands(df["rate"], control_limits(df["n"], target, method=method, phi=phi))
    lo, hi = max(1.0, df["n"].min() * 0.7), df["n"].max() * 1.3
    grid = control_limits(np.unique(np.round(np.geomspace(lo, hi, 200))), target, method=method, phi=phi)
    points = df[["la_code", "la_name", "n", "events", "rate", "z", "band"]].reset_index(drop=True)
    return FunnelResult(points=points, target=target, method=method, phi=phi, limits=grid, year=year, excluded=excluded)


def _usable_counts(data: pd.DataFrame, events: str, n: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows with both counts (as ``events`` and ``n``), and those without; InputError if none or events > n."""
    for col in ("la_code", events, n):
        if col not in data.columns:
            raise InputError(f"Funnel plot: the data has no '{col}' column; it has {list(data.columns)}.")
    df = data.copy()
    df["events"] = pd.to_numeric(df[events], errors="coerce")
    df["n"] = pd.to_numeric(df[n], errors="coerce")
    usable = df["events"].notna() & df["n"].notna() & (df["n"] > 0)
    excluded, df = df.loc[~usable].copy(), df.loc[usable].copy()
    if df.empty:
        raise InputError("Funnel plot: no council has both a numerator and a denominator.")
    if (df["events"] > df["n"]).any():
        bad = df.loc[df["events"] > df["n"], "la_code"].tolist()
        raise InputError(f"Funnel plot: councils {bad} have more re-referrals than referrals.")
    return df, excluded


def _bands(rate: pd.Series, at_points: pd.DataFrame) -> list[str]:
    """Each rate's band against the limits at its own n (``at_points``, row for row)."""

    def band(i: int) -> str:
        r = rate.iat[i]
        lim = at_points.iloc[i]
        if r > lim["upper_99_8"]:
            return BANDS[0]
        if r > lim["upper_95"]:
            return BANDS[1]
        if r < lim["lower_99_8"]:
            return BANDS[4]
        if r < lim["lower_95"]:
            return BANDS[3]
        return BANDS[2]

    return [band(i) for i in range(len(rate))]
