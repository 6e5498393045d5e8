"""The skills gap explorer: readers against the published figures, the index by hand, its intervals and
projections by simulation with a known truth, the back-test, and the run by area."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightlib.analyses import skills as analysis
from insightlib.analyses import skills_area
from insightlib.errors import EvaluationFileError, InputError
from insightlib.batch.evaluation import parse_evaluation
from insightlib.ingest import skills as src
from insightlib.stats import forecast as fc
from insightlib.stats import gap_index as gi

ROOT = Path(__file__).resolve().parents[1]
#: The published files live in ../shared (beside /work/main) or two levels up from a worktree.
SHARED = next((p for p in (ROOT.parent / "shared" / "reference", ROOT.parent.parent / "shared" / "reference") if p.exists()), None)
SKILLS = SHARED / "skills" if SHARED else None
SKILLS_IMPERATIVE = "skills_imperative_2035_south_yorkshire_lsip.xlsm"


def _need_sources():
    if SKILLS is None or not SKILLS.exists():
        pytest.skip("the published skills files are not in ../shared/reference/skills (outside test vectors)")


@pytest.fixture(scope="module")
def sources():
    _need_sources()
    return src.read_sources(SKILLS)


@pytest.fixture(scope="module")
def doncaster():
    return analysis.analyse("371", draws=500)


# --- readers on the real files --------------------------------------------------------------


def test_ess_reader_gives_the_published_figures(sources):
    ess = sources["ess"].set_index("area")
    assert ess.loc["Doncaster", "ssv"] == 1050
    assert ess.loc["Doncaster", "vacancies"] == 3796
    assert ess.loc["Doncaster", "ssv_share_of_vacancies"] == pytest.approx(0.28)
    assert ess.loc["Doncaster", "sampled"] == 313
    assert ess.loc["England", "ssv"] == 199088
    assert ess.loc["England", "ssv_share_of_vacancies"] == pytest.approx(0.25)
    assert len(ess) == 153  # England and 152 councils in ESS 2019


def test_neet_readers_give_the_published_figures(sources):
    neet = sources["neet"].set_index(["year", "area"])
    assert neet.loc[(2023, "Doncaster"), "neet_pct"] == pytest.approx(3.3)
    assert neet.loc[(2023, "Doncaster"), "participation_pct"] == pytest.approx(92.8)
    assert neet.loc[(2023, "England"), "neet_pct"] == pytest.approx(2.8)
    assert neet.loc[(2023, "England"), "participation_pct"] == pytest.approx(92.3)
    assert neet.loc[(2022, "England"), "participation_pct"] == pytest.approx(92.9)
    lait = sources["neet_trend"].set_index(["area", "year"])
    assert lait.loc[("Doncaster", 2025), "neet_pct"] == pytest.approx(4.6)  # SOURCES.md: Doncaster 2025 NEET 4.6%
    assert lait.loc[("Doncaster", 2023), "neet_pct"] == pytest.approx(3.3)  # agrees with the NCCIS file


def test_aps_occupation_year_defect_is_handled(sources):
    raw = pd.read_csv(SKILLS / src.FILES["occupation"], dtype=str)
    assert set(raw["year"]) == {"2017"}  # the published defect
    occ = sources["occupation"]
    don = occ[(occ["area"] == "Doncaster") & (occ["soc"] == "11")].sort_values("year")
    assert list(don["year"]) == [2017, 2018, 2019, 2020, 2021]
    rows = raw[raw["area"] == "Doncaster"]
    column = "  Corporate Managers And Directors "
    assert list(don["employed"]) == [float(v) for v in rows[column]]  # row order is year order
    assert don["ci95"].iloc[0] == float(rows["Conf"].iloc[0])


def test_industry_reader_gives_the_published_figures(sources):
    ind = sources["industry"]
    don = ind[(ind["area"] == "Doncaster") & (ind["year"] == 2022)].set_index("industry")
    assert don.loc["Public Administration, Education and Health", "employed"] == 42_100
    assert (don["all_employed"] == 129_700).all()
    assert don["employed"].sum() == pytest.approx(129_700, abs=500)  # the groups add up to the total (rounding)


def test_fe_and_apprenticeship_readers(sources):
    fe = sources["fe"]
    don = fe[fe["area"] == "Doncaster"].set_index("ssa")
    assert don.loc["Total", "achievements"] == 1190
    assert don.loc["Health, Public Services and Care", "achievements"] == 250
    assert don.loc["Science and Mathematics", "symbol"] == "~" and np.isnan(don.loc["Science and Mathematics", "achievements"])
    raw = pd.read_parquet(SKILLS / src.FILES["apprenticeships"])
    app = sources["apprenticeships"].set_index(["area", "year"])
    expected = raw[(raw["learner_home_lad"] == "Doncaster") & (raw["year"] == "2023/24")]["starts"].sum()
    assert app.loc[("Doncaster", "2023/24"), "starts"] == expected


def test_skills_imperative_reader_and_its_publishing_rule():
    _need_sources()
    si = src.read_skills_imperative(SKILLS / SKILLS_IMPERATIVE)
    assert si["area"].iloc[0] == "South Yorkshire"
    assert len(si) == 26
    assert si["total_requirement"].sum() == pytest.approx(349_648.348, abs=1)  # the workbook's "All occupations"
    row = si.set_index("soc").loc["61"]
    assert row["total_requirement"] == pytest.approx(row["net_change"] + row["replacement_demand"])
    assert row["publishable"]
    assert not si.set_index("soc").loc["63", "publishable"]  # 210 people: under the publisher's 10,000


def test_the_shipped_tables_are_what_the_readers_give(sources):
    shipped = src.load_tables()
    built = src.to_contract(sources)
    for name, table in built.items():
        got = shipped[name]
        assert list(got.columns) == list(table.columns), name
        assert len(got) == len(table), name
        for col in table.columns:
            if pd.api.types.is_numeric_dtype(table[col]) and not pd.api.types.is_bool_dtype(table[col]):
                np.testing.assert_allclose(got[col].to_numpy(float), table[col].to_numpy(float), equal_nan=True, err_msg=f"{name}.{col}")
            else:
                assert list(got[col].astype(str)) == list(table[col].astype(str)), f"{name}.{col}"


def test_the_skills_imperative_workbook_is_not_shipped():
    shipped = {p.name for p in (ROOT / "insightlib").rglob("*")}
    assert not any(n.endswith((".xlsm", ".xlsx")) for n in shipped)
    assert SKILLS_IMPERATIVE not in shipped


def test_readers_report_every_problem_at_once(tmp_path):
    _need_sources()
    for name in src.FILES.values():
        if (SKILLS / name).exists():
            shutil.copy(SKILLS / name, tmp_path / name)
    shutil.copy(SHARED / src.FILES["lait"], tmp_path / src.FILES["lait"])
    occ = pd.read_csv(SKILLS / src.FILES["occupation"], dtype=str)
    occ.loc[1, "  Health Professionals "] = "lots"
    occ = occ.drop(index=occ.index[occ["area"] == "Hartlepool"][0])
    occ.to_csv(tmp_path / src.FILES["occupation"], index=False)
    fe = pd.read_csv(SKILLS / src.FILES["fe"], dtype=str, encoding="utf-8-sig")
    fe.loc[5, "ssa_t1_desc"] = "Juggling"
    fe.loc[7, "e_and_t_aims_ach"] = "-3"
    fe.to_csv(tmp_path / src.FILES["fe"], index=False)
    (tmp_path / src.FILES["adverts"]).unlink()
    with pytest.raises(InputError) as err:
        src.read_sources(tmp_path)
    text = str(err.value)
    assert "employment_by_occupation_by_area_2017_2021.csv, row 3, column '  Health Professionals '" in text
    assert "'lots'" in text
    assert "area 'Hartlepool' has 4 rows" in text
    assert "fe_achievements_by_sector_subject_area_by_lad_2021_22.csv, row 7, column 'ssa_t1_desc'" in text
    assert "row 9, column 'e_and_t_aims_ach'" in text
    assert "online_job_adverts_by_area_2017_2022.csv: no such file" in text


def test_crosswalk_is_complete_and_each_occupation_sums_to_one():
    cw = src.crosswalk()
    assert src.check_crosswalk(cw) == []
    assert cw["reasoning"].str.len().min() > 10  # every line says why
    broken = pd.concat([cw, pd.DataFrame([{"soc": "11", "ssa": "Juggling", "weight": 0.5, "reasoning": "x"}])])
    problems = src.check_crosswalk(broken)
    assert any("weights sum to 1.5" in p for p in problems) and any("Juggling" in p for p in problems)


# --- the index by hand ----------------------------------------------------------------------


def test_gap_index_matches_its_formula_on_a_hand_made_example():
    out = gi.gap_index({"employment": np.array([30.0, 10.0])}, {"fe": np.array([10.0, 30.0])})
    d = np.array([30.5, 10.5]) / 41
    s = np.array([10.5, 30.5]) / 41
    np.testing.assert_allclose(out["demand_share"], d)
    np.testing.assert_allclose(out["supply_share"], s)
    np.testing.assert_allclose(out["gap"], [np.log(30.5 / 10.5), np.log(10.5 / 30.5)])
    # two demand signals, weighted 3:1: D = 0.75 * share(employment) + 0.25 * share(requirement)
    two = gi.gap_index({"employment": np.array([30.0, 10.0]), "requirement": np.array([0.0, 40.0])},
                       {"fe": np.array([10.0, 30.0])}, {"employment": 3, "requirement": 1})
    dr = np.array([0.5, 40.5]) / 41
    np.testing.assert_allclose(two["demand_share"], 0.75 * d + 0.25 * dr)
    np.testing.assert_allclose(two["gap"], np.log((0.75 * d + 0.25 * dr) / s))


def test_crosswalk_allocation_and_apportionment_by_hand():
    cw = pd.DataFrame({"soc": ["A", "A", "B"], "ssa": ["x", "y", "y"], "weight": [0.25, 0.75, 1.0]})
    # jobs: A=100, B=40 -> x gets 25, y gets 75 + 40
    np.testing.assert_allclose(gi.allocate_to_subjects([100, 40], cw, ["A", "B"], ["x", "y"]), [25, 115])
    # learners: x=8 all to A; y=14 split 0.75 : 1.0 -> A 6, B 8
    np.testing.assert_allclose(gi.apportion_to_occupations([8, 14], cw, ["A", "B"], ["x", "y"]), [14, 8])
    # nothing is lost either way
    assert gi.apportion_to_occupations([8, 14], cw, ["A", "B"], ["x", "y"]).sum() == pytest.approx(22)


def test_published_index_is_reproducible_from_its_inputs(doncaster):
    occ = doncaster.occupations.sort_values("soc")
    d = (occ["employment"] + 0.5) / (occ["employment"] + 0.5).sum()
    s = (occ["fe_learners_apportioned"] + 0.5) / (occ["fe_learners_apportioned"] + 0.5).sum()
    np.testing.assert_allclose(occ["demand_share"], d)
    np.testing.assert_allclose(occ["supply_share"], s)
    np.testing.assert_allclose(occ["gap"], np.log(d / s))
    assert (occ["gap_ci_low"] <= occ["gap"]).all() and (occ["gap"] <= occ["gap_ci_high"]).all()
    assert (occ["rank_low"] <= occ["rank"]).all() and (occ["rank"] <= occ["rank_high"]).all()
    # the apportioned learners add up to the occupational subjects' learners ('~' counted as 2.5)
    subj = doncaster.subjects
    assert occ["fe_learners_apportioned"].sum() == pytest.approx(subj["fe_achievements_used"].sum())


# --- uncertainty and projections by simulation with a known truth -----------------------------


def test_survey_draws_recover_the_published_margin():
    rng = np.random.default_rng(1)
    draws = gi.draw_survey_estimates(np.array([10_000.0]), np.array([1_960.0]), 20_000, rng)
    assert draws.std() == pytest.approx(1000, rel=0.03)
    assert draws.mean() == pytest.approx(10_000, rel=0.01)


@pytest.mark.slow
def test_gap_interval_covers_the_true_gap_95_percent_of_the_time():
    """Truth known: APS-like estimates drawn around true employment with known margins; the interval should cover."""
    rng = np.random.default_rng(7)
    true_jobs = np.array([16_000, 9_000, 4_000, 2_500, 11_000, 6_000])
    sd = 0.12 * true_jobs + 300
    learners = np.array([20.0, 15, 40, 60, 70, 25])
    truth = gi.gap_index({"e": true_jobs}, {"fe": learners})["gap"]
    reps, covered = 300, np.zeros(len(true_jobs))
    for _ in range(reps):
        observed = np.clip(true_jobs + rng.standard_normal(len(true_jobs)) * sd, 0, None)
        draws = gi.draw_survey_estimates(observed, 1.96 * sd, 1000, rng)
        sim = gi.gap_index({"e": draws}, {"fe": np.broadcast_to(learners, draws.shape)})["gap"]
        lo, hi = np.quantile(sim, [0.025, 0.975], axis=0)
        covered += (lo <= truth) & (truth <= hi)
    coverage = covered / reps
    assert (coverage > 0.90).all() and (coverage < 0.99).all(), coverage


def test_rounded_counts_draw_within_what_was_published():
    rng = np.random.default_rng(3)
    d = gi.draw_rounded_counts(np.array([50.0, np.nan]), 5000, rng)
    assert d[:, 0].min() >= 45 and d[:, 0].max() <= 55
    assert d[:, 1].min() >= 0 and d[:, 1].max() <= 5


def test_trend_forecast_is_exact_on_a_straight_line_and_its_interval_covers():
    out = fc.forecast([2018, 2019, 2020, 2021], [1.0, 2.0, 3.0, 4.0], horizon=2)
    np.testing.assert_allclose(out["forecast"], [5.0, 6.0])
    np.testing.assert_allclose(out["low"], out["high"])  # no residual error, no width
    rng = np.random.default_rng(11)
    years = np.arange(2016, 2024)
    hits = 0
    n = 2000
    for _ in range(n):
        y = 3 + 0.2 * (years - 2016) + rng.normal(0, 0.5, len(years))
        f = fc.forecast(years[:-1], y[:-1], horizon=1, level=0.8).iloc[0]
        hits += f.low <= y[-1] <= f.high
    assert hits / n == pytest.approx(0.8, abs=0.03)  # the classical interval is exact for a true line


def test_naive_forecast_carries_the_last_value():
    out = fc.forecast([2019, 2020, 2021], [5.0, 7.0, 6.0], horizon=2, model="naive", level=0.8)
    assert list(out["forecast"]) == [6.0, 6.0]
    assert out["high"].iloc[1] - out["forecast"].iloc[1] > out["high"].iloc[0] - out["forecast"].iloc[0]


def test_backtest_scores_held_out_years():
    panel = pd.DataFrame({"area": ["a"] * 6 + ["b"] * 6, "year": list(range(2016, 2022)) * 2,
                          "value": [1, 2, 3, 4, 5, 6, 2, 2, 2, 2, 2, 9]})
    errors = fc.backtest(panel, holdout=1, model="trend")
    a = errors.set_index("area").loc["a"]
    assert a["forecast"] == pytest.approx(6) and a["abs_error"] == pytest.approx(0) and a["covered"]
    b = errors.set_index("area").loc["b"]
    assert b["forecast"] == pytest.approx(2) and b["abs_error"] == pytest.approx(7) and not b["covered"]
    summary = fc.backtest_summary(errors)
    assert summary == {"series": 2, "mae": 3.5, "median_abs_error": 3.5, "median_abs_pct_error": pytest.approx(7 / 9 / 2),
                       "coverage": 0.5}


def test_the_forecast_backtest_runs_on_the_published_series(doncaster):
    back = doncaster.neet_backtest
    assert back["holdout_years"] == 2 and back["chosen"] in fc.MODELS
    assert back["models"]["trend"]["series"] > 100  # every council's LAIT series
    assert 0 < back["models"][back["chosen"]]["median_abs_error"] < 2  # points of NEET
    assert doncaster.adverts_backtest["models"]["naive"]["series"] > 250


# --- the analysis for an area -------------------------------------------------------------------


def test_doncaster_analysis_from_the_shipped_data(doncaster):
    assert doncaster.area.name == "Doncaster" and doncaster.area.lsip == "South Yorkshire"
    ess = doncaster.ess.set_index("comparator")
    assert ess.loc["Doncaster", "ssv"] == 1050
    assert ess.loc["Doncaster", "ssv_share_of_vacancies"] == pytest.approx(1050 / 3796)
    assert ess.loc["England", "ssv_share_of_vacancies"] == pytest.approx(199088 / 811703)
    assert "Statistical neighbours (median)" in ess.index and "Yorkshire and The Humber" in ess.index
    # neighbours' index: the median of each single-district neighbour's own index, by the same formula
    used = doncaster.parameters["neighbours_in_index"]
    assert "372" in used and len(used) >= 5  # Rotherham, a metropolitan district, among Doncaster's neighbours
    assert doncaster.occupations["neighbours_median_gap"].notna().all()
    neet = doncaster.neet.set_index(["year", "comparator"])
    assert neet.loc[(2023, "Doncaster"), "neet_pct"] == pytest.approx(3.3)
    assert neet.loc[(2023, "Doncaster"), "participation_pct"] == pytest.approx(92.8)
    assert neet.loc[(2023, "England"), "neet_pct"] == pytest.approx(2.8)
    payload = json.loads(json.dumps(doncaster.to_dict(), default=float))
    first = payload["gap_index"]["occupations"][0]
    for key in ("employment", "employment_ci95", "fe_learners_apportioned", "demand_share", "supply_share", "gap",
                "gap_ci_low", "gap_ci_high", "rank_low", "rank_high"):
        assert key in first
    assert len(payload["gap_index"]["subjects"]) == 14
    industries = doncaster.industries.set_index("industry")
    assert industries.loc["Public Administration, Education and Health", "employed_2022"] == 42_100
    assert industries["share"].sum() == pytest.approx(1)


@pytest.mark.slow
def test_neighbours_median_gap_is_the_median_of_their_own_indexes(doncaster):
    used = doncaster.parameters["neighbours_in_index"]
    own = pd.DataFrame({c: analysis.analyse(c, draws=20).occupations.set_index("soc")["gap"] for c in used})
    expected = own.median(axis=1)
    got = doncaster.occupations.set_index("soc")["neighbours_median_gap"]
    np.testing.assert_allclose(got.loc[expected.index], expected)


def test_an_lsip_area_sums_its_councils():
    sy = analysis.analyse("South Yorkshire", draws=200)
    assert sy.area.councils == ("370", "371", "372", "373") and sy.area.key == "lsip-south-yorkshire"
    tables = src.load_tables()
    ess = tables["ess"].set_index("area")
    expected = sum(ess.loc[n, "ssv"] for n in ("Barnsley", "Doncaster", "Rotherham", "Sheffield"))
    assert sy.ess.set_index("comparator").loc["South Yorkshire", "ssv"] == expected
    neet = tables["neet"]
    y = neet[(neet["year"] == 2023) & neet["la_code"].isin(sy.area.councils)]
    expected_neet = (y["neet_pct"] * y["cohort"]).sum() / y["cohort"].sum()
    got = sy.neet.set_index(["year", "comparator"]).loc[(2023, "South Yorkshire"), "neet_pct"]
    assert got == pytest.approx(expected_neet)


def test_a_supplied_projection_enters_demand():
    _need_sources()
    r = analysis.analyse("371", projection=SKILLS / SKILLS_IMPERATIVE, draws=200)
    occ = r.occupations.set_index("soc")
    assert occ.loc["61", "requirement_2020_2035"] == pytest.approx(46_237.03, abs=1)
    assert occ.loc["33", "requirement_2020_2035"] == pytest.approx(5_733.99 + 210.06, abs=1)  # 63 folded into 33
    from insightlib.report.skills import SkillsReport

    table = SkillsReport(r).occupation_table().set_index("Occupation (SOC sub-major group)")
    assert table.loc["33 Protective service occupations", "Requirement 2020-35"] == "under 10,000"
    proj = SkillsReport(r).projection_table().set_index("Occupation (SOC2020 sub-major group)")
    assert proj.loc["61 Caring personal service occupations", "Total requirement"] == "46,237"
    assert proj.loc["61 Caring personal service occupations", "Replacement demand"] == "33,946"
    assert proj.loc["61 Caring personal service occupations", "Growth 2020-35"] == "12,291"
    assert proj.loc["33 Protective service occupations", "Total requirement"] == "under 10,000"


def test_unknown_and_county_areas_get_clear_messages():
    with pytest.raises(InputError, match="South Yorkshre.*Did you mean: South Yorkshire"):
        skills_area.resolve_area("South Yorkshre")
    with pytest.raises(InputError, match="886 .Kent.: its area is several districts"):
        skills_area.resolve_area("886")
    with pytest.raises(InputError, match="no council has the code 999"):
        skills_area.resolve_area("999")


def test_report_sentences_tables_and_charts(doncaster):
    from insightlib.report.skills import SkillsReport

    rep = SkillsReport(doncaster, threshold=5)
    head = " ".join(rep.headlines())
    assert "1,050 skill-shortage vacancies" in head and "28%" in head and "3.3%" in head and "92.8%" in head
    assert len(rep.short_of_learners()) <= 5 and len(rep.few_local_jobs()) <= 5
    assert any("crosswalk is a judgement" in c for c in rep.caveats())
    subjects = rep.subject_table()
    assert "c" in set(subjects["FE achievements 2021/22"])  # '~' (fewer than 5) is shown suppressed, never as 0
    for chart in (rep.gap_chart, rep.subject_chart, rep.neet_chart, rep.adverts_chart):
        fig, alt = chart()
        assert fig._suptitle.get_text() and len(alt) > 60


def test_evaluation_file_areas_are_checked():
    nb = ROOT / "notebooks"
    ev = parse_evaluation({"name": "s", "title": "t", "notebook": "skills_gap", "data": "reference",
                           "areas": [371, "South Yorkshire"]}, notebooks_dir=nb)
    assert ev.areas == ("371", "South Yorkshire")
    with pytest.raises(EvaluationFileError) as err:
        parse_evaluation({"name": "s", "title": "t", "notebook": "skills_gap", "data": "reference",
                          "areas": ["Atlantis"], "councils": ["371"]}, notebooks_dir=nb)
    assert "'councils' does not apply" in str(err.value) and "Atlantis" in str(err.value)
    with pytest.raises(EvaluationFileError, match="'areas' is only for notebooks that work by area"):
        parse_evaluation({"name": "s", "title": "t", "notebook": "rereferral", "data": "d", "areas": ["371"]},
                         notebooks_dir=nb)


@pytest.mark.slow
def test_insight_run_and_render_publish_a_report_per_area(tmp_path):
    from insightlib.batch.evaluation import load_evaluation
    from insightlib.batch.runner import run_evaluation
    from insightlib.batch.site import render_site

    path = tmp_path / "skills.yml"
    path.write_text("name: skills-gap\ntitle: Skills\nnotebook: skills_gap\ndata: reference\n"
                    "areas: [371, South Yorkshire]\nparameters:\n  draws: 200\n")
    ev = load_evaluation(path, notebooks_dir=ROOT / "notebooks")
    summary = run_evaluation(ev, out_dir=tmp_path / "reports", workers=1, progress=False, log=lambda m: None,
                             notebooks_dir=ROOT / "notebooks")
    assert summary.exit_code == 0, [r.error for r in summary.runs]
    res = json.loads((tmp_path / "reports" / "skills-gap" / "371" / "results.json").read_text())
    assert res["la_code"] == "371" and res["gap_index"]["occupations"]
    assert (tmp_path / "reports" / "skills-gap" / "lsip-south-yorkshire" / "skills_gap_index.csv").exists()
    site = render_site(tmp_path / "reports", engine="html")
    index = (Path(site.index).parent / "skills-gap" / "index.html").read_text()
    assert "Doncaster" in index and "South Yorkshire" in index
    assert (Path(site.index).parent / "skills-gap" / "371" / "skills_gap_index.csv").exists()  # the download travels
    again = run_evaluation(ev, out_dir=tmp_path / "reports", workers=1, progress=False, log=lambda m: None,
                           notebooks_dir=ROOT / "notebooks")
    assert {r.status for r in again.runs} == {"skipped"}
