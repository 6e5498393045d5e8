"""The intervention evaluation's answer across councils: each council's risk difference, pooled where they
evaluated the same intervention (random effects, REML), in one sentence, paragraphs and a table."""

from __future__ import annotations

import math

from insightlib.report.summary_table import (
    Row,
    Summary,
    clear_direction,
    fmt,
    interval,
    joined,
    rounding_of,
    summary_table,
    threshold_of,
)
from insightlib.stats.meta import RandomEffects, random_effects


def _intervention_rows(reports) -> tuple[list, set, list]:
    """Each council's risk difference as a row (not shown where a group is smaller than its threshold),
    the (intervention, horizon, estimand) each evaluated, and each council's threshold."""
    rows, keys = [], set()
    thresholds = []
    for code, label, res in reports:
        rd = ((res.get("effect") or {}).get("risk_difference")) or {}
        c = res.get("counts") or {}
        thr = threshold_of(res)
        thresholds.append(thr)
        with_, without = int(c.get("analysed_treated", 0)), int(c.get("analysed_control", 0))
        small = any(0 < n < thr for n in (with_, without))
        est = rd.get("estimate")
        # the council's own page says "too few to estimate" where issue 11's rule fails (res["estimable"])
        ok = (
            isinstance(est, (int, float))
            and math.isfinite(est)
            and not small
            and res.get("estimable", True) is not False
        )
        rows.append(
            Row(
                label,
                code,
                100 * est if ok else None,
                100 * rd["ci_low"] if ok else None,
                100 * rd["ci_high"] if ok else None,
                100 * rd["se"] if ok and rd.get("se") else None,
                shown=ok,
                note="" if ok else "not shown: it rests on too few children",
                counts={"With it": with_, "Without": without, "Cases": with_ + without},
            )
        )
        p = res.get("parameters") or {}
        keys.add(
            (
                res.get("intervention") or p.get("intervention"),
                res.get("horizon_days") or p.get("horizon_days"),
                res.get("estimand") or p.get("estimand"),
            )
        )
    return rows, keys, thresholds


#: How each council's estimate was made (the method paragraph for an analyst).
METHOD = (
    "Each council's estimate is the difference in the share of children re-referred, had every child in the "
    "analysis received the intervention against had none (inverse-probability-weighted Kaplan-Meier at the "
    "horizon, with a child-cluster bootstrap interval), as in its own report."
)
#: How the councils' estimates were pooled, where they were.
POOLING_METHOD = (
    "The pooled estimate is a random-effects meta-analysis of the councils' estimates and standard errors "
    "(restricted maximum likelihood for the between-council variance; 95% interval on the normal scale). "
    "I\u00b2 is the share of the spread between councils that is more than chance; the prediction interval "
    "(Higgins, Thompson and Spiegelhalter 2009, t with k \u2212 2 degrees of freedom) is where a further "
    "council like these would be expected to fall."
)


def intervention_summary(reports) -> Summary | None:
    rows, keys, thresholds = _intervention_rows(reports)
    intervention, horizon, estimand = next(iter(keys)) if len(keys) == 1 else (None, None, None)
    when = "a year" if horizon == 365 else f"{horizon} days" if horizon else "the horizon"
    measure = (
        f"Difference in the share re-referred within {when} of a case closing, with against without (percentage points)"
    )
    pooled = None
    paragraphs: list[str] = []
    method = [METHOD]
    pooled_rows = [r for r in rows if r.shown and r.se]
    if intervention and len(pooled_rows) >= 2:
        pooled = random_effects([r.estimate for r in pooled_rows], [r.se for r in pooled_rows])
        method.append(POOLING_METHOD)
        paragraphs.append(_heterogeneity_words(pooled, "percentage points"))
    elif len(keys) > 1:
        paragraphs.append(
            "The councils' reports did not all evaluate the same intervention with the same horizon, "
            "so their estimates are shown side by side and not pooled."
        )
    hidden = [r.label for r in rows if not r.shown]
    if hidden:
        paragraphs.append(f"Not shown or pooled, because it rests on too few children: {joined(hidden)}.")
    table, note = summary_table(
        rows,
        measure_col="Points",
        thresholds=thresholds,
        count_cols=["With it", "Without", "Cases"],
        total="Cases",
        rounding=rounding_of(reports),
    )
    sentence = _sentence(rows, pooled, intervention or "The intervention", when)
    return Summary(
        "intervention_effect",
        sentence,
        paragraphs,
        rows,
        table,
        note,
        measure,
        pooled,
        pooled_label="All councils (pooled)",
        reference_value=0.0,
        reference_label="No difference",
        method=method,
    )


def _sentence(rows: list[Row], pooled: RandomEffects | None, name: str, when: str) -> str:
    """The answer: the pooled difference where there is one, else how many councils saw a clear fall."""
    if pooled is None:
        shown = [r for r in rows if r.shown]
        lower = [r.label for r in shown if r.ci_high < 0]
        return (
            f"{name}: in {len(lower)} of {len(rows)} councils re-referral within {when} was clearly lower with it."
            if shown
            else f"{name}: no council's estimate can be shown (too few children)."
        )
    direction = clear_direction(pooled.ci_low, pooled.ci_high, "lower", "higher")
    if direction:
        return (
            f"Across {pooled.k} councils, re-referral within {when} of a case closing was "
            f"{abs(pooled.estimate):.1f} percentage points {direction} with {name} "
            f"(95% interval {_points(pooled.ci_low, pooled.ci_high)})."
        )
    return (
        f"Across {pooled.k} councils, there is no clear difference in re-referral within {when} of a "
        f"case closing with {name} ({fmt(pooled.estimate)} points, 95% interval "
        f"{interval(pooled.ci_low, pooled.ci_high)})."
    )


def _points(lo: float, hi: float) -> str:
    if hi < 0:
        return f"{abs(hi):.1f} to {abs(lo):.1f} points lower"
    if lo > 0:
        return f"{lo:.1f} to {hi:.1f} points higher"
    return f"{abs(lo):.1f} points lower to {hi:.1f} points higher"


def _heterogeneity_words(pooled: RandomEffects, units: str) -> str:
    i2 = 100 * pooled.i2
    spread = (
        "the councils' estimates differ little more than chance would explain"
        if i2 < 25
        else "the councils' estimates differ moderately"
        if i2 < 50
        else "the councils' estimates differ by much more than chance"
    )
    words = (
        f"Pooled over {pooled.k} councils, allowing for councils genuinely differing: {fmt(pooled.estimate)} "
        f"{units} (95% interval {interval(pooled.ci_low, pooled.ci_high)}). {spread[0].upper() + spread[1:]} "
        f"(I\u00b2 = {i2:.0f}%)."
    )
    if pooled.pred_low is not None:
        words += (
            f" A further council like these could expect between {fmt(pooled.pred_low)} and "
            f"{fmt(pooled.pred_high)} {units} (95% prediction interval)."
        )
    return words
