"""The cross-council summary's parts: each council's row, the summary object, its table and number words.

The per-analysis modules (summary_intervention, summary_rereferral, summary_programme, summary_skills) build
a Summary from the councils' results.json; report/summary.summarise picks one; summary_charts draws it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.report import disclosure
from insightlib.stats.meta import RandomEffects


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
        words = f"{fmt(row.estimate, digits, signed)}{unit} ({interval(row.ci_low, row.ci_high, digits, signed)})"
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


def rounding_of(reports) -> int | None:
    """The coarsest rounding base any report used (counts beside it are rounded the same way)."""
    bases = [(res.get("parameters") or {}).get("rounding") for _c, _l, res in reports]
    bases = [int(b) for b in bases if isinstance(b, (int, float)) and b and b > 1]
    return max(bases) if bases else None


def threshold_of(res: dict) -> int:
    t = (res.get("parameters") or {}).get("disclosure_threshold")
    return int(t) if isinstance(t, (int, float)) and t >= 1 else DISCLOSURE_THRESHOLD


def fmt(v: float | None, digits: int = 1, sign: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return ""
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    return s.replace("-", "\u2212")


def interval(lo, hi, digits: int = 1, sign: bool = True) -> str:
    if lo is None or hi is None:
        return ""
    return f"{fmt(lo, digits, sign)} to {fmt(hi, digits, sign)}"


def joined(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def clear_direction(lo, hi, below: str, above: str) -> str:
    """The word for an interval wholly below or above 0, else ""."""
    return below if hi < 0 else above if lo > 0 else ""


def summary_table(
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
    df[measure_col] = [fmt(r.estimate, digits, signed) if r.shown else disclosure.SUPPRESSED for r in rows]
    df["95% interval"] = [interval(r.ci_low, r.ci_high, digits, signed) if r.shown else "" for r in rows]
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
