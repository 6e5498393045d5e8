"""One adopting council on its own: the interrupted time series and the comparison with its statistical
neighbours, as report objects with their sentences and tables (figures in programme_charts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import reference
from ..analyses.programme_panel import OUTCOMES, PERCENT_OUTCOMES
from . import programme_charts
from .programme import counted, number_words, outcome_words, p_words, range_words
from .text import md


@dataclass
class InterruptedTimeSeries:
    """Segmented regression for one council: level and slope change at the start of the programme."""

    la_code: str | None
    outcome: str
    start: int
    level_change: dict
    slope_change: dict
    pre_slope: dict
    n_before: int
    n_after: int
    fitted: pd.DataFrame
    method: str = "regression with AR(1) errors, restricted maximum likelihood"
    autocorrelation: float = float("nan")
    note: str = ""
    alpha: float = 0.05
    time_unit: str = "quarter"

    def to_dict(self) -> dict:
        return {
            "la_code": self.la_code,
            "outcome": self.outcome,
            "start": self.start,
            "level_change": self.level_change,
            "slope_change": self.slope_change,
            "pre_slope": self.pre_slope,
            "n_before": self.n_before,
            "n_after": self.n_after,
            "method": self.method,
            "autocorrelation": self.autocorrelation,
            "note": self.note,
            "confidence_level": 1 - self.alpha,
        }

    def summary(self) -> str:
        """The level change in plain English."""
        name = md(reference.council_name(self.la_code)) if self.la_code else "The council"
        lv = self.level_change
        level = int(round(100 * (1 - self.alpha)))
        units = " percentage points" if self.outcome in PERCENT_OUTCOMES else ""
        text = (
            f"{name} on its own: at the start of the programme {outcome_words(self.outcome)} changed by "
            f"{lv['estimate']:+.1f}{units} against its own earlier trend ({level}% interval {lv['ci_low']:.1f} to "
            f"{lv['ci_high']:.1f}; {counted(self.n_before, self.time_unit)} before, {self.n_after} after)."
        )
        return text + (f" Note: {md(self.note)}." if self.note else "")

    def table(self) -> pd.DataFrame:
        rows = [
            ("Jump at the start of the programme", self.level_change),
            (f"Change in the trend, per {self.time_unit}", self.slope_change),
            (f"Trend before the programme, per {self.time_unit}", self.pre_slope),
        ]
        level = int(round(100 * (1 - self.alpha)))
        units = "percentage points" if self.outcome in PERCENT_OUTCOMES else OUTCOMES.get(self.outcome, self.outcome)
        return pd.DataFrame(
            [
                {
                    "What was estimated": n,
                    f"Estimate ({units})": number_words(r["estimate"], 2, sign=True),
                    f"{level}% interval": range_words(r["ci_low"], r["ci_high"], 2),
                    "p-value": p_words(r["p_value"]),
                }
                for n, r in rows
            ]
        )

    def plot(self, title: str | None = None):
        """The series with its segmented trend (programme_charts.its_figure)."""
        return programme_charts.its_figure(self, title)


@dataclass
class NeighbourComparison:
    """One council against the average of its statistical neighbours, before and after the start."""

    la_code: str
    outcome: str
    start: int
    neighbours: list[str]
    gap_before: float
    gap_after: float
    change: dict
    series: pd.DataFrame
    method: str = "regression with AR(1) errors, restricted maximum likelihood"
    autocorrelation: float = float("nan")
    note: str = ""
    source: str = "the data"
    alpha: float = 0.05
    time_unit: str = "quarter"

    def to_dict(self) -> dict:
        return {
            "la_code": self.la_code,
            "outcome": self.outcome,
            "start": self.start,
            "neighbours": self.neighbours,
            "n_neighbours": len(self.neighbours),
            "gap_before": self.gap_before,
            "gap_after": self.gap_after,
            "change": self.change,
            "method": self.method,
            "autocorrelation": self.autocorrelation,
            "note": self.note,
            "source": self.source,
            "time_unit": self.time_unit,
            "confidence_level": 1 - self.alpha,
        }

    def summary(self) -> str:
        """The change in the gap to the neighbours in plain English."""
        name = md(reference.council_name(self.la_code))
        c = self.change
        level = int(round(100 * (1 - self.alpha)))
        whom = (
            "its one statistical neighbour"
            if len(self.neighbours) == 1
            else f"the average of {len(self.neighbours)} of its statistical neighbours"
        )
        text = (
            f"{name} against {whom} ({self.source}, by "
            f"{self.time_unit}): the gap averaged {self.gap_before:+.1f} before the start and {self.gap_after:+.1f} after. "
        )
        if np.isfinite(self.autocorrelation) and self.autocorrelation > 0.5:
            text += (
                f"The gap drifts from one {self.time_unit} to the next (autocorrelation {self.autocorrelation:.2f}), so "
                "a difference of averages would mislead; allowing for that, the change at the start is estimated at "
            )
        else:
            text += "The change at the start is estimated at "
        text += f"{c['estimate']:+.1f} ({level}% interval {c['ci_low']:.1f} to {c['ci_high']:.1f})."
        if "critical_value" in c:
            where = c.get("calibrated_on", "DfE's published re-referral rates")
            text += (
                f" The interval is as wide as made-up start dates on {where} show it must be: "
                f"there, the gap to the neighbours moves more from one {self.time_unit} to the next than the model "
                f"alone allows, and an interval this wide finds a change at a made-up date about "
                f"{100 * self.alpha:.0f}% of the time."
            )
        elif self.source == "the data":
            text += (
                " This interval comes from the model alone; on DfE's published annual rates such intervals were "
                "too narrow (they found a change at made-up dates far more often than 1 in 20), so read it as a "
                "lower bound on the uncertainty."
            )
        return text + (f" Note: {md(self.note)}." if self.note else "")

    def table(self) -> pd.DataFrame:
        level = int(round(100 * (1 - self.alpha)))
        return pd.DataFrame(
            [
                {
                    "Gap between the council and its neighbours": "Average before the programme",
                    "Value": number_words(self.gap_before, sign=True),
                    f"{level}% interval": "",
                },
                {
                    "Gap between the council and its neighbours": "Average after the programme",
                    "Value": number_words(self.gap_after, sign=True),
                    f"{level}% interval": "",
                },
                {
                    "Gap between the council and its neighbours": "Change at the start (allowing for drift)",
                    "Value": number_words(self.change["estimate"], sign=True),
                    f"{level}% interval": range_words(self.change["ci_low"], self.change["ci_high"]),
                },
            ]
        )

    def plot(self, title: str | None = None):
        """The council against its neighbours (programme_charts.neighbour_figure)."""
        return programme_charts.neighbour_figure(self, title)
