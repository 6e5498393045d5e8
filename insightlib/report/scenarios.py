"""Words, table and chart for the commissioners' scenarios (insightlib.stats.scenarios.Scenarios).

Published figures: the eligible cases per year (a mean of yearly counts, hidden when below the
disclosure threshold, and then every scenario with it), the share receiving the intervention now
(hidden when a small count lies behind it), and modelled changes, which are products of estimates
rather than counts of children."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from insightlib.stats.scenarios import Scenarios
from insightlib.contract import DISCLOSURE_THRESHOLD


def _people(v: float) -> str:
    """A modelled number of children: whole numbers from 10, one decimal below."""
    a = abs(v)
    return f"{a:,.0f}" if a >= 10 else f"{a:.1f}"


def _signed(v: float) -> str:
    return ("+" if v > 0 else "-" if v < 0 else "") + _people(v)


def _range(lo: float, hi: float) -> str:
    return f"{_signed(lo)} to {_signed(hi)}"


def shown(s: Scenarios, counts: dict, threshold: int) -> dict:
    """What may be published: the volume, the current share, or neither (with the reason)."""
    per_year = s.volume.per_year
    t, n = int(counts.get("analysed_treated", 0)), int(counts.get("analysed", 0))
    # the windows' closures, read from the volume and the cases a year, less the cases analysed: those analysed
    # but closed before the windows, a count published nowhere (the adversary's identity 21)
    rest = n - sum(s.volume.counts)
    small_volume = any(0 < c < threshold for c in s.volume.counts) or per_year < threshold or 1 <= rest < threshold
    small_share = any(1 <= v < threshold for v in (t, n - t))
    return {"volume": not small_volume, "share": not small_share}


def assumption_words(s: Scenarios) -> str:
    """The ATT/ATE assumption, spelled out for the estimand the analysis used."""
    if s.estimand == "ATT":
        est = (
            "The effect used is the effect among the children who received the intervention (the ATT). For "
            "children newly reached it assumes they would respond as those who had it did; children offered it "
            "for the first time may differ (practitioners may have chosen those they expected to benefit), so a "
            "scale-up may achieve less. For withdrawing it, the ATT is the right effect: it is what those "
            "children would lose."
        )
    else:
        est = (
            "The effect used is the average effect had every child in the analysis received it, compared with "
            "none (the ATE). For children newly reached it assumes they respond like the average eligible child. "
            "The children not offered it now are the ones a scale-up would add, and their effect (the effect "
            "among the untreated) may be larger or smaller; for withdrawing it, what the children who had it "
            "would lose (the ATT) may differ from the ATE too."
        )
    return (
        "**What this assumes.** " + est + " It also assumes the effect does not change with scale (the same "
        "quality of delivery, no waiting list) and that next year's eligible cases are like recent years'. "
        "These are expected numbers, not a forecast of any child."
    )


def table(s: Scenarios, counts: dict, threshold: int = DISCLOSURE_THRESHOLD) -> pd.DataFrame:
    """One row per scenario: the share reached, cases per year, the expected change in re-referrals."""
    ok = shown(s, counts, threshold)
    level = f"{s.level:.0%} interval"
    rows = {}
    for sc in s.scenarios:
        share = f"{s.current_share:.0%} to {sc.new_share:.0%}" if ok["share"] else "c"
        if ok["volume"] and ok["share"]:
            cases = _signed(sc.extra_cases)
            change, ci = _signed(sc.change), _range(sc.ci_low, sc.ci_high)
        else:
            cases = change = ci = "c"
        rows[
            sc.label
            + (
                " (capped at everyone)"
                if sc.capped and sc.new_share >= 1
                else " (capped at no one)"
                if sc.capped
                else ""
            )
        ] = (share, cases, change, ci)
    h = s.horizon_days
    out = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=[
            "Share of eligible cases receiving it",
            "Change in cases receiving it, per year",
            f"Expected change in children re-referred within {h} days, per year",
            level,
        ],
    )
    out.index.name = None
    out.columns.name = "Scenario"
    notes = []
    if not ok["volume"]:
        notes.append(f"c: hidden because fewer than {threshold} eligible cases closed in a year.")
    elif not ok["share"]:
        notes.append(f"c: hidden because fewer than {threshold} children did (or did not) receive it.")
    if notes:
        out.attrs["note"] = " ".join(notes)
    return out


def headline(s: Scenarios, counts: dict, threshold: int = DISCLOSURE_THRESHOLD) -> str:
    ok = shown(s, counts, threshold)
    h = s.horizon_days
    when = "a year" if h == 365 else f"{h} days"
    if not (ok["volume"] and ok["share"]):
        return (
            "**What if we offered more?** Not shown: the council's numbers are too small to publish the "
            "scenarios without giving a small count away."
        )
    v = s.volume
    lines = [
        f"**What if we offered more?** About {v.per_year:,.0f} cases like those analysed closed each year "
        f"(mean of {len(v.counts)} year{'s' if len(v.counts) != 1 else ''}), and {s.current_share:.0%} of them "
        f"received the intervention."
    ]
    for sc in s.scenarios:
        if sc.share_change == 0:
            lines.append(f"{sc.label}: no change (everyone eligible would already receive it).")
            continue
        direction = "fewer" if sc.change < 0 else "more"
        sure = (
            "the interval includes no change"
            if sc.ci_low <= 0 <= sc.ci_high
            else f"between {_people(min(abs(sc.ci_low), abs(sc.ci_high)))} and "
            f"{_people(max(abs(sc.ci_low), abs(sc.ci_high)))} {direction}"
        )
        lines.append(
            f"{sc.label} (about {_people(sc.extra_cases)} cases a year {'more' if sc.extra_cases > 0 else 'fewer'}): "
            f"about {_people(sc.change)} {direction} children re-referred within {when} each year "
            f"({sure}; {s.level:.0%} interval)."
        )
    return " ".join(lines[:1]) + "\n\n" + "\n".join(f"- {x}" for x in lines[1:])


def alt_text(s: Scenarios) -> str:
    parts = [f"{sc.label}: {_signed(sc.change)} a year ({_range(sc.ci_low, sc.ci_high)})" for sc in s.scenarios]
    return (
        "Dot plot of the expected change in children re-referred per year under each scenario, with intervals. "
        + "; ".join(parts)
        + "."
    )


def chart(s: Scenarios):
    """Expected change per scenario with its interval, zero marked."""
    from insightlib.report.charts import DARK_BLUE, REFERENCE_GREY, new_figure

    first = next((sc for sc in s.scenarios if sc.share_change > 0), s.scenarios[0])
    word = "fewer" if first.change < 0 else "more"
    sure = first.ci_high < 0 or first.ci_low > 0
    title = f"{first.label}: about {_people(first.change)} {word} re-referrals a year" + (
        "" if sure else " (could be none)"
    )
    fig, ax = new_figure(title, width=8, height=max(2.5, 0.6 * len(s.scenarios) + 1.5))
    y = np.arange(len(s.scenarios))[::-1]
    est = np.array([sc.change for sc in s.scenarios])
    lo = np.array([sc.ci_low for sc in s.scenarios])
    hi = np.array([sc.ci_high for sc in s.scenarios])
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color=DARK_BLUE, capsize=4)
    ax.axvline(0, color=REFERENCE_GREY, linestyle="--")
    ax.set_yticks(y, [sc.label for sc in s.scenarios], fontsize=9)
    ax.set_xlabel(f"Change in children re-referred within {s.horizon_days} days, per year (negative: fewer)")
    if not math.isfinite(float(np.nanmax(np.abs(np.r_[lo, hi])))):
        ax.set_xlim(-1, 1)
    return fig
