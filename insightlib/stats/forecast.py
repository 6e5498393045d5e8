"""Short projections of annual series, and their back-test on the years held out.

Two documented simple models (annual series of 5-8 points allow no more):
- ``trend``: least-squares straight line on the year, with the classical prediction interval
  s * sqrt(1 + 1/n + (x0 - mean x)^2 / Sxx) * t(n - 2);
- ``naive``: the last value carried forward, with a random-walk interval sd(diff) * sqrt(h) * t(n - 2).
The back-test refits each model on every series with the last ``holdout`` years removed and
compares the forecasts with what happened: absolute error, absolute percentage error and
whether the interval held the outcome.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats as st

MODELS = ("trend", "naive")


@lru_cache(maxsize=None)
def _t_quantile(df: int, level: float) -> float:
    return float(st.t.ppf(0.5 + level / 2, df=df))


def _forecast_arrays(x: np.ndarray, y: np.ndarray, horizon: int, model: str, level: float):
    n = len(y)
    ahead = x.max() + np.arange(1, horizon + 1)
    q = _t_quantile(n - 2, level)
    if model == "trend":
        xm = x.mean()
        sxx = ((x - xm) ** 2).sum()
        slope = ((x - xm) * (y - y.mean())).sum() / sxx
        intercept = y.mean() - slope * xm
        resid = y - (intercept + slope * x)
        s = np.sqrt((resid**2).sum() / (n - 2))
        mean = intercept + slope * ahead
        se = s * np.sqrt(1 + 1 / n + (ahead - xm) ** 2 / sxx)
    elif model == "naive":
        diffs = np.diff(y[np.argsort(x)])
        s = diffs.std(ddof=1) if len(diffs) > 1 else abs(diffs[0])
        mean = np.full(horizon, y[np.argmax(x)])
        se = s * np.sqrt(np.arange(1, horizon + 1))
    else:
        raise ValueError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    return ahead, mean, mean - q * se, mean + q * se


def forecast(years, values, horizon: int = 2, *, model: str = "trend", level: float = 0.8) -> pd.DataFrame:
    """Forecasts for the ``horizon`` years after the last, with a ``level`` prediction interval."""
    x = np.asarray(years, dtype=float)
    y = np.asarray(values, dtype=float)
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(y) < 3:
        raise ValueError("a projection needs at least three years of data")
    ahead, mean, low, high = _forecast_arrays(x, y, horizon, model, level)
    return pd.DataFrame({"year": ahead.astype(int), "forecast": mean, "low": low, "high": high})


def backtest(
    panel: pd.DataFrame, *, holdout: int = 1, model: str = "trend", level: float = 0.8, min_years: int = 4
) -> pd.DataFrame:
    """Hold out the last ``holdout`` years of each series (columns area, year, value) and score the forecast."""
    rows = []
    data = panel.dropna(subset=["value"]).sort_values(["area", "year"])
    for area, g in data.groupby("area", sort=False):
        x = g["year"].to_numpy(dtype=float)
        y = g["value"].to_numpy(dtype=float)
        if len(y) < min_years + holdout:
            continue
        ahead, mean, low, high = _forecast_arrays(x[:-holdout], y[:-holdout], holdout, model, level)
        for year, actual, f, lo, hi in zip(x[-holdout:], y[-holdout:], mean, low, high):
            if year not in ahead:  # a gap in the series: score only the years that follow the training ones
                continue
            rows.append(
                (
                    area,
                    int(year),
                    actual,
                    f,
                    abs(f - actual),
                    abs(f - actual) / abs(actual) if actual else np.nan,
                    bool(lo <= actual <= hi),
                )
            )
    return pd.DataFrame(rows, columns=["area", "year", "actual", "forecast", "abs_error", "abs_pct_error", "covered"])


def backtest_summary(errors: pd.DataFrame) -> dict:
    """Mean and median absolute error, median absolute percentage error, interval coverage, series count."""
    if errors.empty:
        return {"series": 0, "mae": None, "median_abs_error": None, "median_abs_pct_error": None, "coverage": None}
    return {
        "series": int(errors["area"].nunique()),
        "mae": float(errors["abs_error"].mean()),
        "median_abs_error": float(errors["abs_error"].median()),
        "median_abs_pct_error": float(errors["abs_pct_error"].median()),
        "coverage": float(errors["covered"].mean()),
    }
