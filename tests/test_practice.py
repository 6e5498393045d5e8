"""Practice insight: the published tables and their readers, rates and intervals (coverage by simulation),
the deprivation-adjusted funnel computed as documented, the council's profile by hand; the synthetic
truth recovered (latent classes, worker-change hazard ratio, rate ratios); the notebook end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from insightlib import reference
from insightlib.analyses import published_practice as pub
from insightlib.errors import InputError
from insightlib.ingest import practice as src
from insightlib.stats import deprivation_funnel as dfun
from insightlib.stats import rates

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared" / "reference", ROOT.parent.parent / "shared" / "reference")
               if p.exists()), None)
PRACTICE = SHARED / "practice" if SHARED else None


def _need_sources():
    if PRACTICE is None or not PRACTICE.exists():
        pytest.skip("the published practice files are not in ../shared/reference/practice (outside test vectors)")


# --- the published tables -------------------------------------------------------------------


def test_shipped_tables_are_what_the_readers_make_of_the_published_files():
    _need_sources()
    tables = src.read_sources(PRACTICE)
    for name, df in tables.items():
        shipped = src.load(name)
        assert len(shipped) == len(df), name
        rebuilt = src.to_shipped(df)
        on_disk = pd.read_csv(Path(src._shipped(name)), dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(rebuilt.astype(str).reset_index(drop=True), on_disk, check_dtype=False)


def test_published_figures_read_right():
    f = src.load("factors")
    eng = f[(f["year"] == 2025) & (f["la_code"] == "England")].iloc[0]
    assert eng["episodes"] == 513250 and eng["Domestic_Abuse_parent"] == 162890 and eng["Neglect"] == 90370
    # a suppressed cell is a symbol, never a zero
    c = f[f["Faith_linked_abuse_symbol"] == "c"]
    assert len(c) and c["Faith_linked_abuse"].isna().all()
    pop = src.load("population")
    assert pop[(pop["year"] == 2024) & (pop["la_code"] == "England")]["population"].iloc[0] == 12183016
    dep = src.load("deprivation")
    assert set(dep["la_code"]) == set(reference.local_authorities()["la_code"])  # all 153
    assert dep.set_index("la_code").loc["871", "imd_score"] == 22.965  # Slough, mistyped code in the source
    assert dep.set_index("la_code").loc["940", "deprivation_from"] == "Northamptonshire"
    eth = src.load("ethnicity")
    assert eth.groupby("la_code").size().eq(18).all() and eth["la_code"].nunique() == 153


def test_a_broken_published_file_is_reported_with_file_row_and_column(tmp_path):
    _need_sources()
    for name in src.FILES.values():
        shutil.copy(PRACTICE / name, tmp_path / name)
    path = tmp_path / src.FILES["population"]
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    i = int(np.flatnonzero(df["geographic_level"] == "Local authority")[3])
    df.loc[i, "population_estimate"] = "lots"
    df.to_csv(path, index=False)
    wf = tmp_path / src.FILES["workforce"]
    pd.read_csv(wf, dtype=str, keep_default_na=False).drop(columns=["caseload_fte"]).to_csv(wf, index=False)
    with pytest.raises(InputError) as err:
        src.read_sources(tmp_path)
    msg = str(err.value)
    assert f"population_0_17_by_la_2012_2024.csv, row {i + 2}, column 'population_estimate'" in msg and "'lots'" in msg
    assert "social_work_workforce_by_la_2017_2025.csv, column 'caseload_fte': the column is missing" in msg


# --- rates and intervals --------------------------------------------------------------------


def test_poisson_rate_interval_known_values():
    r = rates.rate([10], [100_000]).iloc[0]
    # Garwood exact limits for 10 events: 4.795 and 18.39 (standard tables)
    assert r["rate"] == pytest.approx(1.0) and r["ci_low"] == pytest.approx(0.4795, abs=1e-4)
    assert r["ci_high"] == pytest.approx(1.8390, abs=1e-4)


def test_katz_interval_by_hand():
    r = rates.rate_ratio([30], [1000], [20], [2000]).iloc[0]
    se = np.sqrt(1 / 30 - 1 / 1000 + 1 / 20 - 1 / 2000)
    assert r["ratio"] == pytest.approx(3.0) and r["ci_low"] == pytest.approx(3 * np.exp(-1.959964 * se), rel=1e-6)


@pytest.mark.parametrize("p_group,p_rest,n,m", [(0.3, 0.2, 400, 1600), (0.002, 0.001, 50_000, 200_000)])
def test_relative_rate_index_interval_covers_over_repeats(p_group, p_rest, n, m):
    rng = np.random.default_rng(1)
    reps = 4000
    a = rng.binomial(n, p_group, reps)
    b = rng.binomial(m, p_rest, reps)
    truth = p_group / ((n * p_group + m * p_rest) / (n + m))
    r = rates.relative_rate_index(a, n, a + b, n + m)
    cover = np.mean((r["ci_low"] <= truth) & (truth <= r["ci_high"]))
    assert 0.935 <= cover <= 0.965, cover


# --- the deprivation-adjusted funnel ---------------------------------------------------------


def test_funnel_has_every_council_and_limits_as_documented():
    f = pub.children_in_need_funnel(2025)
    t = f.table
    assert set(t["la_code"]) == set(reference.local_authorities()["la_code"])  # all 153 councils
    # step 1: a Poisson model with a population offset, so fitted counts add up to the observed
    assert t["expected"].sum() == pytest.approx(t["observed"].sum(), rel=1e-8)
    b = np.polyfit(t["deprivation"], np.log(t["observed"] / t["population"]), 1)[0]
    assert f.coef["slope"] == pytest.approx(b, rel=0.25)  # close to a least-squares line on the log rates
    # step 3: tau^2 from 10%-winsorised z-scores, by hand
    y = np.log(t["observed"] / t["expected"])
    z = y * np.sqrt(t["expected"])
    zw = z.clip(*np.quantile(z, [0.1, 0.9]))
    n, w = len(t), t["expected"]
    tau2 = (np.sum(zw ** 2) - (n - 2)) / (w.sum() - (w ** 2).sum() / w.sum())
    assert f.tau2 == pytest.approx(tau2, rel=1e-9) and f.tau2 > 0
    # step 4: the limits
    for level, key in ((0.95, "95"), (0.998, "99_8")):
        zq = stats.norm.ppf(1 - (1 - level) / 2)
        np.testing.assert_allclose(t[f"upper_{key}"], np.exp(zq * np.sqrt(1 / t["expected"] + tau2)), rtol=1e-9)
        np.testing.assert_allclose(t[f"lower_{key}"], np.exp(-zq * np.sqrt(1 / t["expected"] + tau2)), rtol=1e-9)
    above = t["ratio"] > t["upper_95"]
    assert (t.loc[above, "verdict"].str.startswith("above")).all()
    assert (t.loc[~above & (t["ratio"] >= t["lower_95"]), "verdict"] == "as expected").all()


def test_funnel_recovers_a_known_deprivation_gradient():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.05, 0.35, 150)
    pop = rng.integers(20_000, 300_000, 150)
    u = rng.normal(0, 0.1, 150)  # between-council spread: tau^2 = 0.01
    obs = rng.poisson(pop * np.exp(-4 + 3 * x + u))
    f = dfun.deprivation_funnel(pd.DataFrame({"la_code": range(150), "observed": obs, "population": pop,
                                              "deprivation": x}))
    assert f.coef["slope"] == pytest.approx(3, abs=3 * f.coef["slope_se"])
    assert 0.005 < f.tau2 < 0.02


# --- the council's profile -------------------------------------------------------------------


def test_factor_profile_by_hand():
    p = pub.factor_profile("392", 2025).set_index("factor")
    f = src.load("factors")
    f = f[f["year"] == 2025].set_index("la_code")
    nb = reference.neighbours_of("392")
    row = p.loc["3B"]
    assert row["per_100"] == pytest.approx(f.loc["392", "Domestic_Abuse_parent"] / f.loc["392", "episodes"] * 100)
    nb_count = f.loc[nb, "Domestic_Abuse_parent"].sum()
    nb_eps = f.loc[nb, "episodes"].sum()
    assert row["neighbours_per_100"] == pytest.approx(nb_count / nb_eps * 100)
    assert row["vs_neighbours"] == pytest.approx((row["count"] / row["episodes"]) / (nb_count / nb_eps))
    assert row["vs_england_low"] < row["vs_england"] < row["vs_england_high"]


def test_workforce_and_turnover_across_councils():
    w = pub.workforce_profile("392")
    assert set(w["measure"]) == set(pub.WORKFORCE_MEASURES) and w["year"].max() == 2025
    d, c = pub.turnover_and_rereferral(2025)
    assert c["n"] == len(d) > 140 and c["ci_low"] < c["r"] < c["ci_high"]
    assert c["r"] == pytest.approx(np.corrcoef(d["turnover_rate_fte"], d["rereferral_percent"])[0, 1])


# --- groupings of need: the latent class model ------------------------------------------------

from scipy.special import logsumexp  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from insightlib.analyses import practice as analysis  # noqa: E402
from insightlib.analyses import practice_disproportionality, practice_groupings  # noqa: E402
from insightlib.simulate import practice as truth_model  # noqa: E402
from insightlib.stats import latent_class as lc  # noqa: E402

#: Assessments in one demo council (insight demo: 1,500 children per council make about 2,200).
DEMO_ASSESSMENTS = 2200


def _factors(n, seed):
    factors, cls = truth_model.draw_factors(np.random.default_rng(seed), n)
    X, cols, has = practice_groupings.factor_matrix(pd.DataFrame({"factors": factors}))
    keep = X.mean(axis=0) >= practice_groupings.MIN_FACTOR_SHARE
    return X[:, keep].astype(float), cls[has], [c for c, k in zip(cols, keep) if k]


def test_our_em_reaches_stepmix_likelihood():
    stepmix = pytest.importorskip("stepmix.stepmix")
    X, _, _ = _factors(1500, 5)
    ours = lc.fit_lca(X, 4, seed=1)  # misspecified (7 true classes): several local optima
    m = stepmix.StepMix(n_components=4, measurement="binary", verbose=0, random_state=1, n_init=3,
                        max_iter=500, progress_bar=0)
    m.fit(X)
    theirs = m.score(X) * len(X)  # mean log-likelihood per row
    assert ours.loglik >= theirs - 1e-3 * abs(theirs)
    assert ours.bic == pytest.approx(-2 * ours.loglik + ((4 - 1) + 4 * X.shape[1]) * np.log(len(X)))


def _em_by_rows(U, w, k, rng, max_iter=500, tol=1e-6):
    """The EM of latent_class._em written plainly, patterns by rows (as it was before issue 17's layout)."""
    resp = rng.dirichlet(np.ones(k), size=len(U))
    prev = -np.inf
    for it in range(1, max_iter + 1):
        rw = resp * w[:, None]
        nk = rw.sum(axis=0) + 1e-12
        pi = nk / nk.sum()
        theta = ((rw.T @ U) / nk[:, None]).clip(lc.EPS, 1 - lc.EPS)
        lj = U @ np.log(theta).T + (1 - U) @ np.log1p(-theta).T + np.log(pi)
        ll = float((w * logsumexp(lj, axis=1)).sum())
        resp = np.exp(lj - logsumexp(lj, axis=1, keepdims=True))
        if abs(ll - prev) <= tol * abs(ll):
            return pi, theta, ll, it
        prev = ll
    return pi, theta, ll, max_iter


@pytest.mark.parametrize("k", [1, 3, 6])
def test_em_in_classes_by_rows_layout_equals_the_plain_em(k):
    X, _, _ = _factors(1500, 3)
    U, w, _ = lc.patterns(X)
    pi, theta, ll, it, _ = lc._em(U, w, k, np.random.default_rng(4), 500, 1e-6)
    pi0, theta0, ll0, it0 = _em_by_rows(U, w, k, np.random.default_rng(4))
    assert it == it0
    assert ll == pytest.approx(ll0, rel=1e-12)
    np.testing.assert_allclose(pi, pi0, rtol=0, atol=1e-10)
    np.testing.assert_allclose(theta, theta0, rtol=0, atol=1e-10)


def test_classes_recovered_at_demo_size():
    X, cls, cols = _factors(DEMO_ASSESSMENTS, 0)
    choice = lc.choose_classes(X, range(1, 10), seed=0, columns=cols)
    assert choice.chosen == len(truth_model.LATENT_CLASSES)
    ari = adjusted_rand_score(cls, choice.fit.predict(X))
    print(f"adjusted Rand index against truth at {DEMO_ASSESSMENTS} assessments: {ari:.3f}")
    assert ari > 0.8
    # names come from the distinctive factors; the largest true class is domestic abuse
    top = lc.distinctive(choice.fit, X)
    assert practice_groupings.hood_category(top[0], dict(zip(cols, choice.fit.theta[0]))) == "Domestic abuse and violence"


@pytest.mark.slow
def test_number_of_classes_chosen_over_20_seeds():
    right, aris = 0, []
    for seed in range(20):
        X, cls, cols = _factors(DEMO_ASSESSMENTS, 100 + seed)
        choice = lc.choose_classes(X, range(4, 11), seed=seed, columns=cols)
        right += choice.chosen == len(truth_model.LATENT_CLASSES)
        aris.append(adjusted_rand_score(cls, choice.fit.predict(X)))
    print(f"classes chosen = truth in {right} of 20 seeds; ARI median {np.median(aris):.3f}, min {min(aris):.3f}")
    assert right >= 15


# --- the synthetic truth recovered end to end -----------------------------------------------

import json  # noqa: E402

from insightlib.simulate import synth  # noqa: E402


def _tables(out: Path) -> dict:
    tables = {}
    for name in ("councils", "children", "referrals", "assessments", "plans", "interventions", "allocations"):
        df = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False).replace("", np.nan)
        for col in df.columns:
            if col.endswith("_date") or col == "date_of_birth":
                df[col] = pd.to_datetime(df[col])
        if "referral_nfa" in df:
            df["referral_nfa"] = df["referral_nfa"] == "true"
        tables[name] = df
    return tables


@pytest.fixture(scope="module")
def demo_council(tmp_path_factory):
    # 3,000 children (about 4,500 assessments); the estimate is unbiased (mean HR 1.154 over seeds 50-57,
    # every interval covering 1.15), and seed 50 is the first of them
    out = synth.generate(1, 3000, 50, tmp_path_factory.mktemp("practice"), la_codes=["392"])
    return _tables(out), json.loads((out / "truth.json").read_text())


def test_worker_change_hazard_ratio_interval_covers_the_truth(demo_council):
    tables, truth = demo_council
    r = analysis.analyse(tables, "392", stability_checks=False, published=False)
    t = r.patterns.cox.terms.set_index("term").loc["worker_changes"]
    true_hr = truth["practice"]["worker_changes"]["hazard_ratio_per_change"]
    print(f"worker-change HR {t['hr']:.3f} ({t['ci_low']:.3f} to {t['ci_high']:.3f}), truth {true_hr}")
    assert t["ci_low"] <= true_hr <= t["ci_high"]
    assert r.groupings.choice.chosen == truth["practice"]["latent_classes"]["n_classes"]
    assert set(r.funnel.table["la_code"]) == set(reference.local_authorities()["la_code"])


def test_one_grouping_is_worded_as_no_distinct_groupings(demo_council):
    """Where one class fits best the report said "fall into 1 groupings of need; the largest ... covers 100%"."""
    import dataclasses

    import matplotlib.pyplot as plt

    from insightlib.report.practice import PracticeReport

    tables, _ = demo_council
    r = analysis.analyse(tables, "392", stability_checks=False, published=False)
    g = r.groupings
    one = dataclasses.replace(r, groupings=dataclasses.replace(g, choice=dataclasses.replace(g.choice, chosen=1)))
    words = " ".join(PracticeReport(one).headlines())
    assert "1 groupings" not in words and "do not fall into distinct groupings of need" in words
    fig, _ = PracticeReport(one).bic_chart()
    assert fig._suptitle.get_text().startswith("1 grouping fits the factors best")
    plt.close(fig)
    fig, _ = PracticeReport(r).bic_chart()
    assert fig._suptitle.get_text().startswith(f"{g.choice.chosen} groupings fit the factors best")
    plt.close(fig)


@pytest.mark.slow
def test_ethnicity_rate_ratio_intervals_cover_the_truth_over_repeats(tmp_path):
    covered, total = 0, 0
    for seed in range(40):
        out = synth.generate(1, 800, 1000 + seed, tmp_path / str(seed), la_codes=["202"])
        truth = json.loads((out / "truth.json").read_text())["practice"]["ethnicity_relative_rate_index"]["councils"]["202"]
        pop = practice_disproportionality.population_rates(_tables(out), "202", period_days=10_000).set_index("group")
        for g, v in truth.items():
            row = pop.loc[g]
            if np.isfinite(row["rri_low"]):
                total += 1
                covered += row["rri_low"] <= v <= row["rri_high"]
    print(f"relative rate index intervals covering the truth: {covered} of {total} ({covered / total:.1%})")
    assert 0.91 <= covered / total <= 0.99


@pytest.mark.slow
def test_the_notebook_runs_renders_and_writes_only_aggregates(tmp_path, monkeypatch):
    from insightlib.batch.evaluation import load_evaluation
    from insightlib.batch.runner import run_evaluation
    from insightlib.batch.site import render_site
    from insightlib.ingest.pseudonymise import make_key_file

    make_key_file(tmp_path / "insight.key")
    monkeypatch.setenv("INSIGHT_KEY_FILE", str(tmp_path / "insight.key"))
    data = synth.generate(2, 700, 8, tmp_path / "data", la_codes=["392", "813"], planted_identifiers=True)
    planted = json.loads((data / "truth.json").read_text())["planted_identifiers"]
    path = tmp_path / "practice.yml"
    path.write_text(f"name: practice\ntitle: Practice\nnotebook: practice_insight\ndata: {data}\ncouncils: all\n"
                    "parameters:\n  stability_checks: false\n")
    ev = load_evaluation(path, notebooks_dir=ROOT / "notebooks")
    summary = run_evaluation(ev, out_dir=tmp_path / "reports", workers=1, progress=False, log=lambda m: None,
                             notebooks_dir=ROOT / "notebooks")
    assert summary.exit_code == 0, [r.error for r in summary.runs]
    for la in ("392", "813"):
        folder = tmp_path / "reports" / "practice" / la
        res = json.loads((folder / "results.json").read_text())
        assert res["notebook"] == "practice_insight" and res["la_code"] == la and res["synthetic"] is True
        assert res["groupings"]["n_classes"] >= 2 and "worker_changes" in res["practice_patterns"]["cox"]
        assert res["deprivation_funnel"]["verdict"]
        text = (folder / "results.json").read_text() + (folder / "practice_insight.ipynb").read_text()
        raw = pd.read_csv(data / "children.csv", dtype=str)
        for ident in [*planted["child_id"], *planted["upn"], *planted["worker_id"], *raw["child_id"].head(50)]:
            assert ident not in text
        refs = pd.read_csv(data / "referrals.csv", dtype=str)["referral_id"]
        assert not any(r in text for r in refs.head(200))
    site = render_site(tmp_path / "reports", engine="html")
    page = (Path(site.index).parent / "practice" / "392")
    assert any(page.glob("*.html")), "the site shows the practice report"


def test_the_national_summary_has_the_deprivation_funnel_of_every_council(tmp_path):
    from insightlib.analyses import national

    summary = national.build_national_summary(tmp_path)
    [section] = [s for s in summary.sections if s.heading.startswith("Children in need for each council's deprivation")]
    assert "All 153 councils" in section.paragraphs[0] and section.figures and section.figures[0].png
    html = section.tables[0][1]
    for name in reference.local_authorities()["la_name"].head(20):
        assert name.replace("&", "&amp;") in html or name in html
