"""Programme evaluation: checked against simulated panels with a known effect, and on real DfE data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from insightlib import reference
from insightlib.analyses import programme as pg
from insightlib.analyses import programme_councils, programme_panel, programme_parameters
from insightlib.report.programme import ProgrammeEffect
from insightlib.stats import did, did_randomisation, timeseries
from insightlib.errors import InputError


# --------------------------------------------------------------------------------------
# Simulated council-quarter panels with a known effect
# --------------------------------------------------------------------------------------


def simulate_panel(seed=0, per_cohort=8, never=6, quarters=24, cohorts=(8, 12, 16), growth=-0.8, noise=1.5,
                   adopter_trend=0.0):
    """Staggered adoption; the effect grows by ``growth`` points each quarter after adoption.

    Council and quarter effects are arbitrary (the quarter effects a random walk), so only the
    difference-in-differences logic can recover the truth. ``adopter_trend`` breaks parallel trends.
    """
    rng = np.random.default_rng(seed)
    adoption = [c for c in cohorts for _ in range(per_cohort)] + [None] * never
    quarter_effect = rng.normal(0, 1, quarters).cumsum() * 0.5
    rows = []
    for u, start in enumerate(adoption):
        level = rng.normal(30, 4)
        for t in range(quarters):
            e = None if start is None else t - start
            tau = growth * (e + 1) if e is not None and e >= 0 else 0.0
            drift = adopter_trend * t if start is not None else 0.0
            rows.append({"la_code": f"{100 + u}", "period": t, "adoption_period": start, "tau": tau, "event": e,
                         "rereferral_rate": level + quarter_effect[t] + drift + tau + rng.normal(0, noise)})
    panel = pd.DataFrame(rows)
    panel.attrs["time_unit"] = "quarter"
    return panel


def true_att(panel, horizon=None):
    treated = panel.loc[panel["event"].notna() & (panel["event"] >= 0)]
    if horizon is not None:
        treated = treated.loc[treated["event"] < horizon]
    return treated["tau"].mean()


@pytest.fixture(scope="module")
def panel():
    return simulate_panel(seed=0)


@pytest.fixture(scope="module")
def effect(panel):
    return pg.staggered_did(panel, "rereferral_rate", pre_periods=4)


def test_interval_covers_known_att_and_twfe_is_biased(panel, effect):
    truth = true_att(panel)
    att = effect.att
    assert att["ci_low"] <= truth <= att["ci_high"], (truth, att)
    assert abs(att["estimate"] - truth) < 0.1 * abs(truth)
    # Plain two-way fixed effects, on the same rows, is far off and its interval misses the truth.
    twfe = effect.twfe
    assert abs(twfe["estimate"] - truth) > 0.3 * abs(truth)
    assert not (twfe["ci_low"] <= truth <= twfe["ci_high"]), (truth, twfe)
    assert abs(twfe["estimate"] - truth) > 4 * att["se"]


def test_event_study_tracks_growing_effect(panel, effect):
    es = effect.event_study.set_index("event_time")
    post = es.loc[es["source"] == "effect"]
    assert list(post.index) == list(range(16))
    truth = {e: -0.8 * (e + 1) for e in range(16)}
    covered = [post.loc[e, "ci_low"] <= truth[e] <= post.loc[e, "ci_high"] for e in post.index]
    assert np.mean(covered) >= 0.8
    slope = np.polyfit(post.index.to_numpy(float), post["estimate"].to_numpy(), 1)[0]
    assert -1.0 < slope < -0.6
    assert post.loc[0, "councils"] == 24 and post.loc[15, "councils"] == 8


def test_horizon_limits_event_times_and_changes_target(panel):
    eff = pg.staggered_did(panel, "rereferral_rate", horizon=4)
    post = eff.event_study.loc[eff.event_study["source"] == "effect"]
    assert post["event_time"].tolist() == [0, 1, 2, 3]
    truth = true_att(panel, horizon=4)
    assert eff.att["ci_low"] <= truth <= eff.att["ci_high"]
    assert eff.dropped["beyond horizon"] > 0
    by_event = {e: -0.8 * (e + 1) for e in range(4)}
    assert pg.true_att_for_sample(eff, by_event) == pytest.approx(truth)


def test_pretrend_not_small_under_parallel_trends(effect):
    assert effect.pretrend["leads"] == 4
    assert effect.pretrend_p_value > 0.05
    pre = effect.event_study.loc[effect.event_study["source"] == "pre-trend test"]
    assert pre["event_time"].tolist() == [-4, -3, -2, -1]


def test_pretrend_detects_diverging_trends():
    broken = simulate_panel(seed=1, adopter_trend=0.8)
    eff = pg.staggered_did(broken, "rereferral_rate", pre_periods=4)
    assert eff.pretrend_p_value < 0.01


def test_no_effect_interval_covers_zero():
    flat = simulate_panel(seed=3, growth=0.0)
    eff = pg.staggered_did(flat, "rereferral_rate")
    assert eff.att["ci_low"] <= 0 <= eff.att["ci_high"]


def test_results_contract_and_report_pieces(effect):
    from matplotlib.figure import Figure

    out = json.loads(json.dumps(ProgrammeEffect.to_dict(effect), default=float))
    for key in ("estimate", "ci_low", "ci_high"):
        assert math.isfinite(out["att"][key])
    assert 0 <= out["pretrend_p_value"] <= 1
    assert out["n_adopters"] == 24 and out["n_councils"] == 30 and out["n_comparison_only"] == 6
    assert isinstance(effect.plot(), Figure)
    assert "fell by" in effect.summary()
    assert list(effect.contrast()["Method"].str.contains("Two-way")) == [False, True]


def test_bad_inputs_are_plain_errors(panel):
    with pytest.raises(InputError, match="outcome 'nope'"):
        pg.staggered_did(panel, "nope")
    never = panel.assign(adoption_period=None)
    with pytest.raises(InputError, match="no adopting council"):
        pg.staggered_did(never, "rereferral_rate")
    with pytest.raises(InputError, match="not a date"):
        programme_parameters.normalise_adoption({"201": "next spring"})
    with pytest.raises(InputError, match="3-digit council code"):
        programme_parameters.normalise_adoption({"Camden": "2020-01-01"})


# --------------------------------------------------------------------------------------
# Interrupted time series and statistical neighbours
# --------------------------------------------------------------------------------------


def _ar1(rng, n, phi=0.4, sd=1.0):
    e = np.zeros(n)
    for i in range(n):
        e[i] = (phi * e[i - 1] if i else 0.0) + rng.normal(0, sd)
    return e


def test_its_recovers_known_level_change():
    rng = np.random.default_rng(7)
    t = np.arange(40)
    y = 25 + 0.05 * t - 5.0 * (t >= 20) + _ar1(rng, 40)
    p = pd.DataFrame({"la_code": "202", "period": t, "rereferral_rate": y})
    its = programme_councils.interrupted_time_series(p, "202", start=20)
    lv = its.level_change
    assert lv["ci_low"] <= -5.0 <= lv["ci_high"]
    assert lv["ci_high"] < 0
    assert abs(its.slope_change["estimate"]) < 0.3
    assert its.n_before == 20 and its.n_after == 20
    assert its.table().shape[0] == 3


@pytest.mark.slow
def test_its_interval_coverage():
    # 40 quarters, AR(1) errors: REML gave 0.927 over 1,000 series (HAC, used before, 0.81).
    rng = np.random.default_rng(11)
    t = np.arange(40)
    hits = []
    for _ in range(400):
        y = 25 + 0.05 * t - 3.0 * (t >= 20) - 0.1 * (t - 20) * (t >= 20) + _ar1(rng, 40, phi=0.3)
        p = pd.DataFrame({"la_code": "202", "period": t, "rereferral_rate": y})
        its = programme_councils.interrupted_time_series(p, "202", start=20)
        hits.append(its.level_change["ci_low"] <= -3.0 <= its.level_change["ci_high"])
    print(f"ITS level-change coverage over 400 AR(1) series: {np.mean(hits):.3f}")
    assert 0.90 <= np.mean(hits) <= 0.98


def _segmented(n=30, phi=0.5, seed=3):
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    s0 = n // 2
    X = np.column_stack([np.ones(n), t - s0, t >= s0, (t - s0) * (t >= s0)]).astype(float)
    y = X @ np.array([25.0, 0.1, -3.0, -0.1]) + _ar1(rng, n, phi=phi)
    return y, X


def test_ar1_maximum_likelihood_agrees_with_statsmodels_sarimax():
    import warnings

    import statsmodels.api as sm

    y, X = _segmented()
    ours = timeseries.ar1_regression(y, X, reml=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sm.tsa.SARIMAX(y, exog=X, order=(1, 0, 0), trend="n").fit(disp=False)
    assert ours.params == pytest.approx(ref.params[:4], abs=2e-3)
    assert ours.phi == pytest.approx(ref.params[4], abs=2e-3)
    reml = timeseries.ar1_regression(y, X)
    assert reml.method.endswith("restricted maximum likelihood")
    assert reml.phi > ours.phi  # REML corrects ML's downward bias in the autocorrelation


@pytest.mark.needs_r
def test_ar1_reml_agrees_with_r_nlme_gls(tmp_path):
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not on PATH")
    y, X = _segmented(n=28, phi=0.4, seed=9)
    pd.DataFrame({"y": y, "t": X[:, 1], "after": X[:, 2], "slope": X[:, 3]}).to_csv(tmp_path / "s.csv", index=False)
    script = (
        "suppressWarnings(library(nlme)); d <- read.csv(commandArgs(TRUE)[1]);"
        "f <- gls(y ~ t + after + slope, data = d, correlation = corAR1(), method = 'REML');"
        "cat(coef(f), sqrt(diag(vcov(f))), coef(f$modelStruct$corStruct, unconstrained = FALSE), sep = ',')"
    )
    out = subprocess.run(["Rscript", "-e", script, str(tmp_path / "s.csv")], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "nlme" in out.stderr:
        pytest.skip("R's nlme package is not installed")
    vals = [float(v) for v in out.stdout.strip().split(",")]
    ours = timeseries.ar1_regression(y, X)
    assert ours.params == pytest.approx(vals[:4], abs=1e-3)
    assert ours.phi == pytest.approx(vals[8], abs=1e-3)
    # nlme's standard errors use n - k in the variance, as ours do
    assert ours.bse == pytest.approx(vals[4:8], rel=1e-3)


def _r_gls_ar1_on_period(tmp_path, frame, formula):
    """nlme::gls(formula, corAR1(form = ~period), REML): coefficients, SEs, phi (None if R/nlme missing)."""
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not on PATH")
    frame.to_csv(tmp_path / "g.csv", index=False)
    script = (
        "suppressWarnings(library(nlme)); d <- read.csv(commandArgs(TRUE)[1]);"
        f"f <- gls({formula}, data = d, correlation = corAR1(form = ~period), method = 'REML',"
        " control = glsControl(tolerance = 1e-10, msTol = 1e-10));"
        "cat(sprintf('%.12g', c(coef(f), sqrt(diag(vcov(f))), coef(f$modelStruct$corStruct, unconstrained = FALSE))), sep = ',')"
    )
    out = subprocess.run(["Rscript", "-e", script, str(tmp_path / "g.csv")], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "nlme" in out.stderr:
        pytest.skip("R's nlme package is not installed")
    assert out.returncode == 0, out.stderr
    return [float(v) for v in out.stdout.strip().split(",")]


@pytest.mark.needs_r
def test_ar1_with_interior_gaps_agrees_with_r_gls_on_the_time_index(tmp_path):
    """Two interior gaps: errors g periods apart correlate phi^g, as corAR1(form = ~period)."""
    y, X = _segmented(n=30, phi=0.6, seed=23)
    keep = np.ones(30, bool)
    keep[[6, 7, 19]] = False  # two interior gaps, one two periods long
    period = np.arange(30)[keep]
    y, X = y[keep], X[keep]
    frame = pd.DataFrame({"y": y, "t": X[:, 1], "after": X[:, 2], "slope": X[:, 3], "period": period})
    vals = _r_gls_ar1_on_period(tmp_path, frame, "y ~ t + after + slope")
    ours = timeseries.ar1_regression(y, X, times=period)
    # agreement to the optimisers' tolerance (nlme stops a little short: our REML objective is no worse at ours)
    assert ours.params == pytest.approx(vals[:4], rel=1e-5, abs=1e-6)
    assert ours.bse == pytest.approx(vals[4:8], rel=1e-5)
    assert ours.phi == pytest.approx(vals[8], abs=1e-5)
    gaps = timeseries.period_gaps(period, len(y))
    assert timeseries.ar1_profile(ours.phi, y, X, True, gaps) <= timeseries.ar1_profile(vals[8], y, X, True, gaps) + 1e-12
    # treating the points either side of a gap as adjacent (the old way) is a different, wrong answer here
    adjacent = timeseries.ar1_regression(y, X)
    assert abs(adjacent.bse[2] - ours.bse[2]) / ours.bse[2] > 0.05

    # the interrupted time series and the neighbour comparison pass the periods on
    p = pd.DataFrame({"la_code": "202", "period": period + 8000, "rereferral_rate": y})
    its = programme_councils.interrupted_time_series(p, "202", start=8015)
    assert its.level_change["estimate"] == pytest.approx(vals[2], rel=1e-5)
    assert its.level_change["se"] == pytest.approx(vals[6], rel=1e-5)
    assert its.autocorrelation == pytest.approx(vals[8], abs=1e-5)


@pytest.mark.needs_r
def test_neighbour_comparison_with_gaps_agrees_with_r_gls(tmp_path):
    council, nb = "202", reference.neighbours_of("202")[:3]
    rng = np.random.default_rng(8)
    rows = []
    for code in [council] + nb:
        for q in range(26):
            if code == council and q in (5, 17, 18):
                continue  # the council's own figure is missing in three quarters
            rows.append({"la_code": code, "period": 8000 + q, "rereferral_rate": 25 + rng.normal(0, 1.5) - 2.0 * (code == council and q >= 13),
                         "adoption_period": 8013 if code == council else None})
    nc = programme_councils.neighbour_comparison(pd.DataFrame(rows), council)
    s = nc.series
    assert len(s) == 23 and s["period"].is_monotonic_increasing
    frame = pd.DataFrame({"gap": s["gap"], "after": (s["period"] >= 8013).astype(float), "period": s["period"]})
    vals = _r_gls_ar1_on_period(tmp_path, frame, "gap ~ after")
    assert nc.change["estimate"] == pytest.approx(vals[1], rel=1e-5, abs=1e-6)
    assert nc.change["se"] == pytest.approx(vals[3], rel=1e-5)
    assert nc.autocorrelation == pytest.approx(vals[4], abs=1e-5)


def test_short_series_falls_back_to_least_squares_and_says_why():
    rng = np.random.default_rng(4)
    t = np.arange(10)
    p = pd.DataFrame({"la_code": "202", "period": t, "rereferral_rate": 20 - 4.0 * (t >= 5) + rng.normal(0, 0.5, 10)})
    its = programme_councils.interrupted_time_series(p, "202", start=5)
    assert its.method == "ordinary least squares"
    assert "too few" in its.note and "10 points" in its.note
    assert its.level_change["ci_low"] < -4.0 + 3 and its.level_change["ci_high"] < 0
    assert "Note:" in its.summary()


def test_neighbour_comparison_finds_known_gap_change():
    council = "202"  # Camden
    neighbours = reference.neighbours_of(council)
    assert len(neighbours) == 10
    rng = np.random.default_rng(5)
    rows = []
    common = rng.normal(0, 1, 24).cumsum()
    for code in [council] + neighbours:
        base = rng.normal(25, 3)
        for q in range(24):
            change = -4.0 if code == council and q >= 12 else 0.0
            rows.append({"la_code": code, "period": 8000 + q, "rereferral_rate": base + common[q] + change + rng.normal(0, 0.8),
                         "adoption_period": 8012 if code == council else None})
    p = pd.DataFrame(rows)
    nc = programme_councils.neighbour_comparison(p, council)
    assert nc.start == 8012 and len(nc.neighbours) == 10
    assert nc.change["ci_low"] <= -4.0 <= nc.change["ci_high"] and nc.change["ci_high"] < 0
    with pytest.raises(InputError, match="statistical neighbours"):
        programme_councils.neighbour_comparison(p.loc[p["la_code"] == council], council)


# --------------------------------------------------------------------------------------
# The council-quarter panel from canonical tables
# --------------------------------------------------------------------------------------


def _tables():
    """Two councils; every re-referral outcome below is worked out by hand."""
    D = pd.Timestamp
    children = pd.DataFrame({
        "la_code": ["201"] * 5 + ["202"] * 2,
        "child_id": ["a", "b", "c", "d", "e", "f", "g"],
        "date_of_birth": [D("2010-01-01"), D("2010-01-01"), D("2002-06-01"), D("2010-01-01"), D("2010-01-01"),
                          D("2012-01-01"), D("2012-01-01")],
        "sex": "F", "ethnicity": "WBRI",
    })
    r = [
        # la, referral, child, referral date, closure date, reason, nfa
        ("201", "r1", "a", "2019-01-10", "2019-02-15", "RC7", False),
        ("201", "r2", "a", "2019-09-01", "2019-10-01", "RC8", False),  # a re-referred 198 days after r1 closed
        ("201", "r3", "b", "2019-01-20", "2019-03-01", "RC8", False),
        ("201", "r4", "b", "2020-03-10", None, None, False),          # b back after 375 days: not within 12 months
        ("201", "r5", "c", "2019-02-01", "2019-02-20", "RC7", False),  # c turns 18 on 2020-06-01 ...
        ("201", "r6", "c", "2019-03-05", "2019-03-25", "RC7", True),   # ... re-referred 13 days after r5: counts
        ("201", "r7", "d", "2019-04-02", "2019-05-01", "RC8", False),
        ("201", "r8", "e", "2020-01-15", "2020-02-01", "RC7", False),  # closed in 2020Q1: no full year before extract
        ("202", "s1", "f", "2019-01-05", "2019-03-01", "RC7", False),
        ("202", "s2", "f", "2019-12-01", "2019-12-20", "RC7", False),
        ("202", "s3", "g", "2019-02-01", "2019-02-10", "RC8", True),
    ]
    referrals = pd.DataFrame(r, columns=["la_code", "referral_id", "child_id", "referral_date", "closure_date",
                                         "closure_reason", "referral_nfa"])
    for c in ("referral_date", "closure_date"):
        referrals[c] = pd.to_datetime(referrals[c])
    referrals["referral_source"] = "2A"
    referrals["primary_need"] = "N1"
    plans = pd.DataFrame({"la_code": ["201", "201", "202"], "referral_id": ["r1", "r3", "s1"], "child_id": ["a", "b", "f"],
                          "plan_type": ["CP", "CIN", "CP"],
                          "start_date": pd.to_datetime(["2019-01-30", "2019-02-10", "2019-04-10"])})
    councils = pd.DataFrame({"la_code": ["201", "202"], "la_name": ["City of London", "Camden"],
                             "extract_date": pd.to_datetime(["2021-01-31", "2021-01-31"])})
    return {"councils": councils, "children": children, "referrals": referrals, "plans": plans}


def test_council_quarter_panel_by_hand():
    panel = programme_panel.council_quarter_panel(_tables(), {"201": "2019-04-15", "202": None}, population={"201": 1000, "202": 20000})
    q = panel.set_index(["la_code", "quarter"])
    # City of London 2019Q1 closures: r1 (back in 198 days), r3 (back after 375 days), r5 (back in 13 days, before 18), r6.
    row = q.loc[("201", "2019Q1")]
    assert row["closures"] == 4 and row["cohort_closures"] == 4
    assert row["rereferrals_12m"] == 2
    assert row["rereferral_rate"] == pytest.approx(50.0)
    assert row["referrals"] == 4 and row["cp_plans"] == 1
    assert row["nfa_closures"] == 2  # r3 closed RC8, r6 a no-further-action referral
    assert row["referrals_per_10k"] == pytest.approx(40.0)
    assert row["event_time"] == -1 and not row["treated"]
    row = q.loc[("201", "2019Q2")]
    assert row["event_time"] == 0 and row["treated"] and row["rereferral_rate"] == 0.0
    # 2020Q1 ends 2020-03-31, a year later is after the extract date: missing, never zero.
    assert pd.isna(q.loc[("201", "2020Q1"), "rereferral_rate"])
    assert not q.loc[("201", "2020Q1"), "full_follow_up"]
    # Extract date 2021-01-31 falls inside 2021Q1, so the last quarter is 2020Q4.
    assert panel.loc[panel["la_code"] == "201", "quarter"].max() == "2020Q4"
    # Camden never adopted.
    assert panel.loc[panel["la_code"] == "202", "treated"].eq(False).all()
    assert q.loc[("202", "2019Q1"), "rereferral_rate"] == pytest.approx(50.0)


def test_eighteenth_birthday_truncates_rereferral():
    tables = _tables()
    # c turns 18 on 2020-06-01; move the second referral to after that birthday but within 365 days of closure.
    ref = tables["referrals"]
    ref.loc[ref["referral_id"] == "r5", ["referral_date", "closure_date"]] = [pd.Timestamp("2019-09-01"), pd.Timestamp("2019-09-10")]
    ref.loc[ref["referral_id"] == "r6", ["referral_date", "closure_date"]] = [pd.Timestamp("2020-06-15"), pd.Timestamp("2020-07-01")]
    panel = programme_panel.council_quarter_panel(tables, {}).set_index(["la_code", "quarter"])
    assert panel.loc[("201", "2019Q3"), "cohort_closures"] == 1
    assert panel.loc[("201", "2019Q3"), "rereferrals_12m"] == 0


def test_panel_accepts_tables_by_council():
    tables = _tables()
    by_council = {code: {name: df.loc[df["la_code"] == code].drop(columns="la_code") for name, df in tables.items()}
                  for code in ("201", "202")}
    a = programme_panel.council_quarter_panel(tables, {"201": "2019-04-15"})
    b = programme_panel.council_quarter_panel(by_council, {"201": "2019-04-15"})
    cols = ["la_code", "quarter", "referrals", "rereferrals_12m", "cohort_closures", "cp_plans", "treated"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_panel_rejects_unknown_adopter():
    with pytest.raises(InputError, match="999"):
        programme_panel.council_quarter_panel(_tables(), {"999": "2019-01-01"})


def test_adoption_from_truth_and_files(tmp_path):
    (tmp_path / "truth.json").write_text(json.dumps({"programme": {"adoption": {"201": "2019-04-01", "202": None}}}))
    got = programme_parameters.resolve_adoption("from_truth", data=tmp_path)
    assert got == {"201": pd.Timestamp("2019-04-01"), "202": None}
    warehouse = tmp_path / ".warehouse.duckdb"
    assert programme_parameters.resolve_adoption("from_truth", data=warehouse) == got  # truth.json beside a warehouse file
    csv = tmp_path / "adoption.csv"
    csv.write_text("la_code,adoption_date\n201,2018-07-01\n202,\n")
    assert programme_parameters.resolve_adoption(None, adoption_file=csv) == {"201": pd.Timestamp("2018-07-01"), "202": None}
    with pytest.raises(InputError, match="truth.json"):
        programme_parameters.resolve_adoption("from_truth", data=tmp_path / "elsewhere" / "x")
    bad = tmp_path / "bad.csv"
    bad.write_text("la_code,adoption_date\n201,soon\n")
    with pytest.raises(InputError, match="row 2"):
        programme_parameters.read_adoption_file(bad)


# --------------------------------------------------------------------------------------
# Real data: DfE's published council panel
# --------------------------------------------------------------------------------------


def test_published_panel_symbols_are_missing_not_zero():
    p = programme_panel.published_panel()
    assert p["year"].min() == 2013 and p["year"].max() == 2025
    assert p["la_code"].nunique() >= 150
    symbols = p["rereferral_rate_symbol"] != ""
    assert symbols.any()
    assert p.loc[symbols, "rereferral_rate"].isna().all()
    assert not p["treated"].any()
    adopted = programme_panel.published_panel({"202": "2017-06-01"})
    camden = adopted.loc[adopted["la_code"] == "202"].set_index("year")
    assert camden.loc[2018, "event_time"] == 0 and camden.loc[2017, "event_time"] == -1


@pytest.mark.slow
def test_placebo_adoptions_on_real_councils_reject_at_nominal_rate():
    check = pg.placebo_check(programme_panel.published_panel(), n_draws=200, seed=2026)
    print(f"Placebo rejection rate on DfE published re-referral rates: {check.rate:.3f} "
          f"({check.rejections}/{check.n_draws}, nominal 0.05)")
    assert 0.01 <= check.rate <= 0.12
    assert abs(check.estimates["estimate"].mean()) < 0.5


def test_placebo_fast_two_stage_equals_pyfixest_did2s(panel):
    # The placebo loop's numpy did2s must be the same estimator as the headline's pyfixest call.
    d = did.estimation_sample(panel, "rereferral_rate", "la_code", "period", "adoption_period", None).data
    names = []
    for e in sorted(d.loc[d["treated"], "event_time"].unique())[:6]:
        d[f"e{int(e)}"] = (d["treated"] & (d["event_time"] == e)).astype(float)
        names.append(f"e{int(e)}")
    for regressors in (["post"], names):
        slow, fast = did.did2s(d, regressors, 0.05), did.did2s_fast(d, regressors, 0.05)
        for name in regressors:
            assert fast[name]["estimate"] == pytest.approx(slow[name]["estimate"], abs=1e-8)
            assert fast[name]["se"] == pytest.approx(slow[name]["se"], rel=1e-6)
    # on the real, unbalanced published panel pyfixest's iterative demeaning stops at its tolerance
    pub = programme_panel.published_panel()
    rng = np.random.default_rng(8)
    adopters = rng.choice(pub["la_code"].unique(), 60, replace=False)
    pub["placebo"] = pub["la_code"].map(dict(zip(adopters, rng.choice(np.arange(2015, 2025), 60))))
    d = did.estimation_sample(pub, "rereferral_rate", "la_code", "period", "placebo", None).data
    slow, fast = did.did2s(d, ["post"], 0.05)["post"], did.did2s_fast(d, ["post"], 0.05)["post"]
    assert fast["estimate"] == pytest.approx(slow["estimate"], abs=1e-3)
    assert fast["se"] == pytest.approx(slow["se"], rel=1e-4)


def test_placebo_rejection_rate_small_run():
    rate = pg.placebo_rejection_rate(programme_panel.published_panel(), n_draws=3, seed=1)
    assert 0.0 <= rate <= 1.0


@pytest.mark.slow
def test_did_interval_coverage_over_repeats():
    hits, twfe_bias = [], []
    for seed in range(40):
        p = simulate_panel(seed=100 + seed)
        eff = pg.staggered_did(p, "rereferral_rate", pre_periods=2)
        truth = true_att(p)
        hits.append(eff.att["ci_low"] <= truth <= eff.att["ci_high"])
        twfe_bias.append(eff.twfe["estimate"] - truth)
    print(f"did2s coverage over 40 simulated panels: {np.mean(hits):.3f}; mean TWFE bias {np.mean(twfe_bias):+.2f}")
    assert np.mean(hits) >= 0.85
    assert np.mean(twfe_bias) > 1.5


# --------------------------------------------------------------------------------------
# Synthetic councils from insightlib.simulate.synth (known truth in truth.json)
# --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_synthetic_councils_interval_covers_true_att(tmp_path):
    from insightlib.simulate import synth

    out = synth.generate(n_councils=12, children_per_council=3000, seed=11, out_dir=tmp_path)
    truth = json.loads((out / "truth.json").read_text())
    tables = pg.council_tables(out)
    adoption = programme_parameters.resolve_adoption("from_truth", data=out)
    panel = programme_panel.council_quarter_panel(tables, adoption)
    eff = pg.staggered_did(panel, "rereferral_rate", horizon=8)
    by_event = truth["programme"].get("att_by_event_time")
    target = pg.true_att_for_sample(eff, by_event) if by_event else truth["programme"]["att"]
    print(f"synthetic councils: ATT {eff.att['estimate']:.2f} ({eff.att['ci_low']:.2f} to {eff.att['ci_high']:.2f}), truth {target:.2f}")
    assert eff.att["ci_low"] <= target <= eff.att["ci_high"]
    # Over the whole period TWFE targets truth.json's twfe_estimand, not the ATT (58 of 60 seeds covered it).
    whole = pg.staggered_did(panel, "rereferral_rate", horizon=None, pre_periods=0)
    estimand = truth["programme"].get("twfe_estimand")
    if estimand is not None:
        assert whole.twfe["ci_low"] <= estimand <= whole.twfe["ci_high"], (whole.twfe, estimand)


@pytest.fixture(scope="module")
def synthetic_councils(tmp_path_factory):
    """Six synthetic councils, three adopting the programme at staggered dates (truth.json knows the effect)."""
    from insightlib.simulate import synth

    out = synth.generate(n_councils=6, children_per_council=800, seed=3, out_dir=tmp_path_factory.mktemp("programme") / "data")
    return out


def test_noise_free_synthetic_panel_gives_truth_att_and_twfe_estimand(synthetic_councils):
    """On the synthetic councils' panel with the true effects and no noise, the headline method gives
    truth.json's ATT exactly and two-way fixed effects gives its twfe_estimand: the bias is the method's."""
    truth = json.loads((synthetic_councils / "truth.json").read_text())["programme"]
    panel = programme_panel.council_quarter_panel(pg.council_tables(synthetic_councils),
                                     programme_parameters.resolve_adoption("from_truth", data=synthetic_councils))
    p = panel.loc[panel["full_follow_up"]].copy()
    cells = truth["att_by_council_quarter"]
    tau = np.array([cells.get(c, {}).get(q, 0.0) for c, q in zip(p["la_code"], p["quarter"])])
    assert (tau != 0).sum() == truth["treated_council_quarters"] == int(p["treated"].sum())
    rng = np.random.default_rng(0)
    council_effect = dict(zip(sorted(p["la_code"].unique()), rng.normal(25, 3, p["la_code"].nunique())))
    periods = sorted(p["period"].unique())
    quarter_effect = dict(zip(periods, rng.normal(0, 1, len(periods)).cumsum()))
    p["rereferral_rate"] = p["la_code"].map(council_effect) + p["period"].map(quarter_effect) + tau
    eff = pg.staggered_did(p, "rereferral_rate", horizon=None)
    assert eff.att["estimate"] == pytest.approx(truth["att"], abs=1e-6)
    assert eff.twfe["estimate"] == pytest.approx(truth["twfe_estimand"], abs=1e-6)
    assert eff.twfe["estimate"] - eff.att["estimate"] == pytest.approx(truth["twfe_bias"], abs=1e-6)
    assert abs(truth["twfe_bias"]) > 0.02 * abs(truth["att"])  # growing effects: TWFE is pulled towards zero


def _executed_outputs(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            parts.append(json.dumps({k: v for k, v in o.get("data", {}).items() if k != "image/png"}))
            parts.append("".join(o.get("text", "")))
    return "\n".join(parts)


def test_notebook_is_committed_without_outputs():
    from pathlib import Path

    nb = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "programme_evaluation.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code[0]["metadata"].get("tags") == ["parameters"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.slow
def test_notebook_runs_national_scope_and_writes_the_results_contract(synthetic_councils, tmp_path, monkeypatch):
    """insight run evaluations/programme.yml, end to end on small synthetic data (papermill)."""
    from pathlib import Path

    import yaml

    from insightlib.batch.evaluation import parse_evaluation
    from insightlib.ingest.pseudonymise import make_key_file
    from insightlib.batch.runner import run_evaluation

    root = Path(__file__).resolve().parents[1]
    key = tmp_path / "insight.key"
    make_key_file(key)
    monkeypatch.setenv("INSIGHT_KEY_FILE", str(key))
    raw = yaml.safe_load((root / "evaluations" / "programme.yml").read_text())
    raw["parameters"]["placebo_draws"] = 10
    evaluation = parse_evaluation(raw, "programme.yml", notebooks_dir=root / "notebooks")
    assert evaluation.scope == "national"
    summary = run_evaluation(evaluation, data=str(synthetic_councils), out_dir=tmp_path / "reports", workers=1,
                             notebooks_dir=root / "notebooks", progress=False, log=lambda m: None)
    assert [r.status for r in summary.runs] == ["ok"], [r.error for r in summary.runs]
    folder = tmp_path / "reports" / evaluation.name / "national"
    results = json.loads((folder / "results.json").read_text())
    for key_ in ("estimate", "ci_low", "ci_high"):
        assert math.isfinite(results["att"][key_])
    assert results["att"]["ci_low"] < results["att"]["estimate"] < results["att"]["ci_high"]
    assert 0 <= results["pretrend_p_value"] <= 1
    assert math.isfinite(results["twfe"]["estimate"])
    assert results["placebo"]["n_draws"] == 10
    assert results["councils_in_data"] == 6 and results["councils_adopting"] == 3
    focus = results["parameters"]["council"]
    assert focus in results["interrupted_time_series"]
    assert focus in results["neighbour_comparison"] or focus in results["neighbour_comparison_published"]
    # nothing row-level in what the report shows: no child or referral identifier, no raw table
    nb = json.loads((folder / "programme_evaluation.ipynb").read_text())
    shown = _executed_outputs(nb)
    children = pd.read_csv(synthetic_councils / "children.csv", dtype=str)["child_id"]
    referrals = pd.read_csv(synthetic_councils / "referrals.csv", dtype=str)["referral_id"]
    assert not any(i in shown for i in list(children.sample(200, random_state=1)) + list(referrals.sample(200, random_state=1)))
    assert "child_id" not in shown and "referral_id" not in shown
    assert "Traceback" not in shown
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 3  # event study, interrupted time series, neighbours


# --------------------------------------------------------------------------------------
# Few adopting councils: randomisation inference; neighbour comparisons calibrated on placebo dates
# --------------------------------------------------------------------------------------


def few_adopters_panel(rng, n_units=8, n_adopt=3, quarters=20, tau=-2.0, phi=0.5):
    """A constant effect ``tau`` in ``n_adopt`` councils chosen at random, adopting at random quarters."""
    adopters = rng.choice(n_units, n_adopt, replace=False)
    adopt = np.full(n_units, -1)
    adopt[adopters] = rng.integers(6, 15, n_adopt)
    common = rng.normal(0, 1, quarters).cumsum() * 0.5
    rows = []
    for u in range(n_units):
        level, e = rng.normal(30, 4), 0.0
        for t in range(quarters):
            e = phi * e + rng.normal(0, 1.5)
            treated = adopt[u] >= 0 and t >= adopt[u]
            rows.append({"la_code": f"{100 + u}", "period": t, "adoption_period": adopt[u] if adopt[u] >= 0 else None,
                         "rereferral_rate": level + common[t] + e + (tau if treated else 0.0)})
    panel = pd.DataFrame(rows)
    panel.attrs["time_unit"] = "quarter"
    return panel


def test_few_adopters_get_randomisation_inference_and_a_warning(effect):
    p = few_adopters_panel(np.random.default_rng(4))
    few = pg.staggered_did(p, "rereferral_rate", pre_periods=2)
    ri = few.att_randomisation
    assert few.n_adopters == 3 and few.few_adopters and ri is not None and ri["exact"] and ri["arrangements"] == 336
    assert ri["estimate"] == pytest.approx(few.att["estimate"], abs=1e-6)  # the same two-stage estimate as pyfixest
    assert ri["ci_low"] < ri["estimate"] < ri["ci_high"] and few.headline_interval is ri
    head = few.summary()
    assert head.startswith("Warning: only 3 councils adopted the programme") and "randomisation inference" in head
    assert f"{ri['ci_low']:.1f} to {ri['ci_high']:.1f}" in head
    assert few.to_dict()["headline_interval"]["interval_from"] == "randomisation inference"
    assert len(few.contrast()) == 3
    # many adopters: the clustered interval, no warning
    assert not effect.few_adopters and effect.att_randomisation is None and not effect.summary().startswith("Warning")
    # 2 adopters of 4 councils: 12 arrangements cannot give a 95% interval, and the headline says so
    tiny = pg.staggered_did(few_adopters_panel(np.random.default_rng(5), n_units=4, n_adopt=2), "rereferral_rate")
    assert tiny.att_randomisation["arrangements"] == 12 and not np.isfinite(tiny.att_randomisation["ci_low"])
    assert "too few councils for a 95% interval" in tiny.summary()


def test_few_adopters_get_randomisation_intervals_for_every_period_of_the_event_study(effect):
    """Issue 11: with fewer than 6 adopters the event study's per-period intervals (after adoption and the
    pre-trend leads) come from randomisation inference too, not clustered t."""
    few = pg.staggered_did(few_adopters_panel(np.random.default_rng(4)), "rereferral_rate", pre_periods=2)
    es = few.event_study
    assert (es["interval_from"] == "randomisation inference").all() and set(es["source"]) == {"effect", "pre-trend test"}
    three = es["councils"] == 3
    assert three.sum() >= 6 and np.isfinite(es.loc[three, ["ci_low", "ci_high"]].to_numpy(float)).all()
    assert ((es.loc[three, "ci_low"] < es.loc[three, "estimate"]) & (es.loc[three, "estimate"] < es.loc[three, "ci_high"])).all()
    # one adopting council at a period: no arrangement can give a 95% interval, and the report says so
    one = es["councils"] == 1
    assert one.any() and not np.isfinite(es.loc[one, ["ci_low", "ci_high"]].to_numpy(float)).all(axis=1).any()
    table = few.table()
    assert (table.loc[one.to_numpy(), "95% interval"] == "too few councils for an interval").all()
    assert (table["Interval from"] == "randomisation inference").all()
    assert all(v["interval_from"] == "randomisation inference" for v in few.to_dict()["event_study"].values())
    few.plot()  # unbounded intervals are drawn as a hollow point, not an error bar to infinity
    # they replace the clustered t intervals (estimate +- t(G - 1) se), which are narrower here
    from scipy import stats

    q = stats.t.ppf(0.975, few.n_councils - 1)
    width_t = 2 * q * es.loc[three, "se"]
    assert ((es.loc[three, "ci_high"] - es.loc[three, "ci_low"]) - width_t).abs().min() > 1e-3
    # many adopters: clustered by council, as before
    assert (effect.event_study["interval_from"] == "clustered by council").all() and "Interval from" not in effect.table()


def test_randomisation_first_stage_is_the_two_stage_estimate_overall_and_by_event_time():
    """Under the actual adoption dates, randomisation inference's one first stage (council and period effects on
    the untreated rows) gives the two-stage estimates themselves: the overall ATT and each period since adoption."""
    from insightlib.stats.did_randomisation import _RiSetup, _ri_event_means

    p = few_adopters_panel(np.random.default_rng(11))
    d = did.estimation_sample(p, "rereferral_rate", "la_code", "period", "adoption_period", None).data
    ri = did_randomisation.randomisation_interval(d, max_draws=50)
    assert ri["estimate"] == pytest.approx(did.did2s_fast(d, ["post"], 0.05)["post"]["estimate"], abs=1e-9)
    event_times = sorted(int(e) for e in d.loc[d["treated"], "event_time"].unique())
    for e in event_times:
        d[f"e{e}"] = (d["treated"] & (d["event_time"] == e)).astype(float)
    two_stage = did.did2s_fast(d, [f"e{e}" for e in event_times], 0.05)
    r = _RiSetup(d, 50, 0)
    means = _ri_event_means(r.u, r.t_real, r.t, d[["y"]].to_numpy(float), r.idx0, r.real0, r.n_units, r.n_times,
                            event_times)[:, 0]
    assert means == pytest.approx([two_stage[f"e{e}"]["estimate"] for e in event_times], abs=1e-9)


@pytest.mark.slow
def test_randomisation_event_study_coverage_with_three_adopters():
    """Per-period coverage over repeats with 3 adopters of 8 (true effect -2 after adoption, 0 before):
    randomisation inference near 95%; clustered t (G - 1 degrees of freedom) is printed beside it."""
    from scipy import stats

    rng = np.random.default_rng(1)
    post, lead, post_t = [], [], []
    for _ in range(100):
        few = pg.staggered_did(few_adopters_panel(rng), "rereferral_rate", pre_periods=2, horizon=4)
        es = few.event_study
        q = stats.t.ppf(0.975, few.n_councils - 1)
        e, b = es[es["source"] == "effect"], es[es["source"] == "pre-trend test"]
        post += list((e["ci_low"] <= -2.0) & (-2.0 <= e["ci_high"]))
        lead += list((b["ci_low"] <= 0.0) & (0.0 <= b["ci_high"]))
        post_t += list((e["estimate"] - q * e["se"] <= -2.0) & (-2.0 <= e["estimate"] + q * e["se"]))
    print(f"event-study coverage, 3 adopters of 8: after adoption {np.mean(post):.3f} (clustered t {np.mean(post_t):.3f}), "
          f"leads {np.mean(lead):.3f}; {len(post)} and {len(lead)} intervals")
    assert 0.91 <= np.mean(post) <= 0.99, np.mean(post)
    assert 0.91 <= np.mean(lead) <= 0.99, np.mean(lead)


@pytest.mark.slow
def test_randomisation_interval_coverage_with_three_adopters():
    """Over repeats with 3 adopters of 8 councils, the randomisation interval covers the true effect ~95%."""
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(200):
        p = few_adopters_panel(rng)
        d = did.estimation_sample(p, "rereferral_rate", "la_code", "period", "adoption_period", None).data
        ri = did_randomisation.randomisation_interval(d)
        hits.append(ri["ci_low"] <= -2.0 <= ri["ci_high"])
    assert 0.91 <= np.mean(hits) <= 0.985, np.mean(hits)


def test_neighbour_comparison_calibrated_on_published_placebo_dates():
    cal = programme_councils.neighbour_calibration()
    assert cal.draws >= 1000 and cal.critical_value > 3  # the gap wanders more than the model allows
    assert cal.uncalibrated_rate > 0.1
    pub = programme_panel.published_panel({"202": 2019})
    plain = programme_councils.neighbour_comparison(pub, "202", source="DfE's published re-referral rates")
    calibrated = programme_councils.neighbour_comparison(pub, "202", source="DfE's published re-referral rates", calibration=cal)
    assert calibrated.change["estimate"] == plain.change["estimate"]
    width = lambda c: c["ci_high"] - c["ci_low"]  # noqa: E731
    assert width(calibrated.change) == pytest.approx(2 * cal.critical_value * plain.change["se"])
    assert width(calibrated.change) > width(plain.change)
    assert f"calibrated on {cal.draws:,} made-up start dates" in calibrated.method
    assert "made-up start dates" in calibrated.summary()
    assert 0 < calibrated.change["p_value"] <= 1


@pytest.mark.slow
def test_calibrated_neighbour_comparison_false_positive_rate_is_nominal():
    """Over every made-up start year of every council (over 1,000 placebo dates), each judged against the
    threshold from the other councils only, the calibrated comparison finds a change about 5% of the time;
    the model's own interval about three times as often."""
    fpr = programme_councils.neighbour_false_positive_rate()
    assert fpr["draws"] >= 1000 and fpr["councils"] > 140
    lo, hi = fpr["calibrated_rate_ci"]
    assert lo <= 0.05 <= hi and 0.035 <= fpr["calibrated_rate"] <= 0.065, fpr
    assert fpr["uncalibrated_rate"] > 0.1


def _drifting_panel(seed, quarters=20, adopter=None, start=None, change=0.0):
    """Every council's quarterly rate on its own random walk: the gap to its neighbours drifts more than a
    short AR(1) series allows, as DfE's published rates do."""
    rng = np.random.default_rng(seed)
    rows = []
    for code in sorted(set(reference.local_authorities()["la_code"])):
        walk = np.cumsum(rng.normal(0, 0.8, quarters))
        for q in range(quarters):
            adopted = code == adopter
            rows.append({"la_code": code, "period": 8000 + q, "adoption_period": 8000 + start if adopted else None,
                         "rereferral_rate": 25 + walk[q] + rng.normal(0, 1.0) + (change if adopted and q >= start else 0.0)})
    panel = pd.DataFrame(rows)
    panel.attrs["time_unit"] = "quarter"
    return panel


@pytest.mark.slow
def test_in_extract_neighbour_comparisons_are_calibrated_on_made_up_dates_in_the_extracts(monkeypatch):
    """Issue 11: quarterly neighbour comparisons inside the extracts, calibrated on their own placebo dates.
    Judged on an independent panel, the model's own interval finds a change at ~25% of made-up dates; the
    calibrated one at the nominal 5%."""
    cal = programme_councils.extract_neighbour_calibration(_drifting_panel(1))
    fresh = programme_councils.extract_neighbour_calibration(_drifting_panel(2))
    assert cal.draws >= 200 and cal.source == "the councils' own extracts"
    rate = float(np.mean(fresh.abs_t > cal.critical_value))
    print(f"in-extract neighbour comparisons: {fresh.draws} placebo dates, model's own interval {fresh.uncalibrated_rate:.3f}, "
          f"calibrated {rate:.3f} (critical value {cal.critical_value:.2f})")
    assert fresh.uncalibrated_rate > 0.12 and 0.03 <= rate <= 0.08
    # the report uses it: the comparison's interval and words say where its width comes from
    monkeypatch.setattr(pg, "extract_neighbour_calibration", lambda *a, **k: cal)  # the calibration above
    small = _drifting_panel(3, adopter="202", start=10, change=-3.0)
    small = small.loc[small["la_code"].isin(["202"] + reference.neighbours_of("202"))]
    ev = pg.evaluate_programme(small, placebo_draws=0, published_neighbours=False)
    nc = ev.neighbours["202"]
    assert nc.change["calibrated_on"] == "the councils' own extracts"
    assert "made-up start dates on the councils' own extracts" in nc.summary() and "lower bound" not in nc.summary()
    assert "inside the councils' own extracts" in ev.neighbour_calibration_sentence()
    assert ev.to_dict()["extract_neighbour_calibration"]["draws"] >= 200
    # too few councils with neighbours in the data: no calibration, and the report says the interval is a lower bound
    monkeypatch.undo()
    few = programme_councils.extract_neighbour_calibration(_drifting_panel(4).query("la_code in ['202', '206', '207']"))
    assert few is None


def _quarters(la: str, values: list[int], first: int) -> pd.DataFrame:
    df = pd.DataFrame({"la_code": la, "period": range(first, first + len(values)), "referrals": values})
    df.attrs["time_unit"] = "quarter"
    return df


def test_a_small_quarter_does_not_come_back_from_its_years_referrals():
    """Issue 9: with outcome referrals, a year's four quarters add up to the referrals DfE's measure publishes for
    that year (re-referral report, national page). A lone hidden quarter (3) would come back by subtraction: a
    second is hidden, through report.disclosure, so at least threshold values stay possible."""
    from itertools import product

    first = 2021 * 4 + 1  # 2021Q2: the year to 31 March 2022 begins
    rows = _quarters("X", [10, 3, 12, 9, 20, 30, 25, 40, 2], first)  # two whole years, then one quarter
    hide = programme_councils.suppressed_rows(rows, "referrals", 5)
    assert hide.iloc[1] and hide.iloc[8]  # the small ones
    assert hide.iloc[:4].sum() >= 2 and not hide.iloc[4:8].any()  # a second quarter of that year, none of the next
    # what a reader can still say about the hidden quarters of the first year, knowing its total (34)
    shown = sum(v for v, h in zip(rows["referrals"][:4], hide[:4]) if not h)
    k = int(hide.iloc[:4].sum())
    possible = {c[0] for c in product(range(0, 35), repeat=k) if sum(c) == 34 - shown and min(c) >= 1}
    assert len(possible) >= 5, possible
    # without the year identity (a partial year) only the small quarter itself is hidden
    assert programme_councils.suppressed_rows(_quarters("X", [10, 3, 12], first), "referrals", 5).tolist() == [
        False, True, False]


def test_the_one_neighbours_line_hides_its_small_counts():
    """A council compared with one neighbour drew that neighbour's own quarterly referrals (0, 1, 2 ...) unhidden."""
    first = 2021 * 4 + 1
    own = _quarters("A", [20, 25, 30, 22, 21, 27, 33, 24], first)
    nb = _quarters("B", [2, 9, 11, 14, 12, 13, 15, 16], first)
    panel = pd.concat([own, nb], ignore_index=True)
    panel.attrs["time_unit"] = "quarter"
    s = programme_councils._gap_series(panel, "A", ["B"], "referrals", "period", 5)
    assert s["neighbours_suppressed"].iloc[0] and s["neighbours_suppressed"].iloc[:4].sum() >= 2
    assert not s["suppressed"].any() and not s["neighbours_suppressed"].iloc[4:].any()


def _exact_twfe(d: pd.DataFrame) -> tuple[float, float]:
    """y ~ post with council and period effects projected out exactly (did._residualise, least squares on the
    dummies) and did._cluster_wald's CRV1 variance, with fixest's small-sample factor for TWFE: the council
    effects are nested in the clusters, so K is post and the time effects."""
    resid = did._residualise(d, ["post", "y"])
    x, y = resid[:, :1], resid[:, 1]
    groups = pd.factorize(d["unit"])[0]
    _, b, V = did._cluster_wald(x, y, groups, groups.max() + 1, np.linalg.inv(x.T @ x), 1 + d["time"].nunique())
    return float(b[0]), float(np.sqrt(V[0, 0]))


@pytest.mark.parametrize("seed", range(4))
def test_twfe_equals_the_exact_dummy_regression_to_1e12(seed):
    """The TWFE contrast's estimate and standard error are the exact dummy-variable regression's, not pyfixest's
    demeaning stopped at its default tolerance (which moved the standard error by 5e-10 to 1.2e-8 on these panels,
    and by 2.3e-9 between a process pool's run and a Dask cluster's)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(12):
        adopt = int(rng.integers(8, 24)) if u % 2 else None
        for t in range(32):
            if rng.random() < 0.3:
                continue
            post = float(adopt is not None and t >= adopt)
            rows.append((f"E{u:02d}", t, post, 20 + u + 0.3 * t - 3 * post + rng.normal(0, 4)))
    d = pd.DataFrame(rows, columns=["unit", "time", "post", "y"])
    estimate, se = _exact_twfe(d)
    got = did.twfe(d, 0.05)
    assert got["estimate"] == pytest.approx(estimate, rel=1e-12)
    assert got["se"] == pytest.approx(se, rel=1e-12)
    shuffled = did.twfe(d.sample(frac=1, random_state=seed).reset_index(drop=True), 0.05)
    assert shuffled["se"] == pytest.approx(got["se"], rel=1e-12)
