"""Intervention effect: did an intervention change re-referral, and how sure are we?

An evaluator names an intervention (say Family Group Conferences), the covariates that
drove who received it and a causal graph (DAG) in the evaluation file. This module turns
a council's tables into one row per closed episode with a treatment flag and two outcomes,
then estimates the effect of the intervention on

* re-referral within the horizon (a yes/no outcome): inverse probability weighting,
  propensity-score matching, regression adjustment and a doubly robust (AIPW) estimator,
  each with a valid interval (influence-function errors clustered by child; Abadie-Imbens
  errors for matching);
* time to re-referral: inverse-probability-weighted Kaplan-Meier curves, the risk and
  restricted mean survival time (RMST) differences at the horizon (child-cluster
  bootstrap intervals) and a weighted Cox hazard ratio with child-clustered robust errors.

DoWhy supplies the causal model, the identification of the adjustment set from the graph
(back-door criterion), a cross-check of the weighting and matching estimates and its
refuters. Diagnostics (standardised differences, effective sample size, propensity
overlap and trimming, E-values) say how far the answer can be trusted. The estimands and
the handling of censoring and competing events are set out in docs/causal.md.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import pandas as pd

from insightlib.analyses import intervention_cases, intervention_estimates
from insightlib.analyses import scenarios as scenario_analysis
from insightlib.analyses import subgroups as subgroup_analysis
from insightlib.analyses.intervention_cases import Cases, FollowedUp
from insightlib.analyses.intervention_estimates import YesNoEffects
from insightlib.analyses.intervention_frame import analysis_frame
from insightlib.analyses.intervention_parameters import check_parameters
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.errors import InputError
from insightlib.report.intervention import InterventionEffect
from insightlib.stats.effects import Estimate
from insightlib.stats.refuters import refute
from insightlib.stats.threads import one_thread


def evaluate_intervention(
    tables: dict[str, pd.DataFrame] | None = None,
    *,
    intervention: str,
    horizon_days: int,
    covariates: list[str],
    graph: str | None = None,
    estimand: str = "ATE",
    frame: pd.DataFrame | None = None,
    episodes: pd.DataFrame | None = None,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    **options,
) -> InterventionEffect:
    """The whole analysis for one council: checks, frame, DoWhy identification, estimates,
    diagnostics, refuters. Pass ``frame`` (from analysis_frame) to skip building it. Without a
    ``graph``, each covariate is a common cause of intervention and re-referral (as in DoWhy),
    and the report says so (``assumptions()``).

    Linear algebra runs on one thread (``stats.threads``: the matrices are small)."""
    with one_thread():
        return _evaluate(
            tables,
            intervention=intervention,
            horizon_days=horizon_days,
            covariates=covariates,
            graph=graph,
            estimand=estimand,
            frame=frame,
            episodes=episodes,
            disclosure_threshold=disclosure_threshold,
            **options,
        )


def _evaluate(
    tables, *, intervention, horizon_days, covariates, graph, estimand, frame, episodes, disclosure_threshold, **options
) -> InterventionEffect:
    """Every step of the analysis in turn, each timed for results.json: the closed cases (frame); what to allow
    for (identification from the graph); comparable cases and their weights (propensity and overlap); the effect
    on re-referral within the horizon and DoWhy's cross-check of it; the effect over time (weighted survival
    curves and Cox); the robustness checks (refuters); who responds best and what if it reached more; then
    the result. Each step's estimator is a function of stats/."""
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    notes: list[str] = []
    params = _parameters(intervention, horizon_days, covariates, graph, estimand, disclosure_threshold, options)
    frame = _closed_cases(tables, frame, episodes, params)
    seconds["frame"] = time.perf_counter() - started
    with _timed(seconds, "identify"):
        found = intervention_cases.identification(params, frame, notes)
    with _timed(seconds, "propensity"):
        scores, overlap, cases = intervention_cases.comparable_cases(frame, found.adjust, params, notes)
        balance, ess = intervention_cases.balance(cases, notes)
    with _timed(seconds, "binary"):
        followed = intervention_cases.followed_up(cases, params["horizon_days"])
        yes_no = intervention_estimates.yes_no_effects(followed, params)
    with _timed(seconds, "dowhy_crosscheck"):
        dowhy = intervention_estimates.dowhy_check(found, cases, followed, yes_no, params, notes)
    with _timed(seconds, "survival_bootstrap"):
        km = intervention_estimates.weighted_survival(cases, params, notes)
    curves = intervention_estimates.curves(cases, km, params)
    with _timed(seconds, "cox"):
        hazard, hazard_conditional = intervention_estimates.hazard_ratios(cases, params["confidence_level"], notes)
    effect, e_value = intervention_estimates.headline_effects(km, hazard, hazard_conditional, yes_no, followed)
    with _timed(seconds, "refuters"):
        refutations = _refutations(found, cases, yes_no, params)
    subgroups = _subgroups(cases, followed, yes_no, params)
    scenarios = _scenarios(tables, cases, effect["risk_difference"], params)
    seconds["total"] = time.perf_counter() - started
    return InterventionEffect(
        parameters=params,
        counts=intervention_cases.counts(frame, cases, followed),
        adjustment_set=found.adjust,
        not_adjusted=found.not_adjusted,
        methods=yes_no.methods,
        effect=effect,
        naive=yes_no.naive,
        risks={"treated": km["r1"], "control": km["r0"], **yes_no.risks},
        balance=balance,
        ess=ess,
        overlap=overlap,
        survival=curves,
        e_value=e_value,
        refutations=refutations,
        dowhy=dowhy,
        notes=notes,
        seconds={k: round(v, 2) for k, v in seconds.items()},
        scenarios=scenarios,
        subgroups=subgroups,
        _ps=intervention_cases.scores_by_group(scores, frame),
    )


@contextmanager
def _timed(seconds: dict[str, float], step: str):
    """Time one step of the analysis into ``seconds`` (reported in results.json)."""
    start = time.perf_counter()
    yield
    seconds[step] = time.perf_counter() - start


def _parameters(intervention, horizon_days, covariates, graph, estimand, disclosure_threshold, options) -> dict:
    """Every parameter checked (a misspelt one is an error naming it), with the disclosure threshold."""
    params = check_parameters(
        {
            "intervention": intervention,
            "horizon_days": horizon_days,
            "covariates": covariates,
            "graph": graph,
            "estimand": estimand,
            **options,
        }
    )
    params["disclosure_threshold"] = disclosure_threshold
    return params


# ---- the closed cases and what to allow for --------------------------------------------------------------------
def _closed_cases(tables, frame: pd.DataFrame | None, episodes, params: dict) -> pd.DataFrame:
    """The analysis frame (built unless given), refused when either group has fewer than two cases."""
    if frame is None:
        frame = analysis_frame(
            tables or {}, params["intervention"], params["horizon_days"], params["covariates"], episodes=episodes
        )
    frame = frame.reset_index(drop=True)
    total, treated = len(frame), int(frame["treatment"].sum())
    if treated < 2 or total - treated < 2:
        raise InputError(
            f"Only {treated} of {total} episodes had '{params['intervention']}', so there is nobody to compare."
        )
    return frame


def _refutations(found, cases: Cases, yes_no: YesNoEffects, params: dict) -> dict:
    """DoWhy's refuters on a bounded sample of the comparable cases, judged against the IPW estimate's error."""
    return refute(
        found.graph,
        cases.frame,
        found.adjust,
        params["estimand"],
        simulations=params["refutation_simulations"],
        sample=params["refutation_sample"],
        seed=params["seed"],
        se=yes_no.methods["ipw"].se,
    )


# ---- who responds best, and what if it reached more ------------------------------------------------------------------
def _subgroups(cases: Cases, followed: FollowedUp, yes_no: YesNoEffects, params: dict):
    m1, m0 = yes_no.outcome_models
    return subgroup_analysis.for_intervention(
        cases.frame.loc[followed.rows].reset_index(drop=True),
        followed.rereferred,
        followed.treated,
        followed.propensity,
        m1,
        m0,
        followed.children,
        params["subgroups"],
        level=params["confidence_level"],
        disclosure_threshold=params["disclosure_threshold"],
    )


def _scenarios(tables, cases: Cases, risk_difference: Estimate, params: dict):
    frame = cases.frame
    return scenario_analysis.for_intervention(
        frame,
        risk_difference,
        shares=params["scenario_shares"],
        estimand=params["estimand"],
        horizon_days=params["horizon_days"],
        level=params["confidence_level"],
        extract_date=scenario_analysis.extract_date_of(tables, frame) if "closure_date" in frame.columns else None,
    )
