"""The programme evaluation's report objects: the staggered difference-in-differences effect, the placebo
check and the whole evaluation, with their sentences and tables (figures in programme_charts, one council's
designs in programme_councils). The numbers come from analyses/programme.py; the words are here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import reference
from ..analyses.programme_panel import OUTCOMES, PERCENT_OUTCOMES
from ..analyses.programme_parameters import council_code
from ..errors import InputError
from ..stats.did import MIN_ADOPTERS_CLUSTERED
from . import programme_charts
from .text import md
from .words import p_value, plural

if TYPE_CHECKING:
    from ..stats.timeseries import NeighbourCalibration
    from .programme_councils import InterruptedTimeSeries, NeighbourComparison


_QUARTER_MONTHS = ("Jan-Mar", "Apr-Jun", "Jul-Sep", "Oct-Dec")


def quarter_words(index: int) -> str:
    """A quarter as a reader says it (2016Q2 -> 'Apr-Jun 2016')."""
    return f"{_QUARTER_MONTHS[index % 4]} {index // 4}"


def counted(n: int, one: str, many: str | None = None) -> str:
    """'1 adopting council', '3 adopting councils'."""
    return f"{n:,} {plural(n, one, many)}"


def number_words(x, dp: int = 1, sign: bool = False) -> str:
    """A figure for a report table: fixed decimals, a minus sign, '' where there is none."""
    if x is None or not np.isfinite(x):
        return ""
    return f"{x:+,.{dp}f}" if sign else f"{x:,.{dp}f}"


def outcome_words(outcome: str) -> str:
    """The outcome inside a sentence: a percentage's "(% of closures)" is left to the units (percentage points)."""
    words = OUTCOMES.get(outcome, outcome)
    return words.split(" (")[0] if outcome in PERCENT_OUTCOMES else words


def as_sentence(text: str) -> str:
    """A note as a sentence: capital first letter, full stop."""
    text = (text or "").strip()
    if not text:
        return ""
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def range_words(lo, hi, dp: int = 1) -> str:
    """An interval as "1.2 to 3.4" (no line break inside), '' where there is none."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return f"{lo:,.{dp}f}\u00a0to\u00a0{hi:,.{dp}f}"  # no break inside an interval


def p_words(p) -> str:
    """A p-value as a table shows it, '' where there is none."""
    if p is None or not np.isfinite(p):
        return ""
    return p_value(p)


def describe_panel(panel: pd.DataFrame, outcome: str = "rereferral_rate") -> pd.DataFrame:
    """One row per council: name, adoption quarter, periods covered, periods with the outcome measured."""
    unit = panel.attrs.get("time_unit", "quarter")
    label = (lambda q: quarter_words(int(q))) if unit == "quarter" else (lambda q: f"year to 31 March {int(q)}")
    rows = []
    for code, g in panel.groupby("la_code"):
        a = g["adoption_period"].dropna()
        measured = g.loc[g[outcome].notna(), "period"] if outcome in g.columns else g["period"][:0]
        rows.append(
            {
                "Council": reference.council_name(str(code)),
                "Adopted": label(a.iloc[0]) if len(a) else "not adopted",
                "Data from": label(g["period"].min()),
                "Data to": label(g["period"].max()),
                f"{unit.capitalize()}s with the outcome measured": int(len(measured)),
                f"Last {unit} measured": label(measured.max()) if len(measured) else "none",
            }
        )
    return pd.DataFrame(rows)


@dataclass
class ProgrammeEffect:
    """Staggered-adoption difference-in-differences: headline effect, event study, pre-trend, TWFE."""

    outcome: str
    att: dict
    event_study: pd.DataFrame
    pretrend: dict
    twfe: dict
    n_councils: int
    n_adopters: int
    n_comparison_only: int
    n_observations: int
    n_treated_observations: int
    dropped: dict
    alpha: float = 0.05
    horizon: int | None = None
    time_unit: str = "quarter"
    method: str = "Gardner two-stage difference-in-differences (pyfixest did2s), clustered by council"
    att_randomisation: dict | None = None  # randomisation inference, computed when few councils adopt

    @property
    def few_adopters(self) -> bool:
        return self.n_adopters < MIN_ADOPTERS_CLUSTERED

    @property
    def headline_interval(self) -> dict:
        """The interval the headline quotes: randomisation inference when few councils adopt."""
        if self.few_adopters and self.att_randomisation is not None:
            return self.att_randomisation
        return self.att

    @property
    def pretrend_p_value(self) -> float:
        return self.pretrend.get("p_value", float("nan"))

    @property
    def units(self) -> str:
        return "percentage points" if self.outcome in PERCENT_OUTCOMES else OUTCOMES.get(self.outcome, self.outcome)

    def to_dict(self) -> dict:
        es = {
            str(int(r.event_time)): {
                k: r[k]
                for k in ("estimate", "se", "ci_low", "ci_high", "p_value", "councils", "source", "interval_from")
                if k in r
            }
            for _, r in self.event_study.iterrows()
        }
        return {
            "outcome": self.outcome,
            "method": self.method,
            "confidence_level": 1 - self.alpha,
            "att": self.att,
            "att_randomisation": self.att_randomisation,
            "headline_interval": {
                **self.headline_interval,
                "interval_from": (
                    "randomisation inference"
                    if self.headline_interval is self.att_randomisation
                    else "clustered by council"
                ),
            },
            "pretrend_p_value": self.pretrend_p_value,
            "pretrend": self.pretrend,
            "twfe": self.twfe,
            "event_study": es,
            "n_councils": self.n_councils,
            "n_adopters": self.n_adopters,
            "n_comparison_only": self.n_comparison_only,
            "n_observations": self.n_observations,
            "n_treated_observations": self.n_treated_observations,
            "dropped_observations": self.dropped,
            "horizon": self.horizon,
            "time_unit": self.time_unit,
        }

    def table(self) -> pd.DataFrame:
        """Event-study estimates by period since adoption, for a report."""
        t = self.event_study.copy()
        level = int(round(100 * (1 - self.alpha)))
        out = pd.DataFrame(
            {
                f"{self.time_unit.capitalize()}s since adoption": t["event_time"].astype(int).to_numpy(),
                f"Estimated change ({self.units})": [number_words(v, sign=True) for v in t["estimate"]],
                f"{level}% interval": [
                    range_words(lo, hi) or "too few councils for an interval"
                    for lo, hi in zip(t["ci_low"], t["ci_high"])
                ],
                "Adopting councils observed": t["councils"].astype(int).to_numpy(),
                "Used for": [
                    "pre-trend check (should be near zero)" if v == "pre-trend test" else "effect after adoption"
                    for v in t["source"]
                ],
            }
        )
        if "interval_from" in t and (t["interval_from"] != "clustered by council").any():
            out["Interval from"] = t["interval_from"].to_numpy()
        return out

    def contrast(self) -> pd.DataFrame:
        """Headline estimate beside plain two-way fixed effects."""
        rows = [
            ("Two-stage difference-in-differences (headline)", self.att),
            ("Two-way fixed effects (for contrast)", self.twfe),
        ]
        if self.att_randomisation is not None:
            rows.insert(
                1,
                (
                    "Two-stage, interval by randomisation inference (few adopters: the headline interval)",
                    self.att_randomisation,
                ),
            )
        level = int(round(100 * (1 - self.alpha)))
        return pd.DataFrame(
            [
                {
                    "Method": m,
                    f"Estimated change ({self.units})": number_words(r["estimate"], sign=True),
                    f"{level}% interval": range_words(r["ci_low"], r["ci_high"]),
                    "p-value": p_words(r["p_value"]),
                }
                for m, r in rows
            ]
        )

    def summary(self) -> str:
        """The headline in plain English."""
        a = self.att
        ci = self.headline_interval
        what = outcome_words(self.outcome)
        direction = "fell" if a["estimate"] < 0 else "rose"
        level = int(round(100 * (1 - self.alpha)))
        covers = not (ci["ci_low"] > 0 or ci["ci_high"] < 0)
        bounded = np.isfinite(ci["ci_low"]) and np.isfinite(ci["ci_high"])
        interval = (
            f"{level}% interval {ci['ci_low']:.1f} to {ci['ci_high']:.1f}"
            if bounded
            else f"too few councils for a {level}% interval"
        )
        sentence = ""
        if self.few_adopters:
            sentence = (
                f"Warning: only {counted(self.n_adopters, 'council')} adopted the programme, fewer than the "
                f"{MIN_ADOPTERS_CLUSTERED} that intervals clustered by council need, so the interval below comes from "
                "randomisation inference (the adoption dates given to other councils in turn) and the "
                "finding rests on very few councils. "
            )
        sentence += (
            f"After adopting the programme, {what} {direction} by {abs(a['estimate']):.1f} {self.units} on average "
            f"compared with councils that had not (yet) adopted it ({interval}; "
            f"{counted(self.n_adopters, 'adopting council')}, {counted(self.n_councils, 'council')} in all)."
        )
        if covers:
            sentence += (
                " The interval includes no change, so the data cannot rule out that the programme made no difference."
            )
        return sentence

    def pretrend_sentence(self) -> str:
        """The pre-trend check in plain English."""
        p = self.pretrend_p_value
        k = self.pretrend.get("leads", 0)
        if not np.isfinite(p) or k == 0:
            return (
                "The pre-trend check could not be run: no adopting council was observed in the "
                f"{self.time_unit}s just before adoption."
            )
        span = self.time_unit if k == 1 else counted(k, self.time_unit)
        head = (
            f"In the {span} before adoption, adopting councils' {outcome_words(self.outcome)} "
            f"moved in line with the comparison councils (joint test p = {p:.2f})"
        )
        if p < 0.05:
            return (
                f"Warning: adopting councils were already diverging from the comparison councils in the "
                f"{span} before adoption (joint test p = {p:.3f}). The effect estimate assumes they would "
                "otherwise have moved in parallel, so read it with caution: part of the change may have started before the programme."
            )
        return (
            head + ". That supports, but cannot prove, the assumption that they would have kept moving in "
            "parallel without the programme. A test with few councils has little power, so a large p-value is reassurance, not proof."
        )

    def twfe_sentence(self) -> str:
        """Why the plain two-way fixed effects figure differs, in plain English."""
        a, b = self.att["estimate"], self.twfe["estimate"]
        return (
            f"Plain two-way fixed effects regression gives {b:+.1f} {self.units} (interval {self.twfe['ci_low']:.1f} to "
            f"{self.twfe['ci_high']:.1f}) against the headline {a:+.1f}. It compares later adopters with councils that "
            "adopted earlier, whose own effect is still changing, so when effects grow over time it is pulled "
            "towards zero or even the wrong sign; the headline method compares only with councils not yet adopting."
        )

    def plot(self, title: str | None = None):
        """The event-study figure (programme_charts.effect_figure)."""
        return programme_charts.effect_figure(self, title)


@dataclass
class PlaceboCheck:
    """Placebo adoptions on real councils: how often the method wrongly finds an effect."""

    rate: float
    rejections: int
    n_draws: int
    alpha: float
    estimates: pd.DataFrame
    share_adopting: float
    outcome: str
    seed: int

    @property
    def interval(self) -> tuple[float, float]:
        """Clopper-Pearson 95% interval for the true rejection rate."""
        k, n = self.rejections, self.n_draws
        lo = stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
        hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        return float(lo), float(hi)

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {
            "rejection_rate": self.rate,
            "rejections": self.rejections,
            "n_draws": self.n_draws,
            "nominal": self.alpha,
            "rate_ci_low": lo,
            "rate_ci_high": hi,
            "share_adopting": self.share_adopting,
            "outcome": self.outcome,
            "seed": self.seed,
            "mean_estimate": float(self.estimates["estimate"].mean()) if len(self.estimates) else float("nan"),
        }

    def summary(self) -> str:
        lo, hi = self.interval
        return (
            f"On DfE's published re-referral rates, {self.n_draws} sets of made-up adoption dates given to real councils "
            f"found an 'effect' {100 * self.rate:.1f}% of the time (95% interval {100 * lo:.1f}% to {100 * hi:.1f}%), "
            f"against the {100 * self.alpha:.0f}% expected of an honest {100 * (1 - self.alpha):.0f}% interval."
        )


@dataclass
class ProgrammeEvaluation:
    """Everything the programme report shows; pieces that could not be estimated say why."""

    programme: str
    outcome: str
    effect: ProgrammeEffect | None
    effect_problem: str | None
    its: dict[str, InterruptedTimeSeries]
    neighbours: dict[str, NeighbourComparison]
    problems: dict[str, str]
    placebo: PlaceboCheck | None
    n_councils: int
    n_adopting: int
    published_neighbours: dict[str, NeighbourComparison] = field(default_factory=dict)
    adoption_periods: dict[str, int] = field(default_factory=dict)
    neighbour_calibration: NeighbourCalibration | None = None
    extract_neighbour_calibration: NeighbourCalibration | None = None  # in-extract comparisons' (quarterly)

    def neighbour_calibration_sentence(self) -> str | None:
        """How the neighbour comparisons (on DfE's published rates, and in the extracts) were kept honest."""
        cal, own = self.neighbour_calibration, self.extract_neighbour_calibration
        own_words = (
            ""
            if own is None
            else (
                f"The comparisons with neighbours inside the councils' own extracts were checked on {own.draws:,} made-up "
                f"start dates in those extracts (before any council's own start): the model's own {100 * (1 - own.alpha):.0f}% "
                f"interval found a change {100 * own.uncalibrated_rate:.0f}% of the time there, so their intervals use "
                f"{own.critical_value:.1f} standard errors instead."
            )
        )
        if cal is None:
            return own_words or None
        return ((own_words + " ") if own_words else "") + (
            f"The comparisons with statistical neighbours on DfE's published rates were checked the same way: at "
            f"{cal.draws:,} made-up start years (every council, every year with 3 years before and 2 after), the model's own {100 * (1 - cal.alpha):.0f}% "
            f"interval found a change {100 * cal.uncalibrated_rate:.0f}% of the time, so those intervals are "
            f"widened to what the made-up dates show (a change counts only beyond {cal.critical_value:.1f} standard "
            f"errors rather than about 2), which finds one about {100 * cal.alpha:.0f}% of the time."
        )

    def focus(self, la_code: Any = None) -> str | None:
        """The council to show on its own: the one asked for, else the earliest adopter (most periods after)."""
        if la_code not in (None, "", "auto"):
            code = council_code(la_code, "council")
            if code not in self.adoption_periods:
                raise InputError(
                    f"council {code} did not adopt the programme in these data; choose one of: "
                    f"{', '.join(sorted(self.adoption_periods)) or 'none'}."
                )
            return code
        if not self.adoption_periods:
            return None
        return min(self.adoption_periods, key=lambda c: (self.adoption_periods[c], c))

    def neighbours_for(self, la_code: str) -> NeighbourComparison | None:
        """The neighbour comparison for a council: in the data if possible, else on DfE's published rates."""
        return self.neighbours.get(la_code) or self.published_neighbours.get(la_code)

    def to_dict(self) -> dict:
        nan = float("nan")
        empty = {"estimate": nan, "se": nan, "ci_low": nan, "ci_high": nan, "p_value": nan}
        e = self.effect.to_dict() if self.effect is not None else {"att": empty, "pretrend_p_value": nan, "twfe": empty}
        return {
            "programme": self.programme,
            "outcome": self.outcome,
            **e,
            "effect_problem": self.effect_problem,
            "councils_in_data": self.n_councils,
            "councils_adopting": self.n_adopting,
            "interrupted_time_series": {k: v.to_dict() for k, v in self.its.items()},
            "neighbour_comparison": {k: v.to_dict() for k, v in self.neighbours.items()},
            "neighbour_comparison_published": {k: v.to_dict() for k, v in self.published_neighbours.items()},
            "council_problems": self.problems,
            "placebo": self.placebo.to_dict() if self.placebo is not None else None,
            "neighbour_calibration": self.neighbour_calibration.to_dict()
            if self.neighbour_calibration is not None
            else None,
            "extract_neighbour_calibration": (
                self.extract_neighbour_calibration.to_dict() if self.extract_neighbour_calibration is not None else None
            ),
        }

    def council_table(self) -> pd.DataFrame:
        """One row per adopting council: level change (ITS) and change in gap to neighbours."""
        rows = []
        codes = sorted(set(self.its) | set(self.neighbours) | set(self.problems))
        for code in codes:
            its, nb = self.its.get(code), self.neighbours_for(code)
            rows.append(
                {
                    "Council": reference.council_name(code),
                    "Jump at the start, own trend (interrupted time series)": number_words(
                        its.level_change["estimate"], sign=True
                    )
                    if its
                    else "not estimated",
                    "Interval (own trend)": range_words(its.level_change["ci_low"], its.level_change["ci_high"])
                    if its
                    else "",
                    "Change in gap to statistical neighbours": number_words(nb.change["estimate"], sign=True)
                    if nb
                    else "not estimated",
                    "Interval (neighbours)": range_words(nb.change["ci_low"], nb.change["ci_high"]) if nb else "",
                    "Neighbours compared": len(nb.neighbours) if nb else 0,
                    "Neighbours' figures from": (
                        {"the data": "the councils' own extracts"}.get(nb.source, nb.source) if nb else ""
                    ),
                }
            )
        return pd.DataFrame(rows)

    def council_notes(self) -> list[str]:
        """Why a design is missing for an adopting council, one sentence each (shown under council_table)."""
        return [
            f"{md(reference.council_name(code))}: {md(as_sentence(text))}"
            for code, text in sorted(self.problems.items())
        ]
