"""The re-referral report's figures: survival and cumulative-incidence curves with the numbers at
risk below them, and the forest plot of hazard ratios. Every curve is cut where fewer than
``MIN_AT_RISK`` children remain at risk (publishing safety)."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

from insightlib.contract import DISCLOSURE_THRESHOLD, MIN_AT_RISK
from insightlib.report.charts import DARK_BLUE, NARROW_WIDTH, PALETTE, REFERENCE_GREY, new_figure
from insightlib.report.charts import note as chart_note
from insightlib.report.disclosure import cut_curve as _cut
from insightlib.report.labels import GROUPINGS, group_label, term_label
from insightlib.report.words import TOO_FEW


def cut_curve(curve: pd.DataFrame, min_at_risk: int = MIN_AT_RISK) -> pd.DataFrame:
    """The curve up to, not including, the first time fewer than ``min_at_risk`` remain at risk.

    Beyond that a step can be one identifiable child, so it is not published
    (insightlib.report.disclosure.cut_curve, applied to a curve sorted by time).
    """
    return _cut(curve, "at_risk", min_at_risk, time_column="time")


def _time_ticks(xlim: float) -> tuple[np.ndarray, list[str]]:
    """Ticks in months and years (what readers think in), placed at the day they fall on."""
    top = int(round(xlim / (365.25 / 12)))
    months = range(0, top + 1, 3 if xlim <= 400 else 6 if xlim <= 1200 else 12)
    ticks, labels = [], []
    for m in months:
        ticks.append(round(m * 365.25 / 12))
        if m == 0:
            labels.append("Closure")
        elif m % 12 == 0:
            labels.append("1 year" if m == 12 else f"{m // 12} years")
        else:
            labels.append(f"{m} months")
    return np.array(ticks, dtype=float), labels


def _step_curves(
    ax, curves: dict, value: str, start: float, labels: dict, min_at_risk: int, threshold: int = DISCLOSURE_THRESHOLD
):
    """Step curves with bands, each cut where fewer than ``min_at_risk`` remain; returns the colours used.

    A curve is not drawn while the children it has counted so far (re-referred by then) are from 1 to
    ``threshold - 1``: its height there, read off the chart, would give back the small count the tables
    hide (2 of 20 re-referred by 3 months is a drop to 90%). It is drawn flat from the start until the
    first re-referral (none yet: a zero) and again once at least ``threshold`` have come back."""
    colours, xmax = {}, 0.0
    for i, (g, c) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        colours[g] = colour
        c = cut_curve(c, min_at_risk)
        if c.empty:
            continue
        x = np.concatenate([[0.0], c["time"].to_numpy()])
        counted = np.concatenate([[0.0], np.cumsum(c["events"].to_numpy(float))]) if "events" in c else None
        hide = (counted >= 1) & (counted < threshold) if counted is not None else np.zeros(len(x), bool)

        def shown(values):
            return np.where(hide, np.nan, np.concatenate([[start], values]))

        ax.step(x, shown(c[value].to_numpy(float)), where="post", color=colour, lw=1.6, label=labels.get(g, str(g)))
        ax.fill_between(
            x,
            shown(c["ci_low"].to_numpy(float)),
            shown(c["ci_high"].to_numpy(float)),
            step="post",
            color=colour,
            alpha=0.12,
            lw=0,
        )
        xmax = max(xmax, float(x[-1]))
    return colours, xmax


def _legend_above(ax, n: int) -> None:
    ax.legend(
        frameon=False,
        fontsize=8,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.01),
        ncol=2 if n > 3 else n,
        handlelength=1.5,
        columnspacing=1.2,
        borderaxespad=0.0,
    )


def _short(label: str, width: int = 30) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _curves_figure(
    title: str,
    curves: dict,
    value: str,
    start: float,
    labels: dict,
    durations: dict,
    horizons,
    min_at_risk: int,
    max_days: int | None,
    ylabel: str,
    note: str | None = None,
    threshold: int = DISCLOSURE_THRESHOLD,
):
    """Curves with 95% bands above a table of numbers still followed, rows coloured as the curves."""
    names = list(curves)
    k = len(names)
    legend_rows = (k + 1) // 2 if k > 3 else 1
    height = 4.2 + 0.24 * k + 0.18 * legend_rows
    fig, (ax, tab) = new_figure(
        title,
        height=height,
        nrows=2,
        sharex=True,
        gridspec_kw={"height_ratios": [3.6, 0.45 + 0.24 * k], "hspace": 0.12},
    )
    colours, xmax = _step_curves(ax, curves, value, start, labels, min_at_risk, threshold)
    xlim = float(max_days or min(max(xmax, max(horizons)), 3 * max(horizons)))
    ticks, tick_labels = _time_ticks(xlim)
    pad = 0.03 * xlim
    ax.set_xlim(-pad, xlim + pad)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02 if start == 1.0 else min(1.02, max(0.1, ax.get_ylim()[1])))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    for h in horizons:
        ax.axvline(h, color="#BFBFBF", lw=0.8, ls=":", zorder=0)
    _legend_above(ax, k)
    top = 1.0 - (0.42 + 0.2 * legend_rows) / height
    fig.subplots_adjust(top=top)
    _numbers_at_risk(tab, names, labels, colours, durations, ticks, min_at_risk, threshold)
    tab.set_xticks(ticks)
    tab.set_xticklabels(tick_labels, fontsize=8)
    tab.set_xlabel("Time since the case closed")
    if note:
        chart_note(fig, note, color="#3D3D3D")
    return fig


def _numbers_at_risk(tab, names, labels, colours, durations, ticks, min_at_risk: int, threshold: int) -> None:
    """The table under the curves: each group's children still followed at each tick, "<min" below
    ``min_at_risk`` and "c" where the children gone by then would be a small count."""
    k = len(names)
    tab.set_ylim(k - 0.5, -0.5)
    tab.set_yticks(range(k))
    tab.set_yticklabels([_short(labels.get(g, str(g))) for g in names], fontsize=8)
    for lab, g in zip(tab.get_yticklabels(), names):
        lab.set_color(colours[g])
    tab.grid(False)
    for spine in tab.spines.values():
        spine.set_visible(False)
    tab.tick_params(axis="both", length=0)
    tab.set_title("Children still followed (numbers at risk)", fontsize=8, loc="left", fontweight="normal", pad=3)
    for i, g in enumerate(names):
        d = durations.get(g, np.array([]))
        for x in ticks:
            n = int(len(d) - np.searchsorted(d, x, side="left"))
            # the group size less the number still followed bounds how many came back: never a small count
            gone = len(d) - n
            shown = (
                f"{n:,}"
                if n >= min_at_risk and not 1 <= gone < threshold
                else (f"<{min_at_risk}" if n < min_at_risk else "c")
            )
            tab.text(x, i, shown, ha="center", va="center", fontsize=7.5, color="#3D3D3D")


#: per curve kind: its column, its value at closure, the default title and the axis label
_CURVES = {
    "survival": (
        1.0,
        "Share of children not yet referred again, by time since their case closed",
        "Not yet referred again",
    ),
    "cumulative_incidence": (
        0.0,
        "Share of children referred again, allowing for those who turn 18, die or move away",
        "Referred again",
    ),
}


def _result_figure(
    result,
    value: str,
    title: str | None = None,
    min_at_risk: int = MIN_AT_RISK,
    max_days: int | None = None,
    note: str | None = None,
    threshold: int = DISCLOSURE_THRESHOLD,
):
    """A KM or cumulative-incidence result (``value`` its curve column) drawn by _curves_figure."""
    start, default_title, ylabel = _CURVES[value]
    return _curves_figure(
        title or default_title,
        result.curves,
        value,
        start,
        result.labels,
        result.durations,
        result.horizons,
        min_at_risk,
        max_days,
        ylabel,
        note,
        threshold=threshold,
    )


def km_figure(km, title: str | None = None, **options):
    """Kaplan-Meier curves (stats.survival.KMResult) with bands, cut where fewer than ``min_at_risk`` remain;
    numbers at risk below. ``options``: min_at_risk, max_days, note (under the chart), threshold."""
    return _result_figure(km, "survival", title, **options)


def cif_figure(cif, title: str | None = None, **options):
    """Cumulative incidence (stats.competing_risks) with bands, cut where fewer than ``min_at_risk`` remain;
    numbers at risk below. ``options``: min_at_risk, max_days, note (under the chart), threshold."""
    return _result_figure(cif, "cumulative_incidence", title, **options)


def forest_rows(cox) -> list[tuple[str, int | None]]:
    """Forest-plot rows top to bottom: a heading per factor (naming its comparison group), then its levels."""
    rows, seen = [], set()
    for i, term in enumerate(cox.terms["term"]):
        if term.endswith("]") and "[" in term:
            cov = term.split("[", 1)[0]
            if cov not in seen:
                seen.add(cov)
                ref = cox.references.get(cov)
                head = GROUPINGS.get(cov, cov.replace("_", " ")).capitalize()
                rows.append((f"{head} (against {group_label(cov, ref)})" if ref else head, None))
            rows.append(("   " + group_label(cov, term[:-1].split("[", 1)[1]), i))
        else:
            rows.append((term_label(term).capitalize(), i))
    return rows


FOREST_TITLE = "How each factor goes with being referred again sooner or later"
FOREST_XLABEL = "Hazard ratio (below 1: referred again later than\nthe comparison group; above 1: sooner)"


def _forest_words(cox, i: int) -> str:
    r = cox.terms.iloc[i]
    return f"{r.hr:.2f} ({r.ci_low:.2f} to {r.ci_high:.2f})" if cox.estimable(r.term) else TOO_FEW


def _forest_scale(ax, cox, rows, y) -> None:
    """The intervals on a log axis with plain ticks (finer only when the range is narrow, so labels never collide)."""
    lo_all, hi_all = [], []
    for (_, i), yy in zip(rows, y):
        if i is None or not cox.estimable(cox.terms.iloc[i].term):
            continue
        r = cox.terms.iloc[i]
        ax.plot([r.ci_low, r.ci_high], [yy, yy], color=DARK_BLUE, lw=1.6)
        ax.plot([r.hr], [yy], "o", color=DARK_BLUE, ms=5)
        lo_all.append(r.ci_low)
        hi_all.append(r.ci_high)
    lo, hi = min(min(lo_all, default=1.0), 0.8), max(max(hi_all, default=1.0), 1.25)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.15, hi * 1.15)
    nice = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20] + ([0.25, 0.75, 1.5, 3] if hi / lo < 6 else [])
    ticks = sorted(v for v in nice if lo / 1.15 <= v <= hi * 1.15)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{v:g}" for v in ticks])
    ax.axvline(1.0, color=REFERENCE_GREY, lw=1.2, zorder=0)
    ax.grid(axis="y", visible=False)


def forest_figure(cox, title: str | None = None):
    """Forest plot of hazard ratios with robust 95% intervals (log scale), grouped by factor.

    Labels at the left and the figures at the right make it wide; its phone drawing
    (``fig.narrow_drawing``, used by charts.to_png_narrow) puts each label above its interval instead."""
    rows = forest_rows(cox)
    wrapped = textwrap.fill(title or FOREST_TITLE, 60)
    height = max(2.8, 0.26 * len(rows) + 1.4)
    fig, ax = new_figure(wrapped, width=5.2, height=height)
    fig.subplots_adjust(top=1 - (0.35 + 0.22 * wrapped.count("\n") + 0.25) / height)
    y = np.arange(len(rows))[::-1]
    _forest_scale(ax, cox, rows, y)
    ax.set_yticks(y)
    ax.set_yticklabels([label if i is None else "   " + _short(label.strip(), 34) for label, i in rows], fontsize=8)
    for lab, (_, i) in zip(ax.get_yticklabels(), rows):
        if i is None:
            lab.set_fontweight("bold")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    # the figures themselves at the right, for readers who want the numbers
    trans = ax.get_yaxis_transform()
    ax.text(
        1.02,
        len(rows) - 0.3,
        "Hazard ratio (95% interval)",
        transform=trans,
        fontsize=8,
        va="bottom",
        fontweight="bold",
    )
    for (label, i), yy in zip(rows, y):
        if i is not None:
            ax.text(1.02, yy, _forest_words(cox, i), transform=trans, fontsize=8, va="center")
    ax.set_xlabel(FOREST_XLABEL, fontsize=9)
    fig.narrow_drawing = lambda: forest_figure_narrow(cox, title)
    return fig


def forest_figure_narrow(cox, title: str | None = None):
    """The forest plot for a phone: one column, each level's label and figures on a line above its interval."""
    rows = forest_rows(cox)
    wrapped = textwrap.fill(title or FOREST_TITLE, 40)
    # top to bottom: a factor heading takes one slot, a level 1.7 (its words, then its interval below them)
    cursor, text_y, line_y = 0.0, [], []
    for _, i in rows:
        text_y.append(cursor - 0.5)
        line_y.append(cursor - 1.05)
        cursor -= 1.0 if i is None else 1.7
    slots = -cursor
    text_y, line_y = np.array(text_y) + slots, np.array(line_y) + slots
    height = max(3.2, 0.2 * slots + 1.6 + 0.22 * wrapped.count("\n"))
    fig, ax = new_figure(wrapped, width=NARROW_WIDTH, height=height)
    fig.subplots_adjust(left=0.04, right=0.96, top=1 - (0.35 + 0.22 * wrapped.count("\n") + 0.2) / height)
    _forest_scale(ax, cox, rows, line_y)
    trans = ax.get_yaxis_transform()
    for (label, i), yy in zip(rows, text_y):
        if i is None:
            ax.text(
                0.0,
                yy,
                _short(label.strip(), 52),
                transform=trans,
                fontsize=9,
                va="center",
                fontweight="bold",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
            )
        else:
            plate = {"facecolor": "white", "edgecolor": "none", "pad": 1.0}  # words stay readable over the line at 1
            ax.text(0.03, yy, _short(label.strip(), 30), transform=trans, fontsize=9, va="center", bbox=plate)
            ax.text(1.0, yy, _forest_words(cox, i), transform=trans, fontsize=9, va="center", ha="right", bbox=plate)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_ylim(-0.2, slots + 0.1)
    ax.set_xlabel(FOREST_XLABEL.replace("\n", " ").replace("than the", "than\nthe"), fontsize=9)
    return fig
