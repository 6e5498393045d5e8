"""The intervention report's figures: balance (love plot), overlap of propensity scores and the adjusted
re-referral curves. Functions of an InterventionEffect; its methods of the same names call them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.ticker import PercentFormatter

from insightlib.contract import BALANCE_CUTOFF
from insightlib.report.charts import DARK_BLUE, ORANGE, REFERENCE_GREY, new_figure
from insightlib.report.intervention_words import term_label
from insightlib.report.words import TOO_FEW

if TYPE_CHECKING:
    from insightlib.report.intervention import InterventionEffect


def love_plot(effect: InterventionEffect):
    """Standardised differences of each characteristic before and after weighting."""
    b = effect.balance_order(descending=False)
    after_max = b["smd_after"].abs().max() if len(b) else 0
    title = (
        f"After weighting, all characteristics are balanced (largest {after_max:.2f})"
        if after_max < BALANCE_CUTOFF
        else f"After weighting, the largest difference is still {after_max:.2f}"
    )
    fig, ax = new_figure(title, width=8.5, height=max(3.0, 0.22 * len(b) + 1.5))
    yy = np.arange(len(b))
    shown = b["_shown"].to_numpy(bool)  # hidden before weighting (small counts behind it): not drawn
    ax.scatter(b["smd_before"].abs()[shown], yy[shown], color=ORANGE, label="Before weighting", zorder=3)
    ax.scatter(b["smd_after"].abs(), yy, color=DARK_BLUE, label="After weighting", zorder=3)
    ax.axvline(BALANCE_CUTOFF, color=REFERENCE_GREY, linestyle="--", label=f"{BALANCE_CUTOFF} (a common threshold)")
    ax.set_yticks(yy, [term_label(c) for c in b["covariate"]], fontsize=8)
    ax.set_xlabel("Absolute standardised mean difference")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def overlap_plot(effect: InterventionEffect):
    """Propensity scores of every episode at risk (before trimming), by group; the set-aside
    ranges shaded. Bins with fewer episodes than the disclosure threshold are blanked."""
    trimmed, total = effect.overlap.get("trimmed_total", 0), effect.counts["episodes"]
    title = (
        f"{trimmed / total:.0%} of closed cases were set aside for poor overlap between the groups"
        if trimmed
        else "Children who did and did not receive it overlapped across the range"
    )
    fig, ax = new_figure(title)
    bins = np.linspace(0, 1, 21)
    thr = effect.threshold()
    for arm, colour, label in (("treated", ORANGE, "Received the intervention"), ("control", DARK_BLUE, "Did not")):
        ps = effect._ps.get(arm, np.array([]))
        counts, _ = np.histogram(ps, bins=bins)
        counts = np.where(counts < thr, 0, counts)  # small cells suppressed
        share = counts / max(counts.sum(), 1)
        ax.stairs(share, bins, color=colour, label=label, linewidth=2)
    lo, hi = effect.overlap.get("trim_low", 0.0), effect.overlap.get("trim_high", 1.0)
    if lo > 0:
        ax.axvspan(0, lo, color="#E5E5E5", label="Set aside", zorder=0)
    if hi < 1:
        ax.axvspan(hi, 1, color="#E5E5E5", label=None if lo > 0 else "Set aside", zorder=0)
    ax.set_xlabel("Propensity score (estimated chance of receiving the intervention)")
    ax.set_ylabel("Share of group")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))
    ax.legend(fontsize=8)
    return fig


def survival_plot(effect: InterventionEffect):
    """The adjusted cumulative re-referral curves with and without the intervention, hidden where too few are at risk."""
    s = effect.survival
    rd = effect.effect["risk_difference"]
    if not effect.estimable():
        title = f"Adjusted re-referral curves up to day {effect.parameters['horizon_days']}: a difference is {TOO_FEW}"
    elif rd.ci_high < 0 or rd.ci_low > 0:
        word = "lower" if rd.estimate < 0 else "higher"
        title = f"Adjusted for who received it, re-referral was {abs(rd.estimate) * 100:.0f} points {word} by day {effect.parameters['horizon_days']}"
    else:
        title = f"Adjusted for who received it, no clear difference in re-referral by day {effect.parameters['horizon_days']}"
    fig, ax = new_figure(title)
    for arm, colour, label in (("treated", ORANGE, "With the intervention"), ("control", DARK_BLUE, "Without")):
        ok = s[f"{arm}_shown"]  # not drawn (a gap, not a flat line) where hidden
        ax.step(s["day"], (1 - s[f"{arm}_survival"]).where(ok), where="post", color=colour, label=label)
        ax.fill_between(
            s["day"],
            (1 - s[f"{arm}_ci_high"]).where(ok),
            (1 - s[f"{arm}_ci_low"]).where(ok),
            step="post",
            color=colour,
            alpha=0.15,
        )
    ax.set_xlabel("Days since the case closed")
    ax.set_ylabel("Share re-referred (weighted)")
    ax.set_ylim(0, None)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=None))
    ax.legend(fontsize=8)
    return fig
