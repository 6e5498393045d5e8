"""Adjusting p-values for the number of comparisons made."""

from __future__ import annotations

import numpy as np


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (equal to statsmodels' multipletests(method="holm"), tested); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        m = len(order)
        adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out[order] = np.minimum(adjusted, 1.0)
    return out
