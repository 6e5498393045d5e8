"""The cross-council summary's forest plot (wide for screens and print, narrow for phones) and its alt text."""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt

from insightlib.report import charts
from insightlib.report.summary_table import Chart, Summary, fmt, interval
from insightlib.stats.meta import RandomEffects


def forest_chart(summary: Summary, title: str = "") -> Chart:
    """A forest plot of every shown estimate with its interval, the pooled diamond and its prediction
    interval; drawn wide for screens and print and narrow for phones."""
    fig = forest_figure(summary, 7.5)
    png = charts.to_png(fig)
    plt.close(fig)
    fig = forest_figure(summary, 3.9)
    png_narrow = charts.to_png(fig)
    plt.close(fig)
    return Chart(
        name=f"summary-{summary.notebook}",
        title=_chart_title(summary),
        alt=forest_alt(summary),
        png=png,
        png_narrow=png_narrow,
    )


def forest_figure(summary: Summary, width: float):
    """The forest plot at one width (narrower than 6 inches: the phone layout)."""
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
        _pooled_diamond(ax, summary.pooled)
        labels.append("All councils (pooled)")
        ypos.append(0)
    if summary.reference_value is not None:
        ax.axvline(
            summary.reference_value, color=charts.DARK_GREY, lw=1, ls="--", label=summary.reference_label or None
        )
    ax.set_yticks(ypos)
    ax.set_yticklabels(labels, fontsize=8 if narrow else 9)
    ax.set_ylim(-0.8, n - 0.2)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(_wrap(summary.measure, 48 if narrow else 90), fontsize=8 if narrow else 9)
    handles, _names = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            fontsize=7 if narrow else 8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.28 if narrow else -0.2),
            ncol=1 if narrow else 3,
            frameon=False,
        )
    return fig


def _pooled_diamond(ax, p: RandomEffects) -> None:
    """The pooled estimate's diamond (its 95% interval) and its prediction interval, on the bottom line."""
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


def _chart_title(summary: Summary) -> str:
    """A headline title: the answer, without its interval (the chart shows that)."""
    return summary.sentence.split(" (")[0].rstrip(".:;")


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def forest_alt(summary: Summary) -> str:
    parts = [f"Forest plot of {summary.measure.lower()}."]
    for r in summary.rows:
        if r.shown:
            parts.append(f"{r.label}: {fmt(r.estimate)} ({interval(r.ci_low, r.ci_high)}).")
        else:
            parts.append(f"{r.label}: not shown.")
    if summary.pooled is not None:
        p = summary.pooled
        parts.append(f"Pooled: {fmt(p.estimate)} ({interval(p.ci_low, p.ci_high)}), I squared {100 * p.i2:.0f}%.")
    return " ".join(parts)
