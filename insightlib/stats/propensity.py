"""Propensity scores: the covariate design (indicators, restricted cubic splines), the weighted logistic
fit, inverse-probability weights for each estimand, Crump's overlap rule, Kish's effective sample size and
the standardised differences that say whether weighting balanced the covariates. Pure numpy/pandas."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from insightlib.contract import INTERVENTION_COVARIATES


@dataclass
class Design:
    X: np.ndarray  # with intercept in column 0, standardised
    names: list[str]  # column names (intercept first)
    covariate_of: list[str]  # which covariate each column comes from ("" for intercept/squares)
    balance_columns: list[int]  # columns used for the balance table


def design_matrix(frame: pd.DataFrame, covariates: list[str], *, min_level: int = 10) -> Design:
    """Dummies for categories (rare levels pooled as 'other', reference = commonest), and a
    squared term for numeric covariates with many values, so the propensity is not forced linear."""
    cols, names, of, bal = [np.ones(len(frame))], ["(intercept)"], [""], []
    for c in covariates:
        kind = INTERVENTION_COVARIATES[c][0]
        v = frame[c]
        if kind == "category":
            counts = v.value_counts()
            rare = counts.index[counts < max(min_level, 0.002 * len(frame))]
            v = v.where(~v.isin(rare), "other")
            counts = v.value_counts()
            for level in sorted(counts.index[1:], key=str):  # the commonest level is the reference
                cols.append((v == level).to_numpy(float))
                names.append(f"{c}={level}")
                of.append(c)
                bal.append(len(cols) - 1)
        else:
            x = v.to_numpy(float)
            if np.nanstd(x) == 0:
                continue
            cols.append(x)
            names.append(c)
            of.append(c)
            bal.append(len(cols) - 1)
            if kind == "numeric" and len(np.unique(x)) > 10:
                z = (x - x.mean()) / x.std()
                cols.append(z * z)
                names.append(f"{c}^2")
                of.append("")
    X = np.column_stack(cols)
    # standardise non-intercept columns (numerical stability); balance uses raw values via frame
    raw = X.copy()
    sd = X[:, 1:].std(axis=0)
    sd[sd == 0] = 1.0
    X[:, 1:] = (X[:, 1:] - X[:, 1:].mean(axis=0)) / sd
    d = Design(X=X, names=names, covariate_of=of, balance_columns=bal)
    d.raw = raw  # type: ignore[attr-defined]
    return d


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
    beta0=None,
    *,
    ridge: float = 1e-6,
    max_iter: int = 60,
    tol: float = 1e-9,
):
    """Newton-Raphson logistic regression (frequency weights allowed).

    A tiny ridge keeps it finite under separation (a covariate level where everyone or
    nobody was treated); returns (beta, fitted probabilities, information matrix / n).
    """
    n, k = X.shape
    w = np.ones(n) if w is None else w
    beta = np.zeros(k) if beta0 is None else beta0.copy()
    if beta0 is None:
        p0 = np.clip(np.average(y, weights=w), 1e-6, 1 - 1e-6)
        beta[0] = math.log(p0 / (1 - p0))
    sw = w.sum()
    pen = ridge * np.eye(k)
    pen[0, 0] = 0.0
    for _ in range(max_iter):
        eta = np.clip(X @ beta, -30, 30)
        p = 1.0 / (1.0 + np.exp(-eta))
        grad = X.T @ (w * (y - p)) / sw - pen @ beta
        info = (X * (w * p * (1 - p))[:, None]).T @ X / sw + pen
        step = np.linalg.solve(info, grad)
        beta += step
        if np.max(np.abs(step)) < tol:
            break
    eta = np.clip(X @ beta, -30, 30)
    p = 1.0 / (1.0 + np.exp(-eta))
    info = (X * (w * p * (1 - p))[:, None]).T @ X / sw + pen
    return beta, p, info


def _rcs(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Restricted cubic spline terms (Harrell), linear beyond the outer knots."""
    k = knots
    p3 = lambda v: np.maximum(v, 0.0) ** 3  # noqa: E731
    scale = (k[-1] - k[0]) ** 2 or 1.0
    cols = [
        (
            p3(x - k[j])
            - p3(x - k[-2]) * (k[-1] - k[j]) / (k[-1] - k[-2])
            + p3(x - k[-1]) * (k[-2] - k[j]) / (k[-1] - k[-2])
        )
        / scale
        for j in range(len(k) - 2)
    ]
    return np.column_stack(cols)


def propensity_design(X: np.ndarray, t: np.ndarray, knots: int = 4) -> np.ndarray:
    """Covariates plus spline terms of a first logistic fit's linear predictor.

    Assignment in practice is often a capped or saturating function of risk (few children
    below some floor, or above some ceiling, get the intervention whatever their risk); a
    plain logistic model misses that and biases the weights. The spline in the index lets
    the link bend while keeping the covariate structure."""
    if X.shape[1] < 2:
        return X
    b, _, _ = fit_logistic(X, t)
    eta = X @ b
    kn = np.unique(np.quantile(eta, np.linspace(0.05, 0.95, knots)))
    if len(kn) < 3:
        return X
    B = _rcs(eta, kn)
    sd = B.std(axis=0)
    ok = sd > 1e-12
    if not ok.any():
        return X
    B = (B[:, ok] - B[:, ok].mean(axis=0)) / sd[ok]
    return np.column_stack([X, B])


def weights_for(t, e, estimand="ATE"):
    """Inverse probability weights: ATE weights 1/e and 1/(1-e); ATT weights 1 and e/(1-e)."""
    if estimand == "ATE":
        return np.where(t == 1, 1 / e, 1 / (1 - e))
    return np.where(t == 1, 1.0, e / (1 - e))


def crump_alpha(e: np.ndarray) -> float:
    """Crump, Hotz, Imbens & Mitnik (2009) optimal trimming threshold: keep alpha <= e <= 1-alpha."""
    g = 1.0 / (e * (1 - e))
    if g.max() <= 2 * g.mean():
        return 0.0
    gs = np.sort(g)
    csum = np.cumsum(gs) / np.arange(1, len(gs) + 1)
    # smallest gamma with gamma >= 2 * mean(g | g <= gamma)
    ok = gs >= 2 * csum
    gamma = gs[np.argmax(ok)] if ok.any() else gs[-1]
    return float(0.5 - math.sqrt(max(0.25 - 1.0 / gamma, 0.0)))


def kish_ess(w: np.ndarray) -> float:
    """Kish's effective sample size of a weighted group."""
    return float(w.sum() ** 2 / np.sum(w**2)) if len(w) else 0.0


def balance_table(design: Design, t: np.ndarray, w: np.ndarray) -> pd.DataFrame:
    """Standardised mean differences before and after weighting, both over the same pooled
    unweighted SD, so that a change is a change in the means, not in the yardstick.

    For a yes/no characteristic the counts behind the difference before weighting come with it
    (``treated_with``/``control_with`` of ``treated_n``/``control_n``; NaN for other characteristics):
    with the group sizes that difference can give them back, so the report hides it where one is small
    (``report.disclosure.shares_shown``)."""
    rows = []
    raw = design.raw  # type: ignore[attr-defined]
    for j in design.balance_columns:
        x = raw[:, j]
        x1, x0 = x[t == 1], x[t == 0]
        sd = math.sqrt((x1.var(ddof=1) + x0.var(ddof=1)) / 2) if len(x1) > 1 and len(x0) > 1 else float("nan")
        before = (x1.mean() - x0.mean()) / sd if sd > 0 else 0.0
        wm1 = np.average(x1, weights=w[t == 1])
        wm0 = np.average(x0, weights=w[t == 0])
        after = (wm1 - wm0) / sd if sd > 0 else 0.0
        binary = bool(np.isin(x, (0.0, 1.0)).all())
        rows.append(
            {
                "covariate": design.names[j],
                "smd_before": before,
                "smd_after": after,
                "treated_with": float(x1.sum()) if binary else float("nan"),
                "control_with": float(x0.sum()) if binary else float("nan"),
                "treated_n": len(x1),
                "control_n": len(x0),
            }
        )
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


#: The balance table's columns (an empty one has them too).
BALANCE_COLUMNS = ["covariate", "smd_before", "smd_after", "treated_with", "control_with", "treated_n", "control_n"]
