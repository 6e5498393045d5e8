"""End to end: synthetic data -> validate -> load -> run for every council -> render.

One council's data is broken on purpose: it must fail on its own, with its reason, while
the others run and render. Identifiers planted in the input must never reach an output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import insightlib
from insightlib.simulate import synth
from insightlib.batch.evaluation import load_evaluation, parse_evaluation
from insightlib.batch.runner import run_evaluation

ROOT = Path(__file__).resolve().parents[1]
INSIGHT = [sys.executable, "-m", "insightlib.batch.cli"]


@pytest.fixture(scope="module")
def key_env(tmp_path_factory):
    key = tmp_path_factory.mktemp("key") / "insight.key"
    from insightlib.ingest.pseudonymise import make_key_file

    make_key_file(key)
    old = os.environ.get("INSIGHT_KEY_FILE")
    os.environ["INSIGHT_KEY_FILE"] = str(key)
    yield {**os.environ, "INSIGHT_KEY_FILE": str(key)}
    if old is None:
        os.environ.pop("INSIGHT_KEY_FILE", None)
    else:
        os.environ["INSIGHT_KEY_FILE"] = old


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    """Three small councils with planted identifiers; the third council's referrals broken."""
    data = tmp_path_factory.mktemp("data") / "demo"
    synth.generate(3, 300, 11, data, planted_identifiers=True)
    truth = json.loads((data / "truth.json").read_text())
    referrals = pd.read_csv(data / "referrals.csv", dtype=str, keep_default_na=False)
    councils = sorted(referrals["la_code"].unique())
    broken = councils[-1]
    rows = referrals.index[(referrals["la_code"] == broken) & (referrals["closure_date"] != "")][:3]
    referrals.loc[rows, "closure_date"] = "1999-01-01"  # closure before referral
    # rules whose messages once quoted the identifier: a planted child twice, and a referral of a
    # planted child of another council (not in this council's children table)
    children = pd.read_csv(data / "children.csv", dtype=str, keep_default_na=False)
    planted = set(truth["planted_identifiers"]["child_id"])
    mine = children[(children["la_code"] == broken) & children["child_id"].isin(planted)]
    other = children[(children["la_code"] != broken) & children["child_id"].isin(planted)]
    assert len(mine) and len(other)
    pd.concat([children, mine.head(1)]).to_csv(data / "children.csv", index=False)
    victim = referrals.index[referrals["la_code"] == broken][5]
    referrals.loc[victim, "child_id"] = other["child_id"].iloc[0]
    referrals.to_csv(data / "referrals.csv", index=False)
    return {"dir": data, "councils": councils, "broken": broken, "truth": truth}


@pytest.fixture(scope="module")
def demo_run(demo_data, key_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    proc = subprocess.run(
        INSIGHT + ["run", str(ROOT / "evaluations" / "demo.yml"), "--data", str(demo_data["dir"]),
                   "--out", str(out), "--workers", "2", "--no-progress"],
        cwd=ROOT, env=key_env, capture_output=True, text=True, timeout=900,
    )
    render = subprocess.run(INSIGHT + ["render", str(out)], cwd=ROOT, env=key_env, capture_output=True, text=True, timeout=600)
    return {"out": out, "run": proc, "render": render, **demo_data}


def test_broken_council_fails_alone_and_others_run(demo_run):
    proc = demo_run["run"]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    name = load_evaluation(ROOT / "evaluations" / "demo.yml").name
    run = json.loads((demo_run["out"] / name / "run.json").read_text())
    status = {r["la_code"]: r for r in run["runs"]}
    assert status[demo_run["broken"]]["status"] == "failed"
    assert "validation" in status[demo_run["broken"]]["error"]
    for la in demo_run["councils"][:-1]:
        assert status[la]["status"] == "ok", status[la]
        results = json.loads((demo_run["out"] / name / la / "results.json").read_text())
        assert results["la_code"] == la and results["km"], "results.json must carry the km part of the contract"
        manifest = json.loads((demo_run["out"] / name / la / "manifest.json").read_text())
        for key in ("git_commit", "insightlib_version", "package_versions", "parameters", "data_fingerprint", "timings"):
            assert key in manifest
        assert manifest["insightlib_version"] == results["insightlib_version"] == insightlib.__version__
    assert demo_run["broken"] in proc.stdout


def test_site_links_every_council_that_ran(demo_run):
    assert demo_run["render"].returncode == 0, demo_run["render"].stdout + demo_run["render"].stderr
    site = demo_run["out"] / "_site"
    pages = {p.relative_to(site).as_posix(): p.read_text(errors="replace") for p in site.rglob("*.html")}
    everything = "\n".join(pages.values())
    for la in demo_run["councils"][:-1]:
        assert re.search(rf'href="[^"]*{la}[^"]*"', everything), f"no link to council {la}"


def test_reports_open_with_their_finding_and_name_no_code_before_method(demo_run):
    """A leader reads the finding first; module paths, docs paths and library names are only in the
    Method section at the end (scanned on the rendered pages, not the notebook)."""
    from leader_text import code_paths, headings

    site = demo_run["out"] / "_site"
    pages = sorted(site.rglob("*.html"))
    reports = [p for p in pages if p.parent.parent.parent == site]  # <evaluation>/<council>/<notebook>.html
    assert reports
    for page in pages:
        assert code_paths(page.read_text()) == [], page
    for page in reports:
        found = headings(page.read_text())
        assert found[0] == "Headlines" and found[-1] == "Method", (page, found)


def test_no_planted_identifier_or_its_pseudonym_reaches_any_output(demo_run, key_env):
    planted = demo_run["truth"]["planted_identifiers"]
    values = [v for group in planted.values() for v in (group if isinstance(group, list) else [group])] \
        if isinstance(planted, dict) else list(planted)
    assert values, "the generator must plant identifiers"
    from insightlib.ingest import pseudonymise

    key = pseudonymise.load_key()
    pseudonyms = set()
    for la in demo_run["councils"]:
        for column in ("child_id", "upn", "worker_id", "referral_id"):
            for v in values:
                pseudonyms.add(pseudonymise.pseudonymise_value(v, column, la, key))
    needles = [v.lower() for v in values] + [p.lower() for p in pseudonyms]
    searched, names = 0, set()
    for path in demo_run["out"].rglob("*"):
        if not path.is_file() or path.suffix in (".duckdb", ".wal"):
            continue  # the warehouse holds pseudonyms by design; its sidecar JSON is searched
        text = path.read_bytes().decode("utf-8", errors="replace").lower()
        searched += 1
        names.add("sidecar" if path.parent.name == ".warehouses" else path.name)
        for needle in needles:
            assert needle not in text, f"{needle} found in {path}"
    for stream in (demo_run["run"].stdout, demo_run["run"].stderr, demo_run["render"].stdout, demo_run["render"].stderr):
        for needle in needles:
            assert needle not in stream.lower()
    assert searched > 5
    # the logs, the run record and the warehouse's sidecar (which carry validation messages) were searched
    assert {"run.log", "run.json", "manifest.json", "results.json", "sidecar"} <= names, names
    sidecar = next((demo_run["out"] / ".warehouses").glob("*.json")).read_text()
    assert "appears more than once" in sidecar or "is not in the children table" in sidecar


def test_synthetic_data_say_so_in_results_first_sentence_and_every_page(demo_run):
    from insightlib.report import text
    from insightlib.ingest import warehouse

    assert warehouse.is_synthetic(demo_run["dir"])
    assert all(warehouse.is_synthetic(w) for w in (demo_run["out"] / ".warehouses").glob("*.duckdb"))
    name = load_evaluation(ROOT / "evaluations" / "demo.yml").name
    for la in demo_run["councils"][:-1]:
        assert json.loads((demo_run["out"] / name / la / "results.json").read_text())["synthetic"] is True
        nb = json.loads((demo_run["out"] / name / la / "rereferral.ipynb").read_text())
        first = next("".join(o["data"]["text/markdown"]) for c in nb["cells"] if c["cell_type"] == "code"
                     for o in c.get("outputs", []) if "text/markdown" in o.get("data", {}))
        assert first.startswith(f"**{text.SYNTHETIC_NOTICE}**"), first[:200]
    pages = list((demo_run["out"] / "_site").rglob("*.html"))
    assert pages and all(text.SYNTHETIC_NOTICE in p.read_text() for p in pages)


def test_unchanged_councils_are_skipped_on_the_next_run(demo_run, key_env):
    proc = subprocess.run(
        INSIGHT + ["run", str(ROOT / "evaluations" / "demo.yml"), "--data", str(demo_run["dir"]),
                   "--out", str(demo_run["out"]), "--no-progress"],
        cwd=ROOT, env=key_env, capture_output=True, text=True, timeout=600,
    )
    assert "2 unchanged" in proc.stdout, proc.stdout + proc.stderr


def test_a_failing_cell_in_one_council_is_isolated_and_linked(demo_run, key_env, tmp_path):
    notebooks = _probe_notebook(tmp_path, "fail_for", "if la_code == fail_for:\n    raise ValueError('planned failure for ' + la_code)")
    ok, bad = demo_run["councils"][0], demo_run["councils"][1]
    ev = parse_evaluation({"name": "probe", "title": "Probe", "notebook": "probe", "data": str(demo_run["dir"]),
                           "councils": [ok, bad], "parameters": {"fail_for": bad}}, notebooks_dir=notebooks)
    summary = run_evaluation(ev, out_dir=demo_run["out"], workers=2, notebooks_dir=notebooks, progress=False, log=lambda m: None)
    status = {r.la_code: r for r in summary.runs}
    assert summary.exit_code == 1
    assert status[ok].status == "ok" and Path(status[ok].results).exists()
    assert status[bad].status == "failed" and "planned failure" in status[bad].error
    # execution counts: [1] parameters, [2] papermill's injected parameters, [3] the failing cell
    assert status[bad].link.endswith("#papermill-error-cell") and status[bad].failing_cell == 3


def test_validate_cli_reports_problems_without_a_traceback(demo_run, key_env):
    proc = subprocess.run(INSIGHT + ["validate", str(demo_run["dir"])], cwd=ROOT, env=key_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "referrals" in proc.stdout and "closure" in proc.stdout.lower()


def test_bad_evaluation_file_exits_2_with_its_message(tmp_path, key_env):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: Bad Name\ntitle: x\nnotebook: nope\ndata: nowhere\n")
    proc = subprocess.run(INSIGHT + ["run", str(bad)], cwd=ROOT, env=key_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "'name' must be" in proc.stderr and "no notebook 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_the_same_batch_runs_on_a_dask_cluster(demo_run, key_env, tmp_path):
    """A local Dask cluster of two workers writes the results.json the process pool writes, for the re-referral
    report and the intervention report (its bootstrap and refuters included): numbers equal to 1e-9, only the
    run's own metadata (when, how long, versions) ignored, as scripts/compare_results.py compares them."""
    distributed = pytest.importorskip("distributed")
    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_results import compare

    councils = demo_run["councils"][:2]
    pool, dask = tmp_path / "pool", tmp_path / "dask"
    demo = load_evaluation(ROOT / "evaluations" / "demo.yml", notebooks_dir=ROOT / "notebooks")
    for la in councils:  # the pool's re-referral reports: the module's run (insight run --workers 2)
        shutil.copytree(demo_run["out"] / demo.name / la, pool / demo.name / la)
    evaluations = [parse_evaluation({**load_evaluation(ROOT / "evaluations" / name).to_dict(), "councils": councils},
                                    notebooks_dir=ROOT / "notebooks") for name in ("demo.yml", "fgc.yml")]
    run = dict(data=str(demo_run["dir"]), progress=False, log=lambda m: None)
    fgc = run_evaluation(evaluations[1], out_dir=pool, workers=2, **run)
    assert [r.status for r in fgc.runs] == ["ok", "ok"], [r.error for r in fgc.runs]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for ev in evaluations:
            summary = run_evaluation(ev, out_dir=dask, scheduler=cluster.scheduler_address, **run)
            assert [r.status for r in summary.runs] == ["ok", "ok"], [r.error for r in summary.runs]
    count, differences, largest = compare(pool, dask, tolerance=1e-9)
    assert count == 4, count
    assert differences == [], differences[:10]
    for la in councils:
        assert json.loads((dask / demo.name / la / "results.json").read_text())["km"]


def test_a_suite_of_evaluations_in_one_pool_writes_what_each_run_writes(demo_run, key_env, tmp_path):
    """insight demo's evaluations go to one pool (batch/suite.py): each evaluation's results.json are those its
    own run writes, its run.log and run.json are written, and a worker's kernels stay warm across the councils."""
    from insightlib.batch.suite import run_suite

    sys.path.insert(0, str(ROOT / "scripts"))
    from compare_results import compare

    councils = [c for c in demo_run["councils"] if c != demo_run["broken"]][:2]
    evaluations = [parse_evaluation({**load_evaluation(ROOT / "evaluations" / name).to_dict(), "councils": councils},
                                    notebooks_dir=ROOT / "notebooks") for name in ("demo.yml", "fgc.yml")]
    summaries = run_suite([(ev, str(demo_run["dir"])) for ev in evaluations], out_dir=tmp_path / "suite", workers=1,
                          progress=False, log=lambda m: None)
    assert [s.evaluation.name for s in summaries] == [ev.name for ev in evaluations]
    for summary in summaries:
        assert [r.status for r in summary.runs] == ["ok", "ok"], [r.error for r in summary.runs]
        assert (summary.out_dir / "run.log").exists() and (summary.out_dir / "run.json").exists()
        # a kernel for the first council of each notebook kind, kept warm for the second
        assert sorted(r.kernel_started for r in summary.runs) == [False, True]
    name = evaluations[0].name
    for la in councils:  # the module's own run of the re-referral report (insight run --workers 2)
        shutil.copytree(demo_run["out"] / name / la, tmp_path / "alone" / la)
    count, differences, _largest = compare(tmp_path / "alone", tmp_path / "suite" / name, tolerance=1e-9)
    assert count == 2 and differences == [], differences[:10]


def test_a_suite_runs_national_notebooks_first_then_each_evaluations_largest_councils():
    from insightlib.batch.suite import longest_first

    def task(index, la, data="w.duckdb"):
        return {"suite_index": index, "la_code": la, "parameters": {"data": data}}

    tasks = [task(0, "201"), task(0, "202"), task(1, "national"), task(2, "201"), task(2, "202")]
    import insightlib.batch.suite as suite

    rows = {("w.duckdb", "201"): 10, ("w.duckdb", "202"): 30}
    original = suite._council_rows
    suite._council_rows = lambda _warehouses: rows
    try:
        order = [(t["suite_index"], t["la_code"]) for t in longest_first(tasks)]
    finally:
        suite._council_rows = original
    assert order == [(1, "national"), (0, "202"), (0, "201"), (2, "202"), (2, "201")]


def test_a_warm_kernel_carries_nothing_from_one_council_to_the_next(demo_run, key_env, tmp_path):
    """Councils run one after another in one reused kernel: no variable, figure, folder or
    execution count of one notebook is seen by the next, and a failure is still numbered and isolated."""
    notebooks = _probe_notebook(
        tmp_path, "fail_for",
        "import os\nimport matplotlib.pyplot as plt\n"
        "assert 'left_behind' not in globals(), 'a variable leaked from the previous council'\n"
        "assert not plt.get_fignums(), 'a figure leaked from the previous council'\n"
        "assert os.path.samefile(os.getcwd(), output_dir), os.getcwd()\n"
        "left_behind = la_code\nplt.figure()",
        "if la_code == fail_for:\n    raise ValueError('planned failure for ' + la_code)")
    councils = demo_run["councils"][:2]
    ev = parse_evaluation({"name": "warm", "title": "Warm", "notebook": "probe", "data": str(demo_run["dir"]),
                           "councils": councils, "parameters": {"fail_for": councils[0]}}, notebooks_dir=notebooks)
    summary = run_evaluation(ev, out_dir=tmp_path / "out", workers=1, notebooks_dir=notebooks, progress=False,
                             log=lambda m: None, reuse_kernels=True)
    status = {r.la_code: r for r in summary.runs}
    assert status[councils[0]].status == "failed" and "planned failure" in status[councils[0]].error
    assert status[councils[0]].failing_cell == 4  # [1] parameters, [2] injected, [3] checks, [4] the failure
    assert status[councils[1]].status == "ok", status[councils[1]].error
    manifest = json.loads((tmp_path / "out" / "warm" / councils[1] / "manifest.json").read_text())
    assert manifest["timings"]["kernel"] == "reused"


def test_a_warm_kernel_grown_past_its_memory_limit_is_replaced(demo_run, key_env, tmp_path, monkeypatch):
    """Memory cannot creep up in a warm kernel: one whose resident memory passed kernels.KERNEL_MEMORY_LIMIT
    between notebooks is shut down and the next council gets a fresh kernel; under the limit it is reused."""
    from insightlib.batch import kernels

    notebooks = _probe_notebook(tmp_path, "unused", "x = 1", write_results=False)
    councils = demo_run["councils"][:2]
    ev = parse_evaluation({"name": "mem", "title": "Mem", "notebook": "probe", "data": str(demo_run["dir"]),
                           "councils": councils}, notebooks_dir=notebooks)
    started, default = {}, kernels.KERNEL_MEMORY_LIMIT
    for limit in (default, 1):  # the default, then one byte: every kernel is over it
        monkeypatch.setattr(kernels, "KERNEL_MEMORY_LIMIT", limit)
        summary = run_evaluation(ev, out_dir=tmp_path / f"out{limit}", workers=1, notebooks_dir=notebooks,
                                 progress=False, log=lambda m: None, reuse_kernels=True)
        assert [r.status for r in summary.runs] == ["ok", "ok"], [r.error for r in summary.runs]
        started[limit] = [r.kernel_started for r in summary.runs]
    assert started[default] == [True, False]
    assert started[1] == [True, True]


@pytest.mark.slow
@pytest.mark.parametrize("evaluation", ["demo.yml", "fgc.yml"])
def test_a_council_gets_the_same_numbers_in_a_warm_kernel_as_in_a_fresh_one(evaluation, demo_data, key_env, tmp_path):
    """Reusing a kernel must never change a number: the second council, run after the first in
    the same kernel, gets exactly the results.json a fresh kernel gives it."""
    councils = [c for c in demo_data["councils"] if c != demo_data["broken"]][:2]
    base = load_evaluation(ROOT / "evaluations" / evaluation, notebooks_dir=ROOT / "notebooks")
    figures = {}
    for reuse in (True, False):
        ev = parse_evaluation({**base.to_dict(), "councils": councils}, notebooks_dir=ROOT / "notebooks")
        out = tmp_path / ("warm" if reuse else "fresh")
        summary = run_evaluation(ev, data=str(demo_data["dir"]), out_dir=out, workers=1, force=True,
                                 progress=False, log=lambda m: None, reuse_kernels=reuse)
        assert all(r.status == "ok" for r in summary.runs), [(r.la_code, r.error) for r in summary.runs]
        kernels = {json.loads((out / ev.name / c / "manifest.json").read_text())["timings"]["kernel"] for c in councils[1:]}
        assert kernels == {"reused" if reuse else "fresh"}
        for c in councils:
            figures.setdefault(reuse, {}).update(_numbers(json.loads((out / ev.name / c / "results.json").read_text()), c))
    warm, fresh = figures[True], figures[False]
    assert warm.keys() == fresh.keys()
    for path, value in fresh.items():
        if isinstance(value, float) and isinstance(warm[path], float):
            # Floating-point sums may run in another order: even two fresh runs differ by ~1e-8, and
            # DoWhy's refuters (iterative fits, then a p-value over 3 simulations) by ~1e-6.
            rel = 1e-4 if ".refutations." in path else 1e-6
            assert warm[path] == pytest.approx(value, rel=rel, abs=1e-9, nan_ok=True), path
        else:
            assert warm[path] == value, path


def _numbers(results: dict, prefix: str = "") -> dict:
    """results.json flattened to path -> value, without timings and run metadata."""
    flat = {}
    items = results.items() if isinstance(results, dict) else enumerate(results)
    for key, value in items:
        if key in ("created", "versions", "seconds"):
            continue
        path = f"{prefix}.{key}"
        if isinstance(value, (dict, list)):
            flat.update(_numbers(value, path))
        else:
            flat[path] = value
    return flat


def test_a_cell_over_the_time_limit_fails_its_council_once_and_the_next_runs(demo_run, key_env, tmp_path):
    # no cell but the slow one imports anything heavy: after the timeout the next council gets a fresh kernel, and
    # importing pandas in it (writing results.json) took longer than the limit on a loaded machine (load 15+)
    notebooks = _probe_notebook(tmp_path, "slow_for", "import time\nif la_code == slow_for:\n    time.sleep(60)",
                                write_results=False)
    councils = demo_run["councils"][:2]
    ev = parse_evaluation({"name": "slow", "title": "Slow", "notebook": "probe", "data": str(demo_run["dir"]),
                           "councils": councils, "parameters": {"slow_for": councils[0]}}, notebooks_dir=notebooks)
    summary = run_evaluation(ev, out_dir=tmp_path / "out", workers=1, notebooks_dir=notebooks, progress=False,
                             log=lambda m: None, cell_timeout=3)
    status = {r.la_code: r for r in summary.runs}
    slow = status[councils[0]]
    assert slow.status == "failed" and "longer than the limit of 3 s" in slow.error
    assert slow.attempts == 1 and slow.seconds_total < 30, "a slow notebook is not run again"
    assert status[councils[1]].status == "ok", status[councils[1]].error


def _probe_notebook(folder: Path, parameter: str, *cells: str, write_results: bool = True) -> Path:
    """A small notebook folder for runner tests: one extra parameter, the given cells, then results.json."""
    import nbformat

    notebooks = folder / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'data = ""\nla_code = ""\noutput_dir = "."\ndisclosure_threshold = 5\n{parameter} = ""')
    params.metadata["tags"] = ["parameters"]
    write = ("from insightlib.batch.results import write_results\n"
             "write_results(output_dir, notebook='probe', la_code=la_code, parameters={}, data_fingerprint='x', figures={'ok': True})")
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nb.cells += [nbformat.v4.new_code_cell(write)] if write_results else []
    nbformat.write(nb, notebooks / "probe.ipynb")
    return notebooks
