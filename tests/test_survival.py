"""Survival estimators against known answers: lifelines, textbook values, simulated truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import restricted_mean_survival_time

from insightlib.analyses import rereferral
from insightlib.report import survival_words
from insightlib.report import rereferral_charts
from insightlib.report import words as report_words
from insightlib.simulate import survival as simulate_survival
from insightlib.stats import competing_risks
from insightlib.stats import cox as cox_model
from insightlib.stats import logrank
from insightlib.stats import multiple_testing
from insightlib.stats import survival as surv
from insightlib.ingest.episodes import at_risk, build_episodes
from insightlib.errors import InputError
from insightlib.batch.results import to_jsonable

ROSSI_COLS = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]


@pytest.fixture(scope="module")
def rossi():
    return load_rossi()


# --- Kaplan-Meier, log-rank, cumulative incidence, RMST ------------------------------------


def test_km_matches_lifelines_on_rossi(rossi):
    km = surv.km_table(rossi.week, rossi.arrest)
    ref = KaplanMeierFitter().fit(rossi.week, rossi.arrest)
    s = ref.survival_function_["KM_estimate"].loc[km.time]
    ci = ref.confidence_interval_.loc[km.time]
    np.testing.assert_allclose(km.survival, s, rtol=1e-12)
    np.testing.assert_allclose(km.ci_low, ci.min(axis=1), rtol=1e-10)
    np.testing.assert_allclose(km.ci_high, ci.max(axis=1), rtol=1e-10)
    # textbook value: 114 of 432 arrested by week 52, no censoring before it
    assert km.survival.iloc[-1] == pytest.approx(1 - 114 / 432)


def test_km_result_by_group_horizons_and_at_risk(rossi):
    res = surv.kaplan_meier(rossi.week, rossi.arrest, np.where(rossi.fin == 1, "aid", "no aid"), horizons=(10, 26, 52))
    assert set(res.curves) == {"aid", "no aid"}
    aid = rossi[rossi.fin == 1]
    ref = KaplanMeierFitter().fit(aid.week, aid.arrest)
    got = res.at("aid", 26)
    assert got["survival"] == pytest.approx(float(ref.survival_function_at_times(26).iloc[0]))
    assert got["at_risk"] == int((aid.week >= 26).sum())
    assert got["ci_low"] < got["survival"] < got["ci_high"]
    d = res.to_dict()
    assert set(d["aid"]) == {"10", "26", "52"} and set(d["aid"]["52"]) == {"survival", "ci_low", "ci_high", "at_risk"}
    assert res.at("aid", 0)["survival"] == 1.0


def test_cut_curve_stops_before_fewer_than_ten_at_risk():
    t = np.arange(1, 31)
    curve = surv.km_table(t, np.ones(30))
    cut = rereferral_charts.cut_curve(curve, 10)
    assert cut["at_risk"].min() >= 10 and len(cut) == 21  # times 1..21 have 30..10 at risk
    assert rereferral_charts.cut_curve(curve.iloc[25:], 10).empty


def test_logrank_matches_lifelines_for_two_and_four_groups(rossi):
    for groups in (rossi.fin, rossi.prio.clip(upper=3)):
        ours = logrank.logrank_test(rossi.week, rossi.arrest, groups)
        ref = multivariate_logrank_test(rossi.week, groups, rossi.arrest)
        assert ours.statistic == pytest.approx(ref.test_statistic, rel=1e-10)
        assert ours.df == ref.degrees_of_freedom
        assert ours.p_value == pytest.approx(ref.p_value, rel=1e-8)
    assert "log-rank" in survival_words.logrank_sentence(ours)


def test_logrank_competing_events_are_censoring():
    rng = np.random.default_rng(4)
    t = rng.integers(1, 100, 500)
    e = rng.choice([0, 1, 2], 500)
    g = rng.choice(["a", "b", "c"], 500)
    ours = logrank.logrank_test(t, e, g)
    ref = multivariate_logrank_test(t, g, (e == 1).astype(int))
    assert ours.statistic == pytest.approx(ref.test_statistic, rel=1e-10)


def test_aalen_johansen_matches_lifelines_without_ties():
    rng = np.random.default_rng(0)
    t = rng.exponential(1, 400)
    e = rng.choice([0, 1, 2], 400, p=[0.3, 0.5, 0.2])
    ours = competing_risks.cif_table(t, e, cause=1)
    ref = AalenJohansenFitter(calculate_variance=True).fit(t, e, event_of_interest=1)
    np.testing.assert_allclose(ours.cumulative_incidence, ref.cumulative_density_.loc[ours.time].iloc[:, 0], atol=1e-12)
    ref_var = np.asarray(ref.variance_.loc[ours.time], dtype=float).ravel()
    known = np.isfinite(ref_var)  # lifelines has no variance where everyone left has an event
    assert known.mean() > 0.95
    np.testing.assert_allclose(ours.se[known] ** 2, ref_var[known], atol=1e-12)
    band = ref.confidence_interval_cumulative_density_.loc[ours.time].to_numpy()
    ok = known & (ours.cumulative_incidence.to_numpy() > 0)
    np.testing.assert_allclose(ours.ci_low.to_numpy()[ok], band.min(axis=1)[ok], rtol=1e-8)
    np.testing.assert_allclose(ours.ci_high.to_numpy()[ok], band.max(axis=1)[ok], rtol=1e-8)


def test_cumulative_incidences_and_survival_add_to_one_with_ties():
    rng = np.random.default_rng(1)
    t = rng.integers(1, 50, 1000)
    e = rng.choice([0, 1, 2], 1000)
    f1 = competing_risks.cif_table(t, e, 1)["cumulative_incidence"].to_numpy()
    f2 = competing_risks.cif_table(t, e, 2)["cumulative_incidence"].to_numpy()
    s_all = surv.km_table(t, (e > 0).astype(int))["survival"].to_numpy()
    np.testing.assert_allclose(f1 + f2 + s_all, 1.0, atol=1e-12)
    # 1 - KM that censors competing events overstates the share re-referred
    km1 = surv.km_table(t, e)["survival"].to_numpy()
    assert (1 - km1 >= f1 - 1e-12).all()
    res = competing_risks.cumulative_incidence(t, e, np.where(t % 2 == 0, "x", "y"), horizons=(10, 30))
    assert set(res.to_dict()["x"]["30"]) == {"rereferral", "ci_low", "ci_high", "competing"}


def test_rmst_point_matches_lifelines_and_variance_matches_independent_influence(rossi):
    res = surv.rmst(rossi.week, rossi.arrest, horizon=40)
    ref = restricted_mean_survival_time(KaplanMeierFitter().fit(rossi.week, rossi.arrest), t=40)
    assert res.groups["rmst"].iloc[0] == pytest.approx(ref, rel=1e-12)
    # with one episode per child, the influence-function variance is close to the Greenwood one
    _, var, infl = surv._rmst_parts(rossi.week.to_numpy(float), rossi.arrest.to_numpy(), 40.0)
    assert abs(infl.sum()) < 1e-8
    assert np.sum(infl**2) == pytest.approx(var, rel=0.02)


def test_rmst_difference_with_clustered_children_covers_the_truth():
    # two groups, exponential with rates 1/200 and 1/300 days, several episodes per child sharing a frailty
    tau = 365.0
    truth = [200 * (1 - np.exp(-tau / 200)), 300 * (1 - np.exp(-tau / 300))]
    rng = np.random.default_rng(9)
    hits, reps = 0, 40
    ratios = []
    for _ in range(reps):
        n_child = 400
        frail = rng.gamma(2.0, 0.5, n_child)
        child = np.repeat(np.arange(n_child), 3)
        group = np.repeat(rng.integers(0, 2, n_child), 3)
        rate = np.where(group == 0, 1 / 200, 1 / 300) * frail[child]
        t = rng.exponential(1 / rate)
        c = rng.uniform(100, 800, len(t))
        d, e = np.minimum(t, c), (t <= c).astype(int)
        res = surv.rmst(d, e, np.where(group == 0, "a", "b"), horizon=tau, clusters=child, reference="a")
        diff = res.differences.iloc[0]
        # each group's own interval is clustered too; without clusters (episodes as independent) it is narrower
        alone = surv.rmst(d, e, np.where(group == 0, "a", "b"), horizon=tau, reference="a")
        assert (res.groups["se"].to_numpy() > alone.groups["se"].to_numpy()).all()
        naive = np.sqrt((alone.groups["se"] ** 2).sum())
        ratios.append(diff.se / naive)
        # the frailty makes the marginal curves non-exponential: compare with a large-sample estimate instead
        hits += diff.ci_low <= _rmst_truth_frailty(tau) <= diff.ci_high
    assert hits >= 0.85 * reps
    assert np.mean(ratios) > 1.1  # clustering within child widens the interval


def _rmst_truth_frailty(tau):
    # marginal survival with gamma(shape 2, scale 0.5) frailty: (1 + 0.5 * r t)^-2; difference b - a
    from scipy.integrate import quad

    s = lambda r: quad(lambda u: (1 + 0.5 * r * u) ** -2, 0, tau)[0]  # noqa: E731
    return s(1 / 300) - s(1 / 200)


# --- Cox ------------------------------------------------------------------------------------


def test_cox_rossi_textbook_coefficients(rossi):
    res = cox_model.cox_ph(rossi.week, rossi.arrest, rossi[ROSSI_COLS])
    coef = res.terms.set_index("term")["coef"]
    # Efron ties; the published values (Fox & Weisberg; lifelines documentation)
    assert coef["fin"] == pytest.approx(-0.379, abs=5e-4)
    assert coef["age"] == pytest.approx(-0.057, abs=5e-4)
    assert coef["prio"] == pytest.approx(0.091, abs=6e-4)
    ref = CoxPHFitter().fit(rossi[ROSSI_COLS + ["week", "arrest"]], "week", "arrest")
    np.testing.assert_allclose(res.terms["coef"], ref.params_.loc[ROSSI_COLS], rtol=1e-6)
    np.testing.assert_allclose(res.terms["se"], ref.standard_errors_.loc[ROSSI_COLS], rtol=1e-5)


def test_cox_breslow_differs_from_efron_with_ties(rossi):
    efron = cox_model.cox_fit(rossi.week, rossi.arrest, rossi[ROSSI_COLS].to_numpy(float))
    breslow = cox_model.cox_fit(rossi.week, rossi.arrest, rossi[ROSSI_COLS].to_numpy(float), ties="breslow")
    assert breslow.beta[0] == pytest.approx(-0.379, abs=2e-3)
    assert abs(breslow.beta[0] - efron.beta[0]) > 1e-4
    # score residuals sum to the score, which is zero at the maximum
    assert np.abs(efron.score_residuals.sum(0)).max() < 1e-6
    assert np.abs(breslow.score_residuals.sum(0)).max() < 1e-6


def test_robust_se_equals_lifelines_cluster_col_without_ties():
    rng = np.random.default_rng(2)
    n = 300
    x = rng.normal(size=(n, 2))
    t = rng.exponential(np.exp(-x @ [0.5, -0.3]))
    c = rng.exponential(2, n)
    df = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "T": np.minimum(t, c), "E": (t <= c).astype(int),
                       "id": rng.integers(0, 80, n)})
    ref = CoxPHFitter().fit(df, "T", "E", cluster_col="id")
    ours = cox_model.cox_ph(df["T"], df["E"], df[["x1", "x2"]], clusters=df["id"])
    np.testing.assert_allclose(ours.terms["coef"], ref.params_[["x1", "x2"]], rtol=1e-5)
    np.testing.assert_allclose(ours.terms["robust_se"], ref.standard_errors_[["x1", "x2"]], rtol=1e-5)


def test_ph_check_flags_age_in_rossi(rossi):
    # the exact cox.zph test equals R >= 3.0 to 1e-6 on these data (tests/test_survival_r.py)
    # age breaks proportional hazards in Rossi (a classic example)
    res = cox_model.cox_ph(rossi.week, rossi.arrest, rossi[ROSSI_COLS])
    words = " ".join(survival_words.ph_sentences(res))
    assert "age" in words and "changes over time" in words


def test_ph_check_in_plain_words_when_hazards_are_proportional():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, 2000)
    t = rng.exponential(1 / np.exp(0.5 * x))
    res = cox_model.cox_ph(t, np.ones(2000), pd.DataFrame({"x": x}))
    assert "no clear sign" in " ".join(survival_words.ph_sentences(res))


def _renewal_episodes(n_children, beta, seed):
    """Children with repeated episodes in their own observation windows; true log hazard ratios ``beta``."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.integers(0, 2, n_children), rng.normal(size=n_children)])
    rate = 1 / 300 * np.exp(x @ beta)
    window = rng.uniform(200, 2000, n_children)
    rows = []
    clock = np.zeros(n_children)
    alive = np.ones(n_children, bool)
    while alive.any():
        gap = np.ceil(rng.exponential(1 / rate))
        left = window - clock
        event = alive & (gap <= left)
        dur = np.where(event, gap, np.maximum(np.ceil(left), 1))
        idx = np.flatnonzero(alive)
        rows.append(pd.DataFrame({"child": idx, "duration": dur[idx], "event": event[idx].astype(int),
                                  "x1": x[idx, 0], "x2": x[idx, 1]}))
        clock = clock + dur + 30  # a month open before the next closure
        alive = event & (clock < window)
    return pd.concat(rows, ignore_index=True)


def test_cox_recovers_true_hazard_ratios_with_repeated_episodes():
    beta = np.array([0.4, -0.3])
    df = _renewal_episodes(3000, beta, seed=1)
    assert df.groupby("child").size().max() >= 4  # really repeated
    res = cox_model.cox_ph(df.duration, df.event, df[["x1", "x2"]], clusters=df.child)
    est = res.terms["coef"].to_numpy()
    se = res.terms["robust_se"].to_numpy()
    assert np.all(np.abs(est - beta) < 3 * se)
    assert np.all(se < 0.05)


@pytest.mark.slow
def test_clustered_intervals_cover_the_truth_with_a_shared_child_frailty():
    # with a frailty the conditional HR differs from the marginal one; check coverage of the null effect instead
    rng = np.random.default_rng(7)
    hits_robust = hits_naive = 0
    reps = 60
    for r in range(reps):
        n = 400
        frail = rng.gamma(1.0, 1.0, n)
        z = rng.integers(0, 2, n)  # child-level covariate with no effect
        child = np.repeat(np.arange(n), 5)
        t = rng.exponential(1 / frail[child])
        res = cox_model.cox_ph(t, np.ones(len(t)), pd.DataFrame({"z": z[child]}), clusters=child)
        row = res.terms.iloc[0]
        hits_robust += abs(row.coef) < 1.96 * row.robust_se
        hits_naive += abs(row.coef) < 1.96 * row.se
    assert hits_robust >= 0.88 * reps
    assert hits_naive < hits_robust  # ignoring the clustering is overconfident


def test_cox_design_folds_small_groups_and_uses_largest_as_reference():
    ep = pd.DataFrame({"need": ["A"] * 50 + ["B"] * 30 + ["C"] * 5 + ["D"] * 5, "age": np.arange(90.0),
                       "event": [1, 0] * 45})
    X, refs = rereferral.cox_design(ep, ["need", "age"], min_group_size=20)
    assert refs == {"need": "A"}
    assert list(X.columns) == ["need[B]", "need[Other]", "age"]
    with pytest.raises(InputError, match="not an episode column"):
        rereferral.cox_design(ep, ["nope"])


# --- From tables to report ----------------------------------------------------------------


def test_cox_on_built_episodes_recovers_the_simulated_need_effect():
    tb = simulate_survival.simulate_tables(8000, seed=2, need_log_hr={"N1": 0.0, "N2": -0.5, "N4": 0.4})
    ep = at_risk(build_episodes(tb))
    X, refs = rereferral.cox_design(ep, ["primary_need"])
    res = cox_model.cox_ph(ep.duration_days, ep.event, X, clusters=ep.child_id).terms.set_index("term")
    assert refs["primary_need"] == "N4"
    for term, truth in (("primary_need[N1]", -0.4), ("primary_need[N2]", -0.9)):
        assert abs(res.loc[term, "coef"] - truth) < 4 * res.loc[term, "robust_se"]


@pytest.fixture(scope="module")
def report():
    tb = simulate_survival.simulate_tables(3000, seed=8)
    tb["interventions"] = pd.DataFrame({
        "la_code": "201", "child_id": tb["referrals"]["child_id"].iloc[:300].to_numpy(),
        "intervention": "Family Group Conference",
        "start_date": tb["referrals"]["referral_date"].iloc[:300].to_numpy(),
        "referral_id": tb["referrals"]["referral_id"].iloc[:300].to_numpy(),
    })
    return tb, rereferral.rereferral_report(tb, group_by="primary_need", horizons=[91, 182, 365], min_group_size=20)


def test_report_results_follow_the_contract(report):
    _, rep = report
    d = json.loads(json.dumps(to_jsonable(rep.to_dict())))
    for group, by_h in d["km"].items():
        assert set(by_h) == {"91", "182", "365"}
        for v in by_h.values():
            assert set(v) == {"survival", "ci_low", "ci_high", "at_risk"}
    assert set(d["logrank"]) >= {"statistic", "df", "p_value"} and d["logrank"]["df"] == 2
    # children have several episodes here, so the test is the child-clustered robust score test, and says so
    assert d["logrank"]["method"] == "robust score, clustered by child"
    assert "robust score test, clustered by child" in rep.logrank_sentence()
    caveat = next(c for c in rep.caveats() if "several episodes" in c)
    for what in ("bands of the curves", "average days out of contact", "robust score test clustered by child",
                 "hazard ratios", "proportional hazards is not clustered"):
        assert what in caveat, what

    for term, v in d["cox"].items():
        assert set(v) == {"hr", "ci_low", "ci_high", "p_value"} and v["ci_low"] < v["hr"] < v["ci_high"]
    assert "dfe_measure" in d and "rmst" in d and "cumulative_incidence" in d
    assert d["episodes"]["episodes"] > 0


def test_report_sentences_tables_and_figures(report):
    _, rep = report
    heads = rep.headlines()
    # the headlines lead with DfE's published measure, England's rate for the same year beside it
    assert heads[0].startswith("In the year to 31 March 2024, ") and "(DfE's published measure)" in heads[0]
    assert "against England's rate of 22.4% that year" in heads[0]
    # the share of closed cases follows, with one sentence on why the two rates differ
    assert heads[1].startswith("Of children whose cases closed in ")
    assert heads[1].endswith(rep.two_rates_sentence()) and "DfE's published measure" in heads[1]
    assert "came back fastest" in heads[2] and "N4 Family in acute stress" in heads[2]
    assert rep.ph_sentences() and rep.caveats()
    assert "Allowing for the other factors in the model" in rep.cox_headline()
    tab = rep.survival_table(threshold=5)
    assert "child_id" not in tab.columns and len(tab) == 3
    # report tables carry their row labels as the index (no 0..N column), named in the corner
    for t in (tab, rep.cumulative_incidence_table(), rep.rmst_table(), rep.cox_table(), rep.counts_table(),
              rep.dfe_table()):
        assert not isinstance(t.index, pd.RangeIndex) and t.columns.name
    assert list(tab.index) == ["N1 Abuse or neglect", "N2 Child's disability", "N4 Family in acute stress"]
    assert tab.loc["N1 Abuse or neglect", "After 1 year"].endswith(")") and "%" in tab.iloc[0, 1]
    figs = rep.figures()
    assert set(figs) == {"km", "cumulative_incidence", "forest"}
    for fig, alt in figs.values():
        assert alt and fig.axes


def test_report_intervention_grouping_and_small_groups_folded(report):
    tb, _ = report
    rep = rereferral.rereferral_report(tb, group_by="intervention", min_group_size=50, covariates=["intervention"])
    assert set(rep.km.curves) <= {"None", "Family Group Conference", "Other"}
    assert "None" in rep.km.curves
    rep2 = rereferral.rereferral_report(tb, group_by="referral_source", min_group_size=10_000, competing_risks=False)
    assert list(rep2.km.curves) == ["Other"] and rep2.cumulative_incidence is None
    with pytest.raises(InputError, match="group_by"):
        rereferral.rereferral_report(tb, group_by="shoe_size")


def test_results_withhold_horizons_with_few_at_risk():
    tb = simulate_survival.simulate_tables(60, seed=3, start="2023-04-01", extract="2024-03-31")
    rep = rereferral.rereferral_report(tb, group_by="sex", horizons=[30, 365], min_group_size=5)
    for by_h in rep.to_dict()["km"].values():
        v = by_h["365"]
        assert v["at_risk"] is None or v["at_risk"] >= 10


@pytest.mark.slow
def test_notebook_runs_on_a_warehouse_and_writes_results(tmp_path):
    """The committed notebook, executed by papermill on synthetic data loaded into a warehouse."""
    from pathlib import Path

    import nbformat
    import papermill as pm

    from insightlib.simulate import synth
    from insightlib.ingest import warehouse

    nb_path = Path(__file__).parents[1] / "notebooks" / "rereferral.ipynb"
    nb = nbformat.read(nb_path, 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)  # committed without outputs
    assert code[0].metadata.get("tags") == ["parameters"]
    synth.generate(1, 1500, 3, tmp_path / "data")
    warehouse.load_directory(tmp_path / "data", tmp_path / "w.duckdb", key="k" * 32)
    la = warehouse.council_codes(tmp_path / "w.duckdb")[0]
    pm.execute_notebook(str(nb_path), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False,
                        parameters={"data": str(tmp_path / "w.duckdb"), "la_code": la, "output_dir": str(tmp_path)})
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["notebook"] == "rereferral" and res["la_code"] == la
    assert {"km", "logrank", "cox", "dfe_measure", "rmst", "cumulative_incidence"} <= set(res)
    out = nbformat.read(tmp_path / "out.ipynb", 4)
    text = json.dumps([c.get("outputs", []) for c in out.cells])
    tables = warehouse.read_council(tmp_path / "w.duckdb", la)
    for child in tables["children"]["child_id"].head(50):  # no identifier reaches the output
        assert child not in text
    assert "England" in text and "image/png" in text


def test_charts_fold_to_the_largest_groups_and_say_so():
    labels = pd.Series(np.repeat([f"N{i}" for i in range(10)], [50, 400, 30, 300, 20, 200, 10, 100, 5, 60]))
    folded = rereferral.fold_to_largest(labels, 6)
    assert set(folded) == {"N1", "N3", "N5", "N7", "N9", "Other"}
    assert (folded == "Other").sum() == 50 + 30 + 20 + 10 + 5
    assert set(rereferral.fold_to_largest(labels[labels.isin(["N1", "N3"])], 6)) == {"N1", "N3"}
    need_hr = {f"N{i}": v for i, v in enumerate([0.0, 0.3, -0.5, -0.1, 0.2, 0.25, 0.1, -0.6, 0.15, -0.8])}
    tb = simulate_survival.simulate_tables(4000, seed=5, need_log_hr=need_hr)
    rep = rereferral.rereferral_report(tb, group_by="primary_need", max_chart_groups=6)
    assert len(rep.km.curves) == 10 and len(rep.km_chart.curves) == 6 and "Other" in rep.km_chart.curves
    assert len(rep.folded) == 5 and all(g in rep.chart_note() for g in rep.folded)
    fig, alt = rep.figures()["km"]
    curves, table = fig.axes
    assert len(curves.get_legend().get_texts()) == 6  # one colour each: the palette has six
    assert len(table.get_yticklabels()) == 6
    assert len(rep.survival_table()) == 10  # the table still gives every group
    assert rep.to_dict()["charts"]["groups_folded_into_other"] == rep.folded
    forest = rep.figures()["forest"][0].axes[0]
    assert all("$" not in t.get_text() for t in forest.get_xticklabels())  # 0.5, 1, 2: not 10^0


def test_dfe_measure_shown_only_for_years_with_a_full_look_back():
    tb = simulate_survival.simulate_tables(3000, seed=4, start="2016-04-01", extract="2024-03-31")
    rep = rereferral.rereferral_report(tb)
    d = rep.dfe_measure.set_index("year")
    assert not d.loc[2017, "complete"] and d.loc[2018:2024, "complete"].all()
    # left truncation: referrals before the data start are unseen, so the first year's rate is too low
    assert d.loc[2017, "rate"] < 0.8 * d.loc[2018:2024, "rate"].mean()
    assert 2017 not in rep.dfe_table().index and 2018 in rep.dfe_table().index
    assert 2017 in rep.dfe_table(complete_only=False).index
    assert "31 March 2017" in rep.dfe_note() and "1 April 2016" in rep.dfe_note()
    assert any("full 12 months" in c for c in rep.caveats())


def test_ph_check_says_which_way_the_effect_changes():
    rng = np.random.default_rng(11)
    n = 4000
    x = rng.integers(0, 2, n)
    # hazard ratio 3 in the first 100 days, 1 afterwards: the effect fades
    t1 = rng.exponential(100 / np.exp(np.log(3) * x))
    t = np.where(t1 < 100, t1, 100 + rng.exponential(100, n))
    res = cox_model.cox_ph(t, np.ones(n), pd.DataFrame({"x": x}))
    assert res.ph.set_index("term").loc["x", "p_value"] < 0.001
    words = " ".join(survival_words.ph_sentences(res))
    assert "higher soon after closure than later" in words and "changes over time" in words
    res2 = cox_model.cox_ph(t, np.ones(n), pd.DataFrame({"x": 1 - x}))  # the same seen from the other side
    assert "higher later than soon after closure" in " ".join(survival_words.ph_sentences(res2))


@pytest.mark.slow
def test_cox_recovers_the_synthetic_generators_hazard_ratios(tmp_path):
    """insight synth's truth.json hazard ratios, recovered by our Cox model with child-clustered intervals."""
    from insightlib import contract
    from insightlib.simulate import synth, synth_model

    out = synth.generate(3, 4000, 11, tmp_path)
    truth = json.loads((out / "truth.json").read_text())
    tables = {name: pd.read_csv(out / f"{name}.csv", dtype=str) for name in contract.TABLES}
    for name, cols in {"councils": ["extract_date"], "children": ["date_of_birth"],
                       "referrals": ["referral_date", "closure_date"]}.items():
        for c in cols:
            tables[name][c] = pd.to_datetime(tables[name][c])
    tables["referrals"]["referral_nfa"] = tables["referrals"]["referral_nfa"].eq("true")
    ep = at_risk(build_episodes(tables)).reset_index(drop=True)
    hr = truth["hazard_ratios"]
    X = pd.DataFrame(index=ep.index)
    true = {}
    for need, v in hr["primary_need"].items():
        if need != "reference":
            X[f"need_{need}"], true[f"need_{need}"] = (ep["primary_need"] == need).astype(float), v
    band = synth_model.age_band(ep["age_at_closure"])
    for i, b in enumerate(synth_model.AGE_BANDS[1:], 1):
        X[f"age_{b}"], true[f"age_{b}"] = (band == i).astype(float), hr["age_band_at_closure"][b]
    prev = synth_model.previous_referrals_band(ep["previous_referrals"].to_numpy())
    for i, b in enumerate(synth_model.PREVIOUS_REFERRAL_BANDS[1:], 1):
        X[f"prev_{b}"], true[f"prev_{b}"] = (prev == i).astype(float), hr["previous_referrals"][b]
    X["nfa"], true["nfa"] = ep["referral_nfa"].astype(float), hr["referral_nfa"]
    X["disability"], true["disability"] = (ep["disability"] != "NONE").astype(float), hr["disability"]
    iv = tables["interventions"]
    fgc = iv.loc[iv["intervention"] == truth["intervention"]["name"], "referral_id"]
    X["fgc"], true["fgc"] = ep["referral_id"].isin(fgc).astype(float), truth["intervention"]["true_hazard_ratio"]
    # councils differ in baseline (proportionally: Weibull scale) and some adopt a programme with a known,
    # time-varying effect; council indicators and the programme's known log hazard ratio (coefficient 1) allow for both
    for la in sorted(ep["la_code"].unique())[1:]:
        X[f"la_{la}"] = (ep["la_code"] == la).astype(float)
    X["programme"] = _programme_log_hr(ep, truth)
    res = cox_model.cox_ph(ep["duration_days"], ep["event"], X, clusters=ep["la_code"] + ":" + ep["child_id"])
    t = res.terms.set_index("term")
    inside = {k: bool(t.loc[k, "ci_low"] <= v <= t.loc[k, "ci_high"]) for k, v in true.items()}
    z = {k: (t.loc[k, "coef"] - np.log(v)) / t.loc[k, "robust_se"] for k, v in true.items()}
    assert sum(inside.values()) >= len(true) - 2, z  # 95% intervals: about 1 in 20 may miss
    assert max(abs(v) for v in z.values()) < 3.3, z
    assert abs(t.loc["programme", "coef"] - 1) < 3.3 * t.loc["programme", "robust_se"]


def _programme_log_hr(ep: pd.DataFrame, truth: dict) -> np.ndarray:
    """The programme's true log hazard ratio for each episode (at its closure quarter), from truth.json."""
    prog = truth["programme"]
    by_q = {int(k): np.log(v) for k, v in prog["hazard_ratio_by_quarters_since_adoption"].items()}
    last = max(by_q)
    out = np.zeros(len(ep))
    closure = pd.to_datetime(ep["closure_date"])
    quarter = closure.dt.year * 4 + (closure.dt.month - 1) // 3
    for la, start in prog["adoption"].items():
        if start is None:
            continue
        s = pd.Timestamp(start)
        since = (quarter - (s.year * 4 + (s.month - 1) // 3)).to_numpy()
        m = (ep["la_code"] == la).to_numpy() & (since >= 0)
        out[m] = [by_q[min(int(q), last)] for q in since[m]]
    return out


# --- what the report may publish: the estimate rule, Holm among Cox terms, England in the same year -----------


def _with_cox(rep, p_values, events: int = 50):
    """The report with a made-up Cox fit: independent terms with the given p-values."""
    import dataclasses

    from scipy import stats as st

    k = len(p_values)
    z = st.norm.isf(np.asarray(p_values) / 2)
    se = np.full(k, 0.1)
    coef = z * se
    terms = pd.DataFrame({"term": [f"primary_need[N{i}]" for i in range(k)], "coef": coef, "se": se, "robust_se": se,
                          "hr": np.exp(coef), "ci_low": np.exp(coef - 1.96 * se), "ci_high": np.exp(coef + 1.96 * se),
                          "p_value": p_values})
    V = np.diag(se ** 2)
    cox = cox_model.CoxResult(terms=terms, ph=rep.cox.ph, n=1000, events=400, clusters=800, loglik=0.0,
                       references={"primary_need": "N4"}, robust_vcov=V,
                       term_events={t: events for t in terms["term"]})
    return dataclasses.replace(rep, cox=cox)


def test_factor_headline_needs_the_overall_test_and_holm(report):
    _, rep = report
    p = [0.01] + [0.5] * 12  # the largest of 13: p = 0.01 alone, 0.13 after Holm; overall p about 0.5
    weak = _with_cox(rep, p)
    assert weak.cox.global_test()["p_value"] >= 0.05
    assert weak._clearest_term() is None
    head = weak.cox_headline()
    assert "do not clearly go with" in head and "13 factor levels compared" in head
    assert weak.forest_title() == "How each factor goes with being referred again sooner or later"
    strong = _with_cox(rep, [0.01] + [0.04] * 12)  # together clear, no term clear after Holm
    assert strong.cox.global_test()["p_value"] < 0.05
    assert strong._clearest_term() is None  # p = 0.01 does not survive Holm among 13
    assert "13 factor levels compared" in strong.cox_headline() and "Holm" in strong.cox_headline()
    clear = _with_cox(rep, [1e-6] + [0.5] * 12)
    r = clear._clearest_term()
    assert r is not None and r.term == "primary_need[N0]"
    assert "the clearest of 13 factor levels compared" in clear.cox_headline() and "Holm's method" in clear.cox_headline()
    np.testing.assert_allclose(multiple_testing.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    from statsmodels.stats.multitest import multipletests

    pv = np.random.default_rng(3).uniform(0, 0.2, 13)
    np.testing.assert_allclose(multiple_testing.holm(pv), multipletests(pv, method="holm")[1], rtol=1e-12)
    assert np.isnan(multiple_testing.holm([0.01, np.nan])[1]) and multiple_testing.holm([0.01, np.nan])[0] == 0.01


def test_degenerate_estimates_are_not_published():
    """A level with no re-referral gives 'hazard ratio 0.00 (0.00 to 0.00)' and '0% (0 to 0)': replaced by the rule."""
    tb = simulate_survival.simulate_tables(1500, seed=4)
    rep0 = rereferral.rereferral_report(tb, group_by="primary_need")
    ep = rep0.km  # noqa: F841 - the report built; now a level no child in it comes back from
    from insightlib.ingest.episodes import at_risk, build_episodes

    episodes = at_risk(build_episodes(tb)).reset_index(drop=True)
    t, e = episodes["duration_days"].to_numpy(), episodes["event"].to_numpy().copy()
    X = pd.DataFrame({"rare[seldom]": np.zeros(len(t)), "big[often]": (np.arange(len(t)) % 2).astype(float)})
    X.loc[:30, "rare[seldom]"] = 1.0
    e[:31] = 0  # the 31 episodes in the rare level have no re-referral
    res = cox_model.cox_ph(t, e, X, clusters=episodes["child_id"])
    assert res.term_events["rare[seldom]"] == 0 and not res.estimable("rare[seldom]")
    assert res.estimable("big[often]")
    assert res.global_test()["df"] == 1  # the runaway term is left out of the overall test
    import dataclasses

    rep = dataclasses.replace(rep0, cox=res)
    tab = rep.cox_table()
    assert (tab["Hazard ratio"] == report_words.TOO_FEW).sum() == 1
    assert "0.00" not in tab.to_string()
    rereferral_charts.forest_figure(res)  # no point drawn at a hazard ratio of 0 on the log scale
    assert report_words.share(0.0, 0.0, 0.0) == report_words.TOO_FEW and report_words.share(1.0, 1.0, 1.0) == report_words.TOO_FEW
    assert report_words.share(0.5, float("nan"), 0.6) == report_words.TOO_FEW and report_words.share(0.5, 0.4, 0.6) != report_words.TOO_FEW
    assert rep.to_dict()["cox_too_few_to_estimate"] == ["rare[seldom]"]


def test_england_is_compared_in_the_councils_own_year(report):
    from insightlib import reference

    _, rep = report
    year = int(rep.dfe_measure[rep.dfe_measure["complete"]]["year"].max())
    rate, words = rep.england_comparison()
    assert rate == reference.england_rereferral_rate(year) and f"year to 31 March {year}" in words
    rate19, words19 = rep.england_comparison(2019)
    assert rate19 == pytest.approx(reference.england_rereferral_rate(2019)) and "2019" in words19 and "2025" not in words19
    none, plain = rep.england_comparison(2031)
    assert none is None and "not compared with England" in plain


def test_results_headline_key_says_what_it_holds(report):
    _, rep = report
    h = rep.to_dict()["headline"]
    assert h["horizon_days"] == 365 and "share_rereferred_within_365_days" in h
    rep2 = rereferral.rereferral_report(simulate_survival.simulate_tables(800, seed=5), horizons=[91, 182])
    h2 = rep2.to_dict()["headline"]
    assert h2["horizon_days"] == 182 and "share_rereferred_within_182_days" in h2
    assert not any(k.endswith("365_days") for k in h2)


def test_age_bands_are_defined_once():
    from insightlib.analyses import intervention_frame
    from insightlib import contract

    ages = np.array([0, 4.99, 5, 9.99, 10, 15.5, 16, 17.99, 18, np.nan])
    want = ["Under 5", "Under 5", "5 to 9", "5 to 9", "10 to 15", "10 to 15", "16 and 17", "16 and 17", "18 or over", "Not known"]
    assert list(contract.age_band(ages)) == want
    from insightlib.ingest.episodes import build_episodes

    ep = build_episodes(simulate_survival.simulate_tables(300, seed=1))
    assert (rereferral.add_groupings(ep)["age_band"].to_numpy() == contract.age_band(ep["age_at_closure"])).all()
    frame = pd.DataFrame({"age_at_closure": ages, "referral_id": [str(i) for i in range(len(ages))]})
    assert list(intervention_frame._derived_covariates({}, frame, ["age_group"])["age_group"]) == want


def _frailty_episodes(rng, n_children=300):
    """Children with 1 to 4 episodes sharing a frailty; a group fixed per child and daily (tied) times."""
    child = np.repeat(np.arange(n_children), rng.integers(1, 5, n_children))
    frail = rng.gamma(1.5, 1 / 1.5, n_children)[child]
    group = np.array(["a", "b"])[rng.integers(0, 2, n_children)][child]
    t = np.ceil(rng.exponential(250 / (frail * np.where(group == "b", 1.5, 1.0))))
    c = np.ceil(rng.uniform(60, 700, len(t)))
    return np.minimum(t, c), (t <= c).astype(int), group, child


@pytest.mark.slow
def test_rmst_intervals_clustered_by_child_agree_with_a_child_bootstrap():
    # the jackknife summed by child against resampling children (1,000 replicates): each group and the difference
    rng = np.random.default_rng(5)
    t, e, g, child = _frailty_episodes(rng)
    res = surv.rmst(t, e, g, horizon=365, clusters=child, reference="a")
    plain = surv.rmst(t, e, g, horizon=365, reference="a")
    rows_of = [np.flatnonzero(child == c) for c in range(child.max() + 1)]
    boot = []
    for _ in range(1000):
        rows = np.concatenate([rows_of[c] for c in rng.integers(0, len(rows_of), len(rows_of))])
        r = surv.rmst(t[rows], e[rows], g[rows], horizon=365, reference="a")
        boot.append(list(r.groups.set_index("group")["rmst"]) + [r.differences["difference"].iloc[0]])
    sd = np.std(boot, axis=0, ddof=1)
    ours = np.concatenate([res.groups.set_index("group")["se"].to_numpy(), [res.differences["se"].iloc[0]]])
    np.testing.assert_allclose(ours, sd, rtol=0.1)
    # and the episodes-as-independent errors are clearly too small here
    assert (plain.groups["se"].to_numpy() < 0.9 * sd[:2]).all()


def test_a_small_other_group_takes_in_the_next_smallest():
    labels = pd.Series(np.repeat(["A", "B", "C"], [30, 25, 2]))
    assert set(rereferral.fold_small_groups(labels, 20)) == {"A", "B", "Other"}  # Other = 2: a small count
    folded = rereferral.fold_small_groups(labels, 20, min_other=5)
    assert set(folded) == {"A", "Other"} and (folded == "Other").sum() == 27
    assert (rereferral.fold_small_groups(labels, 5, min_other=5) == "Other").sum() == 27


def test_every_published_share_and_rate_rests_on_enough_children(report):
    """With a threshold above every count, the report words and tabulates no share or rate that a
    small count lies behind: the tables say "c", the headline says the rate is not shown."""
    import dataclasses

    _, rep = report
    strict = dataclasses.replace(rep, threshold=10**6, _published=None)
    for g in strict.km.curves:
        for h in strict.horizons:
            if strict._events_by(g, h) > 0:
                assert not strict.share_shown(g, h)
    tab = strict.survival_table()
    for g, label in zip(strict.km.curves, tab.index):
        for h in strict.horizons:
            if strict._events_by(g, h) > 0:
                assert tab.loc[label, f"After {report_words.when(h)}"] == "c"
    cif = strict.cumulative_incidence_table()
    assert (cif.iloc[:, : len(strict.horizons)] == "c").all().all()
    heads = strict.headlines()
    assert not any("came back fastest" in h for h in heads)
    dfe = [h for h in heads if "DfE's published measure" in h]
    assert dfe and "not shown" in dfe[0] and "% of the council's referrals" not in dfe[0]
    assert (strict.dfe_table()["Rate"] == "c").all()
    # the default threshold shows them (the fixture is large)
    assert rep.survival_table().iloc[0, 1] != "c" and any("% of the council's referrals" in h for h in rep.headlines())


def test_counts_table_hides_what_its_identities_would_give_back(report):
    import dataclasses

    _, rep = report
    c = dict(rep.counts)
    c.update(not_at_risk_died=1, not_at_risk_transferred=2, not_at_risk_adult=0, closed_on_extract_date=0)
    c["episodes"] = rep.episodes_at_risk + 3
    c["referrals"] = c["referrals_after_extract"] + c["merged_overlapping"] + c["open_cases"] + c["episodes"]
    r2 = dataclasses.replace(rep, counts=c, _published=None)
    shown = r2.counts_table()["Count"]
    assert shown["Closed because the child died (not at risk)"] == "c"
    assert shown["Closed on transfer to another council (not at risk)"] == "c"
    # 1 + 2 = episodes - followed up would leave "1 or 2": a third cell is hidden (the followed-up
    # count is published by the survival table, so it is never the one chosen)
    assert (shown == "c").sum() >= 3 and shown["Episodes followed up"] != "c"
    assert r2.count_words("followed_up") == f"{rep.episodes_at_risk:,}"


def test_closure_year_share_not_published_for_a_small_cohort():
    tb = simulate_survival.simulate_tables(60, seed=3, start="2021-04-01", extract="2024-03-31")
    rep = rereferral.rereferral_report(tb, group_by="sex", min_group_size=1)
    strict = rereferral.rereferral_report(tb, group_by="sex", min_group_size=1, disclosure_threshold=10**6)
    assert strict.headline_rate is None and not any(h.startswith("Of children whose cases closed") for h in strict.headlines())
    assert rep.headline_year == strict.headline_year


def test_dfe_rate_with_rounding_is_that_of_the_rounded_counts():
    """Issue 9: with ``rounding`` the DfE table and headline rate come from the published (rounded) counts."""
    tb = simulate_survival.simulate_tables(1500, seed=4, start="2016-04-01", extract="2024-03-31")
    rep = rereferral.rereferral_report(tb, rounding=5)
    exact = rep.dfe_measure.set_index("year")
    pub = rep.dfe_published().set_index("year")
    for year, row in pub.iterrows():
        if row["rate"] is None or pd.isna(row["rate"]):
            continue
        assert row["referrals"] % 5 == 0 and row["rereferrals"] % 5 == 0
        assert row["rate"] == pytest.approx(row["rereferrals"] / row["referrals"])
        assert row["rate_display"] == f"{100 * row['rereferrals'] / row['referrals']:.1f}%"
        assert int(exact.loc[year, "referrals"]) - 2 <= row["referrals"] <= int(exact.loc[year, "referrals"]) + 2
    latest = rep._latest_dfe()
    assert latest is not None and latest.rate_display != "c"
    assert f"{latest.rate_display} of the council's referrals" in " ".join(rep.headlines())


def test_weighted_km_with_unit_weights_is_the_kaplan_meier_and_its_area_the_rmst(rossi):
    # one implementation: the weighted curve (inverse probability weights in the intervention effect) with every
    # weight 1 is km_table's curve, and step_area under it is rmst's estimate
    t, e = rossi.week.to_numpy(float), rossi.arrest.to_numpy()
    table = surv.km_table(t, e)
    grid = np.concatenate([[0.0], table["time"].to_numpy()])
    curve = surv.weighted_km(t, e, np.ones(len(t)), grid)
    np.testing.assert_allclose(curve[1:], table["survival"].to_numpy(), rtol=0, atol=1e-14)
    assert surv.step_area(grid, curve, 40) == pytest.approx(surv.rmst(t, e, horizon=40).groups["rmst"].iloc[0], rel=1e-12)
    doubled = surv.weighted_km(t, e, np.where(rossi.fin.to_numpy() == 1, 2.0, 1.0), grid)
    assert not np.allclose(doubled, curve)  # the weights are used


def test_a_curve_is_not_drawn_where_it_would_give_back_a_small_count():
    """Issue 9 (curve shapes): 2 of 30 re-referred in the first weeks is a drop to 93% a reader can read off
    the chart; the curve is drawn flat until the first re-referral, hidden while 1 to 4 have come back, and
    drawn again from the 5th."""
    from insightlib.report.rereferral_charts import cif_figure, km_figure
    from insightlib.stats.competing_risks import cumulative_incidence
    from insightlib.stats.survival import kaplan_meier

    t = np.array([20, 40, 100, 120, 150, 160, 170] + [400] * 23, float)
    e = np.array([1, 1, 1, 1, 1, 1, 1] + [0] * 23)
    km = kaplan_meier(t, e, np.array(["A"] * 30))
    fig = km_figure(km, threshold=5)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == km.labels.get("A", "A")]
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    assert y[0] == 1.0 and x[0] == 0.0  # flat from the start: nobody back yet
    for day in (20, 40, 100, 120):  # 1 to 4 re-referred by then: not drawn
        assert np.isnan(y[np.searchsorted(x, day, side="right") - 1]), day
    assert np.isfinite(y[np.searchsorted(x, 150, side="right") - 1])  # 5 back: drawn
    assert y[np.searchsorted(x, 150, side="right") - 1] == pytest.approx(25 / 30)
    cif = cumulative_incidence(t, e, np.array(["A"] * 30))
    (line,) = [ln for ln in cif_figure(cif, threshold=5).axes[0].get_lines() if not ln.get_label().startswith("_")]
    y2 = np.asarray(line.get_ydata(), float)
    assert y2[0] == 0.0 and np.isnan(y2[1:5]).all() and np.isfinite(y2[5])


def test_an_event_free_other_is_counted_with_the_reference_so_the_cox_fit_converges():
    """Small groups whose children never came back fold into "Other", which then has no re-referral
    either: its hazard ratio runs off to zero (the fit diverges). It is counted with the largest group
    instead, said in X.attrs, and the Cox model gives finite hazard ratios."""
    rng = np.random.default_rng(4)
    need = np.array(["A"] * 60 + ["B"] * 40 + ["C"] * 6 + ["D"] * 4)
    event = np.r_[rng.integers(0, 2, 100), np.zeros(10, int)]
    t = rng.uniform(10, 400, len(need))
    ep = pd.DataFrame({"need": need, "event": event})
    X, refs = rereferral.cox_design(ep, ["need"], min_group_size=20)
    assert refs == {"need": "A"} and list(X.columns) == ["need[B]"]
    assert X.attrs["with_reference"] == {"need": ["C", "D"]}
    assert X["need[B]"].sum() == 40  # C and D are with A, not with B
    fit = cox_model.cox_ph(t, event, X)
    assert np.isfinite(fit.terms["coef"]).all() and np.isfinite(fit.terms["ci_low"]).all()
    # an "Other" with a re-referral stays a group of its own
    ep.loc[105, "event"] = 1
    X2, _ = rereferral.cox_design(ep, ["need"], min_group_size=20)
    assert list(X2.columns) == ["need[B]", "need[Other]"] and X2.attrs["with_reference"] == {}


def test_the_report_says_which_groups_are_counted_with_the_reference(report):
    import dataclasses

    _, rep = report
    assert not any("counted with" in c for c in rep.caveats())
    cox = dataclasses.replace(rep.cox, with_reference={"primary_need": ["N8", "N9"]})
    words = " ".join(dataclasses.replace(rep, cox=cox).caveats())
    ref = rep.cox.references["primary_need"]
    assert "the small groups N8" in words and f"are counted with {ref}" in words and "no hazard ratio" in words


def _repeating_episodes(seed=5, n=6000, n_children=2500):
    """Episodes that repeat exactly (daily ties, categorical covariates): the national data's shape."""
    rng = np.random.default_rng(seed)
    child = rng.integers(0, n_children, n)
    x1 = rng.integers(0, 2, n).astype(float)
    g = rng.integers(0, 4, n)
    X = pd.DataFrame({"x1": x1, "g[1]": (g == 1) * 1.0, "g[2]": (g == 2) * 1.0, "g[3]": (g == 3) * 1.0})
    rate = np.exp(0.5 * x1 + 0.2 * g) / 40
    t = np.ceil(rng.exponential(1 / rate) / 7)  # weeks: many ties
    c = np.ceil(rng.uniform(1, 60, n))
    return np.minimum(t, c), (t <= c).astype(int), X, child


@pytest.mark.parametrize("transform", ["km", "rank", "identity"])
def test_cox_on_collapsed_rows_is_the_fit_on_every_episode(transform):
    """Identical episodes fitted once with a count (issue 17: 3.27M national rows, 662k distinct) give the
    fit on every episode: coefficients, naive and child-clustered robust errors, PH test, to 1e-8."""
    t, e, X, child = _repeating_episodes()
    rep, rows = cox_model.collapse_rows(t, e, X.to_numpy())
    assert len(rep) < len(t) / 3  # the collapse is real
    assert np.array_equal(t[rep][rows], t) and np.array_equal(X.to_numpy()[rep][rows], X.to_numpy())
    a = cox_model.cox_ph(t, e, X, clusters=child, ph_transform=transform, collapse=True)
    b = cox_model.cox_ph(t, e, X, clusters=child, ph_transform=transform, collapse=False)
    for col in ("coef", "se", "robust_se"):
        np.testing.assert_allclose(a.terms[col], b.terms[col], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(a.ph["statistic"], b.ph["statistic"], rtol=1e-8)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-10)
    assert (a.n, a.events, a.clusters) == (b.n, b.events, b.clusters)


def test_cox_counts_are_episodes_written_out():
    """A row with count k is k identical episodes, Efron's ties counted in episodes."""
    t, e, X, _ = _repeating_episodes(n=800, n_children=800)
    k = np.random.default_rng(1).integers(1, 4, len(t))
    fit = cox_model.cox_fit(t, e, X.to_numpy(), counts=k)
    long = np.repeat(np.arange(len(t)), k)
    ref = cox_model.cox_fit(t[long], e[long], X.to_numpy()[long])
    np.testing.assert_allclose(fit.beta, ref.beta, rtol=1e-9)
    np.testing.assert_allclose(fit.information, ref.information, rtol=1e-9)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-12)
