"""Sentences about the survival estimators themselves (the test that groups differ, the check of
proportional hazards), for any report that shows them."""

from __future__ import annotations

import numpy as np

from insightlib.report.labels import _ph_words
from insightlib.report.words import p_equals as _p


def logrank_test_words(lr) -> str:
    return (
        "log-rank"
        if lr.method == "log-rank"
        else "robust score test, clustered by child (as R's coxph with cluster(id))"
    )


def logrank_sentence(lr) -> str:
    if not np.isfinite(lr.p_value):
        return "There was only one group, so there is nothing to compare."
    verdict = (
        "The groups differ in how soon children are referred again"
        if lr.p_value < 0.05
        else "There is no clear evidence that the groups differ in how soon children are referred again"
    )
    return (
        f"{verdict} ({logrank_test_words(lr)}: chi-square {lr.statistic:.1f} on {lr.df} "
        f"degree{'' if lr.df == 1 else 's'} of freedom, p {_p(lr.p_value)})."
    )


def ph_sentences(cox, alpha: float = 0.05) -> list[str]:
    """The proportional-hazards check in plain words (R's cox.zph: one test per factor, and overall)."""
    out = [
        "A hazard ratio is one figure for the whole time after closure: the model assumes that a factor which "
        "makes re-referral twice as likely in the first month also makes it twice as likely a year later. "
        "A check on the model (the Grambsch-Therneau test, as R's cox.zph computes it, one test per factor "
        "and one overall) looks for factors whose effect changes with time since closure."
    ]
    bad = cox.ph[(cox.ph["term"] != "GLOBAL") & (cox.ph["p_value"] < alpha)]
    glob = cox.ph[cox.ph["term"] == "GLOBAL"].iloc[0]
    if bad.empty:
        out.append(
            f"It found no clear sign that any effect changes over time (overall p {_p(glob.p_value)}), "
            "so each hazard ratio can be read as one figure for the whole period."
        )
        return out
    trend = lambda r: getattr(r, "trend", np.nan)  # noqa: E731
    grows = [_ph_words(r.term) for r in bad.itertuples() if trend(r) > 0]
    fades = [_ph_words(r.term) for r in bad.itertuples() if trend(r) < 0]
    changes = [_ph_words(r.term) for r in bad.itertuples() if not np.isfinite(trend(r))]
    parts = []
    if fades:
        parts.append(f"for {'; '.join(fades)}, the ratio is higher soon after closure than later")
    if grows:
        parts.append(f"for {'; '.join(grows)}, the ratio is higher later than soon after closure")
    if changes:
        parts.append(f"for {'; '.join(changes)}, the ratios between its groups change with time since closure")
    out.append(
        "It suggests that the effect changes over time: " + "; and ".join(parts) + ". For these the "
        "hazard ratio shown is an average over the period, and the curves are the better guide."
    )
    n_terms = int((cox.ph["term"] != "GLOBAL").sum())
    if n_terms >= 5:
        out.append(
            f"With {n_terms} factors checked, one or two can fail the check by chance; the overall check "
            f"gives p {_p(glob.p_value)}."
        )
    return out
