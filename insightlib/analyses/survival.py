"""Re-referral survival: how soon, and for whom, children come back after their case closes.

Estimators, all vectorised over sorted times so that the national data (3.4 million
episodes) runs in seconds, and each checked against lifelines and R's survival package
(tests/test_survival.py, tests/test_survival_r.py):

- Kaplan-Meier by group, Greenwood variance or, with the child as cluster, the
  infinitesimal jackknife summed by child (R's ``survfit(..., cluster=id)``), log-log
  confidence bands (as lifelines and R's ``conf.type="log-log"``), numbers at risk at horizons;
- the test that groups differ: log-rank (as R's ``survdiff``) or, where children have
  several episodes, the child-clustered robust score test (R's ``coxph(Surv ~ group +
  cluster(id))`` robust score test);
- Aalen-Johansen cumulative incidence of re-referral with the competing events
  (18th birthday, death, transfer), delta-method variance as lifelines or the jackknife
  summed by child;
- restricted mean survival time (RMST), each group and the differences between groups
  with the infinitesimal-jackknife variance summed within child (R's ``se(rmean)`` when
  each child has one episode);
- Cox proportional hazards by Newton-Raphson on the Efron (or Breslow) partial
  likelihood, with a robust sandwich variance clustered by child computed in linear time
  from score residuals (as R's ``coxph(..., cluster=id)``), and the proportional-hazards
  test of R's ``cox.zph`` (survival >= 3.0: the exact score test).

Every clustered variance is linear in the episodes: cumulative sums over sorted times
and one sort by child, never a child-by-time matrix.

In the Kaplan-Meier, log-rank and Cox analyses the competing events are treated as
censoring (cause-specific hazard); the cumulative incidence is the share actually
re-referred by a given day, allowing for children who can no longer be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from insightlib import contract
from insightlib.report.text import md as _md, plain as _plain
from insightlib.errors import InputError

#: Curves are cut where fewer than this many remain at risk (DESIGN.md, publishing safety).
MIN_AT_RISK = 10
DEFAULT_HORIZONS = (91, 182, 365)
OTHER = "Other"
#: The publishing rule for estimates: a figure is shown only where its 95% interval is finite and wider than a
#: point at the precision shown, and a hazard ratio only where at least this many re-referrals fall both among
#: the children in the level and among the rest. Otherwise the report says TOO_FEW instead of a number
#: ("hazard ratio 0.00 (0.00 to 0.00)" or "100% (100 to 100)" would claim a certainty the data do not have).
MIN_EVENTS_FOR_ESTIMATE = 10
TOO_FEW = "too few to estimate"
AGE_BANDS = contract.AGE_BANDS  # defined once, for every report
#: Groupings the notebook offers, in the users' words; the values are episode columns.
GROUPINGS = {
    "primary_need": "primary need",
    "age_band": "age at closure",
    "referral_source": "referral source",
    "closure_reason": "closure reason",
    "disability": "disability",
    "ethnicity": "ethnicity",
    "intervention": "intervention received",
    "sex": "sex",
    "referral_nfa": "outcome of the referral",
}


# ----------------------------------------------------------------------------------------
# Groupings


def add_groupings(episodes: pd.DataFrame, interventions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Episodes with the report's grouping columns in words (age band, broad ethnicity ...).

    ``intervention`` is the intervention the child received during the referral (by
    referral_id where recorded, else starting between referral and closure); "None" if
    none, "Several" if more than one kind.
    """
    out = episodes.copy()
    out["age_band"] = contract.age_band(out["age_at_closure"].to_numpy(dtype=float))
    # recoded once per distinct value, not per row (3.4 million rows nationally)
    # the broad group "Other" is DfE's "Any other ethnic group", not the report's "Other" (small groups together)
    out["ethnicity"] = _recode(out["ethnicity"], lambda v: {"Other": "Any other ethnic group"}.get(
        contract.ETHNICITY_GROUP.get(v, "Not known"), contract.ETHNICITY_GROUP.get(v, "Not known")), "Not known")
    out["disability"] = _recode(
        out["disability"], lambda v: "No disability" if str(v).strip().upper() in ("NONE", "", "NAN") else "Disability",
        "No disability")
    out["referral_nfa"] = np.where(out["referral_nfa"].astype(bool), "No further action", "Assessed")
    out["primary_need"] = _recode(out["primary_need"], str, "nan")
    out["intervention"] = _intervention_received(episodes, interventions)
    return out


def _recode(values: pd.Series, fn, missing: str) -> np.ndarray:
    """``fn`` applied to each distinct value (missing values become ``missing``)."""
    codes, uniq = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniq] + [missing], dtype=object)
    return mapped[codes]  # code -1 (missing) takes the last entry


def child_key(episodes: pd.DataFrame) -> np.ndarray:
    """One integer per child (council and pseudonym together), for clustering: cheaper than joined strings."""
    la = pd.factorize(episodes["la_code"].to_numpy(dtype=object))[0].astype(np.int64)
    ch, uniq = pd.factorize(episodes["child_id"].to_numpy(dtype=object))
    return la * (len(uniq) + 1) + ch


def _intervention_received(episodes: pd.DataFrame, interventions: pd.DataFrame | None) -> np.ndarray:
    result = np.full(len(episodes), "None", dtype=object)
    if interventions is None or len(interventions) == 0 or len(episodes) == 0:
        return result
    ep = episodes[["la_code", "child_id", "referral_id", "referral_date", "closure_date"]].copy()
    ep["_row"] = np.arange(len(ep))
    iv = interventions.copy()
    iv["la_code"] = iv["la_code"].astype(str)
    iv["child_id"] = iv["child_id"].astype(str)
    m = ep.merge(iv[["la_code", "child_id", "intervention", "start_date"] + (["referral_id"] if "referral_id" in iv else [])],
                 on=["la_code", "child_id"], suffixes=("", "_iv"))
    start = pd.to_datetime(m["start_date"])
    during = (start >= m["referral_date"]) & (start <= m["closure_date"])
    if "referral_id_iv" in m:
        linked = m["referral_id_iv"].notna()
        match = np.where(linked, m["referral_id_iv"].astype(str) == m["referral_id"].astype(str), during)
    else:
        match = during.to_numpy()
    m = m.loc[match]
    if len(m):
        kinds = m.groupby("_row")["intervention"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "Several")
        result[kinds.index.to_numpy()] = kinds.to_numpy()
    return result


def fold_small_groups(labels, min_group_size: int = 20, other: str = OTHER, min_other: int = 0) -> pd.Series:
    """Groups with fewer than ``min_group_size`` episodes are shown together as "Other".

    With ``min_other`` (the disclosure threshold), an "Other" smaller than that takes in the
    next smallest group too, until it is big enough or holds everything: a small "Other"
    would be a small count that the total minus the groups shown gives back.
    """
    codes, names = _factorize_labels(labels)
    sizes = np.bincount(codes, minlength=len(names))
    folded = (sizes < min_group_size) | (names.astype(object) == other)
    while True:
        n_other = int(sizes[folded].sum())
        rest = [j for j in np.argsort(sizes, kind="stable") if not folded[j] and sizes[j] > 0]
        if not (0 < n_other < min_other) or not rest:
            break
        folded[rest[0]] = True
    names = np.where(folded, other, names).astype(object)
    index = labels.index if isinstance(labels, pd.Series) else None
    return pd.Series(names[codes], index=index, dtype=object)


def _factorize_labels(labels) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names (as strings; missing becomes "nan") without string work per row."""
    codes, uniq = pd.factorize(np.asarray(labels, dtype=object), use_na_sentinel=True)
    names = np.array([str(u) for u in uniq] + ["nan"], dtype=object)
    codes = np.where(codes < 0, len(uniq), codes)
    return codes, names


# ----------------------------------------------------------------------------------------
# Numerical core (counts per distinct time)


def _as_arrays(durations, events, event_of_interest=1):
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events)
    if t.ndim != 1 or len(t) != len(e):
        raise InputError("durations and events must be one-dimensional and of the same length.")
    if np.isnan(t).any() or (t < 0).any():
        raise InputError("Durations must be present and not negative.")
    return t, e


def _event_table(t: np.ndarray, e: np.ndarray, event_of_interest=1):
    """Distinct times with numbers at risk, events of interest, all events, censored."""
    times, inv = np.unique(t, return_inverse=True)
    total = np.bincount(inv, minlength=len(times)).astype(float)
    d = np.bincount(inv, weights=(e == event_of_interest).astype(float), minlength=len(times))
    d_all = np.bincount(inv, weights=(e != 0).astype(float), minlength=len(times))
    at_risk = np.cumsum(total[::-1])[::-1]
    return times, at_risk, d, d_all, total - d_all


def _at_risk_at(t_sorted: np.ndarray, at) -> np.ndarray:
    """Numbers with duration >= each horizon (R's n.risk at that time)."""
    return len(t_sorted) - np.searchsorted(t_sorted, np.asarray(at, dtype=float), side="left")


def _cluster_ids(clusters, n: int) -> np.ndarray | None:
    """Integer cluster codes (None: every episode its own cluster)."""
    if clusters is None:
        return None
    cl = pd.factorize(np.asarray(clusters))[0]
    if len(cl) != n:
        raise InputError("clusters must have one value per episode.")
    return cl


def _clustered_sumsq(slot: np.ndarray, cl: np.ndarray, b: np.ndarray, L, R: np.ndarray, G, J: int) -> np.ndarray:
    """Sum over clusters of the squared summed influence, at each of ``J`` distinct times, in linear time.

    Episode i adds ``-R[j]`` to its cluster's influence at times j before its own slot and
    ``b[i] - L[i] * G[j]`` from its slot on (the form every Kaplan-Meier, Aalen-Johansen and
    RMST influence function here takes). With D_c = B_c - Lambda_c G - m_c R (m_c: members
    not yet at their slot) the sum of D_c^2 needs six running sums over clusters, each
    changed only when an episode reaches its slot: one sort by (child, time) and cumulative
    sums, never a child-by-time matrix.
    """
    n = len(slot)
    L = np.zeros(n) if L is None else L
    G = np.zeros(J) if G is None else G
    order = np.lexsort((slot, cl))
    c, sl, bb, ll = cl[order], slot[order], b[order], L[order]
    first = np.ones(n, dtype=bool)
    first[1:] = c[1:] != c[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    excl_b = np.cumsum(bb) - bb
    excl_l = np.cumsum(ll) - ll
    B = excl_b - excl_b[start]  # the cluster's sums before this episode reaches its slot
    Lam = excl_l - excl_l[start]
    size = np.bincount(c)
    m = size[c] - (np.arange(n) - start)
    deltas = np.stack([2 * B * bb + bb * bb, 2 * Lam * ll + ll * ll, 1.0 - 2 * m,
                       B * ll + bb * Lam + bb * ll, bb * m - B - bb, ll * m - Lam - ll])
    sums = np.cumsum(np.stack([np.bincount(sl, weights=dd, minlength=J) for dd in deltas]), axis=1)
    sums[2] += float(np.sum(size.astype(float) ** 2))
    bsq, lsq, msq, bl, bm, lm = sums
    out = bsq + G * G * lsq + R * R * msq - 2 * G * bl - 2 * R * bm + 2 * G * R * lm
    return np.maximum(out, 0.0)


def _km_log_influence_sumsq(t, e, cl, times, n, d) -> np.ndarray:
    """Infinitesimal-jackknife variance of log S(t) summed by cluster (R's ``survfit(..., cluster=id)``).

    Episode i's influence on log S(t) is -sum over t_j <= t of (dN_i(t_j) - Y_i(t_j) d_j/n_j) / (n_j - d_j);
    with one episode per cluster the sum of squares is Greenwood's exactly.
    """
    slot = np.searchsorted(times, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > d, 1.0 / (n - d), 0.0)
    Q = np.cumsum(d / n * a)
    f = (e == 1) * a[slot] - Q[slot]
    return _clustered_sumsq(slot, cl, f, None, Q, None, len(times))


def km_table(durations, events, alpha: float = 0.05, clusters=None) -> pd.DataFrame:
    """Kaplan-Meier at every distinct time with a log-log band (lifelines' and R's log-log).

    Variance: Greenwood; with ``clusters`` (one child's episodes are not independent) the
    infinitesimal jackknife summed by child, as R's ``survfit(..., cluster=id)``.
    """
    t, e = _as_arrays(durations, events)
    times, n, d, _, c = _event_table(t, e, 1)
    cl = _cluster_ids(clusters, len(t))
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n)
        if cl is None:
            green = np.cumsum(np.where(n > d, d / (n * (n - d)), np.where(d > 0, np.inf, 0.0)))
        else:
            green = _km_log_influence_sumsq(t, e, cl, times, n, d)
        z = stats.norm.ppf(1 - alpha / 2)
        logs = np.log(surv)
        se_loglog = np.sqrt(green) / np.abs(logs)
        lo = np.exp(-np.exp(np.log(-logs) + z * se_loglog))
        hi = np.exp(-np.exp(np.log(-logs) - z * se_loglog))
        se = np.where(surv > 0, surv * np.sqrt(green), 0.0)
    lo = np.where(surv >= 1.0, 1.0, np.where(surv <= 0, 0.0, lo))
    hi = np.where(surv >= 1.0, 1.0, np.where(surv <= 0, 0.0, hi))
    return pd.DataFrame(
        {"time": times, "at_risk": n, "events": d, "censored": c, "survival": surv,
         "se": se, "ci_low": lo, "ci_high": hi}
    )


def cut_curve(curve: pd.DataFrame, min_at_risk: int = MIN_AT_RISK) -> pd.DataFrame:
    """The curve up to, not including, the first time fewer than ``min_at_risk`` remain at risk.

    Beyond that a step can be one identifiable child, so it is not published
    (insightlib.report.disclosure.cut_curve, applied to a curve sorted by time).
    """
    from insightlib.report.disclosure import cut_curve as _cut

    return _cut(curve, "at_risk", min_at_risk, time_column="time")


# ----------------------------------------------------------------------------------------
# Charts


def fold_to_largest(labels, max_groups: int = 6, other: str = OTHER) -> pd.Series:
    """At most ``max_groups`` groups: the largest ``max_groups - 1`` kept, the rest shown together as "Other".

    Ten curves on one chart cannot be told apart (and the palette has six colours), so
    charts show the largest groups and say which were folded (``folded_groups``).
    """
    codes, names = _factorize_labels(labels)
    sizes = np.bincount(codes, minlength=len(names))
    present = [j for j in np.argsort(-sizes, kind="stable") if sizes[j] > 0]
    real = [j for j in present if names[j] != other]
    if len(present) <= max_groups:
        keep = set(present)
    else:
        keep = set(real[: max_groups - 1])
    out = np.array([names[j] if j in keep else other for j in range(len(names))], dtype=object)
    index = labels.index if isinstance(labels, pd.Series) else None
    return pd.Series(out[codes], index=index, dtype=object)


def _time_ticks(xlim: float) -> tuple[np.ndarray, list[str]]:
    """Ticks in months and years (what readers think in), placed at the day they fall on."""
    top = int(round(xlim / (365.25 / 12)))
    months = range(0, top + 1, 3 if xlim <= 400 else 6 if xlim <= 1200 else 12)
    ticks, labels = [], []
    for m in months:
        ticks.append(round(m * 365.25 / 12))
        if m == 0:
            labels.append("Closure")
        elif m % 12 == 0:
            labels.append("1 year" if m == 12 else f"{m // 12} years")
        else:
            labels.append(f"{m} months")
    return np.array(ticks, dtype=float), labels


def _step_curves(ax, curves: dict, value: str, start: float, labels: dict, min_at_risk: int):
    """Step curves with bands, each cut where fewer than ``min_at_risk`` remain; returns the colours used."""
    from insightlib.report.charts import PALETTE

    colours, xmax = {}, 0.0
    for i, (g, c) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        colours[g] = colour
        c = cut_curve(c, min_at_risk)
        if c.empty:
            continue
        x = np.concatenate([[0.0], c["time"].to_numpy()])
        ax.step(x, np.concatenate([[start], c[value].to_numpy()]), where="post", color=colour, lw=1.6,
                label=labels.get(g, str(g)))
        ax.fill_between(x, np.concatenate([[start], c["ci_low"].to_numpy()]),
                        np.concatenate([[start], c["ci_high"].to_numpy()]), step="post", color=colour, alpha=0.12,
                        lw=0)
        xmax = max(xmax, float(x[-1]))
    return colours, xmax


def _legend_above(ax, n: int) -> None:
    ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=2 if n > 3 else n,
              handlelength=1.5, columnspacing=1.2, borderaxespad=0.0)


def _short(label: str, width: int = 30) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _curves_figure(title: str, curves: dict, value: str, start: float, labels: dict, durations: dict,
                   horizons, min_at_risk: int, max_days: int | None, ylabel: str, note: str | None = None,
                   threshold: int = 5):
    """Curves with 95% bands above a table of numbers still followed, rows coloured as the curves."""
    from matplotlib.ticker import PercentFormatter

    from insightlib.report.charts import new_figure

    names = list(curves)
    k = len(names)
    legend_rows = (k + 1) // 2 if k > 3 else 1
    height = 4.2 + 0.24 * k + 0.18 * legend_rows
    fig, (ax, tab) = new_figure(title, height=height, nrows=2, sharex=True,
                                gridspec_kw={"height_ratios": [3.6, 0.45 + 0.24 * k], "hspace": 0.12})
    colours, xmax = _step_curves(ax, curves, value, start, labels, min_at_risk)
    xlim = float(max_days or min(max(xmax, max(horizons)), 3 * max(horizons)))
    ticks, tick_labels = _time_ticks(xlim)
    pad = 0.03 * xlim
    ax.set_xlim(-pad, xlim + pad)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02 if start == 1.0 else min(1.02, max(0.1, ax.get_ylim()[1])))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    for h in horizons:
        ax.axvline(h, color="#BFBFBF", lw=0.8, ls=":", zorder=0)
    _legend_above(ax, k)
    top = 1.0 - (0.42 + 0.2 * legend_rows) / height
    fig.subplots_adjust(top=top)
    tab.set_ylim(k - 0.5, -0.5)
    tab.set_yticks(range(k))
    tab.set_yticklabels([_short(labels.get(g, str(g))) for g in names], fontsize=8)
    for lab, g in zip(tab.get_yticklabels(), names):
        lab.set_color(colours[g])
    tab.grid(False)
    for spine in tab.spines.values():
        spine.set_visible(False)
    tab.tick_params(axis="both", length=0)
    tab.set_title("Children still followed (numbers at risk)", fontsize=8, loc="left", fontweight="normal", pad=3)
    for i, g in enumerate(names):
        d = durations.get(g, np.array([]))
        for x in ticks:
            n = int(len(d) - np.searchsorted(d, x, side="left"))
            # the group size less the number still followed bounds how many came back: never a small count
            gone = len(d) - n
            shown = f"{n:,}" if n >= min_at_risk and not 1 <= gone < threshold else (
                f"<{min_at_risk}" if n < min_at_risk else "c")
            tab.text(x, i, shown, ha="center", va="center", fontsize=7.5, color="#3D3D3D")
    tab.set_xticks(ticks)
    tab.set_xticklabels(tick_labels, fontsize=8)
    tab.set_xlabel("Time since the case closed")
    if note:
        fig.text(0.01, 0.02, note, fontsize=7.5, color="#3D3D3D", ha="left", va="top", wrap=True)
    return fig


# ----------------------------------------------------------------------------------------
# Kaplan-Meier


@dataclass
class KMResult:
    """Kaplan-Meier curves by group (competing events treated as censoring)."""

    curves: dict[str, pd.DataFrame]
    horizons: tuple[int, ...]
    group_by: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    alpha: float = 0.05
    labels: dict[str, str] = field(default_factory=dict)  # group names in words for legends
    durations: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # sorted, for numbers at risk

    def at(self, group: str, horizon: float) -> dict:
        c = self.curves[group]
        t = c["time"].to_numpy()
        idx = np.searchsorted(t, horizon, side="right") - 1
        if idx < 0:
            s, lo, hi = 1.0, 1.0, 1.0
        else:
            s, lo, hi = (float(c[k].iloc[idx]) for k in ("survival", "ci_low", "ci_high"))
        d = self.durations[group]
        n = int(len(d) - np.searchsorted(d, horizon, side="left"))
        return {"survival": s, "ci_low": lo, "ci_high": hi, "at_risk": n}

    def to_dict(self) -> dict:
        return {g: {str(int(h)): self.at(g, h) for h in self.horizons} for g in self.curves}

    def table(self) -> pd.DataFrame:
        rows = []
        for g in self.curves:
            for h in self.horizons:
                a = self.at(g, h)
                rows.append({"group": g, "days": int(h), "episodes": self.sizes.get(g), **a,
                             "rereferred": 1 - a["survival"]})
        return pd.DataFrame(rows)

    def plot(self, title: str | None = None, min_at_risk: int = MIN_AT_RISK, max_days: int | None = None,
             note: str | None = None, threshold: int = 5):
        """Curves with bands, cut where fewer than ``min_at_risk`` remain; numbers at risk below."""
        return _curves_figure(title or "Share of children not yet referred again, by time since their case closed",
                              self.curves, "survival", 1.0, self.labels, self.durations, self.horizons, min_at_risk,
                              max_days, "Not yet referred again", note, threshold=threshold)


def _split(groups, n):
    """Group names and the row indices of each (one factorisation, no per-group string scans)."""
    if groups is None:
        return [("All", np.arange(n))]
    codes, names = _factorize_labels(groups)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    out = [(str(names[k]), order[bounds[k]:bounds[k + 1]]) for k in range(len(names)) if bounds[k + 1] > bounds[k]]
    return sorted(out, key=lambda kv: kv[0])


def kaplan_meier(durations, events, groups=None, horizons=DEFAULT_HORIZONS, alpha: float = 0.05,
                 group_by: str | None = None, clusters=None) -> KMResult:
    """Kaplan-Meier of time to re-referral (event 1) by group; other events are censoring.

    ``clusters`` (the child): bands from the infinitesimal jackknife summed by child.
    """
    t, e = _as_arrays(durations, events)
    cl = _cluster_ids(clusters, len(t))
    curves, sizes, durs = {}, {}, {}
    for name, rows in _split(groups, len(t)):
        curves[name] = km_table(t[rows], e[rows], alpha, None if cl is None else cl[rows])
        sizes[name] = len(rows)
        durs[name] = np.sort(t[rows])
    return KMResult(curves=curves, horizons=tuple(int(h) for h in horizons), group_by=group_by, sizes=sizes,
                    alpha=alpha, durations=durs)


# ----------------------------------------------------------------------------------------
# Log-rank


@dataclass
class LogRankResult:
    """The test that the groups share one re-referral hazard.

    ``method`` names it: R's ``survdiff`` log-rank where each child has one episode, else the
    child-clustered robust score test (R's robust score test of ``coxph(Surv ~ group +
    cluster(id))``, ``summary(fit)$robscore``), since one child's episodes are not independent.
    """

    statistic: float
    df: int
    p_value: float
    groups: pd.DataFrame  # group, episodes, observed, expected
    method: str = "log-rank"
    logrank_statistic: float | None = None  # the unclustered log-rank, for comparison

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "df": self.df, "p_value": self.p_value, "method": self.method,
                "logrank_statistic": self.logrank_statistic}

    def table(self) -> pd.DataFrame:
        return self.groups.copy()

    @property
    def test_words(self) -> str:
        return ("log-rank" if self.method == "log-rank"
                else "robust score test, clustered by child (as R's coxph with cluster(id))")

    def sentence(self) -> str:
        if not np.isfinite(self.p_value):
            return "There was only one group, so there is nothing to compare."
        verdict = ("The groups differ in how soon children are referred again" if self.p_value < 0.05
                   else "There is no clear evidence that the groups differ in how soon children are referred again")
        return (f"{verdict} ({self.test_words}: chi-square {self.statistic:.1f} on {self.df} "
                f"degree{'' if self.df == 1 else 's'} of freedom, p {_p(self.p_value)}).")


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def logrank_test(durations, events, groups, clusters=None, ties: str = "efron") -> LogRankResult:
    """Test of equal re-referral hazards across two or more groups.

    Without ``clusters``, or where no child has two episodes: the log-rank test (R's survdiff,
    rho = 0). Otherwise the child-clustered robust score test of the Cox model with the group
    as factor, at coefficients 0 (R's ``coxph(Surv ~ group + cluster(id))$rscore``, Efron ties
    by default): U' (sum over children of U_c U_c')^-1 U, linear in the episodes.
    """
    t, e = _as_arrays(durations, events)
    out, (gi, inv, nk, dk) = _logrank(t, e, groups)
    cl = _cluster_ids(clusters, len(t))
    if cl is None or len(out.groups) < 2 or np.bincount(cl).max() < 2:
        return out
    if ties not in ("efron", "breslow"):
        raise InputError("ties must be 'efron' or 'breslow'.")
    stat, df = _robust_group_score(gi, inv, e == 1, nk, dk, cl, ties)
    return LogRankResult(statistic=stat, df=df, p_value=float(stats.chi2.sf(stat, df)) if df else np.nan,
                         groups=out.groups, method="robust score, clustered by child", logrank_statistic=out.statistic)


def _robust_group_score(gi, inv, ev, nk, dk, cl, ties="efron") -> tuple[float, int]:
    """Robust score test of no group effect (Cox, coefficients 0) with score residuals summed by cluster.

    At coefficients 0 every weight is 1, so each episode's score residual depends only on its
    group, its time and whether it is an event: built from per-time sums over the groups' numbers
    at risk (``nk``) and events (``dk``), then summed by child with one bincount per group.
    The same residuals as R's ``residuals(coxph, "score")`` (Efron or Breslow).
    """
    k, J = nk.shape
    n, d = nk.sum(0), dk.sum(0)
    if d.sum() == 0:
        return np.nan, 0
    di = d.astype(np.int64)
    rep = np.repeat(np.arange(J), di)  # one entry per event, at its time
    l = np.arange(len(rep)) - (np.cumsum(di) - di)[rep]
    f = l / d[rep] if ties == "efron" else np.zeros(len(rep))
    den = n[rep] - f * d[rep]
    add = lambda wt: np.bincount(rep, weights=wt, minlength=J)  # noqa: E731
    a, b = add(1 / den), add(f / den)
    c0, c1, c2 = add(1 / den**2), add(f / den**2), add(f * f / den**2)
    S1, T1 = nk.T, dk.T  # J x k
    G = S1 * c0[:, None] - T1 * c1[:, None]
    Gp = S1 * (c0 - c1)[:, None] - T1 * (c1 - c2)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        XB = np.where(d[:, None] > 0, (S1 * a[:, None] - T1 * b[:, None]) / d[:, None], 0.0)
    CH, CG = np.cumsum(a), np.cumsum(G, axis=0)
    # residual of episode i, column m: A[time, event][m] + (m == its group) * B_i
    A = np.concatenate([CG, CG - G - XB + Gp])
    idx = inv + J * ev
    B = -CH[inv] + ev * (a[inv] + 1 - (a - b)[inv])
    n_cl = int(cl.max()) + 1
    Uc = np.bincount(cl * k + gi, weights=B, minlength=n_cl * k).reshape(n_cl, k)
    for m in range(k):
        Uc[:, m] += np.bincount(cl, weights=A[idx, m], minlength=n_cl)
    Uc = Uc[:, 1:]  # the first group is the reference (any choice gives the same test)
    u = Uc.sum(0)
    meat = Uc.T @ Uc
    return float(u @ np.linalg.pinv(meat) @ u), int(np.linalg.matrix_rank(meat))


def _logrank(t, e, groups):
    """R's survdiff (rho = 0), and the per-group, per-time counts the clustered test reuses."""
    gi, names = _factorize_labels(groups)
    present = np.flatnonzero(np.bincount(gi, minlength=len(names)))
    names = names[present]
    gi = np.searchsorted(present, gi)
    order = np.argsort(names.astype(str))
    codes = names[order]
    gi = np.argsort(order)[gi]
    k = len(codes)
    times, inv = np.unique(t, return_inverse=True)
    J = len(times)
    ev = (e == 1).astype(float)
    # per group and time: total leaving and events, then at risk by reverse cumsum
    flat = gi * J + inv
    leave = np.bincount(flat, minlength=k * J).reshape(k, J).astype(float)
    dk = np.bincount(flat, weights=ev, minlength=k * J).reshape(k, J)
    nk = np.cumsum(leave[:, ::-1], axis=1)[:, ::-1]
    nk_all, dk_all = nk, dk
    n = nk.sum(0)
    d = dk.sum(0)
    keep = d > 0
    nk, dk, n, d = nk[:, keep], dk[:, keep], n[keep], d[keep]
    p = nk / n
    observed = dk.sum(1)
    expected = (p * d).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(n > 1, d * (n - d) / (n - 1), 0.0)
    V = np.diag((p * c).sum(1)) - (p * c) @ p.T
    diff = observed - expected
    if k < 2:
        stat, df, pval = np.nan, 0, np.nan
    else:
        Vr = V[:-1, :-1]
        stat = float(diff[:-1] @ np.linalg.pinv(Vr) @ diff[:-1])
        df = int(np.linalg.matrix_rank(Vr))
        pval = float(stats.chi2.sf(stat, df))
    tab = pd.DataFrame({"group": codes, "episodes": np.bincount(gi, minlength=k), "observed": observed,
                        "expected": expected})
    return LogRankResult(statistic=stat, df=df, p_value=pval, groups=tab), (gi, inv, nk_all, dk_all)


# ----------------------------------------------------------------------------------------
# Aalen-Johansen cumulative incidence


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
    return pd.DataFrame({"time": times, "at_risk": n, "events": dk, "cumulative_incidence": F,
                         "se": np.sqrt(var), "ci_low": lo, "ci_high": hi})


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
        get = (lambda df, col: 0.0 if idx < 0 else float(df[col].iloc[idx]))
        return {"rereferral": get(c, "cumulative_incidence"), "ci_low": get(c, "ci_low"),
                "ci_high": get(c, "ci_high"), "competing": get(k, "cumulative_incidence")}

    def to_dict(self) -> dict:
        return {g: {str(int(h)): self.at(g, h) for h in self.horizons} for g in self.curves}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"group": g, "days": int(h), **self.at(g, h)} for g in self.curves for h in self.horizons])

    def plot(self, title: str | None = None, min_at_risk: int = MIN_AT_RISK, max_days: int | None = None,
             note: str | None = None, threshold: int = 5):
        """Cumulative incidence with bands, cut where fewer than ``min_at_risk`` remain; numbers at risk below."""
        return _curves_figure(title or "Share of children referred again, allowing for those who turn 18, die or "
                              "move away", self.curves, "cumulative_incidence", 0.0, self.labels, self.durations,
                              self.horizons, min_at_risk, max_days, "Referred again", note, threshold=threshold)


def cumulative_incidence(durations, events, groups=None, horizons=DEFAULT_HORIZONS, alpha=0.05,
                         clusters=None) -> CumulativeIncidenceResult:
    """Aalen-Johansen by group; ``clusters`` (the child): re-referral bands from the jackknife summed by child."""
    t, e = _as_arrays(durations, events)
    cl = _cluster_ids(clusters, len(t))
    curves, comp, durs = {}, {}, {}
    for name, rows in _split(groups, len(t)):
        curves[name] = cif_table(t[rows], e[rows], 1, alpha, None if cl is None else cl[rows])
        comp[name] = cif_table(t[rows], e[rows], 2, alpha)  # its share only is shown, not its band
        durs[name] = np.sort(t[rows])
    return CumulativeIncidenceResult(curves=curves, competing=comp, horizons=tuple(int(h) for h in horizons),
                                     durations=durs)


# ----------------------------------------------------------------------------------------
# Restricted mean survival time


def _rmst_parts(t: np.ndarray, e: np.ndarray, tau: float):
    """RMST to ``tau``, R's variance (``se(rmean)``), and each episode's influence (sums to zero).

    The influence is the infinitesimal jackknife of the area under the Kaplan-Meier curve:
    -sum over event times t_j <= tau of A_j (dN_i(t_j) - Y_i(t_j) d_j / n_j) / (n_j - d_j), where
    A_j is the area from t_j to tau. Its sum of squares is R's variance exactly.
    """
    times, n, d, _, _ = _event_table(t, e, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        surv = np.cumprod(1.0 - d / n)
    ev = (d > 0) & (times <= tau)
    # area under the step function from each distinct time to tau
    grid = np.concatenate([[0.0], times[times < tau], [tau]])
    s_left = np.concatenate([[1.0], surv[times < tau]])
    widths = np.diff(grid)
    pieces = s_left * widths
    rmst = float(pieces.sum())
    tail = np.cumsum(pieces[::-1])[::-1]  # tail[k] = area from grid[k] to tau
    # A_j: area from time j to tau (times strictly below tau)
    A = np.zeros(len(times))
    below = times < tau
    A[below] = tail[1:][: below.sum()]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(ev & (n > d), d / (n * (n - d)), 0.0)
        a = np.where(ev & (n > d), A / (n - d), 0.0)  # where n_j = d_j the curve is 0 after t_j, so A_j = 0
    var = float(np.sum(A**2 * w))
    slot = np.searchsorted(times, t)
    comp = np.cumsum(a * d / n)  # compensator: sum over t_j <= T_i of A_j (d_j / n_j) / (n_j - d_j)
    infl = -(np.where(e == 1, a[slot], 0.0) - comp[slot])
    return rmst, var, infl


@dataclass
class RMSTResult:
    """Average days out of contact within the first ``horizon`` days after closure."""

    horizon: int
    groups: pd.DataFrame  # group, episodes, rmst, se, ci_low, ci_high
    differences: pd.DataFrame  # group, reference, difference, se, ci_low, ci_high, p_value

    def to_dict(self) -> dict:
        return {
            "horizon": self.horizon,
            "groups": {r.group: {"rmst": r.rmst, "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high}
                       for r in self.groups.itertuples()},
            "differences": {r.group: {"reference": r.reference, "difference": r.difference, "se": r.se,
                                      "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value}
                            for r in self.differences.itertuples()},
        }

    def table(self) -> pd.DataFrame:
        return self.groups.merge(self.differences[["group", "difference", "ci_low", "ci_high", "p_value"]],
                                 on="group", how="left", suffixes=("", "_difference"))


def rmst(durations, events, groups=None, horizon: int = 365, clusters=None, reference: str | None = None,
         alpha: float = 0.05) -> RMSTResult:
    """RMST by group and each group's difference from ``reference`` (default: the largest group).

    Every variance is the infinitesimal jackknife summed by child (``clusters``): each
    child's influence across all their episodes, so it is right when one child's episodes
    fall in the same or different groups. Without clusters it is R's ``se(rmean)``.
    """
    t, e = _as_arrays(durations, events)
    cl = np.arange(len(t)) if clusters is None else pd.factorize(np.asarray(clusters))[0]
    n_cl = int(cl.max()) + 1 if len(cl) else 0
    z = stats.norm.ppf(1 - alpha / 2)
    parts = _split(groups, len(t))
    if reference is None:
        reference = max(parts, key=lambda kv: len(kv[1]))[0]
    if reference not in dict(parts):
        raise InputError(f"The reference group {reference!r} is not among the groups.")
    rows_out, per_child, rmsts = [], {}, {}
    for name, rows in parts:
        r, v, inf = _rmst_parts(t[rows], e[rows], horizon)
        per_child[name] = np.bincount(cl[rows], weights=inf, minlength=n_cl)  # each child's influence
        rmsts[name] = r
        # infinitesimal jackknife summed by child (R's se(rmean) when each child has one episode)
        se = float(np.sqrt(np.sum(per_child[name] ** 2)))
        rows_out.append({"group": name, "episodes": len(rows), "rmst": r, "se": se,
                         "ci_low": max(0.0, r - z * se), "ci_high": min(float(horizon), r + z * se)})  # within [0, horizon]
    groups_df = pd.DataFrame(rows_out)
    diffs = []
    for name, _ in parts:
        if name == reference:
            continue
        se = float(np.sqrt(np.sum((per_child[name] - per_child[reference]) ** 2)))
        diff = rmsts[name] - rmsts[reference]
        p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else np.nan
        diffs.append({"group": name, "reference": reference, "difference": diff, "se": se,
                      "ci_low": diff - z * se, "ci_high": diff + z * se, "p_value": p})
    diff_df = pd.DataFrame(diffs, columns=["group", "reference", "difference", "se", "ci_low", "ci_high", "p_value"])
    return RMSTResult(horizon=int(horizon), groups=groups_df, differences=diff_df)


# ----------------------------------------------------------------------------------------
# Cox proportional hazards


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


class _CoxData:
    """The data sorted by time, with everything that does not depend on the coefficients.

    Rows whose time falls in [t_j, t_j+1) between distinct event times are contiguous, so
    risk-set sums are segment sums (np.add.reduceat) followed by a reverse cumulative sum:
    linear in the number of rows, whatever the ties.
    """

    def __init__(self, t, ev, X, ties):
        order = np.argsort(t, kind="stable")
        self.order = order
        self.t = t[order]
        self.ev = ev[order]
        self.X = X[order]
        self.etimes = np.unique(self.t[self.ev])
        J = len(self.etimes)
        self.slot = np.searchsorted(self.etimes, self.t, side="right") - 1  # last event time <= T
        self.i0 = int(np.searchsorted(self.slot, 0, side="left"))  # rows before the first event time never at risk
        self.seg = np.searchsorted(self.slot, np.arange(J), side="left")  # first row of each slot
        self.erows = np.flatnonzero(self.ev)
        self.jd = self.slot[self.erows]  # event time index of each event (sorted)
        self.eseg = np.searchsorted(self.jd, np.arange(J), side="left")
        self.dj = np.diff(np.append(self.eseg, len(self.jd))).astype(float)
        l = np.arange(len(self.jd)) - self.eseg[self.jd]
        self.f = l / self.dj[self.jd] if ties == "efron" else np.zeros(len(self.jd))
        self.Xe = self.X[self.erows]
        self.sum_xe = self.Xe.sum(0)


def _revcumsum(a):
    return np.cumsum(a[::-1], axis=0)[::-1]


def _cox_eval(d: _CoxData, beta, need_info=True, chunk=400_000):
    """Log partial likelihood, score, information, and the per-time sums used by residuals."""
    eta = d.X @ beta
    eta_max = float(eta.max()) if len(eta) else 0.0
    w = np.exp(eta - eta_max)
    i0 = d.i0
    wX = d.X[i0:] * w[i0:, None]
    S0 = _revcumsum(np.add.reduceat(w[i0:], d.seg - i0))
    S1 = _revcumsum(np.add.reduceat(wX, d.seg - i0, axis=0))
    we = w[d.erows]
    T0 = np.add.reduceat(we, d.eseg)
    T1 = np.add.reduceat(d.Xe * we[:, None], d.eseg, axis=0)
    f, jd = d.f, d.jd
    den = S0[jd] - f * T0[jd]
    inv = 1.0 / den
    a = np.add.reduceat(inv, d.eseg)
    b = np.add.reduceat(f * inv, d.eseg)
    inv2 = inv * inv
    c0 = np.add.reduceat(inv2, d.eseg)
    c1 = np.add.reduceat(f * inv2, d.eseg)
    c2 = np.add.reduceat(f * f * inv2, d.eseg)
    loglik = float(eta[d.erows].sum() - np.sum(np.log(den)) - len(den) * eta_max)
    out = dict(w=w, S0=S0, S1=S1, T0=T0, T1=T1, a=a, b=b, c0=c0, c1=c1, c2=c2, loglik=loglik)
    if need_info:
        grad = d.sum_xe - a @ S1 + b @ T1
        out.update(grad=grad, info=_information(d, out, chunk=chunk))
    return out


def _information(d: _CoxData, s: dict, gw=None, chunk=400_000) -> np.ndarray:
    """The information, sum over event times j of gw_j V_j (V_j: the Efron or Breslow variance of the
    covariates at t_j); gw = 1 is the usual one, gw = g(t) and g(t)^2 give cox.zph's blocks."""
    w, S1, T1, a, b, c0, c1, c2 = (s[k] for k in ("w", "S1", "T1", "a", "b", "c0", "c1", "c2"))
    if gw is not None:
        a, b, c0, c1, c2 = a * gw, b * gw, c0 * gw, c1 * gw, c2 * gw
    i0 = d.i0
    Acum = np.cumsum(a)  # sum of a_j over event times <= T_i
    wa = w[i0:] * Acum[d.slot[i0:]]
    Xs = d.X[i0:]
    p = d.X.shape[1]
    info = np.zeros((p, p))
    for k in range(0, len(wa), chunk):
        Xi = Xs[k:k + chunk]
        info += (Xi * wa[k:k + chunk, None]).T @ Xi
    wb = w[d.erows] * b[d.jd]
    info -= (d.Xe * wb[:, None]).T @ d.Xe
    info -= (S1 * c0[:, None]).T @ S1
    cross = (S1 * c1[:, None]).T @ T1
    info += cross + cross.T
    info -= (T1 * c2[:, None]).T @ T1
    return info


def _score_residuals(d: _CoxData, s):
    """Each observation's score residual, Efron-consistent (R's residuals(fit, "score")), in sorted order."""
    w, S1, T1, a, b, c0, c1, c2 = (s[k] for k in ("w", "S1", "T1", "a", "b", "c0", "c1", "c2"))
    dj = d.dj
    X = d.X
    G = S1 * c0[:, None] - T1 * c1[:, None]  # sum_l h_l xbar_l
    Hp = a - b  # sum_l (1 - f_l) h_l
    Gp = S1 * (c0 - c1)[:, None] - T1 * (c1 - c2)[:, None]
    XB = (S1 * a[:, None] - T1 * b[:, None]) / dj[:, None]  # mean over l of xbar_l
    CH = np.concatenate([[0.0], np.cumsum(a)])
    CG = np.vstack([np.zeros((1, X.shape[1])), np.cumsum(G, axis=0)])
    # at risk without the event at times t_j <= T_i (censored) or t_j < T_i (events)
    k = d.slot + 1 - d.ev.astype(int)
    U = -(w[:, None] * (X * CH[k][:, None] - CG[k]))
    jd, Xe, we = d.jd, d.Xe, w[d.erows]
    U[d.erows] += Xe - XB[jd] - we[:, None] * (Xe * Hp[jd][:, None] - Gp[jd])
    return U, XB


def cox_fit(durations, events, X, ties: str = "efron", max_iter: int = 50, tol: float = 1e-10) -> _CoxFit:
    """Newton-Raphson on the Cox partial likelihood (events == 1 are failures), with step halving."""
    if ties not in ("efron", "breslow"):
        raise InputError("ties must be 'efron' or 'breslow'.")
    t = np.asarray(durations, dtype=float)
    ev = np.asarray(events) == 1
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if not ev.any():
        raise InputError("No re-referrals in the data: a Cox model needs at least one event.")
    d = _CoxData(t, ev, X - X.mean(0), ties)
    beta = np.zeros(X.shape[1])
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
    U_sorted, XB = _score_residuals(d, s)
    U = np.empty_like(U_sorted)
    U[d.order] = U_sorted
    schoen = d.Xe - XB[d.jd]
    return _CoxFit(beta=beta, information=s["info"], loglik=ll, loglik0=loglik0, iterations=it,
                   score_residuals=U, schoenfeld=schoen, event_times=d.t[d.erows], data=d, state=s)


def robust_variance(fit: _CoxFit, clusters) -> np.ndarray:
    """Sandwich variance I^-1 (sum over clusters of U_c U_c^T) I^-1, linear in the data."""
    cl = pd.factorize(np.asarray(clusters))[0]
    U = fit.score_residuals
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
    t_all, ev_all = d.t, d.ev
    if transform == "rank":
        g_all = stats.rankdata(t_all, method="average")
    elif transform == "identity":
        g_all = t_all.astype(float)
    elif transform == "log":
        g_all = np.log(t_all)
    elif transform == "km":
        km = km_table(t_all, ev_all.astype(int))
        kt, ks = km["time"].to_numpy(), km["survival"].to_numpy()
        before = np.searchsorted(kt, t_all, side="left") - 1  # last time strictly before t
        g_all = 1.0 - np.concatenate([[1.0], ks])[before + 1]
    else:
        raise InputError("transform must be km, rank, identity or log.")
    g_rows = g_all[d.erows] - g_all[d.erows].mean()
    gj = g_rows[d.eseg]  # one value per distinct event time (tied events share it)
    p = len(names)
    u = g_rows @ fit.schoenfeld  # score for the time-varying terms; the betas' score is 0 at the fit
    I_bb = fit.information
    I_bg = _information(d, s, gj)
    I_gg = _information(d, s, gj * gj)
    full = np.block([[I_bb, I_bg], [I_bg.T, I_gg]])
    terms = [term_of(n) for n in names] if terms is None else list(terms)
    order = list(dict.fromkeys(terms))
    rows = []
    for term in order:
        jj = [k for k, tm in enumerate(terms) if tm == term]
        kk = list(range(p)) + [p + j for j in jj]
        uk = np.concatenate([np.zeros(p), u[jj]])
        sol = _solve(full[np.ix_(kk, kk)], uk)
        stat = float(sol @ uk)
        # direction (one column): above 0, the log hazard ratio grows with time since closure
        trend = float(sol[-1]) if len(jj) == 1 else np.nan
        rows.append({"term": term, "statistic": stat, "df": len(jj), "p_value": float(stats.chi2.sf(stat, len(jj))),
                     "trend": trend})
    uk = np.concatenate([np.zeros(p), u])
    glob = float(_solve(full, uk) @ uk)
    rows.append({"term": "GLOBAL", "statistic": glob, "df": p, "p_value": float(stats.chi2.sf(glob, p)),
                 "trend": np.nan})
    return pd.DataFrame(rows)


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

    def to_dict(self) -> dict:
        return {r.term: {"hr": r.hr, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value}
                for r in self.terms.itertuples()}

    def estimable(self, term: str) -> bool:
        """The publishing rule (MIN_EVENTS_FOR_ESTIMATE): enough re-referrals and a proper interval."""
        r = self.terms.loc[self.terms["term"] == term].iloc[0]
        if not (np.isfinite(r.ci_low) and np.isfinite(r.ci_high) and r.ci_low > 0):
            return False
        if f"{r.ci_low:.2f}" == f"{r.ci_high:.2f}":
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

    def table(self) -> pd.DataFrame:
        out = self.terms[["term", "hr", "ci_low", "ci_high", "p_value"]].copy()
        out.insert(1, "factor", [term_label(t) for t in out["term"]])
        ref = ", ".join(f"{GROUPINGS.get(k, k)}: {group_label(k, v)}" for k, v in self.references.items())
        out.attrs["note"] = f"Compared with: {ref}." if ref else ""
        return out

    def ph_sentences(self, alpha: float = 0.05) -> list[str]:
        """The proportional-hazards check in plain words (R's cox.zph: one test per factor, and overall)."""
        out = [
            "A hazard ratio is one figure for the whole time after closure: the model assumes that a factor which "
            "makes re-referral twice as likely in the first month also makes it twice as likely a year later. "
            "A check on the model (the Grambsch-Therneau test, as R's cox.zph computes it, one test per factor "
            "and one overall) looks for factors whose effect changes with time since closure."
        ]
        bad = self.ph[(self.ph["term"] != "GLOBAL") & (self.ph["p_value"] < alpha)]
        glob = self.ph[self.ph["term"] == "GLOBAL"].iloc[0]
        if bad.empty:
            out.append(f"It found no clear sign that any effect changes over time (overall p {_p(glob.p_value)}), "
                       "so each hazard ratio can be read as one figure for the whole period.")
            return out
        trend = lambda r: getattr(r, "trend", np.nan)  # noqa: E731
        grows = [_ph_words(r.term) for r in bad.itertuples() if trend(r) > 0]
        fades = [_ph_words(r.term) for r in bad.itertuples() if trend(r) < 0]
        changes = [_ph_words(r.term) for r in bad.itertuples() if not np.isfinite(trend(r))]
        parts = []
        if fades:
            parts.append(f"for {'; '.join(fades)}, the ratio is higher soon after closure than later")
        if grows:
            parts.append(f"for {'; '.join(grows)}, the ratio is higher later than soon after closure")
        if changes:
            parts.append(f"for {'; '.join(changes)}, the ratios between its groups change with time since closure")
        out.append("It suggests that the effect changes over time: " + "; and ".join(parts) + ". For these the "
                   "hazard ratio shown is an average over the period, and the curves are the better guide.")
        n_terms = int((self.ph["term"] != "GLOBAL").sum())
        if n_terms >= 5:
            out.append(f"With {n_terms} factors checked, one or two can fail the check by chance; the overall check "
                       f"gives p {_p(glob.p_value)}.")
        return out

    def _rows(self) -> list[tuple[str, int | None]]:
        """Forest-plot rows top to bottom: a heading per factor (naming its comparison group), then its levels."""
        rows, seen = [], set()
        for i, term in enumerate(self.terms["term"]):
            if term.endswith("]") and "[" in term:
                cov = term.split("[", 1)[0]
                if cov not in seen:
                    seen.add(cov)
                    ref = self.references.get(cov)
                    head = GROUPINGS.get(cov, cov.replace("_", " ")).capitalize()
                    rows.append((f"{head} (against {group_label(cov, ref)})" if ref else head, None))
                rows.append(("   " + group_label(cov, term[:-1].split("[", 1)[1]), i))
            else:
                rows.append((term_label(term).capitalize(), i))
        return rows

    def plot(self, title: str | None = None):
        """Forest plot of hazard ratios with robust 95% intervals (log scale), grouped by factor."""
        from matplotlib.ticker import FixedLocator, NullLocator

        from insightlib.report.charts import DARK_BLUE, REFERENCE_GREY, new_figure

        import textwrap

        rows = self._rows()
        title = textwrap.fill(title or "How each factor goes with being referred again sooner or later", 60)
        height = max(2.8, 0.26 * len(rows) + 1.4)
        fig, ax = new_figure(title, width=5.2, height=height)
        fig.subplots_adjust(top=1 - (0.35 + 0.22 * title.count("\n") + 0.25) / height)
        y = np.arange(len(rows))[::-1]
        lo_all, hi_all = [], []
        for (label, i), yy in zip(rows, y):
            if i is None:
                continue
            r = self.terms.iloc[i]
            if not self.estimable(r.term):
                continue
            ax.plot([r.ci_low, r.ci_high], [yy, yy], color=DARK_BLUE, lw=1.6)
            ax.plot([r.hr], [yy], "o", color=DARK_BLUE, ms=5)
            lo_all.append(r.ci_low)
            hi_all.append(r.ci_high)
        lo, hi = min(min(lo_all, default=1.0), 0.8), max(max(hi_all, default=1.0), 1.25)
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.15, hi * 1.15)
        # plain ticks on the log scale, finer only when the range is narrow (so labels never collide)
        nice = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20] + ([0.25, 0.75, 1.5, 3] if hi / lo < 6 else [])
        ticks = sorted(v for v in nice if lo / 1.15 <= v <= hi * 1.15)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in ticks])
        ax.axvline(1.0, color=REFERENCE_GREY, lw=1.2, zorder=0)
        ax.set_yticks(y)
        ax.set_yticklabels([label if i is None else "   " + _short(label.strip(), 34) for label, i in rows], fontsize=8)
        for lab, (_, i) in zip(ax.get_yticklabels(), rows):
            if i is None:
                lab.set_fontweight("bold")
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.grid(axis="y", visible=False)
        # the figures themselves at the right, for readers who want the numbers
        trans = ax.get_yaxis_transform()
        ax.text(1.02, len(rows) - 0.3, "Hazard ratio (95% interval)", transform=trans, fontsize=8, va="bottom",
                fontweight="bold")
        for (label, i), yy in zip(rows, y):
            if i is not None:
                r = self.terms.iloc[i]
                words = f"{r.hr:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f})" if self.estimable(r.term) else TOO_FEW
                ax.text(1.02, yy, words, transform=trans, fontsize=8, va="center")
        ax.set_xlabel("Hazard ratio (below 1: referred again later than\nthe comparison group; above 1: sooner)", fontsize=9)
        return fig


def design_matrix(episodes: pd.DataFrame, covariates, min_group_size: int = 20, event_col: str = "event"):
    """Numeric columns as they are; categories as indicators against the largest category.

    Categories with fewer than ``min_group_size`` episodes or no re-referral are folded
    into "Other" (a category with no event has no finite hazard ratio).
    """
    cols, refs = [], {}
    for cov in covariates:
        if cov not in episodes.columns:
            raise InputError(f"Covariate {cov!r} is not an episode column (choose from {', '.join(episodes.columns)}).")
        v = episodes[cov]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            if v.isna().any():
                raise InputError(f"Covariate {cov!r} has missing values: fill or drop them before the Cox model.")
            cols.append(pd.Series(v.to_numpy(dtype=float), name=cov, index=episodes.index))
            continue
        lab = fold_small_groups(v, min_group_size)
        codes, names = _factorize_labels(lab)
        ev = episodes[event_col].to_numpy() == 1
        events = np.bincount(codes, weights=ev, minlength=len(names))
        if (events == 0).any():  # a category with no re-referral has no finite hazard ratio
            names = np.where(events == 0, OTHER, names).astype(object)
            codes, names = _factorize_labels(names[codes])
        sizes = np.bincount(codes, minlength=len(names))
        present = np.flatnonzero(sizes)
        if len(present) < 2:
            continue
        ref_code = present[np.argmax(sizes[present])]
        refs[cov] = str(names[ref_code])
        for j in sorted(present, key=lambda j: _level_key(cov, names[j])):
            if j != ref_code:
                cols.append(pd.Series((codes == j).astype(float), name=f"{cov}[{names[j]}]", index=episodes.index))
    if not cols:
        raise InputError("No covariate varies in these episodes, so there is nothing for the Cox model to compare.")
    return pd.concat(cols, axis=1), refs


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


def cox_ph(durations, events, X: pd.DataFrame, clusters=None, ties: str = "efron", alpha: float = 0.05,
           ph_transform: str = "km") -> CoxResult:
    """Cox model for re-referral with robust errors clustered by child (each episode its own cluster if none)."""
    t = np.asarray(durations, dtype=float)
    ev = np.asarray(events) == 1
    names = list(X.columns)
    fit = cox_fit(t, ev.astype(int), X.to_numpy(dtype=float), ties=ties)
    cl = np.arange(len(t)) if clusters is None else np.asarray(clusters)
    V = robust_variance(fit, cl)
    naive = np.sqrt(np.diag(np.linalg.inv(fit.information)))
    se = np.sqrt(np.diag(V))
    z = stats.norm.ppf(1 - alpha / 2)
    terms = pd.DataFrame({
        "term": names, "coef": fit.beta, "se": naive, "robust_se": se, "hr": np.exp(fit.beta),
        "ci_low": np.exp(fit.beta - z * se), "ci_high": np.exp(fit.beta + z * se),
        "p_value": 2 * stats.norm.sf(np.abs(fit.beta / se)),
    })
    ph = ph_test(fit, names, ph_transform)
    return CoxResult(terms=terms, ph=ph, n=len(t), events=int(ev.sum()), clusters=len(pd.unique(cl)),
                     loglik=fit.loglik, robust_vcov=V, term_events=_term_events(X, ev))


# ----------------------------------------------------------------------------------------
# Simulation with known truth (tests and the national benchmark)


def simulate_tables(n_children: int, seed: int = 0, la_codes=("201",), start="2016-04-01",
                    extract="2024-03-31", need_log_hr=None, base_rate: float = 1 / 700,
                    max_referrals: int = 8) -> dict[str, pd.DataFrame]:
    """Councils, children and referrals in which the time from closure to the next referral
    is exponential with log hazard ratio ``need_log_hr[need]`` (default N1 0, N2 -0.5, N4 0.4).

    Vectorised: a few seconds for a million children. Includes NFA referrals (some with no
    closure date), deaths (RC2) and transfers (RC5) that end a child's referrals, cases still
    open at the extract, and children who turn 18 during follow-up.
    """
    rng = np.random.default_rng(seed)
    need_log_hr = need_log_hr or {"N1": 0.0, "N2": -0.5, "N4": 0.4}
    needs = np.array(list(need_log_hr))
    t0 = np.datetime64(start, "D").astype(np.int64)
    t_end = np.datetime64(extract, "D").astype(np.int64)
    n = n_children
    la = np.asarray(la_codes)[rng.integers(0, len(la_codes), n)]
    dob = t0 - rng.integers(0, 17 * 365, n)
    need = needs[rng.integers(0, len(needs), n)]
    lhr = np.array([need_log_hr[k] for k in need])
    K = max_referrals
    first = t0 + rng.integers(0, t_end - t0, n)
    open_len = np.where(rng.random((n, K)) < 0.3, 0, rng.exponential(90, (n, K)).astype(np.int64) + 1)
    gaps = np.ceil(rng.exponential(1.0, (n, K)) / (base_rate * np.exp(lhr))[:, None]).astype(np.int64)
    ref = np.empty((n, K), dtype=np.int64)
    clo = np.empty((n, K), dtype=np.int64)
    ref[:, 0] = first
    for k in range(K):
        clo[:, k] = ref[:, k] + open_len[:, k]
        if k + 1 < K:
            ref[:, k + 1] = clo[:, k] + gaps[:, k]
    u = rng.random((n, K))
    reason = np.where(open_len == 0, "RC8", np.where(u < 0.6, "RC7", "RC9")).astype(object)
    ends = rng.random((n, K))
    reason[ends < 0.002] = "RC2"
    reason[(ends >= 0.002) & (ends < 0.02)] = "RC5"
    stop = np.cumsum(np.isin(reason, ["RC2", "RC5"]), axis=1)
    alive = np.concatenate([np.ones((n, 1), bool), stop[:, :-1] == 0], axis=1)
    keep = alive & (ref <= t_end) & (ref < (dob + 18 * 365)[:, None])
    rows, cols = np.nonzero(keep)
    r_day, c_day = ref[rows, cols], clo[rows, cols]
    still_open = c_day > t_end
    nfa = open_len[rows, cols] == 0
    no_date = nfa & (rng.random(len(rows)) < 0.5)
    closure = np.where(still_open | no_date, np.datetime64("NaT"), c_day.astype("datetime64[D]"))
    child_ids = ("C" + pd.Index(np.arange(n)).astype(str)).to_numpy()
    referrals = pd.DataFrame({
        "la_code": la[rows], "referral_id": ("R" + pd.Index(np.arange(len(rows))).astype(str)).to_numpy(),
        "child_id": child_ids[rows], "referral_date": r_day.astype("datetime64[D]").astype("datetime64[ns]"),
        "referral_source": np.array(["6", "2A", "3A", "1A"])[rng.integers(0, 4, len(rows))],
        "primary_need": need[rows], "referral_nfa": nfa,
        "closure_date": pd.to_datetime(closure), "closure_reason": np.where(still_open, None, reason[rows, cols]),
    })
    children = pd.DataFrame({
        "la_code": la, "child_id": child_ids, "date_of_birth": dob.astype("datetime64[D]").astype("datetime64[ns]"),
        "sex": np.array(["M", "F"])[rng.integers(0, 2, n)],
        "ethnicity": np.array(["WBRI", "MWBC", "APKN", "BAFR", "OOTH"])[rng.integers(0, 5, n)],
        "disability": np.where(rng.random(n) < 0.1, "LD", "NONE"),
    })
    councils = pd.DataFrame({"la_code": list(la_codes), "la_name": [f"Council {c}" for c in la_codes],
                             "extract_date": pd.Timestamp(extract)})
    return {"councils": councils, "children": children, "referrals": referrals}


# ----------------------------------------------------------------------------------------
# The re-referral report (what notebooks/rereferral.ipynb shows)

_LABELS = {
    "primary_need": contract.PRIMARY_NEED_LABELS,
    "closure_reason": {**contract.CLOSURE_REASON_LABELS, "NFA": "No further action at referral",
                       "UNKNOWN": "Reason not recorded"},
    "referral_source": contract.REFERRAL_SOURCE_LABELS,
}
DEFAULT_COVARIATES = ("primary_need", "age_band", "referral_nfa", "previous_referrals")


def term_label(term: str) -> str:
    """A Cox term in words: "primary_need[N2]" -> "primary need: N2 Child's disability"."""
    if term.endswith("]") and "[" in term:
        cov, level = term[:-1].split("[", 1)
        return f"{GROUPINGS.get(cov, cov.replace('_', ' '))}: {group_label(cov, level)}"
    return {"previous_referrals": "each earlier referral", "age_at_closure": "each year of age at closure"}.get(
        term, term.replace("_", " "))


def _term_words(term: str) -> str:
    """A Cox term inside a sentence: "primary_need[N7]" -> "N7 Low income (primary need)",
    "age_band[under 5]" -> "under 5 (age at closure)"."""
    label = term_label(term)
    if ": " in label:
        factor, level = label.split(": ", 1)
        if not level[1:2].isdigit():  # a code such as N7 keeps its capital
            level = level[:1].lower() + level[1:]
        return f"{level} ({factor})"
    return label


def _ph_words(term: str) -> str:
    """A term of the PH check in a sentence: a factor by its name ("primary need"), a column as _term_words."""
    return GROUPINGS[term] if term in GROUPINGS else _term_words(term)


_WORDS_ONLY = {"sex": {"F": "Girls", "M": "Boys", "U": "Sex not recorded"}}


def group_label(group_by: str, value: str) -> str:
    """A group in words: "N1 Abuse or neglect" rather than "N1"."""
    if value == OTHER:
        return "Other groups"
    if value in _WORDS_ONLY.get(group_by, {}):
        return _WORDS_ONLY[group_by][value]
    words = _LABELS.get(group_by, {}).get(value)
    return f"{value} {words}" if words else str(value)


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


def _one_in(p: float) -> str:
    if not np.isfinite(p) or p <= 0:
        return "none"
    n = round(1 / p)
    if n >= 2 and abs(1 / n - p) <= 0.02:
        return f"about 1 in {n} ({p:.0%})"
    return f"{p:.0%}"


def _suppress(table: pd.DataFrame, columns, threshold: int, rounding: int | None) -> pd.DataFrame:
    """Counts of children below the threshold hidden ("c") by insightlib.report.disclosure before display."""
    from insightlib.report.disclosure import suppress_table

    tab = table.copy()
    for col in columns:
        tab[col] = pd.to_numeric(tab[col]).round().astype("int64")
    return suppress_table(tab, columns, threshold, rounding).display


def _when(h: int) -> str:
    """A horizon in words: 91 -> "3 months", 365 -> "1 year"."""
    return {91: "3 months", 182: "6 months", 183: "6 months", 274: "9 months", 365: "1 year", 730: "2 years",
            1095: "3 years"}.get(int(h), f"{int(h)} days")


def _first(h: int) -> str:
    return "first year" if int(h) == 365 else f"first {_when(h)}"


def _within(h: int) -> str:
    return "within a year" if int(h) == 365 else f"within {_when(h)}"


def _who(group_by: str | None, value: str, markdown: bool = False) -> str:
    """The children in a group, in a phrase that fits a sentence ("children whose primary need was ...").
    ``markdown``: for a Markdown sentence, the label (text from data) escaped so that it shows as written."""
    label = group_label(group_by, value)
    if markdown:
        label = _md(label)
    if value == OTHER:
        return "children in the smaller groups together"
    special = {
        "referral_nfa": {"No further action": "children whose referral ended in no further action",
                         "Assessed": "children whose referral was assessed"},
        "disability": {"Disability": "disabled children", "No disability": "children with no disability recorded"},
        "sex": {"M": "boys", "F": "girls", "U": "children whose sex was not recorded"},
        "ethnicity": {"Any other ethnic group": "children of any other ethnic group",
                      "Not known": "children whose ethnicity was not recorded"},
        "intervention": {"None": "children who received none of the recorded interventions",
                         "Several": "children who received several interventions"},
    }
    if value in special.get(group_by, {}):
        return special[group_by][value]
    phrase = {
        "primary_need": "children whose primary need was {}",
        "age_band": "children aged {} when their case closed",
        "referral_source": "children referred by {}",
        "closure_reason": "children whose closure reason was {}",
        "intervention": "children who received {}",
        "ethnicity": "children in the {} ethnic group",
    }.get(group_by, "children in the group {}")
    return phrase.format(label.lower() if group_by == "age_band" else label)


def _share(v: float, lo: float, hi: float) -> str:
    """A share with its 95% interval, short enough for a table cell: "59% (50 to 67)"; TOO_FEW where the
    interval is missing or a single point at the precision shown (no re-referral, or every child back)."""
    if not all(x is not None and np.isfinite(x) for x in (v, lo, hi)) or round(100 * lo) == round(100 * hi):
        return TOO_FEW
    return _nowrap(f"{100 * v:.0f}% ({100 * lo:.0f} to {100 * hi:.0f})")


def _nowrap(text: str) -> str:
    """Non-breaking spaces, so a figure and its interval stay on one line in a table cell."""
    return text.replace(" ", "\u00a0")


def _for_display(table: pd.DataFrame, corner: str) -> pd.DataFrame:
    """A report table: the row labels as the index (no 0..N column), the corner cell naming them."""
    out = table.copy()
    out.index.name = None
    out.columns.name = corner
    return out


@dataclass
class ReReferralReport:
    """Everything the re-referral notebook shows, computed and tested in the library."""

    group_by: str
    horizons: tuple[int, ...]
    counts: dict
    km: KMResult
    logrank: LogRankResult
    cumulative_incidence: CumulativeIncidenceResult | None
    rmst: RMSTResult
    cox: CoxResult | None
    cox_note: str
    dfe_measure: pd.DataFrame
    headline_year: int | None
    headline_rate: float | None
    episodes_at_risk: int
    children: int
    min_at_risk: int = MIN_AT_RISK
    km_chart: KMResult | None = None  # the same curves with the smaller groups folded into "Other"
    cif_chart: CumulativeIncidenceResult | None = None
    folded: list = field(default_factory=list)  # groups shown as "Other" on the charts
    data_start: pd.Timestamp | None = None  # first referral in the extract
    extract_date: pd.Timestamp | None = None
    threshold: int = 5  # disclosure threshold: every figure the report words or tabulates is controlled by it
    rounding: int | None = None
    _published: dict | None = field(default=None, repr=False)

    @property
    def what(self) -> str:
        return GROUPINGS.get(self.group_by, self.group_by)

    def km_dict(self) -> dict:
        """KM at the horizons; values where fewer than ``min_at_risk`` remain are withheld (None)."""
        out = {}
        for g, by_h in self.km.to_dict().items():
            out[g] = {h: (v if (v["at_risk"] or 0) >= self.min_at_risk else
                          {"survival": None, "ci_low": None, "ci_high": None, "at_risk": None})
                      for h, v in by_h.items()}
        return out

    def to_dict(self) -> dict:
        dfe = self.dfe_measure
        return {
            "km": self.km_dict(),
            "logrank": self.logrank.to_dict(),
            "cox": self.cox.to_dict() if self.cox is not None else {},
            "cox_global_test": self.cox.global_test() if self.cox is not None else {},
            "cox_too_few_to_estimate": ([t for t in self.cox.terms["term"] if not self.cox.estimable(t)]
                                        if self.cox is not None else []),
            "ph_test": ({r.term: {"statistic": r.statistic, "df": r.df, "p_value": r.p_value}
                         for r in self.cox.ph.itertuples()} if self.cox is not None else {}),
            "cumulative_incidence": self.cumulative_incidence.to_dict() if self.cumulative_incidence else {},
            "rmst": self.rmst.to_dict(),
            "dfe_measure": {str(r.year): {"referrals": r.referrals, "rereferrals": r.rereferrals, "rate": r.rate,
                                          "complete": bool(r.complete),
                                          "published_rate": getattr(r, "published_rate", None)}
                            for r in dfe.itertuples()},
            "headline": {"closure_year": self.headline_year, "horizon_days": max(self.horizons),
                         f"share_rereferred_within_{max(self.horizons)}_days": self.headline_rate},
            "episodes": {**self.counts, "at_risk": self.episodes_at_risk, "children": self.children},
            "group_by": self.group_by,
            "charts": {"groups_folded_into_other": list(self.folded)},
        }

    # disclosure control: one place decides which figures may be published ---------------------
    def _small(self, n: int) -> bool:
        return 1 <= n < self.threshold

    def _events_by(self, group: str, h: int, cause: str = "rereferral") -> int:
        """Episodes in the group that ended in a re-referral (or a competing event) by day ``h``."""
        if cause == "rereferral":
            c = self.km.curves[group]
        else:
            c = self.cumulative_incidence.competing[group]
        return int(c.loc[c["time"] <= h, "events"].sum())

    def share_shown(self, group: str, h: int, cause: str = "rereferral") -> bool:
        """Whether a share (survival, re-referral or competing) of the group by day ``h`` may be published.

        Not where fewer than ``min_at_risk`` are still followed, nor where the count of children
        behind it is small: "5% of 23" is one child (the share and the group size give it back).
        """
        if (self.km.at(group, h)["at_risk"] or 0) < self.min_at_risk:
            return False
        return not self._small(self._events_by(group, h, cause))

    def _counts_frame(self) -> tuple[pd.DataFrame, list[dict]]:
        """The "what happened" counts by key, and the identities a reader knows between them."""
        rows = [{"key": k, "count": int(v)} for k, v in self.counts.items()]
        rows.append({"key": "followed_up", "count": int(self.episodes_at_risk)})
        identities = []
        keys = {r["key"] for r in rows}
        if {"referrals", "referrals_after_extract", "merged_overlapping", "open_cases", "episodes"} <= keys:
            identities.append({"referrals": 1, "referrals_after_extract": -1, "merged_overlapping": -1,
                               "open_cases": -1, "episodes": -1})
        ends = ["not_at_risk_died", "not_at_risk_transferred", "not_at_risk_adult", "closed_on_extract_date"]
        if {"episodes", *ends} <= keys:
            identities.append({"episodes": 1, **{k: -1 for k in ends}, "followed_up": -1})
        return pd.DataFrame(rows).set_index("key"), identities

    def published_counts(self) -> dict:
        """The "what happened" counts as published: a whole number, or "c" (primary and secondary
        suppression over the table's identities), the same in the table and every sentence."""
        from insightlib.report.disclosure import suppress_table

        if self._published is None:
            frame, identities = self._counts_frame()
            # the survival table's groups (each at least the threshold, never hidden) add up to the
            # episodes followed up, so that count is published there whatever this table does
            known = {"followed_up": int(self.episodes_at_risk)}
            shown = suppress_table(frame, ["count"], self.threshold, self.rounding, identities=identities,
                                   known=known).display
            self._published = dict(zip(shown.index, shown["count"]))
        return dict(self._published)

    def count_words(self, key: str) -> str:
        """A count from the counts table for a sentence: as the table shows it, never more exactly."""
        v = self.published_counts()[key]
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        if self._small(int(self._counts_frame()[0].loc[key, "count"])):
            return f"fewer than {self.threshold}"
        return "a number (hidden so that a small count cannot be worked out)"

    def dfe_published(self, complete_only: bool = True) -> pd.DataFrame:
        """DfE's measure as published: referrals and re-referrals hidden ("c") when small, and the
        re-referrals (with the rate) also when the referrals that were not re-referrals are few,
        as ``disclosure.safe_rate`` and the national page decide."""
        from insightlib.report.disclosure import round_count, safe_rate

        d = self.dfe_measure
        if complete_only:
            d = d[d["complete"]]
        rows = []
        for r in d.itertuples():
            ref, rr = int(r.referrals), int(r.rereferrals)
            rate = safe_rate(rr, ref, self.threshold, rounding=self.rounding)
            hide_ref = self._small(ref)
            hide_rr = rr > 0 and (self._small(rr) or self._small(ref - rr) or hide_ref)  # a true zero is shown
            rows.append({"year": int(r.year), "referrals": "c" if hide_ref else round_count(ref, self.rounding),
                         "rereferrals": "c" if hide_rr else round_count(rr, self.rounding),
                         "rate": None if (rate.suppressed or hide_rr or hide_ref) else rate.rate,
                         "rate_display": "c" if (rate.suppressed or hide_rr or hide_ref) else rate.display,
                         "published_rate": getattr(r, "published_rate", np.nan), "complete": bool(r.complete)})
        return pd.DataFrame(rows, columns=["year", "referrals", "rereferrals", "rate", "rate_display",
                                           "published_rate", "complete"])

    # sentences -------------------------------------------------------------------------
    def _share_back(self, group: str, h: int) -> float | None:
        """Share re-referred by ``h`` days (cumulative incidence where computed, else 1 - KM); None where it
        may not be published (too few followed, or too few re-referred)."""
        if not self.share_shown(group, h):
            return None
        if self.cumulative_incidence is not None:
            return self.cumulative_incidence.at(group, h)["rereferral"]
        return 1 - self.km.at(group, h)["survival"]

    def _shares_back_on_chart(self, h: int) -> dict:
        chart = self.km_chart or self.km
        groups = [g for g in chart.curves if g != OTHER and g in self.km.curves]
        return {g: v for g in groups if (v := self._share_back(g, h)) is not None}

    def chart_title(self) -> str:
        """A headline title for the curves: the finding, where there is a clear one."""
        back = self._shares_back_on_chart(max(self.horizons))
        if len(back) >= 2 and np.isfinite(self.logrank.p_value) and self.logrank.p_value < 0.05:
            fast, slow = max(back, key=back.get), min(back, key=back.get)
            if round(100 * back[fast]) != round(100 * back[slow]):
                who = _who(self.group_by, fast)
                return f"{who[0].upper() + who[1:]} came back fastest"
        return f"How soon children were referred again, by {self.what}"

    def headlines(self) -> list[str]:
        """The findings in plain English, as a director would want them.

        They lead with DfE's published measure (the figure every council is compared on), where the
        extract has a full year of it; the share of closed cases referred again follows, with one
        sentence on why the two rates differ.
        """
        out = []
        dfe = self._dfe_sentence()
        share = self._closure_share_sentence()
        if dfe:
            out.append(dfe)
        if share:
            out.append(share + (" " + self.two_rates_sentence() if dfe else ""))
        group = self._group_sentence()
        if group:
            out.append(group)
        cox = self.cox_headline()
        if cox:
            out.append(cox)
        return out

    def _closure_share_sentence(self) -> str | None:
        if self.headline_year is None or self.headline_rate is None:
            return None
        return (f"Of children whose cases closed in {self.headline_year}, {_one_in(self.headline_rate)} "
                f"were referred again {_within(max(self.horizons))}.")

    def _group_sentence(self) -> str | None:
        h = max(self.horizons)
        chart = self.km_chart or self.km
        back = self._shares_back_on_chart(h)
        if len(back) < 2:
            return None
        fast, slow = max(back, key=back.get), min(back, key=back.get)
        among = " Of the largest groups," if len(self.km.curves) > len(chart.curves) else ""
        if round(100 * back[fast]) == round(100 * back[slow]):
            sentence = (f"{among} {_who(self.group_by, fast, True)} and {_who(self.group_by, slow, True)} came back at about "
                        f"the same rate ({back[fast]:.0%} referred again {_within(h)}).").strip()
        else:
            sentence = (f"{among} {_who(self.group_by, fast, True)} came back fastest ({back[fast]:.0%} referred again "
                        f"{_within(h)}, against {back[slow]:.0%} of {_who(self.group_by, slow, True)}).").strip()
        sentence = sentence[0].upper() + sentence[1:]
        if self.logrank.p_value >= 0.05:
            sentence += " The difference between the groups could be chance."
        return sentence

    def _latest_dfe(self):
        """The latest complete year of DfE's measure, as published (``dfe_published``: rate None when hidden)."""
        dfe = self.dfe_published()
        return dfe.iloc[-1] if len(dfe) else None

    def england_comparison(self, year: int | None = None) -> tuple[float | None, str]:
        """England's rate for the council's own year (DfE's measure), in words; said plainly when there is none.

        The comparison is always like with like: the year to 31 March of the council's figure. Where DfE
        has published no England figure for that year, no other year's rate is put beside it as if it were.
        """
        from insightlib.analyses.national import england_rate, published_rates

        if year is None:
            last = self._latest_dfe()
            year = None if last is None else int(last.year)
        years = sorted(int(y) for y in published_rates()["year"].unique())
        if year is None:
            return None, ("The extract has no complete year of DfE's measure, so the council's rate is not compared "
                          "with England's.")
        if year not in years:
            return None, (f"DfE has published no England rate for the year to 31 March {year} (its figures run "
                          f"from {years[0]} to {years[-1]}), so the council's {year} rate is not compared with England's.")
        rate = england_rate(year)
        return rate, f"England: {rate:.1%} in the year to 31 March {year}, the same year as the council's figure."

    def _dfe_sentence(self) -> str | None:
        last = self._latest_dfe()
        if last is None:
            return None
        year = int(last.year)
        england, words = self.england_comparison(year)
        if last.rate is None or pd.isna(last.rate):
            text = (f"In the year to 31 March {year}, the council's share of referrals that came within 12 months of "
                    f"a previous referral (DfE's published measure) rests on fewer than {self.threshold} children, so "
                    f"it is not shown")
        else:
            text = (f"In the year to 31 March {year}, {last.rate_display} of the council's referrals came "
                    f"within 12 months of a previous referral (DfE's published measure)")
        hidden = last.rate is None or pd.isna(last.rate)
        if england is None:
            text += f". {words}"
        elif hidden:
            text += f"; England's rate that year was {england:.1%}."
        else:
            text += f", against England's rate of {england:.1%} that year."
        pub = getattr(last, "published_rate", np.nan)
        if pd.notna(pub):
            text += f" DfE published {pub:.1%} for the council that year."
        return text

    def two_rates_sentence(self) -> str:
        """Why the share of closed cases referred again is not DfE's measure, in one sentence."""
        return ("The two rates differ: DfE's published measure is the share of a year's referrals that came within "
                "12 months of the child's previous referral (first referrals count in its denominator), while this "
                "share follows each closed case for a year after it closed, so it is usually the higher.")

    def _compared_terms(self) -> pd.DataFrame:
        """The Cox terms a headline may choose from (not "Other"), with Holm-adjusted p-values."""
        t = self.cox.terms
        t = t[~t["term"].str.endswith(f"[{OTHER}]")].copy()
        t["estimable"] = [self.cox.estimable(term) for term in t["term"]]
        t["p_holm"] = holm(t["p_value"].where(t["estimable"]).to_numpy())  # among the terms that are shown
        return t

    def _clearest_term(self):
        """The Cox term with the clearest difference, or None.

        Only where the overall (robust Wald) test says the factors together go with re-referral
        (p < 0.05), and only among terms that stay clear after Holm's correction for the number of
        terms compared: picking the largest of 13 ratios finds one by chance far more often than 1 in 20.
        """
        if self.cox is None:
            return None
        glob = self.cox.global_test()
        if not (np.isfinite(glob["p_value"]) and glob["p_value"] < 0.05):
            return None
        t = self._compared_terms()
        t = t[(t["p_holm"] < 0.05) & t["estimable"]]
        if t.empty:
            return None
        return t.iloc[int(np.argmax(np.abs(t["coef"].to_numpy() / t["robust_se"].to_numpy())))]

    def forest_title(self) -> str:
        """A headline title for the forest plot: the clearest factor, others held equal."""
        r = self._clearest_term()
        if r is None or not (r.term.endswith("]") and "[" in r.term):
            return "How each factor goes with being referred again sooner or later"
        cov, level = r.term[:-1].split("[", 1)
        who = _who(cov, level)
        return (f"{who[0].upper() + who[1:]} were referred again {'sooner' if r.hr > 1 else 'later'}, other "
                "factors held equal")

    def cox_headline(self) -> str | None:
        """The factor that goes with the biggest clear difference in the rate of re-referral, others held equal."""
        if self.cox is None:
            return None
        t = self._compared_terms()
        n, n_all = int(t["estimable"].sum()), len(t)
        compared = f"{n} factor level{'' if n == 1 else 's'} compared"
        if n < n_all:
            compared += f"; {n_all - n} more had too few re-referrals to estimate"
        glob = self.cox.global_test()
        r = self._clearest_term()
        if r is None:
            if np.isfinite(glob["p_value"]) and glob["p_value"] >= 0.05:
                return ("Taken together, the factors in the model do not clearly go with how soon children were "
                        f"referred again (overall test p {_p(glob['p_value'])}, {compared}), so no single factor "
                        "is picked out.")
            return ("Allowing for the other factors in the model, no factor showed a clear difference in how soon "
                    f"children were referred again once the number compared is allowed for ({compared}, "
                    "Holm's correction).")
        ci = f"95% interval {r.ci_low:.2f} to {r.ci_high:.2f}"
        tail = f"; the clearest of {compared}, allowing for the number compared by Holm's method"
        if r.term.endswith("]") and "[" in r.term:
            cov, level = r.term[:-1].split("[", 1)
            ref = self.cox.references.get(cov)
            who, whom = _who(cov, level, True), _who(cov, ref, True) if ref is not None else "the comparison group"
            if r.hr >= 1:
                return (f"Allowing for the other factors in the model, {who} were referred again {r.hr:.1f} times as "
                        f"fast as {whom} (hazard ratio {r.hr:.2f}, {ci}{tail}).")
            return (f"Allowing for the other factors in the model, {who} were referred again at {r.hr:.0%} of the "
                    f"rate of {whom} (hazard ratio {r.hr:.2f}, {ci}{tail}).")
        change = "raised" if r.hr >= 1 else "lowered"
        return (f"Allowing for the other factors in the model, {term_label(r.term)} {change} the rate of "
                f"re-referral by {abs(r.hr - 1):.0%} (hazard ratio {r.hr:.2f}, {ci}{tail}).")

    def ph_sentences(self) -> list[str]:
        return self.cox.ph_sentences() if self.cox is not None else [self.cox_note]

    def chart_note(self) -> str | None:
        """What the charts fold into "Other", said under them."""
        if not self.folded:
            return None
        names = [group_label(self.group_by, g) for g in self.folded]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        if len(self.km.curves) == len(self.km_chart.curves):  # only groups too small to show alone
            return f"\"{group_label(None, OTHER)}\": {listed}, too small to show on their own."
        shown = len(self.km_chart.curves) - 1
        return (f"The chart shows the {shown} largest groups; \"{group_label(None, OTHER)}\" is {listed} together. "
                "The tables give every group of at least the minimum size.")

    def dfe_note(self) -> str:
        """Why some years of DfE's measure are not shown (left truncation at the start, part-years at the end)."""
        d = self.dfe_measure
        left_out = d.loc[~d["complete"], "year"].astype(int).tolist()
        start = f" on {self.data_start.day} {self.data_start:%B %Y}" if self.data_start is not None else ""
        text = (f"The extract's referrals start{start}. A referral counts as a re-referral only if the previous "
                "referral is in the data, so in the first year of an extract the measure is too low: earlier "
                "referrals happened but cannot be seen. Only years with a full 12 months of earlier data, and that "
                "ended by the extract date, are shown.")
        if left_out:
            years = [str(y) for y in left_out]
            text += (f" Left out: the year{'' if len(years) == 1 else 's'} to 31 March "
                     f"{', '.join(years[:-1]) + ' and ' + years[-1] if len(years) > 1 else years[0]}.")
        if not d["complete"].any():
            text += " No year in this extract qualifies, so the measure is not shown."
        return text

    def caveats(self) -> list[str]:
        c = self.counts
        out = [
            "An episode runs from a case closing to the child's next referral. Referrals that overlap (one opening "
            "on or before the day another closes) count as one period of contact, not as a re-referral.",
            "The Kaplan-Meier curves treat children who turn 18, die or move to another council as no longer "
            "followed; the cumulative incidence allows for them properly and is the better guide to the share "
            "referred again.",
            "Children can have several episodes, and one child's episodes are not independent. So every interval "
            "and test here treats each child's episodes together (clustered by child): the bands of the curves and "
            "the intervals of the average days out of contact (infinitesimal jackknife summed by child), the test "
            "of whether the groups differ ("
            + ("a robust score test clustered by child, in place of the log-rank test"
               if self.logrank.method != "log-rank" else "the log-rank test, since no child has two episodes here")
            + ") and the hazard ratios (robust errors clustered by child). Only the check of proportional hazards "
            "is not clustered (as in R's cox.zph).",
            "Only referrals in the extract can be seen. A child's earlier referrals before the extract starts are "
            "missing, so 'earlier referrals' is undercounted for children closed early in the extract, and DfE's "
            "measure is shown only for years with a full 12 months of earlier data.",
            "These are associations, not effects of the service: children in different groups differ in other "
            "ways, and a hazard ratio is about how soon children came back, not whether the service helped.",
            f"Curves stop where fewer than {self.min_at_risk} children are still followed, and counts below the "
            "disclosure threshold are hidden (\"c\"), so that no child can be recognised.",
        ]
        if c.get("referrals_after_extract"):
            n = int(c["referrals_after_extract"])
            words = self.count_words("referrals_after_extract")
            one = n == 1 and words == "1"
            out.append(f"{words} referral{'' if one else 's'} dated after the extract date "
                       f"{'was' if one else 'were'} left out.")
        return out

    # tables ------------------------------------------------------------------------------
    def survival_table(self, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
        """Share not yet referred again at each horizon (95% interval) by group; "c" where too few to show."""
        threshold = self.threshold if threshold is None else threshold
        sizes = pd.DataFrame({"group": list(self.km.curves), "episodes": [self.km.sizes[g] for g in self.km.curves]})
        # the groups add up to the episodes followed up, which the report states: no group may be worked out
        sizes.loc[len(sizes)] = {"group": "All", "episodes": self.episodes_at_risk}
        shown = _suppress(sizes, ["episodes"], threshold, rounding).iloc[:-1]
        rows = {}
        h_max = max(self.horizons)
        for g, n in zip(shown["group"], shown["episodes"]):
            row = {"Episodes": f"{n:,}" if isinstance(n, (int, np.integer)) else n}
            for h in self.horizons:
                a = self.km.at(g, h)
                ok = self.share_shown(g, h) and n != "c"
                row[f"After {_when(h)}"] = _share(a["survival"], a["ci_low"], a["ci_high"]) if ok else "c"
            a = self.km.at(g, h_max)
            gone = self.km.sizes[g] - (a["at_risk"] or 0)  # no longer followed: bounds how many came back
            row[f"Still followed at {_when(h_max)}"] = (
                f"fewer than {self.min_at_risk}" if (a["at_risk"] or 0) < self.min_at_risk
                else "c" if self._small(gone) else f"{a['at_risk']:,}")
            rows[group_label(self.group_by, g)] = row
        return _for_display(pd.DataFrame.from_dict(rows, orient="index"), self.what.capitalize())

    def cumulative_incidence_table(self) -> pd.DataFrame:
        """Share referred again (95% interval), and share whose episode ended another way, by group."""
        if self.cumulative_incidence is None:
            return pd.DataFrame()
        rows = {}
        h_max = max(self.horizons)
        for g in self.cumulative_incidence.curves:
            row = {}
            for h in self.horizons:
                a = self.cumulative_incidence.at(g, h)
                row[f"Within {_when(h)}"] = (_share(a["rereferral"], a["ci_low"], a["ci_high"]) if self.share_shown(g, h)
                                             else "c")
            a = self.cumulative_incidence.at(g, h_max)
            row[f"Turned 18, died or moved away {_within(h_max)}"] = (
                f"{a['competing']:.1%}" if self.share_shown(g, h_max, "competing") else "c")
            rows[group_label(self.group_by, g)] = row
        return _for_display(pd.DataFrame.from_dict(rows, orient="index"), self.what.capitalize())

    def rmst_table(self) -> pd.DataFrame:
        """Average days out of contact within the horizon, and the difference from the largest group."""
        r = self.rmst
        diffs = r.differences.set_index("group")
        rows = {}
        for g in r.groups.itertuples():
            if not (np.isfinite(g.ci_low) and np.isfinite(g.ci_high)) or round(g.ci_low) == round(g.ci_high):
                rows[group_label(self.group_by, g.group)] = {
                    f"Average days out of contact in the {_first(r.horizon)}": TOO_FEW, "95% interval": "",
                    "Difference in days": "" if g.group in diffs.index else "comparison group",
                    "95% interval of the difference": ""}
                continue
            row = {f"Average days out of contact in the {_first(r.horizon)}": f"{g.rmst:.0f}",
                   "95% interval": _nowrap(f"{g.ci_low:.0f} to {g.ci_high:.0f}")}
            if g.group in diffs.index:
                d = diffs.loc[g.group]
                row["Difference in days"] = f"{d.difference:+.0f}"
                row["95% interval of the difference"] = _nowrap(f"{d.ci_low:+.0f} to {d.ci_high:+.0f}")
            else:
                row["Difference in days"] = "comparison group"
                row["95% interval of the difference"] = ""
            rows[group_label(self.group_by, g.group)] = row
        return _for_display(pd.DataFrame.from_dict(rows, orient="index"), self.what.capitalize())

    def rmst_sentences(self) -> list[str]:
        """Restricted mean time out of contact in words: the range across groups and the clearest difference."""
        r = self.rmst
        g = r.groups.set_index("group")
        out = [f"In the {_first(r.horizon)} after a case closed, children stayed out of contact for between "
               f"{g['rmst'].min():.0f} and {g['rmst'].max():.0f} days on average, depending on the group "
               f"(the table gives each group with its 95% interval)."]
        # the clearest difference (largest z), among groups with a few re-referrals (a group with none has a
        # variance of zero, which says more about its size than about the children)
        events = dict(zip(self.logrank.groups["group"].astype(str), self.logrank.groups["observed"]))
        d = r.differences[(r.differences["p_value"] < 0.05)
                          & (r.differences["group"].map(events).fillna(0) >= 5).to_numpy()]
        if len(d):
            top = d.iloc[int(np.argmax(np.abs(d["difference"].to_numpy() / d["se"].to_numpy())))]
            days = abs(top.difference)
            lo, hi = sorted((abs(top.ci_low), abs(top.ci_high)))
            out.append(f"The clearest difference: {_who(self.group_by, top.group, True)} stayed out of contact "
                       f"{days:.0f} day{'s' if round(days) != 1 else ''} {'longer' if top.difference > 0 else 'less'} "
                       f"than {_who(self.group_by, top.reference, True)} (95% interval {lo:.0f} to {hi:.0f} days).")
        else:
            out.append("No group differed clearly from the largest group.")
        return out

    def cox_table(self) -> pd.DataFrame:
        """Hazard ratios with 95% intervals in words, one row per factor level."""
        if self.cox is None:
            return pd.DataFrame()
        rows = {}
        for label, i in self.cox._rows():
            if i is None:
                rows[label] = {"Hazard ratio": "", "95% interval": "", "p-value": ""}
                continue
            r = self.cox.terms.iloc[i]
            key = ("\u2003" if label.startswith(" ") else "") + label.strip()
            if not self.cox.estimable(r.term):
                rows[key] = {"Hazard ratio": TOO_FEW, "95% interval": "", "p-value": ""}
                continue
            rows[key] = {
                "Hazard ratio": f"{r.hr:.2f}", "95% interval": _nowrap(f"{r.ci_low:.2f} to {r.ci_high:.2f}"),
                "p-value": "< 0.001" if r.p_value < 0.001 else f"{r.p_value:.3f}"}
        return _for_display(pd.DataFrame.from_dict(rows, orient="index"), "Factor")

    def dfe_table(self, threshold: int | None = None, rounding: int | None = None,
                  complete_only: bool = True) -> pd.DataFrame:
        """DfE's measure by reporting year beside the council's published figure (full years only by default);
        the figures are those of ``dfe_published`` (the headline and the national page use the same)."""
        d = self.dfe_published(complete_only)
        tab = pd.DataFrame({
            "Year to 31 March": d["year"].astype(int).to_numpy(), "Referrals": d["referrals"].to_numpy(),
            "Re-referrals within 12 months": d["rereferrals"].to_numpy(),
            "Rate": d["rate_display"].to_numpy(),
            "Published rate": [("" if pd.isna(v) else f"{v:.1%}") for v in d["published_rate"]],
        })
        if not complete_only:
            tab["Full year in the extract"] = np.where(d["complete"], "yes", "no")
        if tab.empty:
            return _for_display(tab.set_index("Year to 31 March"), "Year to 31 March")
        out = tab
        for col in ("Referrals", "Re-referrals within 12 months"):
            out[col] = [f"{v:,}" if isinstance(v, (int, np.integer)) else v for v in out[col]]
        return _for_display(out.set_index("Year to 31 March"), "Year to 31 March")

    @staticmethod
    def definitions() -> list[str]:
        return [
            "Episode: the time from a case closing (or a referral ending in no further action) to the child's next "
            "referral, or to the end of the data.",
            "Re-referral (survival analysis): a new referral on a later day than the case closed.",
            "DfE re-referral rate: the share of referrals in a year (to 31 March) made within 12 months (365 days) "
            "of a previous referral of the same child, as DfE publishes it.",
            "Competing events: the child's 18th birthday, death (closure reason RC2) or transfer to another council "
            "(RC5); after these a re-referral to this council cannot happen.",
            "Kaplan-Meier curve: the share of children not yet referred again, by time since closure.",
            "Cumulative incidence: the share referred again by a given day, allowing for the competing events.",
            "Restricted mean survival time: the average number of days out of contact within the first year (or "
            "other period).",
            "Hazard ratio: how much faster (above 1) or slower (below 1) children in a group are referred again "
            "than the comparison group, other factors in the model held equal.",
            "95% interval: the range of values the data are consistent with; a narrow interval means a precise "
            "estimate.",
        ]

    def counts_table(self, threshold: int | None = None, rounding: int | None = None) -> pd.DataFrame:
        """What happened to every referral on the way to episodes, small counts suppressed."""
        words = {
            "referrals": "Referrals in the extract", "referrals_after_extract": "Referrals dated after the extract (left out)",
            "closures_after_extract": "Closed after the extract date (treated as open)",
            "nfa_closed_at_referral": "No further action, closed on the referral date",
            "merged_overlapping": "Referrals joined to an overlapping one",
            "open_cases": "Cases open at the extract (no episode)", "episodes": "Episodes (closed periods of contact)",
            "not_at_risk_died": "Closed because the child died (not at risk)",
            "not_at_risk_transferred": "Closed on transfer to another council (not at risk)",
            "not_at_risk_adult": "Closed at 18 or over (not at risk)",
            "closed_on_extract_date": "Closed on the extract date (no follow-up)",
            "unknown_child": "Referrals of a child not in the children table",
        }
        words["followed_up"] = "Episodes followed up"
        shown = self.published_counts()
        out = pd.DataFrame([{"what": words.get(k, k), "count": v} for k, v in shown.items()])
        out["count"] = [f"{v:,}" if isinstance(v, (int, np.integer)) else v for v in out["count"]]
        return _for_display(out.set_index("what").rename(columns={"count": "Count"}), "What happened")

    # figures -----------------------------------------------------------------------------
    def figures(self) -> dict:
        """Figures with their alt text (charts show the largest groups; "Other" is stated under them)."""
        h = max(self.horizons)
        km = self.km_chart or self.km
        cif = self.cif_chart or self.cumulative_incidence
        groups = "; ".join(km.labels.get(g, g) for g in km.curves)
        figs = {
            "km": (km.plot(title=self.chart_title(), min_at_risk=self.min_at_risk, max_days=3 * h, threshold=self.threshold,
                           note=self.chart_note()),
                   f"Kaplan-Meier curves by {self.what} ({groups}): the share of children not yet referred again "
                   f"against time since closure, with 95% bands and the numbers still followed below. "
                   f"{self._group_sentence() or ''}".strip()),
        }
        if cif is not None:
            figs["cumulative_incidence"] = (
                cif.plot(min_at_risk=self.min_at_risk, max_days=3 * h, note=self.chart_note(), threshold=self.threshold),
                f"Cumulative incidence of re-referral by {self.what} ({groups}) up to three times {h} days, "
                f"allowing for children who turn 18, die or move away. {self._closure_share_sentence() or ''}".strip())
        if self.cox is not None:
            figs["forest"] = (self.cox.plot(self.forest_title()), "Hazard ratios of re-referral with 95% intervals for each factor in "
                              "the Cox model, against each factor's comparison group; a ratio above 1 means referred "
                              f"again sooner. {_plain(self.cox_headline() or '')}".strip())
        return figs


_ORDER = {
    "age_band": [b[2] for b in AGE_BANDS] + [contract.AGE_BAND_ADULT, contract.AGE_BAND_UNKNOWN],
    "referral_source": list(contract.REFERRAL_SOURCES),
    "closure_reason": list(contract.CLOSURE_REASONS) + ["NFA", "UNKNOWN"],
    "sex": ["F", "M", "U"],
    "ethnicity": ["White", "Mixed", "Asian", "Black", "Any other ethnic group", "Not known"],
    "referral_nfa": ["Assessed", "No further action"],
    "disability": ["No disability", "Disability"],
}


def _level_key(group_by: str | None, name) -> tuple:
    """Natural order for ordered groupings (age bands), otherwise by name; "Other" last."""
    order = _ORDER.get(group_by, [])
    name = str(name)
    if name == OTHER:
        return (2, 0, name)
    return (0, order.index(name), name) if name in order else (1, 0, name)


def _reordered(result, group_by):
    """A KM or cumulative-incidence result with its groups in natural order."""
    if result is None:
        return None
    keys = sorted(result.curves, key=lambda g: _level_key(group_by, g))
    result.curves = {g: result.curves[g] for g in keys}
    if getattr(result, "competing", None):
        result.competing = {g: result.competing[g] for g in keys}
    return result


def rereferral_report(tables: dict[str, pd.DataFrame], group_by: str = "primary_need",
                      horizons=DEFAULT_HORIZONS, covariates=None, competing_risks: bool = True,
                      min_group_size: int = 20, rmst_horizon: int | None = None,
                      closure_year: int | None = None, max_chart_groups: int = 6,
                      disclosure_threshold: int = 5, rounding: int | None = None) -> ReReferralReport:
    """Build episodes and every estimate the re-referral notebook reports.

    Groups smaller than ``min_group_size`` or the disclosure threshold are shown together as
    "Other" (which is kept at the threshold or above); every figure the report publishes is
    controlled by ``disclosure_threshold`` and ``rounding``."""
    from insightlib.ingest.episodes import build_episodes, dfe_rereferral_measure

    if group_by not in GROUPINGS:
        raise InputError(f"group_by must be one of {', '.join(GROUPINGS)}; got {group_by!r}.")
    horizons = tuple(int(h) for h in horizons)
    episodes, counts = build_episodes(tables, with_counts=True)
    ep = add_groupings(episodes, tables.get("interventions"))
    ep = ep.loc[ep["duration_days"] > 0].reset_index(drop=True)
    if ep.empty:
        raise InputError("No closed case has any follow-up before the extract date, so there is nothing to analyse.")
    groups = fold_small_groups(ep[group_by], max(min_group_size, disclosure_threshold),
                               min_other=disclosure_threshold).to_numpy()
    t, e = ep["duration_days"].to_numpy(), ep["event"].to_numpy()
    labels_of = lambda res: {g: group_label(group_by, g) for g in res.curves}  # noqa: E731
    child = child_key(ep)  # bands, tests and intervals clustered by child (one child's episodes are not independent)
    km = _reordered(kaplan_meier(t, e, groups, horizons, group_by=group_by, clusters=child), group_by)
    km.labels = labels_of(km)
    lr = logrank_test(t, e, groups, clusters=child)
    cif = (_reordered(cumulative_incidence(t, e, groups, horizons, clusters=child), group_by) if competing_risks
           else None)
    if cif is not None:
        cif.labels = dict(km.labels)
    # charts: the largest groups, the rest folded into "Other" (said under the chart)
    chart_groups = fold_to_largest(groups, max_chart_groups).to_numpy()
    km_chart, cif_chart = km, cif
    if (chart_groups != groups).any():
        km_chart = _reordered(kaplan_meier(t, e, chart_groups, horizons, group_by=group_by, clusters=child),
                              group_by)
        km_chart.labels = labels_of(km_chart)
        if competing_risks:
            cif_chart = _reordered(cumulative_incidence(t, e, chart_groups, horizons, clusters=child), group_by)
            cif_chart.labels = dict(km_chart.labels)
    # every group the charts' "Other" holds (small groups folded for size, and groups beyond the largest)
    raw = _factorize_labels(ep[group_by].to_numpy())
    in_other = np.unique(raw[0][chart_groups == OTHER])
    folded = sorted((str(raw[1][k]) for k in in_other), key=lambda g: _level_key(group_by, g))
    rm = rmst(t, e, groups, horizon=rmst_horizon or max(horizons), clusters=child)
    rm.groups = rm.groups.iloc[sorted(range(len(rm.groups)),
                                      key=lambda i: _level_key(group_by, rm.groups["group"].iloc[i]))]
    covariates = list(covariates) if covariates else list(DEFAULT_COVARIATES)
    cox, note = None, ""
    try:
        X, refs = design_matrix(ep, covariates, min_group_size)
        cox = cox_ph(t, e, X, clusters=child)
        cox.references = refs
    except InputError as err:
        note = f"No Cox model: {err}"
    # headline: episodes closed in the latest calendar year with a full year of follow-up
    extract = pd.to_datetime(tables["councils"]["extract_date"]).min()
    h = max(horizons)
    closed_year = ep["closure_date"].dt.year
    full = closed_year[(pd.to_datetime(closed_year.astype(str) + "-12-31") + pd.Timedelta(days=h)) <= extract]
    year = closure_year if closure_year is not None else (int(full.max()) if len(full) else None)
    rate = None
    if year is not None:
        m = (closed_year == year).to_numpy()
        # the share is published only where neither the children re-referred within the horizon nor those
        # not are a small count ("1 in 4" of 4 closures is one child)
        back = int(((e[m] == 1) & (t[m] <= h)).sum())
        small = lambda n: 1 <= n < disclosure_threshold  # noqa: E731
        if m.sum() >= max(min_group_size, disclosure_threshold) and not small(back) and not small(int(m.sum()) - back):
            if competing_risks:
                rate = cumulative_incidence(t[m], e[m], None, (h,)).at("All", h)["rereferral"]
            else:
                rate = 1 - kaplan_meier(t[m], e[m], None, (h,)).at("All", h)["survival"]
    dfe = dfe_rereferral_measure(tables)
    start = pd.to_datetime(tables["referrals"]["referral_date"]).min()
    return ReReferralReport(
        group_by=group_by, horizons=horizons, counts=counts.to_dict(), km=km, logrank=lr, cumulative_incidence=cif,
        rmst=rm, cox=cox, cox_note=note, dfe_measure=dfe, headline_year=year, headline_rate=rate,
        episodes_at_risk=len(ep), children=int(len(np.unique(child))),
        km_chart=km_chart, cif_chart=cif_chart, folded=folded, data_start=start, extract_date=extract,
        threshold=int(disclosure_threshold), rounding=rounding,
    )
