"""One set of helpers for the words every report uses: p-values, intervals, shares, periods, plurals.

Sentences and table cells are built from these, so "p < 0.001", "59% (50 to 67)" and "1 year"
read the same in every report.
"""

from __future__ import annotations

import numpy as np

#: Said instead of a figure the data cannot support (an infinite or single-point interval, too few events).
TOO_FEW = "too few to estimate"


def p_value(p: float) -> str:
    """A p-value as a table shows it: "< 0.001" or "0.034"."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_equals(p: float) -> str:
    """A p-value inside a sentence: "p < 0.001" or "p = 0.034" (without the "p")."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def plural(n: float, word: str, many: str | None = None) -> str:
    """ "1 child", "2 children": the word, or its plural (many, default word + "s"), for the count."""
    return word if n == 1 else (many or word + "s")


def one_in(p: float) -> str:
    """A share as readers picture it: "about 1 in 4 (25%)" where that is close, else "23%"."""
    if not np.isfinite(p) or p <= 0:
        return "none"
    n = round(1 / p)
    if n >= 2 and abs(1 / n - p) <= 0.02:
        return f"about 1 in {n} ({p:.0%})"
    return f"{p:.0%}"


def when(h: int) -> str:
    """A horizon in words: 91 -> "3 months", 365 -> "1 year"."""
    return {
        91: "3 months",
        182: "6 months",
        183: "6 months",
        274: "9 months",
        365: "1 year",
        730: "2 years",
        1095: "3 years",
    }.get(int(h), f"{int(h)} days")


def first(h: int) -> str:
    """ "first year", "first 6 months"."""
    return "first year" if int(h) == 365 else f"first {when(h)}"


def within(h: int) -> str:
    """ "within a year", "within 3 months"."""
    return "within a year" if int(h) == 365 else f"within {when(h)}"


def share(v: float, lo: float, hi: float) -> str:
    """A share with its 95% interval, short enough for a table cell: "59% (50 to 67)"; TOO_FEW where the
    interval is missing or a single point at the precision shown (no re-referral, or every child back)."""
    if not all(x is not None and np.isfinite(x) for x in (v, lo, hi)) or round(100 * lo) == round(100 * hi):
        return TOO_FEW
    return nowrap(f"{100 * v:.0f}% ({100 * lo:.0f} to {100 * hi:.0f})")


def nowrap(text: str) -> str:
    """Non-breaking spaces, so a figure and its interval stay on one line in a table cell."""
    return text.replace(" ", "\u00a0")
