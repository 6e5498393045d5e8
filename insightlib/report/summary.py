"""An evaluation's answer across its councils: one sentence, a forest plot and a table.

A director who opens an evaluation's page should not have to open six reports to learn whether
Family Group Conferences worked. ``summarise(notebook, reports)`` reads each council's
``results.json`` (never the HTML) and gives:

* every council's estimate with its interval, in the report's own units;
* where the councils evaluated the same intervention (same horizon and estimand), the pooled
  random-effects estimate (``insightlib.stats.meta``, REML), its heterogeneity (I^2) and the
  prediction interval for a council like these;
* the sentence that answers the evaluation's question, a forest plot (wide and narrow for phones)
  and a table whose counts pass through disclosure control.

A council whose estimate rests on fewer than its disclosure threshold of children in a group is
shown as "c" and left out of the chart and the pooling.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.report import disclosure
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.stats.meta import RandomEffects, random_effects

#: The estimate a council report's headline gives, for each notebook that has one.
SUMMARISED = ("intervention_effect", "rereferral", "programme_evaluation", "skills_gap")


@dataclass
class Row:
    """One council's (or area's) estimate, or why it is not shown."""

    label: str
    code: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    se: float | None = None
    shown: bool = True
    note: str = ""
    counts: dict = field(default_factory=dict)
    detail: str = ""  # e.g. the occupation a skills gap is for, the year of a rate

    def to_dict(self) -> dict:
        keep = self.shown
        return {
            "label": self.label,
            "code": self.code,
            "estimate": self.estimate if keep else None,
            "ci_low": self.ci_low if keep else None,
            "ci_high": self.ci_high if keep else None,
            "shown": self.shown,
            "note": self.note,
            "detail": self.detail,
        }


@dataclass
class Chart:
    name: str
    title: str
    alt: str
    png: bytes
    png_narrow: bytes


@dataclass
class Summary:
    """What an evaluation's page opens with, and the home page's one sentence."""

    notebook: str
    sentence: str  # plain text, the answer in one sentence
    paragraphs: list[str]
    rows: list[Row]
    table: pd.DataFrame  # display strings, counts disclosure-controlled
    table_note: str
    measure: str  # what the estimates are, in words, with units
    pooled: RandomEffects | None = None
    pooled_label: str = ""
    reference_value: float | None = None  # a line on the chart (0, or England's rate)
    reference_label: str = ""
    chart: Chart | None = None
    method: list[str] = field(default_factory=list)  # for an analyst, at the end

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook,
            "sentence": self.sentence,
            "measure": self.measure,
            "rows": [r.to_dict() for r in self.rows],
            "pooled": None if self.pooled is None else self.pooled.to_dict(),
        }

    def finding(self, code: str) -> str:
        """One council's figure in a few words ("-9.6 (-14.8 to -4.4)"), for its row in a listing."""
        row = next((r for r in self.rows if r.code == code), None)
        if row is None:
            return ""
        if not row.shown:
            return row.note or "not shown"
        signed, digits = self.notebook != "rereferral", 2 if self.notebook == "skills_gap" else 1
        unit = "" if signed else "%"
        words = f"{_fmt(row.estimate, digits, signed)}{unit} ({_interval(row.ci_low, row.ci_high, digits, signed)})"
        return words + (f", {row.detail.lower()}" if self.notebook == "skills_gap" and row.detail else "")

    def table_html(self) -> str:
        """The table as HTML: numbers right-aligned (class num), text escaped."""
        head = "".join(
            f'<th scope="col"{_num_class(c, self.table)}>{html.escape(str(c))}</th>' for c in self.table.columns
        )
        body = []
        for _, r in self.table.iterrows():
            cells = "".join(f"<td{_num_class(c, self.table)}>{html.escape(str(v))}</td>" for c, v in r.items())
            body.append(f"<tr>{cells}</tr>")
        note = f'<p class="table-note">{html.escape(self.table_note)}</p>' if self.table_note else ""
        return (
            f'<div class="table-wrap"><table class="summary-table"><caption>{html.escape(self.measure)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>{note}"
        )


def _num_class(column: str, table: pd.DataFrame) -> str:
    return ' class="num"' if column in table.attrs.get("numeric", ()) else ""


# --- reading each notebook's results ---------------------------------------------------------


def _rounding(reports) -> int | None:
    """The coarsest rounding base any report used (counts beside it are rounded the same way)."""
    bases = [(res.get("parameters") or {}).get("rounding") for _c, _l, res in reports]
    bases = [int(b) for b in bases if isinstance(b, (int, float)) and b and b > 1]
    return max(bases) if bases else None


def _threshold(res: dict) -> int:
    t = (res.get("parameters") or {}).get("disclosure_threshold")
    return int(t) if isinstance(t, (int, float)) and t >= 1 else DISCLOSURE_THRESHOLD


def _fmt(v: float | None, digits: int = 1, sign: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return ""
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return s.replace("-", "\u2212")


def _interval(lo, hi, digits: int = 1, sign: bool = True) -> str:
    if lo is None or hi is None:
        return ""
    return f"{_fmt(lo, digits, sign)} to {_fmt(hi, digits, sign)}"


def _names(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def summarise(notebook: str, reports: list[tuple[str, str, dict]], *, title: str = "") -> Summary | None:
    """The summary for one evaluation; ``reports`` are (code, label, results.json contents), one per
    council or area report that finished. None when the notebook has no cross-council answer."""
    reports = [(c, label, res) for c, label, res in reports if isinstance(res, dict) and res]
    if not reports:
        return None
    make = {
        "intervention_effect": _intervention,
        "rereferral": _rereferral,
        "programme_evaluation": _programme,
        "skills_gap": _skills,
    }.get(notebook)
    if make is None:
        return None
    summary = make(reports)
    if summary is not None and summary.rows and any(r.shown for r in summary.rows):
        summary.chart = forest_chart(summary, title)
    return summary


def _intervention_rows(reports) -> tuple[list, set, list]:
    """Each council's risk difference as a row (not shown where a group is smaller than its threshold),
    the (intervention, horizon, estimand) each evaluated, and each council's threshold."""
    rows, keys = [], set()
    thresholds = []
    for code, label, res in reports:
        rd = ((res.get("effect") or {}).get("risk_difference")) or {}
        c = res.get("counts") or {}
        thr = _threshold(res)
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


def _intervention(reports) -> Summary | None:
    rows, keys, thresholds = _intervention_rows(reports)
    intervention, horizon, estimand = next(iter(keys)) if len(keys) == 1 else (None, None, None)
    when = "a year" if horizon == 365 else f"{horizon} days" if horizon else "the horizon"
    measure = (
        f"Difference in the share re-referred within {when} of a case closing, with against without (percentage points)"
    )
    pooled = None
    paragraphs: list[str] = []
    method = [
        "Each council's estimate is the difference in the share of children re-referred, had every child in the "
        "analysis received the intervention against had none (inverse-probability-weighted Kaplan-Meier at the "
        "horizon, with a child-cluster bootstrap interval), as in its own report.",
    ]
    pooled_rows = [r for r in rows if r.shown and r.se]
    if intervention and len(pooled_rows) >= 2:
        pooled = random_effects([r.estimate for r in pooled_rows], [r.se for r in pooled_rows])
        method.append(
            "The pooled estimate is a random-effects meta-analysis of the councils' estimates and standard errors "
            "(restricted maximum likelihood for the between-council variance; 95% interval on the normal scale). "
            "I\u00b2 is the share of the spread between councils that is more than chance; the prediction interval "
            "(Higgins, Thompson and Spiegelhalter 2009, t with k \u2212 2 degrees of freedom) is where a further "
            "council like these would be expected to fall."
        )
    elif len(keys) > 1:
        paragraphs.append(
            "The councils' reports did not all evaluate the same intervention with the same horizon, "
            "so their estimates are shown side by side and not pooled."
        )
    name = intervention or "The intervention"
    if pooled is not None:
        direction = _direction(pooled.ci_low, pooled.ci_high, "lower", "higher")
        if direction:
            sentence = (
                f"Across {pooled.k} councils, re-referral within {when} of a case closing was "
                f"{abs(pooled.estimate):.1f} percentage points {direction} with {name} "
                f"(95% interval {_points(pooled.ci_low, pooled.ci_high)})."
            )
        else:
            sentence = (
                f"Across {pooled.k} councils, there is no clear difference in re-referral within {when} of a "
                f"case closing with {name} ({_fmt(pooled.estimate)} points, 95% interval "
                f"{_interval(pooled.ci_low, pooled.ci_high)})."
            )
        paragraphs.insert(0, _heterogeneity_words(pooled, "percentage points"))
    else:
        shown = [r for r in rows if r.shown]
        lower = [r.label for r in shown if r.ci_high < 0]
        sentence = (
            f"{name}: in {len(lower)} of {len(rows)} councils re-referral within {when} was clearly lower with it."
            if shown
            else f"{name}: no council's estimate can be shown (too few children)."
        )
    hidden = [r.label for r in rows if not r.shown]
    if hidden:
        paragraphs.append(f"Not shown or pooled, because it rests on too few children: {_names(hidden)}.")
    table, note = _table(
        rows,
        measure_col="Points",
        thresholds=thresholds,
        count_cols=["With it", "Without", "Cases"],
        total="Cases",
        rounding=_rounding(reports),
    )
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


def _direction(lo, hi, below: str, above: str) -> str:
    return below if hi < 0 else above if lo > 0 else ""


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
        f"Pooled over {pooled.k} councils, allowing for councils genuinely differing: {_fmt(pooled.estimate)} "
        f"{units} (95% interval {_interval(pooled.ci_low, pooled.ci_high)}). {spread[0].upper() + spread[1:]} "
        f"(I\u00b2 = {i2:.0f}%)."
    )
    if pooled.pred_low is not None:
        words += (
            f" A further council like these could expect between {_fmt(pooled.pred_low)} and "
            f"{_fmt(pooled.pred_high)} {units} (95% prediction interval)."
        )
    return words


def _wilson(r: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = r / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _rereferral(reports) -> Summary | None:
    rows, thresholds, years = [], [], set()
    for code, label, res in reports:
        measure = res.get("dfe_measure") or {}
        complete = [
            (int(y), v)
            for y, v in measure.items()
            if str(y).isdigit() and isinstance(v, dict) and v.get("complete", True)
        ]
        thr = _threshold(res)
        thresholds.append(thr)
        if not complete:
            rows.append(Row(label, code, None, None, None, shown=False, note="no complete year"))
            continue
        year, v = max(complete)
        n, r = int(v.get("referrals") or 0), int(v.get("rereferrals") or 0)
        safe = disclosure.safe_rate(r, n, thr)  # hidden or not is decided on the true counts
        ok = safe.rate is not None
        base = _rounding(reports)
        if ok and base:  # a rate beside rounded counts is the rate of the rounded counts
            rn, rr = base * round(n / base), base * round(r / base)
            ok = rn > 0
            safe = disclosure.SafeRate(rr / rn if ok else None, "", not ok, "")
            lo, hi = _wilson(rr, rn) if ok else (None, None)
        else:
            lo, hi = _wilson(r, n) if ok else (None, None)
        years.add(year)
        rows.append(
            Row(
                label,
                code,
                100 * safe.rate if ok else None,
                100 * lo if ok else None,
                100 * hi if ok else None,
                shown=ok,
                note="" if ok else safe.display,
                detail=str(year),
                counts={"Re-referrals": r, "Referrals": n},
            )
        )
    shown = [r for r in rows if r.shown]
    if not shown:
        return None
    year = max(years)
    published_years = set(reference.published_rereferral_rates()["year"])
    england = 100 * reference.england_rereferral_rate(year) if year in published_years else None  # DfE's
    lo = min(shown, key=lambda r: r.estimate)
    hi = max(shown, key=lambda r: r.estimate)
    sentence = (
        f"In the year to 31 March {year}, between {lo.estimate:.0f}% ({lo.label}) and {hi.estimate:.0f}% "
        f"({hi.label}) of referrals in the {len(shown)} councils came within 12 months of a previous referral"
        + (f", against {england:.1f}% in England." if england is not None else ".")
    )
    if len(years) > 1:
        sentence = sentence[:-1] + " (some councils' latest complete year is earlier; the table says which)."
    paragraphs = []
    if england is not None:
        above = [r.label for r in shown if r.ci_low > england]
        below = [r.label for r in shown if r.ci_high < england]
        paragraphs.append(
            (
                f"Clearly above England's rate: {_names(above)}. "
                if above
                else "No council is clearly above England's rate. "
            )
            + (f"Clearly below it: {_names(below)}." if below else "No council is clearly below it.")
        )
    paragraphs.append("Each council's report shows how soon children come back after their case closes, and for whom.")
    table, note = _table(
        rows,
        measure_col="Rate (%)",
        thresholds=thresholds,
        count_cols=["Re-referrals", "Referrals"],
        total="Referrals",
        signed=False,
        detail_col="Year",
        rounding=_rounding(reports),
    )
    return Summary(
        "rereferral",
        sentence,
        paragraphs,
        rows,
        table,
        note,
        "Referrals within 12 months of a previous referral, latest complete year (%)",
        reference_value=england,
        reference_label=f"England {year}" if england is not None else "",
        method=[
            "DfE's measure computed from each council's extract: referrals in the year to 31 March that "
            "came within 12 months of a previous referral of the same child, with a 95% Wilson interval; "
            "England's rate is DfE's published figure. Rates resting on fewer children than the "
            "disclosure threshold are not shown."
        ],
    )


def _programme(reports) -> Summary | None:
    res = next((r for c, _label, r in reports if c == "national"), reports[0][2])
    att = res.get("att") or {}
    if not isinstance(att.get("estimate"), (int, float)):
        return None
    from insightlib.analyses.programme_panel import OUTCOMES, PERCENT_OUTCOMES

    outcome = res.get("outcome") or (res.get("parameters") or {}).get("outcome") or "rereferral_rate"
    units = "percentage points" if outcome in PERCENT_OUTCOMES else ""
    what = OUTCOMES.get(outcome, outcome).split(" (")[0]
    name = res.get("programme") or (res.get("parameters") or {}).get("programme") or "the programme"
    n = res.get("n_adopters") or len(res.get("councils_adopting") or [])
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
    direction = _direction(att["ci_low"], att["ci_high"], "fell", "rose")
    u = f" {units}" if units else ""
    if direction:
        sentence = (
            f"After councils adopted {name}, {what} {direction} by {abs(att['estimate']):.1f}{u} compared with "
            f"councils not yet adopting (95% interval {_interval(att['ci_low'], att['ci_high'])}; {n} adopting councils)."
        )
    else:
        sentence = (
            f"After councils adopted {name}, there is no clear change in {what} compared with councils not yet "
            f"adopting ({_fmt(att['estimate'])}{u}, 95% interval {_interval(att['ci_low'], att['ci_high'])}; "
            f"{n} adopting councils)."
        )
    p = res.get("pretrend_p_value")
    paragraphs = []
    if isinstance(p, (int, float)) and math.isfinite(p):
        paragraphs.append(
            "Before adopting, the adopting councils' figures moved in line with the others'."
            if p >= 0.05
            else "Warning: before adopting, the adopting councils' figures were already moving differently "
            "from the others', so the change after adoption may not be the programme's."
        )
    if rows:
        paragraphs.append(
            "The chart also shows each adopting council's own before-and-after change (the level change "
            "in its own series at adoption), a weaker comparison with no councils alongside."
        )
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
    table, note = _table(
        rows,
        measure_col="Change" + (" (points)" if units == "percentage points" else ""),
        thresholds=[_threshold(res)],
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
        method=[
            "The headline is a staggered-adoption difference-in-differences (two-stage estimator, "
            "Gardner 2021), with a council-clustered interval or randomisation inference when few councils "
            "adopt; each council's own change is an interrupted time series with first-order "
            "autoregressive errors. Details are in the report's Method section."
        ],
    )


def _skills(reports) -> Summary | None:
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
        + "; ".join(f"{r.label}, {r.detail.lower()} (gap index {_fmt(r.estimate, 2)})" for r in shown)
        + "."
    )
    table, note = _table(
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


def _table(
    rows: list[Row],
    *,
    measure_col: str,
    first_col: str = "Council",
    thresholds: list[int],
    count_cols: list[str],
    total: str | None,
    signed: bool = True,
    digits: int = 1,
    detail_col: str | None = None,
    rounding: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """The summary table: every row's estimate and interval, and its counts through disclosure control
    (the total column makes a hidden count impossible to work back)."""
    df = pd.DataFrame({first_col: [r.label for r in rows]})
    if detail_col:
        df[detail_col] = [r.detail for r in rows]
    df[measure_col] = [_fmt(r.estimate, digits, signed) if r.shown else disclosure.SUPPRESSED for r in rows]
    df["95% interval"] = [_interval(r.ci_low, r.ci_high, digits, signed) if r.shown else "" for r in rows]
    note = ""
    numeric = [measure_col, "95% interval"]
    if count_cols:
        counts = pd.DataFrame([{c: r.counts.get(c, 0) for c in count_cols} for r in rows])
        res = disclosure.suppress_table(
            counts, count_cols, max(thresholds or [DISCLOSURE_THRESHOLD]), rounding, total_column=total
        )
        shown = res.table()
        for c in count_cols:
            df[c] = [
                f"{int(v):,}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v) for v in shown[c]
            ]
        numeric += count_cols
        if res.n_primary or res.n_secondary or rounding:
            note = res.footnote()
    df = df.reset_index(drop=True)
    df.attrs["numeric"] = tuple(numeric)
    return df, note


# --- the chart -------------------------------------------------------------------------------


def forest_chart(summary: Summary, title: str = "") -> Chart:
    """A forest plot of every shown estimate with its interval, the pooled diamond and its prediction
    interval; drawn wide for screens and print and narrow for phones."""
    from insightlib.report import charts
    import matplotlib.pyplot as plt

    def draw(width: float):
        shown = [r for r in summary.rows if r.shown]
        n = len(shown) + (2 if summary.pooled is not None else 0)
        narrow = width < 6
        fig, ax = charts.new_figure(
            _wrap(_chart_title(summary), 44 if narrow else 80),
            width=width,
            height=1.6 + 0.42 * n + (0.3 if narrow else 0),
        )
        labels, ypos = [], []
        for i, r in enumerate(shown):
            y = n - 1 - i
            ax.plot([r.ci_low, r.ci_high], [y, y], color=charts.DARK_BLUE, lw=1.6)
            ax.plot([r.estimate], [y], "s", color=charts.DARK_BLUE, ms=6)
            labels.append(_wrap(r.label, 16 if narrow else 30))
            ypos.append(y)
        if summary.pooled is not None:
            p = summary.pooled
            y = 0
            if p.pred_low is not None:
                ax.plot(
                    [p.pred_low, p.pred_high],
                    [y, y],
                    color=charts.ORANGE,
                    lw=1.2,
                    ls=(0, (3, 2)),
                    label="95% prediction interval (a further council)",
                )
            ax.fill(
                [p.ci_low, p.estimate, p.ci_high, p.estimate],
                [y, y + 0.3, y, y - 0.3],
                color=charts.DARK_PINK,
                label="Pooled estimate and 95% interval",
            )
            labels.append("All councils (pooled)")
            ypos.append(y)
        if summary.reference_value is not None:
            ax.axvline(
                summary.reference_value, color=charts.DARK_GREY, lw=1, ls="--", label=summary.reference_label or None
            )
        ax.set_yticks(ypos)
        ax.set_yticklabels(labels, fontsize=8 if narrow else 9)
        ax.set_ylim(-0.8, n - 0.2)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(_wrap(summary.measure, 48 if narrow else 90), fontsize=8 if narrow else 9)
        handles, names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(
                fontsize=7 if narrow else 8,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.28 if narrow else -0.2),
                ncol=1 if narrow else 3,
                frameon=False,
            )
        return fig

    fig = draw(7.5)
    png = charts.to_png(fig)
    plt.close(fig)
    fig = draw(3.9)
    png_narrow = charts.to_png(fig)
    plt.close(fig)
    return Chart(
        name=f"summary-{summary.notebook}",
        title=_chart_title(summary),
        alt=forest_alt(summary),
        png=png,
        png_narrow=png_narrow,
    )


def _chart_title(summary: Summary) -> str:
    """A headline title: the answer, without its interval (the chart shows that)."""
    return summary.sentence.split(" (")[0].rstrip(".:;")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def forest_alt(summary: Summary) -> str:
    parts = [f"Forest plot of {summary.measure.lower()}."]
    for r in summary.rows:
        if r.shown:
            parts.append(f"{r.label}: {_fmt(r.estimate)} ({_interval(r.ci_low, r.ci_high)}).")
        else:
            parts.append(f"{r.label}: not shown.")
    if summary.pooled is not None:
        p = summary.pooled
        parts.append(f"Pooled: {_fmt(p.estimate)} ({_interval(p.ci_low, p.ci_high)}), I squared {100 * p.i2:.0f}%.")
    return " ".join(parts)
