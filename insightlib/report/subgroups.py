"""Words, table and chart for who responds best (insightlib.stats.subgroups.SubgroupEffects).

The wording never turns a subgroup difference into advice to withhold the intervention: it says how
many subgroups were compared, whether the differences are more than chance after that allowance,
and what a subgroup's interval does and does not rule out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib.stats.subgroups import SubgroupEffects

NAMES = {
    "primary_need": "Primary need",
    "age_group": "Age band",
    "previous_referrals_group": "Previous referrals",
    "disabled": "Disability",
    "sex": "Sex",
    "ethnic_group": "Ethnic group",
    "referral_nfa": "Referral closed with no further action",
}


def _name(v: str) -> str:
    return NAMES.get(v, v.replace("_", " ").capitalize())


def _level_label(var: str, level: str) -> str:
    if var in ("disabled", "referral_nfa", "had_cp_plan", "had_cin_plan", "had_assessment"):
        return {"1": "Yes", "0": "No", "True": "Yes", "False": "No"}.get(level, level)
    if var == "primary_need":
        from insightlib.contract import PRIMARY_NEED_LABELS

        return f"{PRIMARY_NEED_LABELS[level]} ({level})" if level in PRIMARY_NEED_LABELS else level
    return level


def table(s: SubgroupEffects, horizon_days: int) -> pd.DataFrame:
    """One row per subgroup. No counts: the subgroups of a characteristic add up to the published
    group sizes, so one small count shown beside the others could be worked out (a subgroup with
    fewer cases than the minimum in either arm is 'too few to estimate'; one whose estimate would
    bound such a subgroup's small count is 'c', stats.subgroups.hidden_levels)."""
    rows = []
    for e in s.effects:
        if e.estimated:
            eff = f"{100 * e.estimate:+.1f} points"
            ci = f"{100 * e.ci_low:+.1f} to {100 * e.ci_high:+.1f}"
        elif e.hidden:
            eff, ci = "c", ""
        else:
            eff, ci = "too few to estimate", ""
        rows.append(
            {
                "Characteristic": _name(e.variable),
                "Subgroup": _level_label(e.variable, e.level),
                f"Effect on re-referral within {horizon_days} days": eff,
                f"{s.level:.0%} interval": ci,
            }
        )
    out = pd.DataFrame(rows).set_index(["Characteristic", "Subgroup"])
    if any(e.hidden for e in s.effects):
        out.attrs["note"] = (
            "c: not shown. A subgroup's effect is estimated only where both groups have enough cases in it, so "
            "showing this one beside a subgroup too few to estimate would bound how many children are in that one."
        )
    return out


def words(s: SubgroupEffects, horizon_days: int) -> str:
    """How many were compared, whether effects differ, and how sure we are; never advice to withhold."""
    k, m = s.compared, len(s.tests)
    chars = ", ".join(_name(t.variable).lower() for t in s.tests) or "none"
    lines = [
        f"**Who responds best?** The effect on re-referral within {horizon_days} days was estimated separately in "
        f"{k} subgroups of {m} characteristic{'s' if m != 1 else ''} named in the evaluation file before the analysis "
        f"({chars}). Each subgroup's effect is a difference in percentage points of children re-referred (negative: "
        f"fewer with the intervention), adjusted like the headline."
    ]
    for t in s.tests:
        p, ph = t.p_value, t.p_holm
        if ph < 0.05:
            verdict = (
                f"the effects differ by {_name(t.variable).lower()} by more than chance would explain "
                f"(p = {p:.3f}; {ph:.3f} allowing for the {m} characteristics compared)"
            )
        elif p < 0.05:
            verdict = (
                f"the effects look different by {_name(t.variable).lower()} (p = {p:.3f}), but not once the "
                f"{m} characteristics compared are allowed for (p = {ph:.3f}): this could be chance"
            )
        else:
            verdict = f"there is no clear evidence that the effect differs by {_name(t.variable).lower()} (p = {p:.2f})"
        lines.append(f"- {verdict}.")
    lines.append(
        f"**How sure we are.** With {k} subgroups compared, about one interval in 20 will miss its subgroup's true effect, "
        "and some subgroup will usually look better or worse than the rest by chance alone even if the intervention worked "
        "equally for everyone; that is why the test above asks whether a characteristic's effects differ at all, and "
        "allows for how many were tested. A subgroup whose interval includes no effect has not been shown to gain "
        "nothing: the interval shows how large a benefit is still consistent with the data. **These results are not a "
        "reason to withhold the intervention from any group.** A decision to target it should rest on a difference that "
        "is clear after this allowance, on its size and interval, and on practice knowledge, and should be checked again "
        "on new cases."
    )
    return "\n\n".join(lines)


def alt_text(s: SubgroupEffects) -> str:
    est = [e for e in s.effects if e.estimated]
    if not est:
        return "No subgroup had enough cases with and without the intervention to estimate its effect."
    lo = min(est, key=lambda e: e.estimate)
    hi = max(est, key=lambda e: e.estimate)
    return (
        f"Forest plot of the effect in {len(est)} subgroups with intervals: from {100 * lo.estimate:+.1f} points "
        f"({_name(lo.variable)}: {_level_label(lo.variable, lo.level)}) to {100 * hi.estimate:+.1f} points "
        f"({_name(hi.variable)}: {_level_label(hi.variable, hi.level)})."
    )


def chart(s: SubgroupEffects, overall: float | None = None):
    """Forest plot: each estimated subgroup's effect with its interval; no effect and the overall marked."""
    from insightlib.report.charts import DARK_BLUE, ORANGE, REFERENCE_GREY, new_figure

    est = [e for e in s.effects if e.estimated]
    differ = [t for t in s.tests if t.p_holm < 0.05]
    title = (
        f"The effect differs by {', '.join(_name(t.variable).lower() for t in differ)}"
        if differ
        else "No clear evidence that the effect differs between subgroups"
    )
    fig, ax = new_figure(title, width=8, height=max(3.0, 0.3 * len(est) + 1.5))
    y = np.arange(len(est))[::-1]
    x = np.array([100 * e.estimate for e in est])
    lo = np.array([100 * e.ci_low for e in est])
    hi = np.array([100 * e.ci_high for e in est])
    ax.errorbar(x, y, xerr=[x - lo, hi - x], fmt="o", color=DARK_BLUE, capsize=3)
    ax.axvline(0, color=REFERENCE_GREY, linestyle="--", label="No effect")
    if overall is not None and np.isfinite(overall):
        ax.axvline(100 * overall, color=ORANGE, linestyle=":", label="Everyone (doubly robust)")
    ax.set_yticks(y, [f"{_name(e.variable)}: {_level_label(e.variable, e.level)}" for e in est], fontsize=8)
    ax.set_xlabel("Effect on re-referral (percentage points; negative: fewer with the intervention)")
    ax.legend(fontsize=8)
    return fig
