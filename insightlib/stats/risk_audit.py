"""Would a risk model of re-referral be accurate and fair? The audit's statistics.

Councils are offered models that score a child at case closure for the risk of coming back
within 12 months. This module fits the two kinds they are sold (a regularised logistic model
and a gradient-boosted one, scikit-learn) on earlier closures and judges them on later ones,
the way What Works for Children's Social Care's 2020 study "Machine learning in children's
services: does it work?" did: a time-based split, never a random one (a random split lets the
model learn from the same period, and often the same children, it is tested on).

On the later closures it measures discrimination (AUC, average precision), calibration (slope,
intercept, a binned curve), what a threshold means in children (precision and recall at the
share flagged), and fairness by group (calibration within group as observed over expected,
false-positive and false-negative rates, flag rates against the referred population as a
relative rate index; checked against fairlearn's MetricFrame in the tests). Intervals come from
a bootstrap of children in the test period (the fitted models held fixed: the uncertainty is
that of judging them on a finite test period). Per-child scores never leave these functions:
the results hold aggregates only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from insightlib.contract import as_datetime

HORIZON_DAYS = 365

#: Pre-stated bars (an evaluation file may change them; docs/risk-audit.md gives the reasons).
DEFAULT_BARS = {
    "auc_min": 0.75,  # discrimination: better than "acceptable" (0.7, Hosmer & Lemeshow) for decisions about children
    "precision_min": 0.5,  # of children flagged, at least half re-referred
    "calibration_slope": [0.8, 1.2],  # predictions neither too spread out nor too bunched
    "calibration_intercept": [-0.2, 0.2],  # overall level right on the log-odds scale
    "group_observed_expected": [0.8, 1.25],  # within-group calibration: re-referred as often as predicted
    "group_flag_rri": [0.8, 1.25],  # flag rate against the referred population (four-fifths rule either way)
    "group_error_rate_difference": 0.1,  # false-positive / false-negative rate differs from everyone's by at most this
    "min_group_cases": 50,  # groups with fewer test cases are shown but not judged
}

MODELS = ("logistic", "boosting")
MODEL_LABELS = {"logistic": "Regularised logistic regression", "boosting": "Gradient-boosted trees"}


# --------------------------------------------------------------------------------------
# The time-based split
# --------------------------------------------------------------------------------------


@dataclass
class Split:
    """Which closed cases train and which test: indexes into the frame, and the dates."""

    train: np.ndarray
    test: np.ndarray
    test_from: pd.Timestamp
    train_to: pd.Timestamp  # last closure date allowed in training (outcome known before test_from)
    test_to: pd.Timestamp

    def to_dict(self) -> dict:
        return {
            "test_from": str(self.test_from.date()),
            "test_to": str(self.test_to.date()),
            "train_closures_to": str(self.train_to.date()),
            "train_cases": int(len(self.train)),
            "test_cases": int(len(self.test)),
        }


def time_split(
    frame: pd.DataFrame,
    *,
    test_from=None,
    test_years: float = 1.0,
    horizon_days: int = HORIZON_DAYS,
    outcome: str = "rereferred",
) -> Split:
    """Train on closures whose outcome was known before the test period began; test on closures
    from ``test_from`` (default: the last ``test_years`` of closures with a known outcome).

    A training case closed on day d has its outcome only at d + horizon, so training closures end
    ``horizon_days`` before ``test_from``: the model is built as a council could have built it on
    the day the test period starts, and no later closure (nor any later outcome) reaches it."""
    closure = as_datetime(frame["closure_date"])
    known = frame[outcome].notna().to_numpy()
    if not known.any():
        raise ValueError("no closed case has a known outcome (every case closed within the horizon of the extract)")
    last = closure[known].max()
    start = (
        pd.Timestamp(test_from)
        if test_from is not None
        else last - pd.Timedelta(days=int(round(365.25 * test_years)) - 1)
    )
    train_to = start - pd.Timedelta(days=horizon_days + 1)
    c = closure.to_numpy()
    test = np.flatnonzero(known & (c >= np.datetime64(start)))
    train = np.flatnonzero(known & (c <= np.datetime64(train_to)))
    return Split(train, test, start, train_to, last)


# --------------------------------------------------------------------------------------
# The models (scikit-learn)
# --------------------------------------------------------------------------------------


def _columns(frame: pd.DataFrame, features):
    cat = [f for f in features if frame[f].dtype == object or str(frame[f].dtype).startswith(("string", "category"))]
    num = [f for f in features if f not in cat]
    return cat, num


def make_model(kind: str, frame: pd.DataFrame, features, seed: int = 0):
    """An unfitted scikit-learn pipeline of the kind councils are sold."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    cat, num = _columns(frame, features)
    if kind == "logistic":
        pre = ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=10), cat), ("num", StandardScaler(), num)]
        )
        return Pipeline([("prepare", pre), ("model", LogisticRegression(C=1.0, max_iter=2000))])
    if kind == "boosting":
        pre = ColumnTransformer(
            [
                (
                    "cat",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
                    cat,
                ),
                ("num", "passthrough", num),
            ]
        )
        model = HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.1,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            categorical_features=list(range(len(cat))) if cat else None,
            early_stopping=True,
            validation_fraction=0.2,
            n_iter_no_change=10,
            random_state=seed,
        )
        return Pipeline([("prepare", pre), ("model", model)])
    raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")


def prepare(frame: pd.DataFrame, features) -> pd.DataFrame:
    """Feature columns as the models take them (categories as text, numbers as floats)."""
    out = pd.DataFrame(index=frame.index)
    cat, num = _columns(frame, features)
    for f in cat:
        out[f] = frame[f].astype(str).fillna("missing")
    for f in num:
        v = pd.to_numeric(frame[f], errors="coerce").astype(float)
        out[f] = v.fillna(v.median() if v.notna().any() else 0.0)
    return out[list(features)]


# --------------------------------------------------------------------------------------
# Metrics (weights = bootstrap counts), each written once
# --------------------------------------------------------------------------------------


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def calibration_fit(y, p, w=None) -> tuple[float, float]:
    """Calibration slope (logistic regression of the outcome on the predicted log-odds) and
    calibration intercept (calibration-in-the-large: the intercept with the log-odds as offset)."""
    y = np.asarray(y, float)
    w = np.ones(len(y)) if w is None else np.asarray(w, float)
    lp = _logit(np.asarray(p, float))
    X = np.column_stack([np.ones(len(y)), lp])
    beta = np.array([0.0, 1.0])
    for _ in range(50):
        mu = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
        g = X.T @ (w * (y - mu))
        H = (X * (w * mu * (1 - mu))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, g)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    a = 0.0
    for _ in range(50):
        mu = 1 / (1 + np.exp(-np.clip(a + lp, -30, 30)))
        step = np.sum(w * (y - mu)) / max(np.sum(w * mu * (1 - mu)), 1e-12)
        a += step
        if abs(step) < 1e-10:
            break
    return float(beta[1]), float(a)


def calibration_fits(y, p, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """calibration_fit for every row of weights ``W`` (replicates x cases) at once, each replicate stopping where
    calibration_fit stops, on the cases summed by distinct score and outcome. The bootstrap's 200 fits one by one
    were a third of the audit; tests check these against calibration_fit."""
    y, W = np.asarray(y, float), np.atleast_2d(np.asarray(W, float))
    lp = _logit(np.asarray(p, float))
    cell = np.unique(np.column_stack([lp, y]), axis=0, return_inverse=True)
    keys, inv = cell[0], np.ravel(cell[1])
    order = np.argsort(inv, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inv[order]) != 0])
    w = np.add.reduceat(W[:, order], starts, axis=1) if len(y) else np.zeros((W.shape[0], 0))
    lp, y = keys[:, 0], keys[:, 1]
    reps = W.shape[0]
    b0, b1 = np.zeros(reps), np.ones(reps)
    active = np.ones(reps, bool)
    for _ in range(50):
        if not active.any():
            break
        wa = w[active]
        mu = 1 / (1 + np.exp(-np.clip(b0[active, None] + b1[active, None] * lp, -30, 30)))
        r, v = wa * (y - mu), wa * mu * (1 - mu)
        g0, g1 = r.sum(axis=1), r @ lp
        h00, h01, h11 = v.sum(axis=1) + 1e-9, v @ lp, v @ (lp * lp) + 1e-9
        det = h00 * h11 - h01 * h01
        s0, s1 = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        b0[active] += s0
        b1[active] += s1
        active[np.flatnonzero(active)[np.maximum(np.abs(s0), np.abs(s1)) < 1e-10]] = False
    a = np.zeros(reps)
    active[:] = True
    for _ in range(50):
        if not active.any():
            break
        wa = w[active]
        mu = 1 / (1 + np.exp(-np.clip(a[active, None] + lp, -30, 30)))
        step = (wa * (y - mu)).sum(axis=1) / np.maximum((wa * mu * (1 - mu)).sum(axis=1), 1e-12)
        a[active] += step
        active[np.flatnonzero(active)[np.abs(step) < 1e-10]] = False
    return b1, a


def discrimination(y, p, W=None) -> tuple[np.ndarray, np.ndarray]:
    """AUC and average precision for every row of weights ``W`` (replicates x cases; default every
    case once), from one sort of the scores; ties count half (AUC) or together (average precision),
    as in scikit-learn's roc_auc_score and average_precision_score, which the tests check them against."""
    y = np.asarray(y, float)
    W = np.ones((1, len(y))) if W is None else np.atleast_2d(np.asarray(W, float))
    uniq, inv = np.unique(np.asarray(p, float), return_inverse=True)
    k = len(uniq)
    # weighted positives and negatives at each distinct score (replicates x scores)
    P = np.zeros((W.shape[0], k))
    N = np.zeros((W.shape[0], k))
    for r in range(W.shape[0]):
        P[r] = np.bincount(inv, weights=W[r] * y, minlength=k)
        N[r] = np.bincount(inv, weights=W[r] * (1 - y), minlength=k)
    tp, tn = P.sum(axis=1), N.sum(axis=1)
    below = np.cumsum(N, axis=1) - N  # negatives with a lower score
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(P * (below + 0.5 * N), axis=1) / (tp * tn)
        # average precision: thresholds from the highest score down
        Pd, Nd = P[:, ::-1], N[:, ::-1]
        ctp = np.cumsum(Pd, axis=1)
        prec = ctp / (ctp + np.cumsum(Nd, axis=1))
        ap = np.sum(np.where(Pd > 0, Pd * prec, 0.0), axis=1) / tp
    bad = (tp == 0) | (tn == 0)
    auc[bad] = np.nan
    ap[bad] = np.nan
    return auc, ap


def threshold_metrics(y, flagged, w=None) -> dict:
    """Precision, recall, the share flagged and the base rate."""
    w = np.ones(len(y)) if w is None else w
    f = flagged.astype(float)
    tp = np.sum(w * f * y)
    nf = np.sum(w * f)
    npos = np.sum(w * y)
    return {
        "precision": tp / nf if nf else float("nan"),
        "recall": tp / npos if npos else float("nan"),
        "flag_share": nf / np.sum(w),
        "base_rate": npos / np.sum(w),
    }


GROUP_COLUMNS = (
    "observed_expected",
    "flag_rate",
    "flag_rri",
    "false_positive_rate",
    "false_negative_rate",
    "fpr_difference",
    "fnr_difference",
)


def group_rates(y, p, flagged, codes: np.ndarray, k: int, W: np.ndarray) -> dict[str, np.ndarray]:
    """By-group rates for every row of weights ``W`` (replicates x cases) at once: cases, observed and
    expected re-referral, flag rate, false-positive and false-negative rates (each replicates x groups),
    then observed/expected, the flag rate's relative rate index (the group's flag rate over the whole
    referred population's) and each error rate's difference from everyone's. Written with matrix
    products so the child bootstrap costs one pass; tests check the rates against fairlearn's MetricFrame."""
    y = np.asarray(y, float)
    f = np.asarray(flagged, float)
    p = np.asarray(p, float)
    G = np.zeros((len(y), k))
    G[np.arange(len(y)), codes] = 1.0

    def by(v):  # weighted sums by group, and overall
        return W @ (G * v[:, None]), W @ v

    n, n_all = by(np.ones(len(y)))
    obs, obs_all = by(y)
    exp_, _ = by(p)
    fl, fl_all = by(f)
    fp, fp_all = by(f * (1 - y))
    neg, neg_all = by(1 - y)
    fn, fn_all = by((1 - f) * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "cases": n,
            "observed": obs / n,
            "expected": exp_ / n,
            "flag_rate": fl / n,
            "false_positive_rate": fp / neg,
            "false_negative_rate": fn / obs,
        }
        out["observed_expected"] = obs / exp_
        out["flag_rri"] = out["flag_rate"] / (fl_all / n_all)[:, None]
        out["fpr_difference"] = out["false_positive_rate"] - (fp_all / neg_all)[:, None]
        out["fnr_difference"] = out["false_negative_rate"] - (fn_all / obs_all)[:, None]
    return out


def group_metrics(y, p, flagged, groups, w=None) -> pd.DataFrame:
    """group_rates for one set of weights (default: every case once), as a table by group."""
    labels, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    W = np.ones((1, len(y))) if w is None else np.asarray(w, float)[None, :]
    r = group_rates(y, p, flagged, codes, len(labels), W)
    out = pd.DataFrame({k: v[0] for k, v in r.items()}, index=pd.Index(labels, name="group"))
    return out


def calibration_curve(y, p, bins: int = 10) -> pd.DataFrame:
    """Cases in equal-sized bins of the score: mean predicted and observed re-referral, with counts
    (the counts must pass disclosure control before they are shown)."""
    q = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    b = np.clip(np.searchsorted(q, p, side="right") - 1, 0, len(q) - 2)
    df = pd.DataFrame({"bin": b, "y": y, "p": p})
    g = df.groupby("bin")
    return pd.DataFrame(
        {
            "cases": g.size(),
            "rereferred": g["y"].sum().astype(int),
            "predicted": g["p"].mean(),
            "observed": g["y"].mean(),
        }
    ).reset_index(drop=True)


# --------------------------------------------------------------------------------------
# One model judged on the test period, with bootstrap intervals by child
# --------------------------------------------------------------------------------------


@dataclass
class Interval:
    estimate: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass
class ModelAudit:
    """Aggregates only: no per-child score."""

    model: str
    cases: int
    # auc, average_precision, calibration_slope, calibration_intercept, precision, recall, flag_share, base_rate
    metrics: dict[str, Interval]
    curve: pd.DataFrame  # calibration curve bins (counts inside: through disclosure control before showing)
    groups: dict[str, pd.DataFrame]  # attribute -> by-group table with intervals (_low/_high columns)
    flag_share_target: float
    reps: int

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "cases": self.cases,
            "flag_share_target": self.flag_share_target,
            "bootstrap_reps": self.reps,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "calibration_curve": self.curve[["predicted", "observed"]].to_dict(orient="records"),
            "groups": {
                a: {
                    str(g): {c: (None if pd.isna(v) else float(v)) for c, v in row.items() if c != "cases"}
                    for g, row in t.iterrows()
                }
                for a, t in self.groups.items()
            },
        }


def audit_scores(
    y,
    p,
    threshold: float,
    clusters,
    groups: dict[str, pd.Series],
    *,
    model: str = "",
    flag_share: float = 0.1,
    reps: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> ModelAudit:
    """Judge one model's test-period scores ``p`` (outcomes ``y``), flagging scores at or above
    ``threshold``; intervals by resampling children (``clusters``) ``reps`` times."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    clusters = pd.factorize(np.asarray(clusters))[0]
    flagged = p >= threshold
    W = _bootstrap_weights(clusters, reps, seed, len(y))
    alpha = (1 - level) / 2
    metrics = _overall_metrics(y, p, flagged, W, reps, alpha)
    tables = {a: _group_table(y, p, flagged, g, W, reps, alpha) for a, g in groups.items()}
    return ModelAudit(model, int(len(y)), metrics, calibration_curve(y, p), tables, float(flag_share), int(reps))


def _bootstrap_weights(clusters: np.ndarray, reps: int, seed: int, n: int) -> np.ndarray:
    """One row per replicate: how many times each case is drawn when the children are resampled."""
    if not reps:
        return np.zeros((0, n))
    rng = np.random.default_rng(seed)
    G = clusters.max() + 1 if len(clusters) else 0
    return np.stack([np.bincount(rng.integers(0, G, G), minlength=G)[clusters].astype(float) for _ in range(reps)])


def _overall_metrics(y, p, flagged, W: np.ndarray, reps: int, alpha: float) -> dict[str, Interval]:
    """Discrimination, calibration and the threshold's metrics over all test cases, each with its
    bootstrap interval (none from fewer than 20 replicates)."""
    auc0, ap0 = discrimination(y, p)
    slope, intercept = calibration_fit(y, p)
    point = {
        "auc": float(auc0[0]),
        "average_precision": float(ap0[0]),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        **threshold_metrics(y, flagged),
    }
    boot = {k: [] for k in point}
    if reps:
        boot["auc"], boot["average_precision"] = discrimination(y, p, W)
        boot["calibration_slope"], boot["calibration_intercept"] = calibration_fits(y, p, W)
        boot.update(_threshold_replicates(y, flagged, W))
    metrics = {}
    for k, v in point.items():
        if reps >= 20:
            lo, hi = np.nanquantile(np.array(boot[k], float), [alpha, 1 - alpha])
        else:
            lo = hi = float("nan")
        metrics[k] = Interval(float(v), float(lo), float(hi))
    return metrics


def _threshold_replicates(y, flagged, W: np.ndarray) -> dict[str, np.ndarray]:
    """threshold_metrics for every row of weights ``W``; the weights are counts, so every sum is a whole number
    and each ratio is the one threshold_metrics gives."""
    f = flagged.astype(float)
    tp, nf, npos, total = W @ (f * y), W @ f, W @ y, W.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "precision": np.where(nf > 0, tp / nf, np.nan),
            "recall": np.where(npos > 0, tp / npos, np.nan),
            "flag_share": nf / total,
            "base_rate": npos / total,
        }


def _group_table(y, p, flagged, g: pd.Series, W: np.ndarray, reps: int, alpha: float) -> pd.DataFrame:
    """One group attribute's rates by group (group_metrics) with bootstrap intervals."""
    labels, codes = np.unique(np.asarray(g).astype(str), return_inverse=True)
    t = group_metrics(y, p, flagged, g)
    if reps >= 20:
        r = group_rates(y, p, flagged, codes, len(labels), W)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a replicate without any case of a small group
            for c in GROUP_COLUMNS:
                lo, hi = np.nanquantile(r[c], [alpha, 1 - alpha], axis=0)
                t[f"{c}_low"], t[f"{c}_high"] = lo, hi
    else:
        for c in GROUP_COLUMNS:
            t[f"{c}_low"] = t[f"{c}_high"] = np.nan
    return t
