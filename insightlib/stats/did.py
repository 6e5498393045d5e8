"""Staggered-adoption difference-in-differences: the imputation (two-stage) estimate, plain two-way fixed
effects for contrast, and the pre-trend test. Pure numpy/scipy/pandas (pyfixest for the reference fit).

Gardner's two-stage estimator (pyfixest ``did2s``) is valid when a programme's effect differs by council and
over time: council and period effects are learned only from council-periods not (yet) treated, and the effect
is the average gap between what adopters saw and what those effects predict. Plain two-way fixed effects
compares later adopters with earlier ones whose own effect is still changing, so it is biased in exactly that
setting; it is kept for contrast. Randomisation inference, for few adopters, is in ``did_randomisation``.
The rows are a ``Sample``: columns unit, time, adopt (adoption period, missing for never), y, event_time,
treated, post.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

#: Below this many adopting councils, clustered intervals (Student's t with G - 1 degrees of freedom) do not
#: keep their coverage (docs/programme.md); the headline interval then comes from randomisation inference.
MIN_ADOPTERS_CLUSTERED = 6


def t_interval(estimate: float, se: float, df: int, alpha: float) -> dict:
    """Estimate, standard error, Student's t interval and two-sided p-value (NaN where they cannot be had)."""
    if not (np.isfinite(estimate) and np.isfinite(se)) or df < 1:
        return {
            "estimate": float(estimate),
            "se": float(se),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": float("nan"),
        }
    crit = stats.t.ppf(1 - alpha / 2, df)
    p = 2 * stats.t.sf(abs(estimate / se), df) if se > 0 else float("nan")
    return {
        "estimate": float(estimate),
        "se": float(se),
        "ci_low": float(estimate - crit * se),
        "ci_high": float(estimate + crit * se),
        "p_value": float(p),
    }


@dataclass
class Sample:
    """The rows the estimators use, and how many were left out for each reason."""

    data: pd.DataFrame
    dropped: dict[str, int]


def estimation_sample(
    panel: pd.DataFrame, outcome: str, unit: str, time: str, adoption: str, horizon: int | None
) -> Sample:
    """Rows the imputation can use: council and period effects must be learnable from untreated rows."""
    missing = [c for c in (unit, time, adoption, outcome) if c not in panel.columns]
    if missing:
        raise InputError(f"the panel is missing column(s) {', '.join(missing)}.")
    d = panel[[unit, time, adoption, outcome]].copy()
    d = d.rename(columns={unit: "unit", time: "time", adoption: "adopt", outcome: "y"})
    d["unit"] = d["unit"].astype(str)
    d["y"] = pd.to_numeric(d["y"], errors="coerce")
    dropped = {"missing outcome": int(d["y"].isna().sum())}
    d = d.loc[d["y"].notna()].copy()
    d["time"] = d["time"].astype(int)
    d["adopt"] = pd.array(d["adopt"], dtype="Int64")
    d["event_time"] = pd.array(d["time"], dtype="Int64") - d["adopt"]
    d["treated"] = (d["event_time"] >= 0).fillna(False).astype(bool)
    if horizon is not None:
        beyond = d["treated"] & (d["event_time"] >= horizon)
        dropped["beyond horizon"] = int(beyond.sum())
        d = d.loc[~beyond]
    # Councils and periods with fewer than two untreated rows cannot anchor the imputation.
    lost_units = lost_times = 0
    while True:
        untreated = d.loc[~d["treated"]]
        u_ok = untreated.groupby("unit").size()
        t_ok = untreated.groupby("time").size()
        bad_u = ~d["unit"].isin(u_ok.index[u_ok >= 2])
        bad_t = ~d["time"].isin(t_ok.index[t_ok >= 2])
        if not (bad_u.any() or bad_t.any()):
            break
        lost_units += int(bad_u.sum())
        lost_times += int((bad_t & ~bad_u).sum())
        d = d.loc[~(bad_u | bad_t)]
    dropped["council without untreated periods"] = lost_units
    dropped["period without untreated councils"] = lost_times
    d = d.reset_index(drop=True)
    d["event_time"] = d["event_time"].astype("float")
    d["post"] = d["treated"].astype(float)
    return Sample(d, dropped)


def did2s(d: pd.DataFrame, regressors: list[str], alpha: float) -> dict[str, dict]:
    """Gardner's two-stage estimator (pyfixest.did2s), clustered by council.

    pyfixest returns the GMM cluster-robust variance without a small-sample factor and with
    normal-based p-values; with a few dozen councils we scale by G/(G-1) and use Student's t
    with G-1 degrees of freedom, as fixest does for clustered errors.
    """
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.did2s(
            d,
            yname="y",
            first_stage="~ 0 | unit + time",
            second_stage="~ " + " + ".join(regressors),
            treatment="treated",
            cluster="unit",
        )
    coef = fit.coef()
    vcov = np.asarray(fit._vcov)
    g = int(d["unit"].nunique())
    scale = g / (g - 1) if g > 1 else float("nan")
    out = {}
    for i, name in enumerate(coef.index):
        out[str(name)] = t_interval(float(coef.iloc[i]), float(np.sqrt(vcov[i, i] * scale)), g - 1, alpha)
    return out


def did2s_fast(d: pd.DataFrame, regressors: list[str], alpha: float) -> dict[str, dict]:
    """The same estimate and variance as ``did2s`` (pyfixest did2s) in plain numpy, for the placebo loop.

    pyfixest builds model matrices from formulas on every call (about 0.3 s on the published
    panel); hundreds of placebo draws need the arithmetic only. Gardner (2022): stage one
    fits council and period effects on untreated rows, stage two regresses the adjusted
    outcome on the treatment columns; the GMM variance sums, by council,
    X2g'u2g - X2'X1 (X10'X10)^-1 X10g'u1g. The fixed-effect design X1 is never formed: its
    cross-products are counts, so only a (councils + periods) square system is solved. A test
    holds this equal to pyfixest.
    """
    units, u_idx = np.unique(d["unit"].to_numpy(), return_inverse=True)
    times, t_idx = np.unique(d["time"].to_numpy(), return_inverse=True)
    g = len(units)
    c = g + len(times) - 1
    has_t = t_idx > 0
    t_col = np.where(has_t, g + t_idx - 1, 0)
    untreated = ~d["treated"].to_numpy(bool)
    y = d["y"].to_numpy(float)
    w = untreated.astype(float)

    def cross(values: np.ndarray) -> np.ndarray:
        """X1' diag(values): sums of values by council column and by period column."""
        out = np.bincount(u_idx, weights=values, minlength=c)
        out += np.bincount(t_col[has_t], weights=values[has_t], minlength=c) if has_t.any() else 0.0
        return out

    solve = _untreated_solver(u_idx, t_col, has_t, w, g, c)
    gamma = solve(cross(y * w))

    def x1_dot(v: np.ndarray) -> np.ndarray:
        """X1 @ v without forming X1 (v: c or c x k)."""
        return v[u_idx] + np.where(has_t[:, None] if v.ndim == 2 else has_t, v[t_col], 0.0)

    adjusted = y - x1_dot(gamma)
    X2 = d[regressors].to_numpy(float)
    X2X2_inv = np.linalg.pinv(X2.T @ X2)
    beta = X2X2_inv @ (X2.T @ adjusted)
    u2 = adjusted - X2 @ beta
    u1 = adjusted * w
    X2X1 = np.column_stack([cross(X2[:, j]) for j in range(X2.shape[1])])  # c x k
    V = solve(X2X1)  # (X10'X10)^-1 X1'X2
    rows = X2 * u2[:, None] - u1[:, None] * x1_dot(V)
    W = np.zeros((g, X2.shape[1]))
    np.add.at(W, u_idx, rows)
    scores = W @ X2X2_inv
    vcov = scores.T @ scores * (g / (g - 1) if g > 1 else float("nan"))
    return {
        name: t_interval(float(beta[i]), float(np.sqrt(vcov[i, i])), g - 1, alpha) for i, name in enumerate(regressors)
    }


def _untreated_solver(u_idx: np.ndarray, t_col: np.ndarray, has_t: np.ndarray, w: np.ndarray, g: int, c: int):
    """r -> (X10'X10)^-1 r for the fixed-effect design X10 of the untreated rows (weights ``w``), never formed.

    X10'X10 = [[Du, B], [B', Dt]]: untreated rows per council (diagonal), per period (diagonal),
    and per council and period (B). Solved through the small period block (Schur complement),
    since every council has untreated rows (the sample ensures it).
    """
    Du = np.bincount(u_idx, weights=w, minlength=g)
    rows_t = np.flatnonzero(has_t)
    B = np.zeros((g, c - g))
    np.add.at(B, (u_idx[rows_t], t_col[rows_t] - g), w[rows_t])
    Dt = B.sum(axis=0)
    S = np.diag(Dt) - B.T @ (B / Du[:, None])

    def solve(r: np.ndarray) -> np.ndarray:
        r_u, r_t = r[:g], r[g:]
        x_t = np.linalg.lstsq(S, r_t - B.T @ (r_u / Du[:, None] if r.ndim == 2 else r_u / Du), rcond=None)[0]
        x_u = (r_u - B @ x_t) / (Du[:, None] if r.ndim == 2 else Du)
        return np.concatenate([x_u, x_t])

    return solve


def _residualise(d: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Columns with council and period effects projected out (Frisch-Waugh-Lovell)."""
    units = pd.get_dummies(d["unit"], dtype=float).to_numpy()
    times = pd.get_dummies(d["time"], dtype=float).to_numpy()[:, 1:]
    D = np.column_stack([units, times])
    Z = d[columns].to_numpy(dtype=float)
    coef, *_ = np.linalg.lstsq(D, Z, rcond=None)
    return Z - D @ coef


#: Webb's six-point weights: wild cluster bootstrap that stays reliable with few clusters.
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])


def _cluster_wald(X: np.ndarray, y: np.ndarray, groups: np.ndarray, n_groups: int, xtx_inv: np.ndarray, dof_k: int):
    """Wald statistic for all coefficients = 0, CRV1 variance (fixest's small-sample factors)."""
    b = xtx_inv @ (X.T @ y)
    u = y - X @ b
    scores = np.zeros((n_groups, X.shape[1]))
    np.add.at(scores, groups, X * u[:, None])
    n = len(y)
    factor = n_groups / (n_groups - 1) * (n - 1) / max(n - dof_k, 1)
    V = factor * xtx_inv @ (scores.T @ scores) @ xtx_inv
    return float(b @ np.linalg.pinv(V) @ b), b, V


def _wild_bootstrap_p(X, y, groups, n_groups, xtx_inv, dof_k, observed, draws, seed, chunk=250) -> float:
    """Share of null-imposed wild cluster bootstrap Wald statistics at least as large as observed."""
    rng = np.random.default_rng(seed)
    n, k = X.shape
    S = np.zeros((n_groups, n))
    S[groups, np.arange(n)] = 1.0
    factor = n_groups / (n_groups - 1) * (n - 1) / max(n - dof_k, 1)
    exceed, done = 0, 0
    while done < draws:
        m = min(chunk, draws - done)
        W = rng.choice(_WEBB, size=(n_groups, m))
        Y = y[:, None] * W[groups]  # n x m
        B = xtx_inv @ (X.T @ Y)  # k x m
        U = Y - X @ B  # n x m
        scores = (S @ (X[:, :, None] * U[:, None, :]).reshape(n, k * m)).reshape(n_groups, k, m)
        meat = np.einsum("gjb,glb->bjl", scores, scores)  # m x k x k
        V = factor * np.einsum("ij,bjl,lm->bim", xtx_inv, meat, xtx_inv)
        sol = np.linalg.solve(V + 1e-12 * np.eye(k), B.T[:, :, None])[:, :, 0]
        stat = np.einsum("bk,bk->b", B.T, sol)
        exceed += int((stat >= observed * (1 - 1e-12)).sum())
        done += m
    return (1 + exceed) / (draws + 1)


#: The pre-trend test's result when it cannot be run.
_NO_PRETREND = {
    "statistic": float("nan"),
    "df_num": 0,
    "df_den": 0,
    "p_value": float("nan"),
    "p_value_f": float("nan"),
    "leads": 0,
    "bootstrap_draws": 0,
    "method": "",
}


def _lead_design(u: pd.DataFrame, leads: int) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """The untreated rows' outcome and lead indicators with council and period effects projected out, leads
    never observed or collinear with the others left out; None when no lead is left. Adds the lead columns to u."""
    names = []
    for k in range(1, leads + 1):
        col = f"lead{k}"
        u[col] = (u["event_time"] == -k).astype(float)
        if u[col].sum() > 0:
            names.append(col)
    if not names:
        return None
    Z = _residualise(u, ["y"] + names)
    y, X = Z[:, 0], Z[:, 1:]
    keep = [j for j in range(X.shape[1]) if np.linalg.norm(X[:, j]) > 1e-8]
    X = X[:, keep]
    names = [names[j] for j in keep]
    if not names:
        return None
    # drop any lead that is collinear with the others (after the fixed effects)
    q, r = np.linalg.qr(X)
    independent = np.abs(np.diag(r)) > 1e-8 * max(1.0, np.abs(np.diag(r)).max())
    return y, X[:, independent], [n for n, ok in zip(names, independent) if ok]


def pretrend_test(
    d: pd.DataFrame, leads: int, alpha: float, draws: int = 999, seed: int = 12345
) -> tuple[dict, pd.DataFrame]:
    """Borusyak, Jaravel and Spiess's test: leads of adoption among untreated rows, jointly zero.

    Untreated council-periods only, with council and period effects, plus indicators for the
    ``leads`` periods just before adoption. Under parallel trends their coefficients are zero.
    The joint Wald statistic (clustered by council) is referred to a wild cluster bootstrap
    with the null imposed (Webb weights, Roodman et al. 2019): the textbook F reference
    rejects far too often when few councils adopt (29% at a nominal 5% with 6 adopters in our
    simulations), the bootstrap does not. The test runs apart from the effect estimate so it
    cannot bias it.
    """
    u = d.loc[~d["treated"]].copy()
    design = _lead_design(u, leads)
    if design is None:
        return dict(_NO_PRETREND), pd.DataFrame()
    y, X, names = design
    codes, groups = np.unique(u["unit"].to_numpy(), return_inverse=True)
    g = len(codes)
    if g < 2:
        return dict(_NO_PRETREND), pd.DataFrame()
    k = X.shape[1]
    dof_k = k + u["unit"].nunique() + u["time"].nunique() - 1
    xtx_inv = np.linalg.inv(X.T @ X)
    wald, b, V = _cluster_wald(X, y, groups, g, xtx_inv, dof_k)
    p_boot = _wild_bootstrap_p(X, y, groups, g, xtx_inv, dof_k, wald, draws, seed)
    p_f = float(stats.f.sf(wald / k, k, g - 1))
    rows = []
    for i, name in enumerate(names):
        est = t_interval(float(b[i]), float(np.sqrt(V[i, i])), g - 1, alpha)
        rows.append({"event_time": -int(name.replace("lead", "")), **est})
    return {
        "statistic": wald / k,
        "df_num": k,
        "df_den": g - 1,
        "p_value": float(p_boot),
        "p_value_f": p_f,
        "leads": k,
        "bootstrap_draws": draws,
        "method": "joint Wald test of pre-adoption leads, wild cluster bootstrap (Webb weights, null imposed)",
    }, pd.DataFrame(rows)


def twfe(d: pd.DataFrame, alpha: float) -> dict:
    """Plain two-way fixed effects (one 'post' coefficient): biased under staggered, growing effects."""
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # fixef_tol: pyfixest's default (1e-8) stops the demeaning early enough to move the standard error in its
        # ninth digit with the order of floating-point sums (pool and Dask runs differed by 2.3e-9); 1e-12 gives
        # the exact dummy-variable regression's to 1e-12 (tests/test_programme.py)
        fit = pf.feols("y ~ post | unit + time", data=d, vcov={"CRV1": "unit"}, fixef_tol=1e-12)
    est = float(fit.coef()["post"])
    se = float(fit.se()["post"])
    return t_interval(est, se, int(d["unit"].nunique()) - 1, alpha)
