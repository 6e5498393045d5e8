"""The programme evaluation's answer: the staggered difference-in-differences across adopting councils,
beside each adopting council's own interrupted time series."""

from __future__ import annotations

import math

from insightlib import reference
from insightlib.analyses.programme_panel import OUTCOMES, PERCENT_OUTCOMES
from insightlib.report.summary_table import Row, Summary, clear_direction, fmt, interval, summary_table, threshold_of


#: How the change was estimated (the method paragraph for an analyst).
METHOD = (
    "The headline is a staggered-adoption difference-in-differences (two-stage estimator, "
    "Gardner 2021), with a council-clustered interval or randomisation inference when few councils "
    "adopt; each council's own change is an interrupted time series with first-order "
    "autoregressive errors. Details are in the report's Method section."
)


def programme_summary(reports) -> Summary | None:
    res = next((r for c, _label, r in reports if c == "national"), reports[0][2])
    att = res.get("att") or {}
    if not isinstance(att.get("estimate"), (int, float)):
        return None
    outcome = res.get("outcome") or (res.get("parameters") or {}).get("outcome") or "rereferral_rate"
    units = "percentage points" if outcome in PERCENT_OUTCOMES else ""
    what = OUTCOMES.get(outcome, outcome).split(" (")[0]
    rows = _council_rows(res)
    sentence = _sentence(res, att, what, units)
    paragraphs = _paragraphs(res.get("pretrend_p_value"), bool(rows))
    rows.insert(
        0,
        Row(
            "All adopting councils",
            "",
            att["estimate"],
            att["ci_low"],
            att["ci_high"],
            detail="against councils not yet adopting",
        ),
    )
    table, note = summary_table(
        rows,
        measure_col="Change" + (" (points)" if units == "percentage points" else ""),
        thresholds=[threshold_of(res)],
        count_cols=[],
        total=None,
        detail_col="Comparison",
    )
    return Summary(
        "programme_evaluation",
        sentence,
        paragraphs,
        rows,
        table,
        note,
        f"Change in {what} after adoption ({units})" if units else f"Change in {what} after adoption",
        reference_value=0.0,
        reference_label="No change",
        method=[METHOD],
    )


def _council_rows(res: dict) -> list[Row]:
    """Each adopting council's own level change at adoption (its interrupted time series), by name."""
    rows = []
    for code, its in sorted(
        (res.get("interrupted_time_series") or {}).items(), key=lambda kv: reference.council_name(kv[0])
    ):
        lc = (its or {}).get("level_change") or {}
        ok = isinstance(lc.get("estimate"), (int, float))
        rows.append(
            Row(
                reference.council_name(code),
                code,
                lc.get("estimate") if ok else None,
                lc.get("ci_low") if ok else None,
                lc.get("ci_high") if ok else None,
                shown=ok,
                note="" if ok else "series too short",
                detail="before and after (own series)",
            )
        )
    return rows


def _sentence(res: dict, att: dict, what: str, units: str) -> str:
    """The answer: the change after adoption against councils not yet adopting."""
    name = res.get("programme") or (res.get("parameters") or {}).get("programme") or "the programme"
    n = res.get("n_adopters") or len(res.get("councils_adopting") or [])
    direction = clear_direction(att["ci_low"], att["ci_high"], "fell", "rose")
    u = f" {units}" if units else ""
    if direction:
        return (
            f"After councils adopted {name}, {what} {direction} by {abs(att['estimate']):.1f}{u} compared with "
            f"councils not yet adopting (95% interval {interval(att['ci_low'], att['ci_high'])}; {n} adopting councils)."
        )
    return (
        f"After councils adopted {name}, there is no clear change in {what} compared with councils not yet "
        f"adopting ({fmt(att['estimate'])}{u}, 95% interval {interval(att['ci_low'], att['ci_high'])}; "
        f"{n} adopting councils)."
    )


def _paragraphs(pretrend_p, own_series: bool) -> list[str]:
    """Whether the pre-trends agree, and what the councils' own series on the chart are."""
    paragraphs = []
    if isinstance(pretrend_p, (int, float)) and math.isfinite(pretrend_p):
        paragraphs.append(
            "Before adopting, the adopting councils' figures moved in line with the others'."
            if pretrend_p >= 0.05
            else "Warning: before adopting, the adopting councils' figures were already moving differently "
            "from the others', so the change after adoption may not be the programme's."
        )
    if own_series:
        paragraphs.append(
            "The chart also shows each adopting council's own before-and-after change (the level change "
            "in its own series at adoption), a weaker comparison with no councils alongside."
        )
    return paragraphs
