"""stats/dowhy_weighting.py: DoWhy's weighting estimator made cheaper for the refuters must give what DoWhy's own
gives: the same one-hot encoding (exactly) and the same estimates and refutations (to 1e-12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightlib.analyses import intervention_parameters
from insightlib.simulate import intervention as simulate_intervention
from insightlib.stats import dowhy_weighting, refuters


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "need": rng.choice(["N1 Abuse", "N2 Disability", "N4 Family", "N9 Other"], n),
            "flag": rng.integers(0, 2, n),
            "age": rng.choice(["0-4", "5-9", "10-15", "16+"], n),
            "only": ["one"] * n,  # a single category: no column once the first is dropped
            "score": rng.normal(size=n),
        }
    )


def test_category_encoders_give_dowhys_encoding_exactly():
    from dowhy.utils.encoding import Encoders

    data = _frame()
    ours, theirs = dowhy_weighting.CategoryEncoders(), Encoders()
    a, b = ours.encode(data, "x"), theirs.encode(data, "x")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    # a later call reuses the fitted categories (a subset missing a level keeps every column)
    part = data[data["need"] != "N2 Disability"].iloc[:50]
    pd.testing.assert_frame_equal(ours.encode(part, "x"), theirs.encode(part, "x"), check_exact=True)
    with pytest.raises(ValueError, match="unknown categories"):
        ours.encode(data.assign(need="N8 New"), "x")


def test_category_encoders_hand_anything_else_to_dowhy():
    from dowhy.utils.encoding import Encoders

    for data in (
        _frame().assign(need=lambda d: d["need"].where(d.index % 7 > 0)),  # missing values
        _frame().astype({"age": "category"}),
        _frame()[["flag", "score"]],  # nothing to encode
    ):
        pd.testing.assert_frame_equal(
            dowhy_weighting.CategoryEncoders().encode(data, "x"), Encoders().encode(data, "x"), check_exact=True
        )


def _dowhys_own(identified_estimand, propensity_model, *, min_ps_score, max_ps_score):
    from dowhy.causal_estimators.propensity_score_weighting_estimator import PropensityScoreWeightingEstimator

    return PropensityScoreWeightingEstimator(
        identified_estimand,
        weighting_scheme="ips_normalized_weight",
        propensity_score_model=propensity_model,
        min_ps_score=min_ps_score,
        max_ps_score=max_ps_score,
        need_conditional_estimates=False,
    )


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_refutations_equal_dowhys_own_estimator(monkeypatch, estimand):
    frame, _ = simulate_intervention.simulate_frame(1500, seed=4, truth_draws=10)
    frame["primary_need"] = frame["primary_need"].astype(str)
    graph = intervention_parameters.parse_graph(simulate_intervention.SIM_GRAPH)
    args = (graph, frame, simulate_intervention.SIM_COVARIATES, estimand)
    kw = {"simulations": 3, "sample": 1000, "seed": 7, "se": 0.02}
    ours = refuters.refute(*args, **kw)
    monkeypatch.setattr(refuters, "weighting_estimator", _dowhys_own)
    theirs = refuters.refute(*args, **kw)
    assert set(ours) == set(theirs) == {"placebo_treatment", "random_common_cause", "data_subset"}
    for name in ours:
        for key in ("estimated_effect", "new_effect", "p_value", "limit"):
            assert ours[name][key] == pytest.approx(theirs[name][key], rel=1e-12, abs=1e-12), (name, key)
        assert ours[name]["passed"] == theirs[name]["passed"]
