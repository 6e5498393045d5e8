"""The intervention report's tables: the estimates side by side, the counts (through disclosure control),
balance, the adjusted curves by day and the robustness checks. Functions of an InterventionEffect; its
methods of the same names call them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from insightlib.contract import BALANCE_CUTOFF, DISCLOSURE_THRESHOLD
from insightlib.report import disclosure
from insightlib.report.intervention_words import term_label
from insightlib.report.words import TOO_FEW
from insightlib.stats.effects import Estimate

if TYPE_CHECKING:
    from insightlib.report.intervention import InterventionEffect


def estimates_table(effect: InterventionEffect) -> pd.DataFrame:
    """Naive and adjusted estimates side by side (percentage points, days, ratios)."""
    rows = []

    def add(label, est: Estimate, scale=1.0, unit=""):
        rows.append(
            {
                "comparison": label,
                "estimate": est.estimate * scale,
                "ci_low": est.ci_low * scale,
                "ci_high": est.ci_high * scale,
                "unit": unit,
                "interval": est.method,
            }
        )

    add("Naive difference in re-referral within horizon", effect.naive["risk_difference"], 100, "percentage points")
    labels = {
        "ipw": "Inverse probability weighting",
        "matching": "Propensity-score matching",
        "regression": "Regression adjustment",
        "aipw": "Doubly robust (AIPW)",
    }
    for k, v in effect.methods.items():
        add(f"{labels.get(k, k)}: difference in re-referral", v, 100, "percentage points")
    add(
        "Weighted Kaplan-Meier: difference in risk of re-referral",
        effect.effect["risk_difference"],
        100,
        "percentage points",
    )
    add(
        "Weighted Kaplan-Meier: difference in days before re-referral (RMST)",
        effect.effect["rmst_difference"],
        1,
        "days",
    )
    add("Weighted Cox: hazard ratio", effect.effect["hazard_ratio"], 1, "ratio")
    return pd.DataFrame(rows)


def balance_summary(effect: InterventionEffect) -> pd.DataFrame:
    """The balance table with whether each characteristic is balanced after weighting."""
    b = effect.balance.copy()
    b["balanced_after"] = b["smd_after"].abs() < BALANCE_CUTOFF
    return b


def counts_table(effect: InterventionEffect) -> pd.DataFrame:
    """Closed cases by group, with a total row (counts: pass through insightlib.report.disclosure before showing)."""
    c = effect.counts
    h = effect.parameters.get("horizon_days")
    df = pd.DataFrame(
        {
            "Closed cases analysed": [c["analysed_treated"], c["analysed_control"]],
            f"Followed for the whole {h} days": [c["binary_treated"], c["binary_control"]],
            f"Re-referred within {h} days": [c["rereferred_treated"], c["rereferred_control"]],
        },
        index=["Received the intervention", "Did not"],
    )
    df.loc["Total"] = df.sum()
    return df


def safe_counts_table(
    effect: InterventionEffect, threshold: int = DISCLOSURE_THRESHOLD, rounding: int | None = None
) -> pd.DataFrame:
    """counts_table with small numbers suppressed (insightlib.report.disclosure; the total row makes it
    apply secondary suppression, so a hidden count cannot be worked out from the total)."""
    df = effect.counts_table()
    # the sentences under "The finding" state how many closed cases were analysed: that total is
    # published there, so it is never the cell hidden to protect another
    known = {("Total", "Closed cases analysed"): int(df.loc["Total", "Closed cases analysed"])}
    if effect.counts.get("analysed") == effect.counts.get("episodes"):
        # nothing set aside: another evaluation of the same children (another intervention, or ATT beside ATE)
        # counts the same cases followed and re-referred, so its total row would give this one's back if either
        # were hidden as a complement (the adversary's identity 25); both pages show them
        known.update({("Total", c): int(df.loc["Total", c]) for c in df.columns[1:]})
    # and a reader knows, row by row, re-referred <= followed up <= analysed
    cols = list(df.columns)
    at_most = [((row, cols[k + 1]), (row, cols[k])) for row in df.index for k in range(len(cols) - 1)]
    res = disclosure.suppress_table(df, cols, threshold, rounding, total_row="Total", known=known, at_most=at_most)
    out = res.table().map(
        lambda v: f"{int(v):,}" if isinstance(v, (int, np.integer, float, np.floating)) and np.isfinite(v) else v
    )
    out.index.name = None
    out.columns.name = "Group"
    if res.n_primary or res.n_secondary or rounding:
        out.attrs["note"] = res.footnote()
    return out


#: the adjusted estimators as the report names them
METHOD_LABELS = {
    "ipw": "Inverse probability weighting",
    "matching": "Propensity-score matching (1:1)",
    "regression": "Regression adjustment",
    "aipw": "Doubly robust (AIPW)",
}
#: short names of how each interval was made (the full description is in results.json)
INTERVAL_HOW = {
    "naive": "influence function",
    "ipw": "influence function, propensity model allowed for",
    "matching": "Abadie-Imbens variance",
    "regression": "delta method",
    "aipw": "influence function",
}
UNSTABLE_NOTE = (
    "An interval marked 'could not be worked out' came out wider than any difference in shares "
    "can be (beyond 100 points either way): its variance calculation was numerically unstable on "
    "these data, so only the estimate is shown. The other rows are unaffected."
)


def report_table(effect: InterventionEffect) -> pd.DataFrame:
    """The naive comparison beside every adjusted estimate, formatted for the report."""
    unstable: list[Estimate] = []
    rows = {**_comparison_rows(effect, unstable), **_survival_rows(effect, unstable)}
    out = pd.DataFrame.from_dict(
        rows, orient="index", columns=["Estimate", f"{effect.level()} interval", "How the interval was worked out"]
    )
    out.index.name = None
    out.columns.name = "Comparison"
    notes = []
    if not effect.naive_shown():
        notes.append(
            f"c: the simple comparison is hidden because a group has fewer than {effect.threshold()} "
            "children re-referred (or not re-referred); with the group sizes it would give that "
            "number away."
        )
    if unstable:
        notes.append(UNSTABLE_NOTE)
    if notes:
        out.attrs["note"] = " ".join(notes)
    return out


def _points(estimate: Estimate, unstable: list[Estimate]) -> tuple[str, str]:
    """A difference in shares and its interval in points; one whose interval broke down joins ``unstable``."""
    if not np.isfinite(estimate.estimate):
        return TOO_FEW, TOO_FEW
    # a difference in shares lies between -100 and +100 points; an interval outside that (or missing)
    # means the variance broke down, and printing it would mislead
    low, high = estimate.ci_low, estimate.ci_high
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1 or high > 1:
        unstable.append(estimate)
        return f"{100 * estimate.estimate:+.1f} points", "could not be worked out (unstable)"
    return f"{100 * estimate.estimate:+.1f} points", f"{100 * low:+.1f} to {100 * high:+.1f}"


def _comparison_rows(effect: InterventionEffect, unstable: list[Estimate]) -> dict[str, tuple[str, str, str]]:
    """The simple comparison (hidden where it would give a small count away) and each adjusted estimator."""
    horizon = effect.parameters["horizon_days"]
    simple = effect.naive["risk_difference"]
    rows = {
        f"Simple comparison (no adjustment): re-referred within {horizon} days": (
            (*_points(simple, unstable), INTERVAL_HOW["naive"])
            if effect.naive_shown()
            else ("c", "c", INTERVAL_HOW["naive"])
        )
    }
    for method, estimate in effect.methods.items():
        rows[f"{METHOD_LABELS.get(method, method)}: re-referred within {horizon} days"] = (
            *_points(estimate, unstable),
            INTERVAL_HOW.get(method, ""),
        )
    return rows


def _survival_rows(effect: InterventionEffect, unstable: list[Estimate]) -> dict[str, tuple[str, str, str]]:
    """The weighted survival estimates: the headline risk difference, RMST and hazard ratio (issue 11's rule)."""
    horizon = effect.parameters["horizon_days"]
    boot = f"bootstrap of children ({effect.parameters.get('bootstrap_reps', '')} samples)"
    risk, rmst, hazard = (effect.effect[k] for k in ("risk_difference", "rmst_difference", "hazard_ratio"))
    shown = effect.estimable()
    too_few = (TOO_FEW, TOO_FEW)
    return {
        f"Weighted Kaplan-Meier: re-referred by day {horizon} (headline)": (
            (*_points(risk, unstable), boot) if shown else (*too_few, boot)
        ),
        f"Weighted Kaplan-Meier: days free of re-referral in the first {horizon} (RMST)": (
            (f"{rmst.estimate:+.1f} days", f"{rmst.ci_low:+.1f} to {rmst.ci_high:+.1f}", boot)
            if shown
            else (*too_few, boot)
        ),
        "Weighted Cox: hazard ratio (below 1: re-referral slower)": (
            (f"{hazard.estimate:.2f}", f"{hazard.ci_low:.2f} to {hazard.ci_high:.2f}", "robust (sandwich)")
            if shown and np.isfinite(hazard.estimate) and hazard.estimate > 0
            else (*too_few, "robust (sandwich)")
        ),
    }


def balance_view(effect: InterventionEffect) -> pd.DataFrame:
    """The love plot as a table: standardised differences before and after weighting."""
    b = effect.balance_order(descending=True)
    out = pd.DataFrame(
        {
            "Before weighting": [f"{v:+.3f}" if ok else "c" for v, ok in zip(b["smd_before"], b["_shown"])],
            "After weighting": b["smd_after"].map(lambda v: f"{v:+.3f}").to_numpy(),
            f"Balanced (under {BALANCE_CUTOFF})": np.where(b["smd_after"].abs() < BALANCE_CUTOFF, "yes", "no"),
        },
        index=[term_label(c) for c in b["covariate"]],
    )
    out.columns.name = "Characteristic"
    if not b["_shown"].all():
        out.attrs["note"] = (
            f"c: hidden because fewer than {effect.threshold()} cases in a group have (or do not have) that "
            "characteristic; with the group sizes the difference would give their number away."
        )
    return out


def curve_table(effect: InterventionEffect, days=(91, 182, 365)) -> pd.DataFrame:
    """Adjusted share re-referred by day, with intervals (no counts; cut below 10 at risk)."""
    s = effect.survival
    rows = {}
    for d in days:
        i = int(np.searchsorted(s["day"].to_numpy(), d, side="right") - 1)
        row = {}
        for arm, label in (("treated", "With the intervention"), ("control", "Without")):
            ok = bool(s[f"{arm}_shown"].iloc[i])
            row[label] = (
                f"{100 * (1 - s[f'{arm}_survival'].iloc[i]):.1f}% "
                f"({100 * (1 - s[f'{arm}_ci_high'].iloc[i]):.1f} to {100 * (1 - s[f'{arm}_ci_low'].iloc[i]):.1f})"
                if ok
                else "too few to show"
            )
        rows[f"By day {d}"] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns.name = f"Share re-referred ({effect.level()} interval)"
    return out


def refutation_table(effect: InterventionEffect) -> pd.DataFrame:
    """Each DoWhy check: the estimate before and after the change, what passes, and whether it did."""
    labels = {
        "placebo_treatment": "Replace the intervention by a random one (should give about no effect)",
        "random_common_cause": "Add a made-up random characteristic (should change little)",
        "data_subset": "Re-estimate on random 80% subsets (should change little)",
    }
    rows = {}
    for k, r in effect.refutations.items():
        if "error" in r:
            rows[labels.get(k, k)] = ("", "", "", "could not run")
            continue
        allowed = (
            f"within {100 * r['limit']:.1f} points of {'zero' if k == 'placebo_treatment' else 'the estimate'}"
            if "limit" in r
            else ""
        )
        rows[labels.get(k, k)] = (
            f"{100 * r['estimated_effect']:+.1f} points",
            f"{100 * r['new_effect']:+.1f} points",
            allowed,
            {True: "yes", False: "no", None: "could not run"}[r.get("passed")],
        )
    out = pd.DataFrame.from_dict(
        rows, orient="index", columns=["Estimate before the change", "After the change", "Passes if", "Passed"]
    )
    out.columns.name = "Check"
    return out
