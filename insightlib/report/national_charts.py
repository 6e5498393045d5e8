"""The national page's charts: the funnel of councils' re-referral rates and a council's published trend,
each with the alt text that says what it shows (numbers from stats/funnel and reference)."""

from __future__ import annotations

import math
import textwrap
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib import patheffects, ticker

from insightlib import reference
from insightlib.errors import InputError
from insightlib.report import charts
from insightlib.stats.funnel import BANDS, LEVELS, FunnelResult, level_key

#: The title of a funnel drawn without one.
FUNNEL_TITLE = "Most councils' re-referral rates are within the range chance allows"


def published_funnel_title(year: int) -> str:
    return f"Where each council's re-referral rate stands against England, {year - 1} to {year}"


def computed_funnel_title(year: int) -> str:
    return f"Councils' own 12-month re-referral rates from their extracts, against England, {year - 1} to {year}"


# --- the funnel chart --------------------------------------------------------------------------


def funnel_alt_text(f: FunnelResult, measure: str = "re-referral rate", highlight: Iterable[str] = ()) -> str:
    """What the funnel shows, for a reader who cannot see it."""
    counts = f.points["band"].value_counts()
    above = int(counts.get(BANDS[0], 0))
    below = int(counts.get(BANDS[4], 0))
    text = (
        f"Funnel plot of the {measure} of {len(f.points)} councils against the number of referrals. "
        f"England's rate is {100 * f.target:.1f}%. "
        f"{_councils(above)} {'lies' if above <= 1 else 'lie'} above the 99.8% control limit and {below} below it."
    )
    for code in highlight:
        row = f.points.loc[f.points["la_code"] == code]
        if len(row):
            r = row.iloc[0]
            text += f" {r.la_name}: {100 * r.rate:.1f}% of {int(r.n):,} referrals, {r.band}."
    if f.phi > 1:
        text += f" Limits widened for over-dispersion (factor {f.phi:.1f})."
    return text


def funnel_figure(
    f: FunnelResult, title: str = FUNNEL_TITLE, highlight: Iterable[str] = (), width: float = 7.5, height: float = 4.5
):
    """The funnel, ``highlight``'s councils ringed and named; ``width`` 4.8 gives a version whose text stays
    readable on a phone."""
    fig, ax = charts.new_figure(title if width >= 6 else _wrap(title, 45), width=width, height=height)
    grid = f.limits
    kind = f"widened for over-dispersion \u00d7{f.phi:.1f}" if f.phi > 1 else "binomial"
    for level, style in zip(LEVELS, ("--", ":")):
        key = level_key(level)
        label = f"{level * 100:g}% limits ({kind})"
        ax.plot(grid["n"], 100 * grid[f"upper_{key}"], style, color=charts.DARK_GREY, lw=1, label=label)
        ax.plot(grid["n"], 100 * grid[f"lower_{key}"], style, color=charts.DARK_GREY, lw=1)
    ax.axhline(100 * f.target, color=charts.DARK_GREY, lw=1.2, label=f"England {100 * f.target:.1f}%")
    pts = f.points
    flagged = pts["band"] != "within limits"
    ax.scatter(
        pts.loc[~flagged, "n"],
        100 * pts.loc[~flagged, "rate"],
        s=18,
        color=charts.DARK_BLUE,
        alpha=0.8,
        label="council within limits",
        zorder=3,
    )
    ax.scatter(
        pts.loc[flagged, "n"],
        100 * pts.loc[flagged, "rate"],
        s=22,
        color=charts.ORANGE,
        marker="D",
        label="council outside 95% limits",
        zorder=3,
    )
    labelled = []
    for code in highlight:
        row = pts.loc[pts["la_code"] == code]
        if len(row):
            r = row.iloc[0]
            ax.scatter([r.n], [100 * r.rate], s=90, facecolors="none", edgecolors=charts.DARK_PINK, lw=2, zorder=4)
            labelled.append(r)
    top = max(100 * pts["rate"].max() * 1.15, 200 * f.target)
    ax.set_ylim(0, min(100.0, top))
    _funnel_axes(ax, grid, width)
    _place_labels(fig, ax, labelled, np.log(grid["n"]).mean())
    return fig


def _funnel_axes(ax, grid: pd.DataFrame, width: float) -> None:
    plain = ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}")
    if grid["n"].max() / grid["n"].min() > 20:  # a wide range of council sizes: log scale
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("Referrals in the year (log scale)")
    else:
        ax.xaxis.set_major_locator(ticker.MaxNLocator(5 if width >= 6 else 4))
        ax.set_xlabel("Referrals in the year")
    ax.xaxis.set_major_formatter(plain)
    ax.set_ylabel("Re-referred within 12 months (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)


def _overlaps(box, boxes) -> bool:
    return any(box.overlaps(other) for other in boxes)


def _place_labels(fig, ax, rows, middle_log_n: float) -> None:
    """Name each highlighted council beside its point, never over another name: each label tries
    places above and below its point, nearest first, then the other side, and takes the first free one."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for r in sorted(rows, key=lambda r: -r.rate):
        right_half = np.log(r.n) > middle_log_n  # towards the middle of the chart, never off it
        label = None
        tries = [(dx, dy) for dy in (6, -14, 16, -24, 26, -34, 36, -44) for dx in ((-6, 6) if right_half else (6, -6))]
        for dx, dy in tries:
            if label is not None:
                label.remove()
            label = ax.annotate(
                r.la_name,
                (r.n, 100 * r.rate),
                xytext=(dx, dy),
                textcoords="offset points",
                ha="right" if dx < 0 else "left",
                color=charts.DARK_PINK,
                fontweight="bold",
            )
            label.set_path_effects([patheffects.withStroke(linewidth=3, foreground="white")])
            box = label.get_window_extent(renderer).expanded(1.02, 1.1)
            if not _overlaps(box, placed) and ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1):
                break
        placed.append(label.get_window_extent(renderer).expanded(1.02, 1.1))


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width))


def _councils(n: int) -> str:
    return {0: "No council", 1: "One council"}.get(n, f"{n} councils")


# --- published figures, trends ---------------------------------------------------------------------


def display_value(value: float, symbol: str, kind: str) -> str:
    """A published figure as text: DfE's symbol if there is one (never 0), else the number."""
    if isinstance(symbol, str) and symbol.strip():
        return symbol.strip()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "x"
    if kind == "rate":
        return f"{100 * value:.1f}%"
    return f"{int(round(value)):,}"


def trend_plot(la_code: str, neighbours: bool = True, width: float = 7.5, height: float = 4.5):
    """A council's published rate, 2013 to 2025, beside England and its statistical neighbours.

    Years DfE did not publish (c, x, u) are gaps in the line, labelled with the symbol.
    Returns (figure, alt text).
    """
    pub = reference.published_rereferral_rates()
    mine = pub.loc[pub["la_code"] == la_code].sort_values("year")
    if mine.empty:
        raise InputError(f"No published re-referral rates for council {la_code!r}.")
    name = reference.council_name(la_code)
    years = sorted(pub["year"].unique())
    eng = pd.Series({y: reference.england_rereferral_rate(int(y)) for y in years})
    title = f"{name}'s re-referral rate over time, against England"
    fig, ax = charts.new_figure(title if width >= 6 else _wrap(title, 45), width=width, height=height)
    ax.plot(eng.index, 100 * eng.values, color=charts.DARK_GREY, lw=1.5, label="England")
    sn_text = ""
    if neighbours:
        sn = reference.neighbours_of(la_code)
        if sn:
            sn_rates = pub.loc[pub["la_code"].isin(sn)].groupby("year")["rate"].median()
            ax.plot(
                sn_rates.index,
                100 * sn_rates.values,
                color=charts.TURQUOISE,
                lw=1.5,
                label="Statistical neighbours (median)",
            )
            sn_text = (
                f" The median of its ten statistical neighbours was "
                f"{100 * sn_rates.get(years[-1], float('nan')):.1f}% in {years[-1]}."
            )
    series = mine.set_index("year")["rate"].reindex(years)
    ax.plot(series.index, 100 * series.values, color=charts.DARK_BLUE, lw=2.5, marker="o", label=name)
    symbols = mine.set_index("year")["rate_symbol"]
    for y, s in symbols.items():
        if s:
            ax.annotate(
                s,
                (y, 100 * eng.get(y, np.nan)),
                xytext=(0, -14),
                textcoords="offset points",
                ha="center",
                color=charts.DARK_PINK,
                fontweight="bold",
            )
    ax.set_xlabel("Year to 31 March")
    ax.set_ylabel("Re-referred within 12 months (%)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3 if width >= 6 else 2, fontsize=8, frameon=False)
    last = mine.iloc[-1]
    last_text = display_value(last["rate"], last["rate_symbol"], "rate")
    alt = (
        f"Line chart of {name}'s published 12-month re-referral rate from {years[0]} to {years[-1]}, with England"
        f" for comparison. In {int(last['year'])} {name}'s rate was {last_text} against England's "
        f"{100 * eng[years[-1]]:.1f}%.{sn_text}"
    )
    missing = [f"{int(y)} ({s})" for y, s in symbols.items() if s]
    if missing:
        alt += f" Not published for {', '.join(missing)}: c suppressed, x not available, u low reliability."
    return fig, alt
