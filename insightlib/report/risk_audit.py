"""Words, tables and charts of the risk model audit (insightlib.analyses.risk_audit.RiskAudit),
written for an ethics committee that includes residents. Aggregates only: no per-child score
exists here. Counts pass through insightlib.report.disclosure; a group's rates are hidden when they would
give a small count away (RiskAudit.hidden)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib.stats import risk_audit as ra
from insightlib.stats import risk_verdict as rv
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.report import disclosure, risk_audit_disclosure
from insightlib.report.risk_audit_disclosure import COUNT_METRICS

GROUP_WORDS = {"ethnic_group": "Ethnic group", "sex": "Sex", "disabled": "Disability", "deprivation": "Deprivation"}
RESULT_WORDS = {
    rv.MEETS: "meets the bar",
    rv.FAILS: "fails the bar",
    rv.UNCLEAR: "cannot tell",
    rv.NOT_JUDGED: "too few to judge",
}
METRIC_WORDS = {
    "auc": ("Discrimination (AUC)", "chance that a re-referred child scores above one who was not (0.5: a coin toss)"),
    "average_precision": ("Average precision", "precision averaged over every threshold (compare with the base rate)"),
    "calibration_slope": ("Calibration slope", "1: predictions spread as much as reality; below 1: too extreme"),
    "calibration_intercept": ("Calibration intercept", "0: right overall level; above 0: risk under-predicted"),
    "precision": ("Precision at the threshold", "share of flagged children who were re-referred"),
    "recall": ("Recall at the threshold", "share of re-referred children who had been flagged"),
    "flag_share": ("Share flagged", "share of the later closures above the threshold"),
    "base_rate": ("Re-referred within a year", "share of all later closures (the base rate)"),
}


def _iv(iv: ra.Interval, fmt: str = "{:.2f}") -> tuple[str, str]:
    f = lambda v: fmt.format(v) if np.isfinite(v) else "n/a"  # noqa: E731
    return f(iv.estimate), f"{f(iv.ci_low)} to {f(iv.ci_high)}"


def _level(res) -> str:
    return f"{res.parameters['confidence_level']:.0%} interval"


def accuracy_table(res) -> pd.DataFrame:
    """Both models side by side on the later closures, each figure with its interval."""
    thr = int(res.parameters.get("disclosure_threshold", DISCLOSURE_THRESHOLD))
    rows = {}
    for key, (label, meaning) in METRIC_WORDS.items():
        row = {}
        for kind, a in res.models.items():
            pct = key in COUNT_METRICS
            est, ci = _iv(a.metrics[key], "{:.1%}" if pct else "{:.2f}")
            hide = pct and not res.counts_shown(kind, thr)
            row[ra.MODEL_LABELS[kind]] = disclosure.SUPPRESSED if hide else f"{est} ({ci})"
        row["What it means"] = meaning
        rows[label] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns.name = f"Measure ({_level(res)})"
    if not all(res.counts_shown(k, thr) for k in res.models):
        out.attrs["note"] = HIDDEN_COUNTS.format(threshold=thr)
    return out


#: Why a model's precision, recall, share flagged and base rate are "c".
HIDDEN_COUNTS = (
    "c: a share that would give away a count of fewer than {threshold} children (flagged and re-referred, "
    "flagged and not, or re-referred and not flagged)."
)


def in_children(res, model: str | None = None) -> str:
    """Precision and recall in children: 'of 10 children flagged, about N ...'."""
    kind = model or res.parameters["primary_model"]
    if not res.counts_shown(kind, int(res.parameters.get("disclosure_threshold", DISCLOSURE_THRESHOLD))):
        return (
            f"How many of the children the {ra.MODEL_LABELS[kind].lower()} would have flagged were re-referred "
            "is not shown: with so few later closures, it would give away how many children were flagged, "
            "re-referred or missed."
        )
    m = res.models[kind].metrics
    pr, rc, base = m["precision"], m["recall"], m["base_rate"]
    share = res.parameters["flag_share"]

    def tenths(iv):
        lo, hi = f"{10 * iv.ci_low:.0f}", f"{10 * iv.ci_high:.0f}"
        return f"{10 * iv.estimate:.0f}", (
            f"between {lo} and {hi}" if lo != hi else f"interval {10 * iv.ci_low:.1f} to {10 * iv.ci_high:.1f}"
        )

    n, n_ci = tenths(pr)
    k, k_ci = tenths(rc)
    b, _ = tenths(base)
    return (
        f"If the {ra.MODEL_LABELS[kind].lower()} flagged the children whose scores were in the top {share:.0%} "
        f"(the cut-off fixed on the earlier closures), then on the later closures: **of 10 children flagged, "
        f"about {n} would have been re-referred** within a year ({n_ci}), against about {b} in 10 of all "
        f"children; **of 10 children who were re-referred, the model would have flagged about {k}** ("
        f"{k_ci}). The others would have been missed, and the flagged children who were not re-referred would "
        f"have been singled out for nothing."
    )


def _fmt(v, pct=False):
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.2f}"


#: The fairness table's columns: the group's cases, then each rate with its interval.
FAIRNESS_COLUMNS = [
    "Closed cases (later period)",
    "Re-referred / predicted",
    "Flagged",
    "Flag rate against everyone's (RRI)",
    "Flagged but not re-referred (false-positive rate)",
    "Re-referred but not flagged (false-negative rate)",
]


def fairness_table(
    res, attribute: str, threshold: int = DISCLOSURE_THRESHOLD, rounding: int | None = None, model: str | None = None
) -> pd.DataFrame:
    """One row per group: cases (disclosure-controlled), then observed/expected, flag rate, relative rate
    index and error rates with intervals; rows that would give a small count away show 'c'."""
    kind = model or res.parameters["primary_model"]
    t = res.models[kind].groups[attribute]
    hidden = risk_audit_disclosure.hidden_groups(res, kind, attribute, threshold)
    safe = risk_audit_disclosure.group_cases(res, kind, attribute, threshold, rounding)
    rows = {}
    for g, r in t.iterrows():
        g = str(g)
        cases = safe.loc[g]
        cases = (
            f"{int(cases):,}"
            if isinstance(cases, (int, float, np.integer, np.floating)) and np.isfinite(cases)
            else str(cases)
        )
        rows[g] = [cases] + (["c"] * 5 if g in hidden or cases == disclosure.SUPPRESSED else _group_rates(r))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=FAIRNESS_COLUMNS)
    out.columns.name = f"{GROUP_WORDS.get(attribute, attribute)} ({_level(res)})"
    if hidden or (out[FAIRNESS_COLUMNS[0]] == disclosure.SUPPRESSED).any():
        out.attrs["note"] = (
            f"c: fewer than {threshold} children (or a number that would give such a count away); "
            "the group's rates are not shown."
        )
    return out


def _group_rates(r: pd.Series) -> list[str]:
    """One group's rates, each with its interval, in the order of FAIRNESS_COLUMNS[1:]."""

    def ci(col, pct=False):
        return f"{_fmt(r[col], pct)} ({_fmt(r[col + '_low'], pct)} to {_fmt(r[col + '_high'], pct)})"

    return [
        ci("observed_expected"),
        ci("flag_rate", True),
        ci("flag_rri"),
        ci("false_positive_rate", True),
        ci("false_negative_rate", True),
    ]


def bars_table(res, model: str | None = None) -> pd.DataFrame:
    """Every pre-stated bar and how the model did against it (groups too few to judge left out)."""
    kind = model or res.parameters["primary_model"]
    v = res.verdicts[kind]
    thr = int(res.parameters.get("disclosure_threshold", 5))
    hid = {f"{a}: {g}" for a in res.groups_used for g in res.hidden(kind, a, thr)}
    labels = {
        "auc": "AUC at least",
        "precision": "Precision at least",
        "calibration_slope": "Calibration slope within",
        "calibration_intercept": "Calibration intercept within",
        "observed_expected": "Re-referred / predicted within",
        "flag_rri": "Flag rate against everyone's within",
        "fpr_difference": "False-positive rate within (points of everyone's)",
        "fnr_difference": "False-negative rate within (points of everyone's)",
    }
    rows = []
    counts_hidden = not res.counts_shown(kind, thr)
    for c in v.checks:
        if c["result"] == rv.NOT_JUDGED or c["group"] in hid or (counts_hidden and c["what"] in COUNT_METRICS):
            continue
        bar = c["bar"]
        bar_s = f"{bar[0]:g} to {bar[1]:g}" if isinstance(bar, list) else f"{bar:g}"
        rows.append(
            {
                "Who": c["group"].replace("_", " ") or "Everyone",
                "Bar": f"{labels.get(c['what'], c['what'])} {bar_s}",
                "Estimate": _fmt(c["estimate"]),
                "Interval": f"{_fmt(c['ci_low'])} to {_fmt(c['ci_high'])}",
                "Result": RESULT_WORDS[c["result"]],
            }
        )
    out = pd.DataFrame(rows)
    return out


def verdict_words(res, model: str | None = None) -> str:
    """The verdict in plain words against the pre-stated bars."""
    kind = model or res.parameters["primary_model"]
    v = res.verdicts[kind]
    m = res.models[kind].metrics
    name = ra.MODEL_LABELS[kind].lower()
    auc = m["auc"]
    lines = []
    if v.chance:
        lines.append(
            f"**The {name} was no better than chance** at telling apart the children who came back from those "
            f"who did not: its AUC was {auc.estimate:.2f}, and the interval ({auc.ci_low:.2f} to {auc.ci_high:.2f}) "
            f"includes 0.5, a coin toss."
        )
    acc = {
        rv.MEETS: "**accurate enough to help** by every pre-stated bar",
        rv.FAILS: "**not accurate enough to help**: it falls short of at least one pre-stated bar",
        rv.UNCLEAR: "**not shown to be accurate enough**: with these data it cannot be told whether it meets every bar",
    }[v.accurate]
    fair = {
        rv.MEETS: "**equal enough to be fair** by every pre-stated bar in every group large enough to judge",
        rv.FAILS: "**not equal enough to be fair**: at least one group is treated differently beyond the pre-stated bars",
        rv.UNCLEAR: "**not shown to be fair**: for some groups the data cannot tell whether it meets the bars",
    }[v.fair]
    lines.append(f"Judged on later closures than it was built on, the {name} is {acc}, and {fair}.")
    failing = [c for c in v.checks if c["result"] == rv.FAILS and c["group"]]
    thr = int(res.parameters.get("disclosure_threshold", 5))
    hid = {f"{a}: {g}" for a in res.groups_used for g in res.hidden(kind, a, thr)}
    shown = sorted({c["group"] for c in failing if c["group"] not in hid})
    if shown:
        lines.append("Groups outside a fairness bar: " + "; ".join(g.replace("_", " ") for g in shown) + ".")
    lines.append(
        "A bar is met only when the whole interval is on the right side of it, and failed only when the whole "
        "interval is on the wrong side; otherwise the data cannot tell. The bars were set before the results "
        "were seen (the evaluation file, or the documented defaults)."
    )
    return "\n\n".join(lines)


def cannot_tell() -> str:
    return (
        "**What this audit cannot tell.** It judges a model of re-referral, which is a record of what the council "
        "did, not of harm to a child: a model that predicts re-referral well may be learning the council's own "
        "patterns of referral. It cannot say whether acting on a flag would help a family, or harm one by singling "
        "it out. It audits models built here from the extract's fields, not any product a supplier sells, though "
        "such a product can be judged the same way on the same later closures. No child's score is shown or kept."
    )


def calibration_plot(res):
    """Predicted against observed re-referral in tenths of the score, both models; the diagonal is perfect."""
    from insightlib.report.charts import DARK_BLUE, ORANGE, REFERENCE_GREY, new_figure

    kind = res.parameters["primary_model"]
    s = res.models[kind].metrics["calibration_slope"]
    title = (
        "Predicted risk matched what happened on later closures"
        if s.ci_low <= 1 <= s.ci_high
        else "Predicted risk did not match what happened on later closures"
    )
    fig, ax = new_figure(title, width=6.5, height=5)
    thr = int(res.parameters.get("disclosure_threshold", 5))
    top = 0.0
    for (k, a), colour in zip(res.models.items(), (DARK_BLUE, ORANGE)):
        c = a.curve.loc[[not h for h in res.hidden_bins(k, thr)]]
        ax.plot(c["predicted"], c["observed"], "o-", color=colour, label=ra.MODEL_LABELS[k])
        top = max(top, float(c[["predicted", "observed"]].to_numpy().max()) if len(c) else 0.0)
    top = min(1.0, top * 1.1 + 0.02)
    ax.plot([0, top], [0, top], color=REFERENCE_GREY, linestyle="--", label="Perfect calibration")
    ax.set_xlabel("Predicted chance of re-referral within a year (tenths of the score)")
    ax.set_ylabel("Share re-referred")
    ax.legend(fontsize=8)
    return fig


def calibration_alt(res) -> str:
    parts = []
    for k, a in res.models.items():
        s, i = a.metrics["calibration_slope"], a.metrics["calibration_intercept"]
        parts.append(
            f"{ra.MODEL_LABELS[k]}: slope {s.estimate:.2f} ({s.ci_low:.2f} to {s.ci_high:.2f}), "
            f"intercept {i.estimate:.2f}"
        )
    return (
        "Calibration curves, predicted against observed re-referral in tenths of the score. " + "; ".join(parts) + "."
    )


def flag_rate_plot(res):
    """Each group's flag rate against everyone's (relative rate index) with intervals and the bars."""
    from insightlib.report.charts import DARK_BLUE, REFERENCE_GREY, new_figure

    kind = res.parameters["primary_model"]
    thr = int(res.parameters.get("disclosure_threshold", 5))
    labels, est, lo, hi = [], [], [], []
    for attr in res.groups_used:
        t = res.models[kind].groups[attr]
        hid = res.hidden(kind, attr, thr)
        for g, r in t.iterrows():
            if str(g) in hid:
                continue
            labels.append(f"{GROUP_WORDS.get(attr, attr)}: {g}")
            est.append(r["flag_rri"]), lo.append(r["flag_rri_low"]), hi.append(r["flag_rri_high"])
    bar = res.parameters["bars"]["group_flag_rri"]
    est, lo, hi = (np.array(v, float) for v in (est, lo, hi))
    out = np.sum((lo > bar[1]) | (hi < bar[0]))
    title = (
        f"{out} group{'s were' if out != 1 else ' was'} flagged more or less often than everyone beyond the bar"
        if out
        else "No group was shown to be flagged more or less often than everyone beyond the bar"
    )
    fig, ax = new_figure(title, width=8, height=max(3.0, 0.3 * len(labels) + 1.5))
    y = np.arange(len(labels))[::-1]
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.errorbar(est[ok], y[ok], xerr=[est[ok] - lo[ok], hi[ok] - est[ok]], fmt="o", color=DARK_BLUE, capsize=3)
    ax.plot(est[~ok], y[~ok], "o", color=DARK_BLUE)
    ax.axvspan(bar[0], bar[1], color="#E5E5E5", zorder=0, label=f"Bar: {bar[0]:g} to {bar[1]:g}")
    ax.axvline(1, color=REFERENCE_GREY, linestyle="--")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("Flag rate against everyone's (relative rate index; 1 = the same)")
    ax.legend(fontsize=8)
    return fig


def flag_rate_alt(res) -> str:
    kind = res.parameters["primary_model"]
    v = res.verdicts[kind]
    thr = int(res.parameters.get("disclosure_threshold", 5))
    hid = {f"{a}: {g}" for a in res.groups_used for g in res.hidden(kind, a, thr)}
    n = sum(1 for c in v.checks if c["what"] == "flag_rri" and c["result"] == rv.FAILS and c["group"] not in hid)
    return (
        f"Dot plot of each group's flag rate against everyone's with intervals and the bar shaded; "
        f"{n} group(s) outside the bar."
    )


def split_words(res) -> str:
    s = res.split
    return (
        f"**How it was tested.** Both models were built on the {len(s.train):,} cases that closed up to "
        f"{s.train_to:%d %B %Y}, whose outcome (re-referred within a year or not) was known before "
        f"{s.test_from:%d %B %Y}, and judged on the {len(s.test):,} cases that closed from {s.test_from:%d %B %Y} to "
        f"{s.test_to:%d %B %Y}: later closures than any it learnt from, as a council would use it. A random split "
        f"would mix the two periods (and often the same children) and flatter the model. Intervals come from "
        f"resampling the children of the later period ({res.parameters['bootstrap_reps']} times), with the "
        f"models held fixed. The flag threshold is {res.thresholds_from}."
    )
