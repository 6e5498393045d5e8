"""The skills gap's answer across areas: each area's occupation most short of local learners."""

from __future__ import annotations

from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.report.summary_table import Row, Summary, fmt, summary_table


def skills_summary(reports) -> Summary | None:
    rows = []
    for code, label, res in reports:
        occ = ((res.get("gap_index") or {}).get("occupations")) or []
        top = max((o for o in occ if isinstance(o.get("gap"), (int, float))), key=lambda o: o["gap"], default=None)
        if top is None:
            rows.append(Row(label, code, None, None, None, shown=False, note="no gap index"))
            continue
        rows.append(
            Row(
                label,
                code,
                top["gap"],
                top.get("gap_ci_low"),
                top.get("gap_ci_high"),
                detail=str(top.get("occupation", "")),
            )
        )
    shown = [r for r in rows if r.shown]
    if not shown:
        return None
    sentence = (
        "The jobs most short of local learners: "
        + "; ".join(f"{r.label}, {r.detail.lower()} (gap index {fmt(r.estimate, 2)})" for r in shown)
        + "."
    )
    table, note = summary_table(
        rows,
        measure_col="Gap index",
        thresholds=[DISCLOSURE_THRESHOLD],
        count_cols=[],
        total=None,
        digits=2,
        detail_col="Occupation",
        first_col="Area",
    )
    return Summary(
        "skills_gap",
        sentence,
        [
            "0 means the occupation's share of jobs matches its share of the area's "
            "learners; +0.7 means about twice the share of jobs."
        ],
        rows,
        table,
        note,
        "Gap index of the occupation most short of local learners",
        reference_value=0.0,
        reference_label="Shares match",
        method=[
            "The gap index is the log ratio of an occupation's share of the area's demand to its share "
            "of the area's further-education learners (through the occupation-to-subject crosswalk), "
            "with simulation intervals; see each area's report."
        ],
    )
