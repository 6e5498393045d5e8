"""Words the intervention report and its analysis share: a split of closed cases safe to print, an interval of
differences in points, a design-matrix term in words, and the assumptions every estimate rests on."""

from __future__ import annotations

import numpy as np

from insightlib.contract import PRIMARY_NEED_LABELS
from insightlib.report.words import TOO_FEW


def safe_split(treated: int, control: int, threshold: int) -> str:
    """'839 closed cases (38 who received the intervention, 801 who did not)', with a part below
    the threshold hidden together with whatever would give it away (the other part)."""
    total = treated + control
    if total == 0:
        return "No closed cases"
    if 0 < total < threshold:
        return f"Fewer than {threshold} closed cases"
    if 0 < treated < threshold or 0 < control < threshold:
        small = "received the intervention" if 0 < treated < threshold else "did not receive it"
        return f"{total:,} closed cases (fewer than {threshold} of them {small})"
    return f"{total:,} closed cases ({treated:,} who received the intervention, {control:,} who did not)"


def points_range(lo: float, hi: float) -> str:
    """An interval of differences in words: 'between 3.9 and 12.6 points fewer'."""
    a, b = 100 * lo, 100 * hi
    if not (np.isfinite(a) and np.isfinite(b)):
        return TOO_FEW
    if b < 0:
        return f"between {abs(b):.1f} and {abs(a):.1f} points fewer"
    if a > 0:
        return f"between {a:.1f} and {b:.1f} points more"
    return f"from {abs(a):.1f} points fewer to {b:.1f} points more"


def term_label(term: str) -> str:
    """'previous_referrals_group=3+' -> 'Previous referrals: 3+' (design-matrix names in words)."""
    name, _, level = str(term).partition("=")
    words = name.replace("_group", "").replace("_", " ").strip()
    words = {"referral nfa": "Referral closed with no further action", "disabled": "Has a disability"}.get(words, words)
    words = words[:1].upper() + words[1:]
    if name == "primary_need":
        level = f"{PRIMARY_NEED_LABELS[level].lower()} ({level})" if level in PRIMARY_NEED_LABELS else level
    return f"{words}: {level}" if level else words


ASSUMPTIONS = (
    "**No unmeasured confounding.** Everything that influenced both who received the intervention and "
    "whether they came back is among the covariates (or blocked by them in the graph). If practitioners "
    "chose families on something not recorded, such as their judgement of risk, the estimate may be biased.",
    "**Positivity.** Every kind of child in the analysis had some chance of receiving the intervention and "
    "some chance of not. Children with almost no chance either way are trimmed, and the overlap plot shows what is left.",
    "**Consistency.** The intervention is one well-defined thing: a child who received it is counted the same "
    "whoever delivered it and however it went, and one child's intervention does not change another's re-referral.",
    "**Censoring.** Turning 18, death and moving council end follow-up like the extract date does; the survival "
    "estimates describe re-referral had those not happened, assuming they are unrelated to re-referral risk given the covariates.",
)
