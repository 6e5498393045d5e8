"""The programme evaluation's figures: the event study, one council's interrupted time series, and a council
against its statistical neighbours (Analysis Function palette, headline titles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import reference
from ..analyses.programme_panel import OUTCOMES, PERCENT_OUTCOMES, quarter_label
from .charts import DARK_BLUE, DARK_PINK, ORANGE, REFERENCE_GREY, TURQUOISE, new_figure

if TYPE_CHECKING:
    from .programme import ProgrammeEffect
    from .programme_councils import InterruptedTimeSeries, NeighbourComparison


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def effect_figure(effect: ProgrammeEffect, title: str | None = None):
    """Estimated change by period since adoption with intervals (hollow where too few councils), TWFE dashed."""
    es = effect.event_study
    if title is None:
        a = effect.att["estimate"]
        title = (
            f"{OUTCOMES.get(effect.outcome, effect.outcome).capitalize()}: change by {effect.time_unit} since adoption"
        )
        if np.isfinite(a):
            what = OUTCOMES.get(effect.outcome, effect.outcome).split(" (")[0]
            title = (
                f"{what[:1].upper() + what[1:]} {'fell' if a < 0 else 'rose'} by {abs(a):.1f} {effect.units} "
                "on average after adoption"
            )
    fig, ax = new_figure(title)
    pre = es.loc[es["source"] == "pre-trend test"]
    post = es.loc[es["source"] != "pre-trend test"]
    for part, colour, label in (
        (pre, TURQUOISE, "Before adoption (pre-trend check)"),
        (post, DARK_BLUE, "After adoption (effect)"),
    ):
        if part.empty:
            continue
        bounded = np.isfinite(part["ci_low"].astype(float)) & np.isfinite(part["ci_high"].astype(float))
        ax.errorbar(
            part.loc[bounded, "event_time"],
            part.loc[bounded, "estimate"],
            yerr=[
                part.loc[bounded, "estimate"] - part.loc[bounded, "ci_low"],
                part.loc[bounded, "ci_high"] - part.loc[bounded, "estimate"],
            ],
            fmt="o",
            color=colour,
            capsize=3,
            label=label,
        )
        if (~bounded).any():  # too few councils at that period for an interval: the estimate alone, hollow
            ax.plot(
                part.loc[~bounded, "event_time"],
                part.loc[~bounded, "estimate"],
                "o",
                mfc="white",
                color=colour,
                label=f"{label.split(' (')[0]}: too few councils for an interval",
            )
    ax.axhline(0, color=REFERENCE_GREY, lw=1)
    ax.axvline(-0.5, color=REFERENCE_GREY, ls=":", lw=1)
    if not post.empty and np.isfinite(effect.twfe.get("estimate", np.nan)):
        ax.hlines(
            effect.twfe["estimate"],
            post["event_time"].min() - 0.3,
            post["event_time"].max() + 0.3,
            colors=DARK_PINK,
            linestyles="--",
            label="Two-way fixed effects (single number, can be biased)",
        )
    ax.set_xlabel(f"{effect.time_unit.capitalize()}s since adoption (0 = adoption {effect.time_unit})")
    ax.set_ylabel(f"Change ({effect.units})")
    ax.legend(frameon=False, fontsize=8, loc="best")
    return fig


def its_figure(its: InterruptedTimeSeries, title: str | None = None):
    """The council's series, its segmented trend, and the trend had nothing changed."""
    f = its.fitted
    if title is None:
        name = reference.council_name(its.la_code) if its.la_code else "The council"
        pts = " points" if its.outcome in PERCENT_OUTCOMES else ""
        title = f"{name}: level change {its.level_change['estimate']:+.1f}{pts} at the start of the programme"
    fig, ax = new_figure(title)
    shown = f.loc[~f["suppressed"]]
    label = "Observed" + (" (small counts hidden)" if f["suppressed"].any() else "")
    ax.plot(shown["period"], shown["observed"], "o", color=DARK_BLUE, ms=4, label=label)
    ax.plot(f["period"], f["fitted"], color=DARK_BLUE, label="Segmented trend")
    after = f.loc[f["period"] >= its.start]
    ax.plot(after["period"], after["counterfactual"], "--", color=ORANGE, label="Trend had nothing changed")
    ax.axvline(its.start - 0.5, color=REFERENCE_GREY, ls=":")
    if its.time_unit == "quarter":
        ticks = f["period"].iloc[:: max(1, len(f) // 8)]
        ax.set_xticks(ticks, [quarter_label(int(q)) for q in ticks])
    ax.set_ylabel(_capital(OUTCOMES.get(its.outcome, its.outcome)))
    ax.legend(frameon=False, fontsize=8)
    return fig


def neighbour_figure(nc: NeighbourComparison, title: str | None = None):
    """The council and its neighbours' average by period, small counts hidden."""
    s = nc.series
    name = reference.council_name(nc.la_code)
    if title is None:
        pts = " points" if nc.outcome in PERCENT_OUTCOMES else ""
        title = f"{name} against its statistical neighbours: gap changed by {nc.change['estimate']:+.1f}{pts}"
    fig, ax = new_figure(title)
    own = s["council"].where(~s["suppressed"])
    ax.plot(
        s["period"],
        own,
        "-o",
        ms=3,
        color=DARK_BLUE,
        label=name + (" (small counts hidden)" if s["suppressed"].any() else ""),
    )
    hidden_nb = s["neighbours_suppressed"] if "neighbours_suppressed" in s else s["suppressed"] & False
    ax.plot(
        s["period"],
        s["neighbours"].where(~hidden_nb),
        "-o",
        ms=3,
        color=TURQUOISE,
        label=("The one neighbour" if len(nc.neighbours) == 1 else f"Average of {len(nc.neighbours)} neighbours")
        + (" (small counts hidden)" if hidden_nb.any() else ""),
    )
    ax.axvline(nc.start - 0.5, color=REFERENCE_GREY, ls=":")
    if nc.time_unit == "quarter":
        ticks = s["period"].iloc[:: max(1, len(s) // 8)]
        ax.set_xticks(ticks, [quarter_label(int(q)) for q in ticks])
    published = nc.source != "the data" and nc.outcome == "rereferral_rate"
    ax.set_ylabel(
        "Re-referrals within 12 months\n(% of referrals, DfE's measure)"
        if published
        else _capital(OUTCOMES.get(nc.outcome, nc.outcome))
    )
    ax.legend(frameon=False, fontsize=8)
    return fig
