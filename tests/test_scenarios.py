"""Scenarios for commissioners (insightlib.stats.scenarios): a hand-worked example, the yearly
volumes, the evaluation-file check, and synthetic data whose true effect gives a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from insightlib.analyses import intervention
from insightlib.analyses import intervention_parameters
from insightlib.simulate import intervention as simulate_intervention
from insightlib.errors import EvaluationFileError
from insightlib.report import scenarios as R
from insightlib.stats import scenarios as S


def test_hand_worked_example():
    # effect -8 points (se 2 points); 500 eligible cases a year (se 20); 20% receive it now.
    # 10% more: 0.1 * 500 * -0.08 = -4.0 re-referrals a year;
    # Var(V tau) = 500^2 * 0.02^2 + 0.08^2 * 20^2 + 20^2 * 0.02^2 = 100 + 2.56 + 0.16 = 102.72,
    # so se = 0.1 * sqrt(102.72) = 1.01351 and the 95% interval is -4 +- 1.95996 * 1.01351.
    vol = S.fixed_volume(500, 20)
    res = S.scenarios(-0.08, 0.02, vol, 0.2, [0.1, "none", 0.9], estimand="ATE")
    ten, none, big = res.scenarios
    assert ten.change == pytest.approx(-4.0)
    assert ten.se == pytest.approx(0.1 * math.sqrt(102.72), rel=1e-9)
    assert ten.ci_low == pytest.approx(-4.0 - 1.959964 * 1.013509, abs=1e-4)
    assert ten.ci_high == pytest.approx(-4.0 + 1.959964 * 1.013509, abs=1e-4)
    assert ten.extra_cases == pytest.approx(50) and ten.new_share == pytest.approx(0.3)
    # no one receives it: the 20% now reached lose the effect, +8 a year (se 0.2 * sqrt(102.72))
    assert none.change == pytest.approx(8.0) and none.share_change == pytest.approx(-0.2)
    assert none.ci_low == pytest.approx(8.0 - 1.959964 * 2.027018, abs=1e-4)
    assert none.extra_cases == pytest.approx(-100)
    # 90% more cannot happen: capped at everyone (80 points more)
    assert big.capped and big.share_change == pytest.approx(0.8) and big.change == pytest.approx(-32.0)
    d = res.to_dict()
    assert d["scenarios"][0]["change_in_rereferrals_per_year"] == pytest.approx(-4.0)
    assert d["volume"]["se"] == pytest.approx(20)


def test_product_variance_is_exact_for_independent_draws():
    rng = np.random.default_rng(1)
    a = rng.normal(300, 25, 400_000)
    b = rng.normal(-0.05, 0.03, 400_000)
    est, lo, hi, se = S.product_interval(300, 25**2, -0.05, 0.03**2)
    assert se == pytest.approx(np.std(a * b), rel=0.01)
    assert est == pytest.approx(-15)


def test_annual_volume_hand_worked():
    extract = pd.Timestamp("2025-03-31")
    dates = []
    for k, n in enumerate([110, 120, 100]):  # latest window first: 110, then 120, then 100
        hi = extract - pd.DateOffset(years=k)
        dates += list(pd.date_range(hi - pd.Timedelta(days=364), hi, periods=n))
    v = S.annual_volume(dates, extract, years=3)
    assert v.counts == [100, 120, 110]
    # mean 110; year-to-year variance 100 is below the mean, so 110; times (1 + 1/3)
    assert v.per_year == pytest.approx(110) and v.variance == pytest.approx(110 * 4 / 3)
    assert v.windows[-1] == "2024-04-01 to 2025-03-31"
    # data covering only 14 months: one window, Poisson variance doubled
    v1 = S.annual_volume(dates[:110], extract, years=3, first_date="2024-02-01")
    assert v1.counts == [110] and v1.variance == pytest.approx(220)


def test_shares_are_checked():
    assert S.check_shares([0.1, "None", 0.1, -0.2]) == ([0.1, "none", -0.2], [])
    _, problems = S.check_shares([0, 1.5, "more", True])
    assert len(problems) == 4
    with pytest.raises(EvaluationFileError, match="scenario_shares"):
        intervention_parameters.check_evaluation_parameters({"scenario_shares": [0.1, "lots"]})
    assert intervention_parameters.check_evaluation_parameters({"scenario_shares": []})["scenario_shares"] == []


def test_words_and_table_are_safe():
    res = S.scenarios(-0.08, 0.02, S.fixed_volume(500, 20), 0.2, [0.1, "none"], estimand="ATT")
    counts = {"analysed": 1500, "analysed_treated": 300}
    t = R.table(res, counts, 5)
    assert list(t.index) == ["10% more of eligible cases receive it", "No one receives it"]
    assert t.iloc[0, 2] == "-4.0" and t.iloc[0, 0] == "20% to 30%"
    words = R.headline(res, counts, 5)
    assert "about 4.0 fewer children re-referred within a year" in words
    assert "ATT" in R.assumption_words(res) and "ATE" in R.assumption_words(S.scenarios(
        -0.08, 0.02, S.fixed_volume(500, 20), 0.2, [0.1], estimand="ATE"))
    # a small treated group: the share (and everything built on it) is hidden
    small = R.table(res, {"analysed": 1500, "analysed_treated": 3}, 5)
    assert set(small.iloc[:, :3].to_numpy().ravel()) == {"c"} and "fewer than 5" in small.attrs["note"]
    assert "Not shown" in R.headline(res, {"analysed": 1500, "analysed_treated": 3}, 5)
    import matplotlib.figure

    assert isinstance(R.chart(res), matplotlib.figure.Figure)


def _with_closures(frame: pd.DataFrame, seed: int, years: int = 3) -> pd.DataFrame:
    """Closure dates spread evenly over ``years`` complete years to 31 March 2025."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2025-03-31")
    days = rng.integers(0, 365 * years, len(frame))
    return frame.assign(closure_date=end - pd.to_timedelta(days, unit="D"))


def test_synthetic_known_answer_is_covered():
    # simulate_frame's intervention multiplies the hazard by 0.7: its true ATE risk difference at a
    # year is known; with n closures over 3 years the eligible cases per year are n / 3, so the true
    # expected change if 10% more received it is 0.1 * n / 3 * ATE, and if no one did, -share * n / 3 * ATE.
    n = 4500
    frame, truth = simulate_intervention.simulate_frame(n, seed=21, truth_draws=400_000)
    frame = _with_closures(frame, 21)
    res = intervention.evaluate_intervention(frame=frame, **{"intervention": "Family Group Conference", "horizon_days": 365,
                                                  "estimand": "ATE", "covariates": simulate_intervention.SIM_COVARIATES, "graph": simulate_intervention.SIM_GRAPH},
                                  trim="none", bootstrap_reps=100, refutation_simulations=0, scenario_shares=[0.1, "none"])
    sc = res.scenarios
    assert sc is not None and sc.estimand == "ATE"
    assert sum(sc.volume.counts) == n and sc.volume.per_year == pytest.approx(n / 3)
    ten, none = sc.scenarios
    true_ten = 0.1 * n / 3 * truth["ate_risk_difference"]
    assert true_ten < -5  # a real effect: about 0.1 * 1500 * -0.07
    assert ten.ci_low <= true_ten <= ten.ci_high
    share = frame["treatment"].mean()
    true_none = -share * n / 3 * truth["ate_risk_difference"]
    assert none.ci_low <= true_none <= none.ci_high
    assert res.to_dict()["scenarios"]["scenarios"][0]["requested"] == 0.1
    # and a simulated frame without closure dates has no scenarios (nothing made up)
    res2 = intervention.evaluate_intervention(frame=frame.drop(columns="closure_date"), **{
        "intervention": "Family Group Conference", "horizon_days": 365, "estimand": "ATE",
        "covariates": simulate_intervention.SIM_COVARIATES, "graph": simulate_intervention.SIM_GRAPH}, trim="none", bootstrap_reps=0, refutation_simulations=0)
    assert res2.scenarios is None and res2.to_dict()["scenarios"] is None


@pytest.mark.slow
def test_scenario_intervals_cover_over_repeats():
    """Coverage of the 10%-more scenario's interval for the true answer over repeated simulations."""
    _, truth = simulate_intervention.simulate_frame(10, seed=0, truth_draws=1_000_000)
    n, reps, hits = 1500, 40, 0
    for s in range(reps):
        f, _ = simulate_intervention.simulate_frame(n, seed=7000 + s, truth_draws=10)
        f = _with_closures(f, 7000 + s)
        res = intervention.evaluate_intervention(frame=f, intervention="Family Group Conference", horizon_days=365, estimand="ATE",
                                      covariates=simulate_intervention.SIM_COVARIATES, graph=simulate_intervention.SIM_GRAPH, trim="none", bootstrap_reps=60,
                                      refutation_simulations=0, scenario_shares=[0.1])
        sc = res.scenarios.scenarios[0]
        # the truth for this draw's own volume process: closures uniform over 3 years, n / 3 a year expected
        true = 0.1 * n / 3 * truth["ate_risk_difference"]
        hits += sc.ci_low <= true <= sc.ci_high
    assert hits / reps >= 0.85, hits
