"""Who the intervention analysis compares: what the causal graph says to allow for (DoWhy's identification),
the propensity scores and overlap rule that decide which closed cases are comparable, their weights and the
balance those achieve, and the cases followed for the whole horizon (the yes/no outcome's sample)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_parameters import parse_graph
from insightlib.contract import BALANCE_CUTOFF
from insightlib.errors import InputError
from insightlib.report.intervention_words import safe_split, term_label
from insightlib.stats.propensity import (
    Design,
    balance_table,
    crump_alpha,
    design_matrix,
    fit_logistic,
    kish_ess,
    propensity_design,
    weights_for,
)
from insightlib.stats.refuters import identify


@dataclass
class Identification:
    """What the causal graph says to allow for (DoWhy's back-door identification)."""

    graph: Any
    model: Any  # dowhy.CausalModel
    estimand: Any  # DoWhy's identified estimand
    adjust: list[str]
    not_adjusted: list[str]


def identification(params: dict, frame: pd.DataFrame, notes: list[str]) -> Identification:
    graph = parse_graph(params["graph"])
    model, estimand, adjust = identify(graph, frame, params["covariates"])
    not_adjusted = [c for c in params["covariates"] if c not in adjust]
    if not_adjusted:
        notes.append(
            f"By the graph, these are not needed to block back-door paths and are not adjusted for: {', '.join(not_adjusted)}."
        )
    return Identification(graph, model, estimand, adjust, not_adjusted)


# ---- comparable cases: propensity, overlap and weights -----------------------------------------------------------
def covariate_design(frame: pd.DataFrame, adjust: list[str]) -> tuple[Design | None, np.ndarray]:
    """The design of the characteristics allowed for (an intercept alone when there are none)."""
    design = design_matrix(frame, adjust) if adjust else None
    return design, design.X if design else np.ones((len(frame), 1))


def scores_of_all(frame: pd.DataFrame, adjust: list[str]) -> np.ndarray:
    """Propensity scores of every episode at risk (before trimming): the overlap rule and plot use them."""
    _, X = covariate_design(frame, adjust)
    treated = frame["treatment"].to_numpy().astype(float)
    _, scores, _ = fit_logistic(propensity_design(X, treated), treated)
    return scores


def scores_by_group(scores: np.ndarray, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    treated = frame["treatment"].to_numpy().astype(float)
    return {"treated": scores[treated == 1].copy(), "control": scores[treated == 0].copy()}


def comparable_cases(
    frame: pd.DataFrame, adjust: list[str], params: dict, notes: list[str]
) -> tuple[np.ndarray, dict, Cases]:
    """Propensity scores of every case, the overlap rule, and the kept cases with their own propensity model and
    weights: (scores of all, overlap summary, the comparable cases)."""
    scores = scores_of_all(frame, adjust)
    keep, summary = overlap(scores, frame["treatment"].to_numpy().astype(float), params, notes)
    return scores, summary, weighted_cases(frame.loc[keep].reset_index(drop=True), adjust, params["estimand"])


def overlap_limits(scores: np.ndarray, trim) -> tuple[float, float]:
    """The propensity limits of the trim rule: Crump et al. (2009), none, or fixed [low, high]."""
    if trim == "crump":
        alpha = crump_alpha(np.clip(scores, 1e-12, 1 - 1e-12))
        return alpha, 1 - alpha
    if trim == "none":
        return 0.0, 1.0
    return trim


def overlap(scores: np.ndarray, treated: np.ndarray, params: dict, notes: list[str]) -> tuple[np.ndarray, dict]:
    """Which cases to keep (those with overlap) and the overlap summary for results.json and the report."""
    trim, threshold = params["trim"], int(params["disclosure_threshold"])
    lo, hi = overlap_limits(scores, trim)
    keep = (scores >= lo) & (scores <= hi) if (lo > 0 or hi < 1) else np.ones(len(scores), bool)
    if 1 <= int((~keep).sum()) < threshold:
        # the report states how many cases it analysed and the re-referral report how many were followed up:
        # setting aside fewer than the threshold would publish that small count by subtraction
        notes.append(
            f"Fewer than {threshold} closed cases fell outside the overlap limits "
            f"({lo:.3f} to {hi:.3f}); they were kept, since setting so few aside would give their number away."
        )
        keep, lo, hi = np.ones(len(scores), bool), 0.0, 1.0
    trimmed = {"treated": int(((~keep) & (treated == 1)).sum()), "control": int(((~keep) & (treated == 0)).sum())}
    if (~keep).any():
        notes.append(
            f"{safe_split(trimmed['treated'], trimmed['control'], threshold)} were set aside: their "
            f"estimated chance of receiving the intervention was outside {lo:.3f} to {hi:.3f} (rule: "
            f"{'Crump et al. 2009' if trim == 'crump' else 'fixed limits'}). The estimates describe the children with overlap."
        )
    return keep, {
        "rule": trim if isinstance(trim, str) else "fixed",
        "trim_low": float(lo),
        "trim_high": float(hi),
        "trimmed": trimmed,
        "trimmed_total": int((~keep).sum()),
        "propensity_quantiles": {
            arm: {q: float(np.quantile(scores[treated == v], q / 100)) for q in (5, 25, 50, 75, 95)}
            for arm, v in (("treated", 1), ("control", 0))
        },
    }


@dataclass
class Cases:
    """The closed cases analysed (those with overlap), their propensity model and weights."""

    frame: pd.DataFrame
    design: Design | None
    covariates: np.ndarray  # the design matrix (intercept first)
    treated: np.ndarray  # 1.0 received the intervention
    propensity_design: np.ndarray
    propensity_coef: np.ndarray
    propensity: np.ndarray  # clipped to [1e-6, 1 - 1e-6]
    children: np.ndarray  # cluster id of each case's child
    weights: np.ndarray


def weighted_cases(frame: pd.DataFrame, adjust: list[str], estimand: str) -> Cases:
    design, X = covariate_design(frame, adjust)
    treated = frame["treatment"].to_numpy().astype(float)
    Xp = propensity_design(X, treated)
    coef, scores, _ = fit_logistic(Xp, treated)
    scores = np.clip(scores, 1e-6, 1 - 1e-6)
    weights = weights_for(treated, scores, estimand)
    children = pd.factorize(frame["child_id"])[0]
    return Cases(frame, design, X, treated, Xp, coef, scores, children, weights)


def balance(cases: Cases, notes: list[str]) -> tuple[pd.DataFrame, dict]:
    """Standardised differences before and after weighting, and the effective sample size of each group."""
    t, w = cases.treated, cases.weights
    if cases.design:
        balance = balance_table(cases.design, t, w)
    else:
        balance = pd.DataFrame(columns=["covariate", "smd_before", "smd_after"])
    if len(balance) and balance["smd_after"].abs().max() >= BALANCE_CUTOFF:
        worst = balance.loc[balance["smd_after"].abs().idxmax()]
        notes.append(
            f"After weighting, {term_label(worst['covariate'])} still differs between the groups (standardised difference "
            f"{worst['smd_after']:+.2f}; {BALANCE_CUTOFF} is the usual limit). A few heavily weighted cases are probably responsible: "
            f"consider trimming (trim: crump) or check the overlap plot."
        )
    ess = {
        "treated": kish_ess(w[t == 1]),
        "control": kish_ess(w[t == 0]),
        "treated_n": int((t == 1).sum()),
        "control_n": int((t == 0).sum()),
    }
    return balance, ess


# ---- re-referral within the horizon (the cases followed for the whole of it) --------------------------------------
@dataclass
class FollowedUp:
    """The cases followed for the whole horizon, with their own propensity model: the yes/no outcome's sample."""

    rows: np.ndarray  # which of the analysed cases
    rereferred: np.ndarray  # 1.0 re-referred within the horizon
    treated: np.ndarray
    covariates: np.ndarray
    children: np.ndarray
    propensity_design: np.ndarray
    propensity: np.ndarray
    propensity_fit: Any  # fit_logistic's information, for the IPW interval


def followed_up(cases: Cases, horizon: int) -> FollowedUp:
    rows = cases.frame["outcome_binary"].notna().to_numpy()
    rereferred = cases.frame.loc[rows, "outcome_binary"].to_numpy(float)
    treated, X = cases.treated[rows], cases.covariates[rows]
    children = pd.factorize(cases.frame.loc[rows, "child_id"])[0]
    if treated.sum() < 2 or (1 - treated).sum() < 2:
        raise InputError(
            f"Too few episodes with {horizon} days of follow-up in one of the groups to estimate the effect on re-referral within {horizon} days."
        )
    Xp = propensity_design(X, treated)
    _, scores, fit = fit_logistic(Xp, treated)
    return FollowedUp(rows, rereferred, treated, X, children, Xp, np.clip(scores, 1e-6, 1 - 1e-6), fit)


def counts(frame: pd.DataFrame, cases: Cases, followed: FollowedUp) -> dict[str, int]:
    """The counts behind the report (every one passes disclosure control before it is shown)."""
    total, treated = len(frame), int(frame["treatment"].sum())
    t, y, tb = cases.treated, followed.rereferred, followed.treated
    return {
        "episodes": total,
        "treated": treated,
        "control": total - treated,
        "analysed": int(len(cases.frame)),
        "analysed_treated": int((t == 1).sum()),
        "analysed_control": int((t == 0).sum()),
        "children": int(cases.children.max() + 1),
        "binary_analysed": int(followed.rows.sum()),
        "binary_treated": int(tb.sum()),
        "binary_control": int((1 - tb).sum()),
        "binary_excluded_incomplete_followup": int((~followed.rows).sum()),
        "rereferred_within_horizon": int(y.sum()),
        "rereferred_treated": int(y[tb == 1].sum()),
        "rereferred_control": int(y[tb == 0].sum()),
    }
