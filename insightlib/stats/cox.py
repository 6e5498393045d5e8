"""Cox proportional hazards: Newton-Raphson on the Efron (or Breslow) partial likelihood, a robust
sandwich variance clustered by child computed in linear time from score residuals (as R's
``coxph(..., cluster=id)``), and the proportional-hazards test of R's ``cox.zph`` (survival >= 3.0:
the exact score test). Checked against lifelines and R (tests/test_survival*.py).

Competing events are treated as censoring (cause-specific hazard). The words and the forest plot
are in report/rereferral_tables.py and report/rereferral_charts.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from insightlib.contract import MIN_EVENTS_FOR_ESTIMATE
from insightlib.errors import InputError
from insightlib.stats.survival import km_table


@dataclass
class _CoxFit:
    beta: np.ndarray
    information: np.ndarray
    loglik: float
    loglik0: float
    iterations: int
    score_residuals: np.ndarray
    schoenfeld: np.ndarray  # one row per event, sorted by time
    event_times: np.ndarray
    data: "_CoxData | None" = field(default=None, repr=False)  # for the exact PH test
    state: dict | None = field(default=None, repr=False)
    case_weights: np.ndarray | None = field(default=None, repr=False)


class _CoxData:
    """The data sorted by time, with everything that does not depend on the coefficients.

    Rows whose time falls in [t_j, t_j+1) between distinct event times are contiguous, so
    risk-set sums are segment sums (np.add.reduceat) followed by a reverse cumulative sum:
    linear in the number of rows, whatever the ties.

    ``weights`` are case weights (R's ``weights=``: inverse probability weights, say); ``counts``
    say how many identical episodes (same time, event and covariates) a row stands for. The fit
    on counted rows is the fit on the episodes written out one by one, Efron's ties included:
    tied events are counted in episodes, so each tie group's fractions k/D run over its D episodes.
    """

    def __init__(self, t, ev, X, ties, weights=None, counts=None):
        order = np.argsort(t, kind="stable")
        self.order = order
        self.t = t[order]
        self.ev = ev[order]
        self.X = X[order]
        n = len(t)
        self.cw = np.ones(n) if weights is None else np.asarray(weights, float)[order]
        self.cnt = np.ones(n) if counts is None else np.asarray(counts, float)[order]
        self.rw = self.cw * self.cnt  # what each row adds to a risk-set sum
        self.etimes = np.unique(self.t[self.ev])
        J = len(self.etimes)
        self.slot = np.searchsorted(self.etimes, self.t, side="right") - 1  # last event time <= T
        self.i0 = int(np.searchsorted(self.slot, 0, side="left"))  # rows before the first event time never at risk
        self.seg = np.searchsorted(self.slot, np.arange(J), side="left")  # first row of each slot
        self.erows = np.flatnonzero(self.ev)
        self.jd = self.slot[self.erows]  # event time index of each event row (sorted)
        self.eseg = np.searchsorted(self.jd, np.arange(J), side="left")
        ecnt = self.cnt[self.erows]
        self.dj = np.add.reduceat(ecnt, self.eseg)  # tied events (episodes) at each event time
        # Efron's D_j terms per event time, one per tied episode, k/D_j the share of the tied risk removed
        D = np.rint(self.dj).astype(np.int64)
        self.vj = np.repeat(np.arange(J), D)
        self.vseg = np.concatenate([[0], np.cumsum(D)[:-1]])
        rank = np.arange(len(self.vj)) - self.vseg[self.vj]
        self.f = rank / self.dj[self.vj] if ties == "efron" else np.zeros(len(self.vj))
        # R's weighted Efron: each of the D_j terms carries the tied events' mean case weight
        self.meanwt = np.add.reduceat(ecnt * self.cw[self.erows], self.eseg) / self.dj
        self.Xe = self.X[self.erows]
        self.ew = self.rw[self.erows]  # case weight x count of each event row
        self.sum_xe = self.ew @ self.Xe


def _revcumsum(a):
    return np.cumsum(a[::-1], axis=0)[::-1]


def _cox_eval(d: _CoxData, beta, need_info=True, chunk=400_000):
    """Log partial likelihood, score, information, and the per-time sums used by residuals."""
    eta = d.X @ beta
    eta_max = float(eta.max()) if len(eta) else 0.0
    w = np.exp(eta - eta_max)
    r = w * d.rw
    i0 = d.i0
    wX = d.X[i0:] * r[i0:, None]
    S0 = _revcumsum(np.add.reduceat(r[i0:], d.seg - i0))
    S1 = _revcumsum(np.add.reduceat(wX, d.seg - i0, axis=0))
    re = r[d.erows]
    T0 = np.add.reduceat(re, d.eseg)
    T1 = np.add.reduceat(d.Xe * re[:, None], d.eseg, axis=0)
    f, vj, vseg, mw = d.f, d.vj, d.vseg, d.meanwt
    den = S0[vj] - f * T0[vj]
    inv = 1.0 / den
    a_u = np.add.reduceat(inv, vseg)
    b_u = np.add.reduceat(f * inv, vseg)
    inv2 = inv * inv
    c0 = np.add.reduceat(inv2, vseg) * mw
    c1 = np.add.reduceat(f * inv2, vseg) * mw
    c2 = np.add.reduceat(f * f * inv2, vseg) * mw
    a, b = a_u * mw, b_u * mw
    loglik = float(d.ew @ eta[d.erows] - mw @ np.add.reduceat(np.log(den) + eta_max, vseg))
    out = dict(w=w, r=r, S0=S0, S1=S1, T0=T0, T1=T1, a=a, b=b, a_u=a_u, b_u=b_u, c0=c0, c1=c1, c2=c2, loglik=loglik)
    if need_info:
        grad = d.sum_xe - a @ S1 + b @ T1
        out.update(grad=grad, info=_information(d, out, chunk=chunk))
    return out


def _information(d: _CoxData, s: dict, gw=None, chunk=400_000) -> np.ndarray:
    """The information, sum over event times j of gw_j V_j (V_j: the Efron or Breslow variance of the
    covariates at t_j); gw = 1 is the usual one, gw = g(t) and g(t)^2 give cox.zph's blocks."""
    w, S1, T1, a, b, c0, c1, c2 = (s[k] for k in ("r", "S1", "T1", "a", "b", "c0", "c1", "c2"))
    if gw is not None:
        a, b, c0, c1, c2 = a * gw, b * gw, c0 * gw, c1 * gw, c2 * gw
    i0 = d.i0
    Acum = np.cumsum(a)  # sum of a_j over event times <= T_i
    wa = w[i0:] * Acum[d.slot[i0:]]
    Xs = d.X[i0:]
    p = d.X.shape[1]
    info = np.zeros((p, p))
    for k in range(0, len(wa), chunk):
        Xi = Xs[k : k + chunk]
        info += (Xi * wa[k : k + chunk, None]).T @ Xi
    wb = w[d.erows] * b[d.jd]
    info -= (d.Xe * wb[:, None]).T @ d.Xe
    info -= (S1 * c0[:, None]).T @ S1
    cross = (S1 * c1[:, None]).T @ T1
    info += cross + cross.T
    info -= (T1 * c2[:, None]).T @ T1
    return info


def _score_residuals(d: _CoxData, s):
    """Each row's score residual, Efron-consistent (R's residuals(fit, "score"), unweighted), in sorted order."""
    w, S1, T1, a, b, c0, c1, c2 = (s[k] for k in ("w", "S1", "T1", "a", "b", "c0", "c1", "c2"))
    dj = d.dj
    X = d.X
    G = S1 * c0[:, None] - T1 * c1[:, None]  # sum_l h_l xbar_l
    Hp = a - b  # sum_l (1 - f_l) h_l
    Gp = S1 * (c0 - c1)[:, None] - T1 * (c1 - c2)[:, None]
    XB = (S1 * s["a_u"][:, None] - T1 * s["b_u"][:, None]) / dj[:, None]  # mean over l of xbar_l
    CH = np.concatenate([[0.0], np.cumsum(a)])
    CG = np.vstack([np.zeros((1, X.shape[1])), np.cumsum(G, axis=0)])
    # at risk without the event at times t_j <= T_i (censored) or t_j < T_i (events)
    k = d.slot + 1 - d.ev.astype(int)
    U = -(w[:, None] * (X * CH[k][:, None] - CG[k]))
    jd, Xe, we = d.jd, d.Xe, w[d.erows]
    U[d.erows] += Xe - XB[jd] - we[:, None] * (Xe * Hp[jd][:, None] - Gp[jd])
    return U, XB


def cox_fit(
    durations, events, X, ties: str = "efron", max_iter: int = 50, tol: float = 1e-10, *, weights=None, counts=None
) -> _CoxFit:
    """Newton-Raphson on the Cox partial likelihood (events == 1 are failures), with step halving.

    ``weights``: case weights (as R's ``coxph(weights=)``, Efron ties as R weights them). ``counts``:
    how many identical episodes each row stands for (see collapse_rows); the fit is that of the
    episodes written out one by one, while the Newton steps cost only the distinct rows."""
    if ties not in ("efron", "breslow"):
        raise InputError("ties must be 'efron' or 'breslow'.")
    t = np.asarray(durations, dtype=float)
    ev = np.asarray(events) == 1
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if not ev.any():
        raise InputError("No re-referrals in the data: a Cox model needs at least one event.")
    mw = _row_weights(len(t), weights, counts)
    d = _CoxData(t, ev, X - np.average(X, axis=0, weights=mw), ties, weights, counts)
    beta, s, ll, loglik0, it = _newton_raphson(d, np.zeros(X.shape[1]), max_iter, tol)
    U_sorted, XB = _score_residuals(d, s)
    U = np.empty_like(U_sorted)
    U[d.order] = U_sorted
    return _CoxFit(
        beta=beta,
        information=s["info"],
        loglik=ll,
        loglik0=loglik0,
        iterations=it,
        score_residuals=U,
        schoenfeld=d.Xe - XB[d.jd],
        event_times=d.t[d.erows],
        data=d,
        state=s,
        case_weights=None if weights is None else np.asarray(weights, float),
    )


def _row_weights(n: int, weights, counts) -> np.ndarray | None:
    """What each row weighs in the covariates' mean (case weight times count); None: all alike."""
    if weights is None and counts is None:
        return None
    return (np.ones(n) if weights is None else np.asarray(weights, float)) * (
        np.ones(n) if counts is None else np.asarray(counts, float)
    )


def _newton_raphson(d: _CoxData, beta: np.ndarray, max_iter: int, tol: float):
    """Newton steps from ``beta``, each halved until the likelihood does not fall; stops when both the
    likelihood and the step are still. Returns (beta, state, loglik, loglik at the start, iterations)."""
    s = _cox_eval(d, beta)
    loglik0 = ll = s["loglik"]
    it = 0
    for it in range(1, max_iter + 1):
        try:
            step = np.linalg.solve(s["info"], s["grad"])
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(s["info"], s["grad"], rcond=None)[0]
        for _ in range(30):
            s_new = _cox_eval(d, beta + step)
            if np.isfinite(s_new["loglik"]) and s_new["loglik"] >= ll - 1e-12:
                break
            step = step / 2
        beta, s = beta + step, s_new
        converged = abs(s["loglik"] - ll) <= tol * (abs(ll) + 1) and np.max(np.abs(step)) < 1e-7
        ll = s["loglik"]
        if converged:
            break
    return beta, s, ll, loglik0, it


def collapse_rows(durations, events, X) -> tuple[np.ndarray, np.ndarray]:
    """Episodes identical in time, event and covariates, found once: (first row of each distinct
    row, which distinct row each episode is). National data repeat themselves (3.27M episodes,
    662k distinct): the likelihood, score and information need only the distinct rows with counts."""
    cols = [np.asarray(durations, float), (np.asarray(events) == 1).astype(float)]
    X = np.asarray(X, float)
    cols += [X[:, j] for j in range(X.shape[1])] if X.ndim == 2 else [X]
    key = np.zeros(len(cols[0]), dtype=np.int64)
    size = 1
    for c in cols:
        codes, uniq = pd.factorize(c)
        k = max(len(uniq), 1)
        if size * k >= 2**62:  # renumber the key so far before it overflows
            key, u = pd.factorize(key)
            size = max(len(u), 1)
        key = key * k + codes
        size *= k
    inv, first = pd.factorize(key)
    rep = np.full(len(first), -1, dtype=np.int64)
    rep[inv[::-1]] = np.arange(len(inv))[::-1]  # first episode of each distinct row
    return rep, inv


def robust_variance(fit: _CoxFit, clusters, rows=None) -> np.ndarray:
    """Sandwich variance I^-1 (sum over clusters of U_c U_c^T) I^-1, linear in the data.

    U_c sums the (case-weighted, as R's dfbeta) score residuals of the cluster's episodes. ``rows``:
    for a fit on collapsed rows, which row each episode is (its residual is its row's)."""
    cl = pd.factorize(np.asarray(clusters))[0]
    U = fit.score_residuals
    if fit.case_weights is not None:
        U = U * fit.case_weights[:, None]
    if rows is not None:
        U = U[rows]
    Uc = np.empty((cl.max() + 1, U.shape[1]))
    for k in range(U.shape[1]):
        Uc[:, k] = np.bincount(cl, weights=U[:, k])
    Iinv = np.linalg.inv(fit.information)
    return Iinv @ (Uc.T @ Uc) @ Iinv


def _solve(A, b):
    """A^-1 b, or the generalised inverse's where A is singular (a level with too few events)."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A) @ b


def term_of(column: str) -> str:
    """The model term a design column belongs to ("primary_need[N2]" -> "primary_need"), as R groups a factor."""
    return column.split("[", 1)[0] if column.endswith("]") and "[" in column else column


def ph_test(fit: _CoxFit, names, transform: str = "km", terms=None) -> pd.DataFrame:
    """The proportional-hazards test of R's ``cox.zph`` (survival >= 3.0): per term and global.

    For each term, the score test (at the fitted coefficients) of adding that term's
    covariates times g(t), g a transform of time: "km" (1 - Kaplan-Meier just before t, R's
    default), "rank" (ranks of all times, ties averaged), "identity" or "log"; g centred on
    its mean over events. The information is the full Cox information of (beta, gamma), so
    this is R's exact test, not the pre-3.0 scaled Schoenfeld approximation. ``terms``: the
    term of each column (default: factor levels "cov[level]" together, as R's terms).
    """
    d, s = fit.data, fit.state
    g_all = _time_transform(d.t, d.ev, d.cnt, transform)
    ce = d.cnt[d.erows]
    g_rows = g_all[d.erows] - np.average(g_all[d.erows], weights=ce)
    gj = g_rows[d.eseg]  # one value per distinct event time (tied events share it)
    p = len(names)
    u = (ce * g_rows) @ fit.schoenfeld  # score for the time-varying terms; the betas' score is 0 at the fit
    I_bb = fit.information
    I_bg = _information(d, s, gj)
    I_gg = _information(d, s, gj * gj)
    full = np.block([[I_bb, I_bg], [I_bg.T, I_gg]])
    terms = [term_of(n) for n in names] if terms is None else list(terms)
    rows = [
        _term_ph_row(term, [k for k, tm in enumerate(terms) if tm == term], full, u) for term in dict.fromkeys(terms)
    ]
    uk = np.concatenate([np.zeros(p), u])
    glob = float(_solve(full, uk) @ uk)
    rows.append(
        {"term": "GLOBAL", "statistic": glob, "df": p, "p_value": float(stats.chi2.sf(glob, p)), "trend": np.nan}
    )
    return pd.DataFrame(rows)


def _term_ph_row(term: str, jj: list[int], full: np.ndarray, u: np.ndarray) -> dict:
    """The score test of one term's time-varying columns ``jj`` (of the augmented information ``full``)."""
    p = len(u)
    kk = list(range(p)) + [p + j for j in jj]
    uk = np.concatenate([np.zeros(p), u[jj]])
    sol = _solve(full[np.ix_(kk, kk)], uk)
    stat = float(sol @ uk)
    # direction (one column): above 0, the log hazard ratio grows with time since closure
    trend = float(sol[-1]) if len(jj) == 1 else np.nan
    return {
        "term": term,
        "statistic": stat,
        "df": len(jj),
        "p_value": float(stats.chi2.sf(stat, len(jj))),
        "trend": trend,
    }


def _time_transform(t_all: np.ndarray, ev_all: np.ndarray, cnt: np.ndarray, transform: str) -> np.ndarray:
    """g(t) for each row sorted by time: "km" (1 - Kaplan-Meier just before t), "rank" (ties averaged),
    "identity" or "log"; with counted rows, over the episodes written out one by one."""
    counted = not np.all(cnt == 1)
    if transform == "rank":
        if not counted:
            return stats.rankdata(t_all, method="average")
        # average rank among the episodes written out one by one
        uniq, first, inv = np.unique(t_all, return_index=True, return_inverse=True)
        ntime = np.bincount(inv.ravel(), weights=cnt)
        before = np.concatenate([[0.0], np.cumsum(ntime)[:-1]])
        return (before + (ntime + 1) / 2)[inv.ravel()]
    if transform == "identity":
        return t_all.astype(float)
    if transform == "log":
        return np.log(t_all)
    if transform != "km":
        raise InputError("transform must be km, rank, identity or log.")
    if counted:
        uniq, inv = np.unique(t_all, return_inverse=True)
        inv = inv.ravel()
        ntime = np.bincount(inv, weights=cnt)
        dtime = np.bincount(inv, weights=cnt * ev_all)
        at = ntime[::-1].cumsum()[::-1]
        kt, ks = uniq[dtime > 0], np.cumprod(1.0 - dtime / at)[dtime > 0]
    else:
        km = km_table(t_all, ev_all.astype(int))
        kt, ks = km["time"].to_numpy(), km["survival"].to_numpy()
    before = np.searchsorted(kt, t_all, side="left") - 1  # last time strictly before t
    return 1.0 - np.concatenate([[1.0], ks])[before + 1]


@dataclass
class CoxResult:
    """Hazard ratios of re-referral with child-clustered robust intervals, and the PH check."""

    terms: pd.DataFrame  # term, coef, se, robust_se, hr, ci_low, ci_high, p_value
    ph: pd.DataFrame  # term, statistic, df, p_value
    n: int
    events: int
    clusters: int
    loglik: float
    references: dict[str, str] = field(default_factory=dict)
    robust_vcov: np.ndarray | None = None  # child-clustered covariance of the coefficients
    term_events: dict[str, int] = field(default_factory=dict)  # fewer re-referrals of in-level and the rest
    #: per covariate, categories counted with the reference (an event-free "Other": rereferral.cox_design)
    with_reference: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            r.term: {"hr": r.hr, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value}
            for r in self.terms.itertuples()
        }

    def estimable(self, term: str) -> bool:
        """The publishing rule (MIN_EVENTS_FOR_ESTIMATE): enough re-referrals and a proper interval."""
        i = np.flatnonzero(self.terms["term"].to_numpy() == term)[0]  # arrays, not a row per call: charts ask often
        low, high = float(self.terms["ci_low"].to_numpy()[i]), float(self.terms["ci_high"].to_numpy()[i])
        if not (np.isfinite(low) and np.isfinite(high) and low > 0):
            return False
        if f"{low:.2f}" == f"{high:.2f}":
            return False
        return self.term_events.get(term, MIN_EVENTS_FOR_ESTIMATE) >= MIN_EVENTS_FOR_ESTIMATE

    def global_test(self) -> dict:
        """Robust (child-clustered) Wald test that every hazard ratio is 1: do the factors matter at all?

        Over the terms the publishing rule lets through (``estimable``): a level with no re-referral has a
        coefficient running off to minus infinity with a near-zero robust variance, which would make any
        model look overwhelmingly significant.
        """
        nan = {"statistic": float("nan"), "df": 0, "p_value": float("nan")}
        if self.robust_vcov is None:
            return nan
        b = self.terms["coef"].to_numpy(float)
        V = np.asarray(self.robust_vcov, float)
        ok = np.isfinite(b) & np.isfinite(np.diag(V)) & np.array([self.estimable(t) for t in self.terms["term"]])
        if not ok.any():
            return nan
        b, V = b[ok], V[np.ix_(ok, ok)]
        stat = float(b @ np.linalg.pinv(V) @ b)
        df = int(np.linalg.matrix_rank(V))
        return {"statistic": stat, "df": df, "p_value": float(stats.chi2.sf(stat, df)) if df else float("nan")}


def _term_events(X: pd.DataFrame, ev: np.ndarray) -> dict[str, int]:
    """Per term, the fewer of the re-referrals among episodes in the level (indicator 1) and among the rest."""
    out = {}
    for name in X.columns:
        x = X[name].to_numpy(dtype=float)
        if np.isin(x, (0.0, 1.0)).all():
            out[name] = int(min((ev & (x == 1)).sum(), (ev & (x == 0)).sum()))
        else:
            out[name] = int(ev.sum())
    return out


def cox_ph(
    durations,
    events,
    X: pd.DataFrame,
    clusters=None,
    ties: str = "efron",
    alpha: float = 0.05,
    ph_transform: str = "km",
    collapse: bool = True,
) -> CoxResult:
    """Cox model for re-referral with robust errors clustered by child (each episode its own cluster if none).

    Episodes identical in time, event and covariates are fitted once with a count (``collapse``): the
    same model, fewer rows; each episode keeps its own cluster in the robust variance."""
    t = np.asarray(durations, dtype=float)
    ev = np.asarray(events) == 1
    names = list(X.columns)
    Xa = X.to_numpy(dtype=float)
    rows = None
    if collapse:
        rep, rows = collapse_rows(t, ev, Xa)
        if len(rep) > 0.8 * len(t):  # hardly any repeats: not worth it
            rows = None
    if rows is None:
        fit = cox_fit(t, ev.astype(int), Xa, ties=ties)
    else:
        fit = cox_fit(t[rep], ev[rep].astype(int), Xa[rep], ties=ties, counts=np.bincount(rows))
    cl = np.arange(len(t)) if clusters is None else np.asarray(clusters)
    V = robust_variance(fit, cl, rows)
    naive = np.sqrt(np.diag(np.linalg.inv(fit.information)))
    se = np.sqrt(np.diag(V))
    z = stats.norm.ppf(1 - alpha / 2)
    terms = pd.DataFrame(
        {
            "term": names,
            "coef": fit.beta,
            "se": naive,
            "robust_se": se,
            "hr": np.exp(fit.beta),
            "ci_low": np.exp(fit.beta - z * se),
            "ci_high": np.exp(fit.beta + z * se),
            "p_value": 2 * stats.norm.sf(np.abs(fit.beta / se)),
        }
    )
    ph = ph_test(fit, names, ph_transform)
    return CoxResult(
        terms=terms,
        ph=ph,
        n=len(t),
        events=int(ev.sum()),
        clusters=len(pd.unique(cl)),
        loglik=fit.loglik,
        robust_vcov=V,
        term_events=_term_events(X, ev),
    )
