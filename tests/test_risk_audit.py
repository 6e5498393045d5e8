"""The risk model audit (insightlib.stats.risk_audit, insightlib.analyses.risk_audit): the time-based
split, each metric against scikit-learn, fairlearn or statsmodels, and synthetic closed cases with a
known risk function (insightlib.simulate.risk): the AUC is recovered, a planted group miscalibration
is found, and no signal is called no better than chance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from insightlib.analyses import risk_audit as AR
from insightlib.errors import EvaluationFileError
from insightlib.simulate.risk import FEATURES, risk_frame
from insightlib.stats import risk_audit as A
from insightlib.stats import risk_verdict as V

GROUPS = ["ethnic_group", "sex", "disabled", "deprivation"]


def _frame(**kw):
    f, truth = risk_frame(**kw)
    return f.rename(columns={"deprivation_quintile": "deprivation"}), truth


def test_time_split_has_no_later_closure_in_training():
    f, _ = _frame(n=3000, seed=4)
    for kw in ({}, {"test_from": "2022-10-01"}, {"test_years": 2}):
        s = A.time_split(f, **kw)
        tr, te = f.iloc[s.train], f.iloc[s.test]
        assert len(tr) and len(te)
        assert tr["closure_date"].max() < te["closure_date"].min()
        # a training case's outcome (a year after its closure) was known before the test period began
        assert (tr["closure_date"] + pd.Timedelta(days=A.HORIZON_DAYS)).max() < s.test_from
        assert te["closure_date"].min() >= s.test_from
        assert tr["rereferred"].notna().all() and te["rereferred"].notna().all()
        assert not set(s.train) & set(s.test)
    # the default test period is the last year with known outcomes
    s = A.time_split(f)
    assert (s.test_to - s.test_from).days == 364


def test_discrimination_matches_scikit_learn_with_weights_and_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random(700) < 0.35).astype(float)
    p = np.round(rng.random(700) * 0.5 + 0.3 * y, 2)  # ties
    w = rng.integers(0, 4, 700).astype(float)
    auc, ap = A.discrimination(y, p, np.stack([np.ones(700), w]))
    assert auc[0] == pytest.approx(roc_auc_score(y, p)) and auc[1] == pytest.approx(roc_auc_score(y, p, sample_weight=w))
    assert ap[0] == pytest.approx(average_precision_score(y, p))
    assert ap[1] == pytest.approx(average_precision_score(y, p, sample_weight=w))


def test_group_rates_match_fairlearn():
    from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate, selection_rate

    rng = np.random.default_rng(1)
    n = 900
    g = rng.choice(["a", "b", "c"], n)
    y = (rng.random(n) < 0.3).astype(int)
    p = rng.random(n)
    flag = p > 0.8
    w = rng.integers(0, 3, n).astype(float)
    ours = A.group_metrics(y, p, flag, g, w)
    keep = w > 0
    mf = MetricFrame(metrics={"flag_rate": selection_rate, "false_positive_rate": false_positive_rate,
                              "false_negative_rate": false_negative_rate},
                     y_true=y[keep], y_pred=flag[keep].astype(int), sensitive_features=g[keep],
                     sample_params={k: {"sample_weight": w[keep]} for k in ("flag_rate", "false_positive_rate", "false_negative_rate")})
    for col in ("flag_rate", "false_positive_rate", "false_negative_rate"):
        assert ours[col].to_numpy() == pytest.approx(mf.by_group[col].to_numpy())
    assert ours["flag_rri"].to_numpy() == pytest.approx(mf.by_group["flag_rate"].to_numpy() / mf.overall["flag_rate"])
    exp_ = [np.average(p[g == k], weights=w[g == k]) for k in ("a", "b", "c")]
    obs = [np.average(y[g == k], weights=w[g == k]) for k in ("a", "b", "c")]
    assert ours["observed_expected"].to_numpy() == pytest.approx(np.array(obs) / np.array(exp_))


def test_calibration_slope_and_intercept_match_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(2)
    lp = rng.normal(-0.5, 1.0, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(0.3 + 0.6 * lp)))).astype(float)
    p = 1 / (1 + np.exp(-lp))
    slope, intercept = A.calibration_fit(y, p)
    fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    assert slope == pytest.approx(fit.params[1], rel=1e-6)
    fit0 = sm.GLM(y, np.ones((5000, 1)), family=sm.families.Binomial(), offset=lp).fit()
    assert intercept == pytest.approx(fit0.params[0], rel=1e-6)
    assert 0.5 < slope < 0.7


@pytest.fixture(scope="module")
def known():
    f, truth = _frame(n=12000, seed=7)
    return AR.audit(f, features=FEATURES, groups=GROUPS, flag_share=0.1, bootstrap_reps=100, seed=1), truth


def test_audit_recovers_the_known_auc(known):
    res, truth = known
    auc = res.models["logistic"].metrics["auc"]
    assert auc.ci_low <= truth["auc"] <= auc.ci_high, (auc, truth["auc"])
    assert 0.6 < truth["auc"] < 0.75
    assert not res.verdicts["logistic"].chance
    # the boosted model sees the same signal and does about as well
    b = res.models["boosting"].metrics["auc"]
    assert abs(b.estimate - truth["auc"]) < 0.04
    # a correctly specified model on the same kind of closures is well calibrated
    slope = res.models["logistic"].metrics["calibration_slope"]
    assert slope.ci_low <= 1 <= slope.ci_high
    # precision and recall are shares, their intervals around them
    m = res.models["logistic"].metrics
    for k in ("precision", "recall"):
        assert 0 < m[k].ci_low <= m[k].estimate <= m[k].ci_high < 1


def test_results_hold_aggregates_only(known):
    res, _ = known
    d = res.to_dict()
    text = json.dumps(d, default=str)
    assert len(text) < 60_000
    assert "c1" not in json.dumps(d["models"]["logistic"]["groups"])  # no child id

    def longest(v):
        if isinstance(v, dict):
            return max([longest(x) for x in v.values()] or [0])
        if isinstance(v, list):
            return max([len(v)] + [longest(x) for x in v])
        return 0

    assert longest({k: v for k, v in d.items() if k != "verdict"}) <= 12  # calibration bins and bars, never a list of cases
    rows = sum(len(t) for t in res.models["logistic"].groups.values())
    assert len(d["verdict"]["logistic"]["checks"]) == 4 + 4 * rows  # one per bar and group, not per child


def test_audit_detects_a_planted_group_miscalibration():
    shift = {"column": "ethnic_group", "level": "Black", "logit": 1.2, "from": "2023-04-01"}
    f, _ = _frame(n=12000, seed=8, shift=shift)
    res = AR.audit(f, features=FEATURES, groups=["ethnic_group", "sex"], bootstrap_reps=100, seed=2)
    v = res.verdicts["logistic"]
    failed = {(c["what"], c["group"]) for c in v.checks if c["result"] == V.FAILS}
    assert ("observed_expected", "ethnic_group: Black") in failed
    assert v.fair == V.FAILS
    t = res.models["logistic"].groups["ethnic_group"]
    assert t.loc["Black", "observed_expected_low"] > 1.25
    # the unshifted groups are not called miscalibrated
    assert not any(w == "observed_expected" and g.startswith("sex") for w, g in failed)


def test_no_signal_is_called_no_better_than_chance():
    f, truth = _frame(n=8000, seed=9, signal=0.0)
    res = AR.audit(f, features=FEATURES, groups=["sex"], bootstrap_reps=100, seed=3)
    for kind in A.MODELS:
        auc = res.models[kind].metrics["auc"]
        assert auc.ci_low <= 0.5 <= auc.ci_high + 0.01, (kind, auc)
    assert res.verdicts["logistic"].chance
    assert res.verdicts["logistic"].accurate == V.FAILS  # the AUC's interval lies below the bar


def test_parameters_are_checked():
    p = AR.check_parameters({"flag_share": 0.2, "bars": {"auc_min": 0.8}})
    assert p["flag_share"] == 0.2 and p["bars"]["auc_min"] == 0.8 and p["bars"]["precision_min"] == A.DEFAULT_BARS["precision_min"]
    with pytest.raises(EvaluationFileError) as err:
        AR.check_parameters({"flag_shares": 0.2, "features": ["age", "primary_need"], "bars": {"auc": 0.7},
                             "primary_model": "forest", "flag_share": 2})
    msg = str(err.value)
    assert "5 problems" in msg and "Did you mean 'flag_share'" in msg and "Did you mean 'auc_min'" in msg


def test_evaluation_file_parameters_are_valid():
    from pathlib import Path

    import yaml

    from insightlib.batch.evaluation import PARAMETER_CHECKS

    root = Path(__file__).parents[1]
    ev = yaml.safe_load((root / "evaluations" / "risk_audit.yml").read_text())
    assert ev["notebook"] == "risk_model_audit" and "risk_model_audit" in PARAMETER_CHECKS
    p = AR.check_evaluation_parameters(ev["parameters"])
    assert p["bars"] == A.DEFAULT_BARS  # the file states the defaults


def test_notebook_defaults_match_the_parameters_cell():
    import ast
    from pathlib import Path

    import nbformat

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "risk_model_audit.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}
    assert {k: values[k] for k in AR.NOTEBOOK_DEFAULTS} == AR.NOTEBOOK_DEFAULTS
    assert set(values) == set(AR.NOTEBOOK_DEFAULTS) | set(AR.REPORT_PARAMETERS)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_report_words_tables_and_charts(known):
    import matplotlib.figure

    from insightlib.report import risk_audit as W

    res, _ = known
    words = W.in_children(res)
    assert "of 10 children flagged, about" in words and "of 10 children who were re-referred, the model would have flagged about" in words
    assert "accurate enough" in W.verdict_words(res)
    t = W.fairness_table(res, "ethnic_group", 5)
    assert "Total" not in t.index and len(t) == 6
    assert isinstance(W.calibration_plot(res), matplotlib.figure.Figure)
    assert isinstance(W.flag_rate_plot(res), matplotlib.figure.Figure)
    assert len(W.bars_table(res)) > 4 and len(W.accuracy_table(res)) == 8


def test_small_groups_are_hidden_in_report_and_results():
    f, _ = _frame(n=6000, seed=12)
    f.loc[f.index[:40], "sex"] = "U"  # a handful of test-period cases of one group
    res = AR.audit(f, features=FEATURES, groups=["sex"], bootstrap_reps=30, seed=1, disclosure_threshold=10)
    from insightlib.report import risk_audit as W

    hidden = res.hidden("logistic", "sex", 10)
    assert "U" in hidden
    t = W.fairness_table(res, "sex", 10)
    assert (t.loc["U"].iloc[1:] == "c").all()
    d = res.to_dict()
    assert d["models"]["logistic"]["groups"]["sex"]["U"] == {"suppressed": True}
    assert all("estimate" not in c for c in d["verdict"]["logistic"]["checks"] if c["group"] == "sex: U")


@pytest.mark.slow
def test_notebook_runs_and_reports_only_aggregates(tmp_path):
    """The evaluation file reaches the notebook; results.json carries the figures; the executed
    notebook shows no stream or error output, no identifier, and every figure has alt text."""
    from pathlib import Path

    import nbformat
    import papermill as pm
    import yaml

    from insightlib.ingest import warehouse
    from insightlib.simulate import synth

    root = Path(__file__).parents[1]
    synth.generate(1, 2500, 3, tmp_path / "data", planted_identifiers=True)
    warehouse.load_directory(tmp_path / "data", tmp_path / "w.duckdb", key="test-key-0123456789abcdef0123")
    la = warehouse.council_codes(tmp_path / "w.duckdb")[0]
    params = yaml.safe_load((root / "evaluations" / "risk_audit.yml").read_text())["parameters"]
    params.update(bootstrap_reps=30)
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(root / "notebooks" / "risk_model_audit.ipynb"), str(out), progress_bar=False,
                        parameters={"data": str(tmp_path / "w.duckdb"), "la_code": la, "output_dir": str(tmp_path), **params},
                        extra_arguments=["--IPKernelApp.log_level=ERROR"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["notebook"] == "risk_model_audit"
    assert set(res["models"]) == {"logistic", "boosting"}
    assert 0.5 <= res["models"]["logistic"]["metrics"]["auc"]["estimate"] <= 1
    assert res["verdict"]["logistic"]["accurate"] in (V.MEETS, V.FAILS, V.UNCLEAR)
    nb = nbformat.read(out, as_version=4)
    text, images = [], 0
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o["output_type"] == "display_data", (o["output_type"], str(o)[:300])
            d = o.get("data", {})
            text.append(str(d.get("text/plain", "")) + str(d.get("text/html", "")) + str(d.get("text/markdown", "")))
            if "image/png" in d:
                images += 1
                assert len(o["metadata"]["image/png"]["alt"]) > 40
    shown = "\n".join(text)
    assert images == 2 and "PLANTED" not in shown
    ids = warehouse.read_council(tmp_path / "w.duckdb", la)["children"]["child_id"].astype(str)
    assert not any(cid in shown for cid in ids)
    assert "of 10 children flagged" in shown and "What this audit cannot tell" in shown


@pytest.mark.slow
def test_auc_interval_covers_the_known_auc_over_repeats():
    """Over 20 simulated councils the logistic model's AUC interval covers the true risk function's AUC
    (the fitted model loses a little to estimation, so coverage can sit slightly under 95%)."""
    hits = 0
    reps = 20
    for s in range(reps):
        f, truth = _frame(n=6000, seed=500 + s)
        res = AR.audit(f, features=FEATURES, groups=["sex"], bootstrap_reps=100, seed=s)
        auc = res.models["logistic"].metrics["auc"]
        hits += auc.ci_low <= truth["auc"] <= auc.ci_high
    print(f"AUC interval coverage {hits}/{reps}")
    assert hits >= 16, hits


def test_the_bootstrap_calibration_fits_are_the_one_by_one_fits():
    """calibration_fits (every replicate at once, cases summed by score and outcome) gives calibration_fit's
    slope and intercept for each row of weights, to 1e-9; precision and the other threshold metrics exactly."""
    rng = np.random.default_rng(3)
    lp = np.round(rng.normal(-1.0, 1.0, 3000), 2)  # tied scores, as a model's are
    y = (rng.random(3000) < 1 / (1 + np.exp(-(0.2 + 0.8 * lp)))).astype(float)
    p = 1 / (1 + np.exp(-lp))
    W = A._bootstrap_weights(rng.integers(0, 1200, 3000), 40, 5, 3000)
    slopes, intercepts = A.calibration_fits(y, p, W)
    for w, slope, intercept in zip(W, slopes, intercepts):
        assert (slope, intercept) == pytest.approx(A.calibration_fit(y, p, w), abs=1e-9, rel=1e-9)
    flagged = p >= np.quantile(p, 0.9)
    rows = A._threshold_replicates(y, flagged, W)
    for r, w in enumerate(W):
        assert {k: v[r] for k, v in rows.items()} == A.threshold_metrics(y, flagged, w)
