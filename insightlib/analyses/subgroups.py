"""Who responds best: the intervention analysis's pre-specified subgroups (evaluation file
``subgroups``), estimated by insightlib.stats.subgroups on the analysis's own propensity scores and
outcome models."""

from __future__ import annotations

import difflib

import pandas as pd

from insightlib.stats import subgroups as sg
from insightlib.contract import DISCLOSURE_THRESHOLD

#: Used when the evaluation file names none: those of these that are listed covariates.
DEFAULT_SUBGROUPS = ("primary_need", "age_group", "previous_referrals_group", "disabled")
#: Fewer cases than this in either arm of a subgroup: listed, not estimated.
MIN_ARM = 10


def check_subgroups(value, covariates, kinds: dict) -> tuple[list[str], list[str]]:
    """The evaluation file's ``subgroups``: characteristics among the listed covariates that take a
    few values (a category or yes/no; use age_group rather than age_at_closure). None: the defaults
    that are covariates. Returns (subgroups, problems)."""
    if value is None:
        return [c for c in DEFAULT_SUBGROUPS if c in covariates], []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        return [], [
            f"'subgroups' must be a list of covariates to compare the effect across, e.g. [primary_need, age_group]; got {type(value).__name__}."
        ]
    out, problems = [], []
    for v in items:
        if not isinstance(v, str) or v not in covariates:
            close = difflib.get_close_matches(str(v), list(covariates), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else " Each must also be listed under covariates."
            problems.append(f"subgroup {v!r} is not one of the listed covariates.{hint}")
        elif kinds.get(v) == "numeric":
            problems.append(
                f"subgroup '{v}' is a number with many values; use a banded one (age_group, previous_referrals_group)."
            )
        elif v not in out:
            out.append(v)
    return out, problems


def for_intervention(
    frame: pd.DataFrame,
    y,
    t,
    e,
    m1,
    m0,
    clusters,
    subgroups,
    *,
    level: float = 0.95,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
) -> sg.SubgroupEffects | None:
    """Subgroup effects on re-referral within the horizon among the cases followed for the whole of it
    (``frame`` holds those cases' subgroup columns, in the order of y, t, ...)."""
    if not subgroups:
        return None
    groups = {s: frame[s].astype(str).to_numpy() for s in subgroups if s in frame.columns}
    return sg.subgroup_effects(
        y,
        t,
        e,
        m1,
        m0,
        clusters,
        groups,
        level=level,
        min_arm=max(MIN_ARM, int(disclosure_threshold)),
        threshold=int(disclosure_threshold),
    )
