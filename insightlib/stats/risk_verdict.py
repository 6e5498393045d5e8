"""The risk model audit's verdict: each pre-stated bar judged on its interval (met, failed or unclear), and
whether the model is accurate enough and equal enough across groups (docs/risk-audit.md). The measures it
judges come from insightlib.stats.risk_audit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib.stats.risk_audit import Interval, ModelAudit

MEETS, FAILS, UNCLEAR, NOT_JUDGED = "meets", "fails", "unclear", "not judged"


def _against_min(iv: Interval, bar: float) -> str:
    if not (math.isfinite(iv.ci_low) and math.isfinite(iv.ci_high)):
        return UNCLEAR
    return MEETS if iv.ci_low >= bar else FAILS if iv.ci_high < bar else UNCLEAR


def _against_range(lo_, hi_, bar) -> str:
    a, b = bar
    if not (np.isfinite(lo_) and np.isfinite(hi_)):
        return UNCLEAR
    if lo_ >= a and hi_ <= b:
        return MEETS
    if hi_ < a or lo_ > b:
        return FAILS
    return UNCLEAR


@dataclass
class Verdict:
    accurate: str  # meets / fails / unclear
    fair: str
    chance: bool  # the AUC's interval includes 0.5: no better than chance
    checks: list[dict] = field(default_factory=list)  # each: what, group, value, interval, bar, result

    def to_dict(self) -> dict:
        return {
            "accurate": self.accurate,
            "fair": self.fair,
            "no_better_than_chance": self.chance,
            "checks": self.checks,
        }


def _overall(results) -> str:
    results = [r for r in results if r != NOT_JUDGED]
    if any(r == FAILS for r in results):
        return FAILS
    if results and all(r == MEETS for r in results):
        return MEETS
    return UNCLEAR


def verdict(a: ModelAudit, bars: dict) -> Verdict:
    """Each pre-stated bar judged on its interval: met (the whole interval on the right side),
    failed (the whole interval on the wrong side) or unclear; the model is accurate enough only
    if every accuracy bar is met, and equal enough only if no group fails and none is unclear."""
    accuracy = _accuracy_checks(a.metrics, bars)
    fairness = _fairness_checks(a.groups, bars)
    chance = bool(not (a.metrics["auc"].ci_low > 0.5))
    return Verdict(
        _overall([c["result"] for c in accuracy]),
        _overall([c["result"] for c in fairness]),
        chance,
        accuracy + fairness,
    )


def _check(what: str, group: str, estimate, lo, hi, bar, result: str) -> dict:
    return {
        "what": what,
        "group": group,
        "estimate": estimate,
        "ci_low": lo,
        "ci_high": hi,
        "bar": bar,
        "result": result,
    }


def _accuracy_checks(m: dict[str, Interval], bars: dict) -> list[dict]:
    """AUC and precision against their minimum, the calibration slope and intercept against their range."""
    checks = [
        _check(k, "", m[k].estimate, m[k].ci_low, m[k].ci_high, bars[bar], _against_min(m[k], bars[bar]))
        for k, bar in (("auc", "auc_min"), ("precision", "precision_min"))
    ]
    for k in ("calibration_slope", "calibration_intercept"):
        result = _against_range(m[k].ci_low, m[k].ci_high, bars[k])
        checks.append(_check(k, "", m[k].estimate, m[k].ci_low, m[k].ci_high, list(bars[k]), result))
    return checks


def _fairness_checks(groups: dict[str, pd.DataFrame], bars: dict) -> list[dict]:
    """Every group's calibration, flag rate and error rates against their ranges (groups smaller than
    min_group_cases are shown but not judged)."""
    d = float(bars["group_error_rate_difference"])
    checks = []
    for attr, t in groups.items():
        for g, row in t.iterrows():
            small = row["cases"] < bars["min_group_cases"]
            for col, bar in (
                ("observed_expected", bars["group_observed_expected"]),
                ("flag_rri", bars["group_flag_rri"]),
                ("fpr_difference", [-d, d]),
                ("fnr_difference", [-d, d]),
            ):
                lo, hi = row[f"{col}_low"], row[f"{col}_high"]
                result = NOT_JUDGED if small else _against_range(lo, hi, bar)
                checks.append(_check(col, f"{attr}: {g}", row[col], lo, hi, list(bar), result))
    return checks
