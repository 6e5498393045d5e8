"""DoWhy's side of the intervention effect: the causal model from the graph, identification of the
adjustment set (back-door criterion), a cross-check of the weighting and matching estimates, and its
refuters with the limits a refuted estimate must stay within."""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings

import networkx as nx
import numpy as np
import pandas as pd

from insightlib.stats.dowhy_weighting import weighting_estimator


#: Graph node names that stand for the treatment and the outcome.
TREATMENT_NODE = "intervention"
OUTCOME_NODE = "rereferral"
log = logging.getLogger(__name__)


def _dowhy_frame(frame: pd.DataFrame, covariates, outcome_col="outcome_binary") -> pd.DataFrame:
    d = frame[covariates].copy()
    d[TREATMENT_NODE] = frame["treatment"].astype(int).to_numpy()
    d[OUTCOME_NODE] = frame[outcome_col].astype(float).to_numpy()
    return d


def _causal_model_class():
    """dowhy.CausalModel, imported quietly: importing DoWhy warns about tqdm's notebook widgets
    and pyparsing names, which would otherwise appear in every report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dowhy import CausalModel
    logging.getLogger("dowhy").setLevel(logging.ERROR)
    return CausalModel


#: Identified estimands by (graph, covariates), kept for the process: a batch asks DoWhy to identify
#: the same graph for every council, and the answer depends on the graph alone.
_IDENTIFIED: dict = {}


def identify(graph: nx.DiGraph, frame: pd.DataFrame, covariates):
    """DoWhy's causal model and the back-door adjustment set implied by the graph (identified once per
    graph and covariate list in a process; each call gets its own copy of the estimand)."""
    CausalModel = _causal_model_class()

    data = _dowhy_frame(
        frame.dropna(subset=["outcome_binary"]) if frame["outcome_binary"].notna().any() else frame, covariates
    )
    key = (tuple(sorted(map(str, graph.nodes))), tuple(sorted(map(str, graph.edges))), tuple(covariates))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CausalModel(data=data, treatment=TREATMENT_NODE, outcome=OUTCOME_NODE, graph=nx.DiGraph(graph))
        if key not in _IDENTIFIED:
            _IDENTIFIED[key] = model.identify_effect(proceed_when_unidentifiable=False)
        estimand = copy.deepcopy(_IDENTIFIED[key])
    backdoor = estimand.get_backdoor_variables() or []
    return model, estimand, [c for c in covariates if c in backdoor]


def _sk_logit():
    """The propensity model DoWhy fits in each refuter run: an unpenalised logistic regression solved by
    Newton's method (a few Cholesky steps on a few dozen columns) to the maximum likelihood the rest of the
    analysis uses. scikit-learn's default L-BFGS stopped early at its tolerance (the refuters' starting
    estimate 0.03 points from the MLE's on a 20,000-episode council) and took longer (issue 17 item 2)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(penalty=None, solver="newton-cholesky", max_iter=100)


def dowhy_crosscheck(model, estimand, e: np.ndarray, target: str) -> dict:
    """DoWhy's own weighting and matching estimates on our propensity scores (they must agree)."""
    out = {}
    data = model._data.copy()
    data["propensity_score"] = e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, method, extra in (
            (
                "ipw",
                "backdoor.propensity_score_weighting",
                {"weighting_scheme": "ips_normalized_weight", "min_ps_score": 0.0, "max_ps_score": 1.0},
            ),
            ("matching", "backdoor.propensity_score_matching", {}),
        ):
            old = model._data
            model._data = data
            try:
                extra["need_conditional_estimates"] = False
                est = model.estimate_effect(
                    estimand,
                    method_name=method,
                    target_units=target.lower(),
                    effect_modifiers=[],
                    method_params={"init_params": extra},
                )
                out[name] = float(est.value)
            finally:
                model._data = old
    return out


#: How far a refuter's average may move by chance alone, in standard errors of that average
#: (a check fails by chance about 1 time in 20).
REFUTER_Z = 1.96


def refuter_limit(name: str, se: float | None, simulations: int, estimated_effect: float) -> float:
    """How far from where it should be a refuter's result may land before the check fails.

    With the estimate's standard error ``se`` (on the refuters' sample): a permuted treatment's
    effect varies about like the estimate itself, an 80% subset's estimate differs from the
    whole sample's by sqrt(1/0.8 - 1) = 0.5 of it, and a random extra covariate moves it less;
    each check averages ``simulations`` runs. Without a standard error: a quarter of the estimate
    or 2 points, whichever is more.
    """
    if se is None or not np.isfinite(se) or se <= 0:
        return max(0.25 * abs(estimated_effect), 0.02)
    spread = se if name == "placebo_treatment" else 0.5 * se
    return max(REFUTER_Z * spread / math.sqrt(max(simulations, 1)), 0.005)


def refute(
    graph,
    frame: pd.DataFrame,
    covariates,
    estimand_type: str,
    *,
    simulations: int,
    sample: int,
    seed: int,
    se: float | None = None,
) -> dict:
    """DoWhy's placebo-treatment, random-common-cause and data-subset refuters on the
    weighting estimator, kept quick: few simulations, on a random subsample if large.
    ``se`` is the weighting estimate's standard error on the whole frame, which sets how far
    chance alone may move each check (refuter_limit)."""
    if simulations <= 0:
        return {}
    d = frame.dropna(subset=["outcome_binary"])
    if len(d) > sample:
        d = d.sample(sample, random_state=seed)
    data = _dowhy_frame(d, covariates).reset_index(drop=True)
    logging.getLogger("dowhy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, ident, est = _weighting_estimate(graph, data, covariates, estimand_type)
        out = _run_refuters(model, ident, est, simulations, seed, len(data))
    n_all = int(frame["outcome_binary"].notna().sum())
    se_sample = None if se is None else float(se) * math.sqrt(n_all / max(len(data), 1))
    for name, r in out.items():
        if "error" in r:
            r["passed"] = None
            continue
        r["limit"] = refuter_limit(name, se_sample, simulations, r["estimated_effect"])
        # a permuted (meaningless) treatment should have about no effect; adding noise or
        # dropping 20% of episodes should leave the estimate about where it was
        should_be = 0.0 if name == "placebo_treatment" else r["estimated_effect"]
        r["passed"] = bool(abs(r["new_effect"] - should_be) <= r["limit"])
    return out


def _weighting_estimate(graph, data: pd.DataFrame, covariates, estimand_type: str):
    """DoWhy's causal model on the refuters' sample, its identified estimand (cached per graph) and its
    normalised inverse-propensity weighting estimate: (model, estimand, estimate). The estimator is DoWhy's own
    made cheaper (stats/dowhy_weighting.py); the refuters' copies of it inherit that."""
    from dowhy.causal_estimator import estimate_effect

    columns = list(data.columns)
    CausalModel = _causal_model_class()
    model = CausalModel(data=data, treatment=TREATMENT_NODE, outcome=OUTCOME_NODE, graph=nx.DiGraph(graph))
    key = (tuple(sorted(map(str, graph.nodes))), tuple(sorted(map(str, graph.edges))), tuple(covariates))
    if key not in _IDENTIFIED:
        _IDENTIFIED[key] = model.identify_effect(proceed_when_unidentifiable=False)
    ident = copy.deepcopy(_IDENTIFIED[key])
    estimator = weighting_estimator(ident, _sk_logit(), min_ps_score=0.01, max_ps_score=0.99)
    # what CausalModel.estimate_effect(method_name="backdoor.propensity_score_weighting") does with it
    est = estimate_effect(
        model._data, model._treatment, model._outcome, "backdoor", estimator, 0, 1, estimand_type.lower(), [], True, {}
    )
    # DoWhy's weighting estimator stores the fitted propensity in the model's data; refuters
    # must refit it on their altered data, so drop it (else the placebo reuses it)
    model._data = data.loc[:, columns].copy()
    return model, ident, est


#: The refuters run, in order: (name in results.json, DoWhy's method, its options).
REFUTERS = (
    ("placebo_treatment", "placebo_treatment_refuter", {"placebo_type": "permute"}),
    ("random_common_cause", "random_common_cause", {}),
    ("data_subset", "data_subset_refuter", {"subset_fraction": 0.8}),
)


def _run_refuters(model, ident, est, simulations: int, seed: int, rows: int) -> dict[str, dict]:
    """Each refuter's estimate before and after its change, for results.json (a refuter that fails records
    its error instead: it must not lose the analysis)."""
    out: dict[str, dict] = {}
    np.random.seed(seed)
    for name, method, kw in REFUTERS:
        t0 = time.perf_counter()
        try:
            r = model.refute_estimate(
                ident, est, method_name=method, num_simulations=simulations, random_state=seed, **kw
            )
            res = r.refutation_result or {}
            out[name] = {
                "estimated_effect": float(r.estimated_effect),
                "new_effect": float(r.new_effect),
                "p_value": float(res.get("p_value")) if res.get("p_value") is not None else None,
                "simulations": simulations,
                "rows": rows,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        except Exception as exc:  # a refuter failing must not lose the analysis
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
