"""The intervention analysis's estimates on the comparable cases: the effect on re-referral within the horizon
by each estimator (and DoWhy's cross-check of them), the weighted survival curves, the Cox hazard ratios and
the headline effects with their E-values. The estimators themselves are in stats/effects.py and stats/cox.py."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from insightlib.analyses.intervention_cases import Cases, FollowedUp, Identification
from insightlib.contract import MIN_AT_RISK
from insightlib.stats.cox import cox_fit, robust_variance
from insightlib.stats.effects import (
    Estimate,
    _cluster_se,
    _z,
    aipw_estimate,
    evalue,
    ipw_estimate,
    ipw_survival,
    matching_estimate,
    naive_difference,
    regression_estimate,
)
from insightlib.stats.refuters import _dowhy_frame, dowhy_crosscheck


@dataclass
class YesNoEffects:
    """The effect on re-referral within the horizon by each estimator, and what the later steps reuse."""

    naive: dict[str, Estimate]
    methods: dict[str, Estimate]
    risk_ratio: Estimate  # from the doubly robust potential-outcome means
    outcome_models: tuple[np.ndarray, np.ndarray]  # predicted re-referral with and without, per case
    risks: dict[str, float]  # the doubly robust re-referral shares with and without


def yes_no_effects(followed: FollowedUp, params: dict) -> YesNoEffects:
    y, t, e, c = followed.rereferred, followed.treated, followed.propensity, followed.children
    estimand, level = params["estimand"], params["confidence_level"]
    methods: dict[str, Estimate] = {}
    naive = {"risk_difference": naive_difference(y, t, c, level)}
    methods["ipw"], _ = ipw_estimate(y, t, followed.propensity_design, e, c, estimand, level, followed.propensity_fit)
    methods["matching"] = matching_estimate(y, t, e, estimand, level)
    methods["regression"], (m1, m0) = regression_estimate(y, t, followed.covariates, c, estimand, level)
    methods["aipw"], (mu1, mu0, if1, if0) = aipw_estimate(y, t, e, m1, m0, c, estimand, level)
    # risk ratio from the doubly robust potential-outcome means (for the E-value)
    se_log = _cluster_se(if1 / mu1 - if0 / mu0, c)
    z, log_rr = _z(level), math.log(mu1 / mu0)
    risk_ratio = Estimate(
        float(mu1 / mu0),
        float(math.exp(log_rr - z * se_log)),
        float(math.exp(log_rr + z * se_log)),
        se_log,
        "delta method on the log scale",
    )
    risks = {"binary_treated": float(mu1), "binary_control": float(mu0)}
    return YesNoEffects(naive, methods, risk_ratio, (m1, m0), risks)


def dowhy_check(
    found: Identification, cases: Cases, followed: FollowedUp, yes_no: YesNoEffects, params: dict, notes
) -> dict:
    """DoWhy's own weighting and matching estimates on the same cases (they should agree with ours)."""
    dowhy = {"estimand_type": str(getattr(found.estimand, "estimand_type", "")), "backdoor_variables": found.adjust}
    try:
        found.model._data = _dowhy_frame(cases.frame.loc[followed.rows].reset_index(drop=True), params["covariates"])
        dowhy.update(dowhy_crosscheck(found.model, found.estimand, followed.propensity, params["estimand"]))
        dowhy["agrees_ipw"] = bool(abs(dowhy["ipw"] - yes_no.methods["ipw"].estimate) < 1e-6)
    except Exception as exc:
        notes.append(f"The cross-check of the estimates could not run: {type(exc).__name__}: {exc}")
    return dowhy


# ---- time to re-referral -------------------------------------------------------------------------------------------
def weighted_survival(cases: Cases, params: dict, notes: list[str]) -> dict:
    """Weighted Kaplan-Meier curves, risk and RMST differences at the horizon, with child-bootstrap intervals."""
    km = ipw_survival(
        cases.frame["time"].to_numpy(float),
        cases.frame["event"].to_numpy(int),
        cases.treated,
        cases.propensity_design,
        cases.propensity_coef,
        cases.children,
        params["horizon_days"],
        params["estimand"],
        params["bootstrap_reps"],
        params["confidence_level"],
        np.random.default_rng(params["seed"]),
    )
    if km["risk_ratio"] is None:
        notes.append("Too few bootstrap replicates for survival intervals; they are missing.")
    return km


def curves(cases: Cases, km: dict, params: dict) -> pd.DataFrame:
    """The adjusted curves on a weekly grid, cut where fewer than MIN_AT_RISK (unweighted) remain at risk, and not
    drawn while 1 to threshold - 1 of the group have come back (as the re-referral report's curves): with ATT
    the treated group's weights are 1, so its curve is a plain Kaplan-Meier whose height with the group size
    gives the count back, and with any weights a curve read point by point shows each week a child came back."""
    horizon, threshold = params["horizon_days"], int(params["disclosure_threshold"])
    t, time_, event = cases.treated, cases.frame["time"].to_numpy(float), cases.frame["event"].to_numpy(int)
    days = np.unique(np.concatenate([np.arange(0, horizon + 1, 7), [horizon]])).astype(float)
    pos = np.searchsorted(km["fit"].grid, days, side="right") - 1
    curves = pd.DataFrame({"day": days.astype(int)})
    for arm, v, surv, ci in (("treated", 1, km["s1"], km["c1"]), ("control", 0, km["s0"], km["c0"])):
        at_risk = np.array([np.sum((t == v) & (time_ >= d)) for d in days])
        curves[f"{arm}_survival"] = surv[pos]
        curves[f"{arm}_ci_low"] = ci[0][pos]
        curves[f"{arm}_ci_high"] = ci[1][pos]
        curves[f"{arm}_at_risk"] = at_risk
        back = np.array([np.sum((t == v) & (time_ <= d) & (event == 1)) for d in days])
        curves[f"{arm}_shown"] = (at_risk >= MIN_AT_RISK) & ~((back >= 1) & (back < threshold))
    return curves


def _cox_hazard_ratio(fit, children: np.ndarray, level: float, how: str) -> Estimate:
    """The hazard ratio of the first column of a Cox fit, with child-clustered robust (sandwich) errors."""
    z = _z(level)
    log_hr, se = float(fit.beta[0]), float(math.sqrt(robust_variance(fit, children)[0, 0]))
    return Estimate(math.exp(log_hr), math.exp(log_hr - z * se), math.exp(log_hr + z * se), se, how)


def hazard_ratios(cases: Cases, level: float, notes: list[str]) -> tuple[Estimate, Estimate | None]:
    """The weighted (marginal) Cox hazard ratio and the covariate-adjusted (conditional) one; the conditional one
    is comparable with the simulation's and synth's truth, not with the marginal one. insightlib.stats.cox is
    R's coxph with weights and cluster, Efron ties (lifelines' weighted fit took ten times as long and its
    robust errors differ from R's)."""
    time_, event = cases.frame["time"].to_numpy(float), cases.frame["event"].to_numpy(int)
    t, X = cases.treated, cases.covariates
    weighted = cox_fit(time_, event, t[:, None], weights=cases.weights)
    hazard = _cox_hazard_ratio(
        weighted, cases.children, level, "Cox, weighted, robust (sandwich) errors clustered by child"
    )
    if cases.design is None:
        return hazard, None
    xc = np.column_stack([t, X[:, 1:]])
    xc = xc[:, np.r_[True, xc[:, 1:].std(axis=0) > 0]]
    try:
        conditional = _cox_hazard_ratio(
            cox_fit(time_, event, xc),
            cases.children,
            level,
            "Cox adjusted for the covariates (Efron ties), robust errors clustered by child",
        )
    except Exception as exc:
        notes.append(f"The covariate-adjusted Cox model could not be fitted: {type(exc).__name__}.")
        return hazard, None
    return hazard, conditional


def headline_effects(
    km: dict, hazard: Estimate, hazard_conditional: Estimate | None, yes_no: YesNoEffects, followed: FollowedUp
) -> tuple[dict[str, Estimate], dict]:
    """The effects the report leads with, the unadjusted survival points beside them (added to the naive
    comparisons) and the E-values. The E-value goes with the headline (weighted KM risks at the horizon);
    without a bootstrap, with the doubly robust risk ratio of the follow-up-complete cases."""
    effect = {
        "risk_difference": km["risk_difference"],
        "rmst_difference": km["rmst_difference"],
        "hazard_ratio": hazard,
        "risk_ratio": km["risk_ratio"] if km["risk_ratio"] is not None else yes_no.risk_ratio,
        "risk_ratio_binary": yes_no.risk_ratio,
        "risk_difference_binary": yes_no.methods["aipw"],
    }
    if hazard_conditional is not None:
        effect["hazard_ratio_conditional"] = hazard_conditional
    point_only = "unweighted Kaplan-Meier, point only"
    nan = float("nan")
    yes_no.naive["km_risk_difference"] = Estimate(km["naive_risk_difference"], nan, nan, nan, point_only)
    yes_no.naive["rmst_difference"] = Estimate(km["naive_rmst_difference"], nan, nan, nan, point_only)
    rr, common = effect["risk_ratio"], float(np.nanmean(followed.rereferred)) >= 0.15
    e_value = {
        "risk_ratio": evalue(rr.estimate, rr.ci_low, rr.ci_high, "RR"),
        "hazard_ratio": evalue(hazard.estimate, hazard.ci_low, hazard.ci_high, "HR", common=common),
        "outcome_common": common,
    }
    e_value["estimate"] = e_value["risk_ratio"]["estimate"]
    e_value["ci"] = e_value["risk_ratio"]["ci"]
    return effect, e_value
