"""What `insight run` checks before it runs anything: the councils asked for are in the data (exit 2,
listing those that are), the data hold every table the notebook needs (exit 2 naming the evaluation,
council and table); and a council that fails keeps no results.json of an earlier run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from typer.testing import CliRunner

from fixtures.tiny import write_valid_directory
from insightlib.batch import plan, runner
from insightlib.ingest import warehouse
from insightlib.batch.cli import EXIT_BAD_INPUT, EXIT_SOME_FAILED, app
from insightlib.batch.evaluation import load_evaluation, parse_evaluation

KEY = "a-test-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="module")
def tiny_warehouse(tmp_path_factory):
    """201 City of London and 202 Camden, every table but interventions for Camden."""
    root = tmp_path_factory.mktemp("tiny")
    data = write_valid_directory(root / "extract")
    rows = (data / "interventions.csv").read_text().splitlines()
    (data / "interventions.csv").write_text("\n".join(r for r in rows if ",202," not in r and not r.startswith("202,")) + "\n")
    wh = root / "extract.duckdb"
    warehouse.load_directory(data, wh, key=KEY)
    return wh


def _evaluation(path: Path, data: Path, notebook: str, councils: str, extra: str = "") -> Path:
    path.write_text(f"name: checks\ntitle: Checks\nnotebook: {notebook}\ndata: {data}\ncouncils: {councils}\n{extra}")
    return path


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_councils_may_be_one_code_a_list_or_a_comma_separated_line():
    base = {"name": "x", "title": "X", "notebook": "rereferral", "data": "d"}
    assert parse_evaluation({**base, "councils": 873}).councils == ("873",)
    assert parse_evaluation({**base, "councils": "873"}).councils == ("873",)
    assert parse_evaluation({**base, "councils": "873, 352"}).councils == ("873", "352")
    assert parse_evaluation({**base, "councils": [873, "352"]}).councils == ("873", "352")
    assert parse_evaluation({**base, "councils": "all"}).councils == "all"
    with pytest.raises(Exception, match="'councils' must be 'all', one 3-digit council code, or a list of them; got 'Cambridge'"):
        parse_evaluation({**base, "councils": "Cambridge"})


def test_an_unknown_council_exits_2_before_anything_runs_and_lists_the_councils_there(tiny_warehouse, tmp_path):
    path = _evaluation(tmp_path / "e.yml", tiny_warehouse, "rereferral", "[201, 873]")
    result = invoke("run", path, "--out", tmp_path / "reports", "--no-progress")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    text = " ".join(result.output.split())
    assert "council 873 is not in the data" in text
    assert "The councils in it: 201 City of London, 202 Camden" in text
    assert "Traceback" not in result.output
    assert not (tmp_path / "reports" / "checks").exists()  # nothing ran, nothing written


def test_a_table_the_data_lack_stops_the_run_before_anything_runs(tiny_warehouse, tmp_path):
    path = _evaluation(tmp_path / "fgc.yml", tiny_warehouse, "intervention_effect", "202",
                       "parameters:\n  intervention: Family Group Conference\n")
    result = invoke("run", path, "--out", tmp_path / "reports", "--no-progress")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    text = " ".join(result.output.split())
    assert "the evaluation fgc.yml (notebook intervention_effect) needs the children, referrals, interventions tables" in text
    assert "council 202: no interventions table in the data" in text
    assert "nothing was run" in text and "Traceback" not in result.output
    assert not (tmp_path / "reports" / "checks").exists()


def test_a_council_lacking_a_table_is_failed_up_front_and_the_others_are_planned(tiny_warehouse, tmp_path):
    path = _evaluation(tmp_path / "fgc.yml", tiny_warehouse, "intervention_effect", "all",
                       "parameters:\n  intervention: Family Group Conference\n")
    evaluation = load_evaluation(path, notebooks_dir=plan.default_notebooks_dir())
    summary = runner.RunSummary(evaluation=evaluation, out_dir=tmp_path / "reports" / "checks")
    messages = []
    tasks, skipped = plan._plan_councils(evaluation, None, tmp_path / "reports", plan.default_notebooks_dir(),
                                           False, summary, messages.append)
    assert [t["la_code"] for t in tasks] == ["201"] and not skipped
    assert [(r.la_code, r.status) for r in summary.runs] == [("202", "failed")]
    assert "no interventions table" in summary.runs[0].error
    assert any("these councils cannot run: council 202: no interventions table" in m for m in messages)


def _flaky_notebook() -> nbformat.NotebookNode:
    params = new_code_cell('data = ""\nla_code = ""\noutput_dir = "."\ndisclosure_threshold = 5\nfail = False',
                           metadata={"tags": ["parameters"]})
    body = new_code_cell("import pathlib\nfrom insightlib.batch import results\n"
                         "if fail:\n    raise ValueError('this council failed')\n"
                         "results.write_json_atomic(pathlib.Path(output_dir) / 'results.json', {'la_code': la_code})")
    return new_notebook(cells=[params, body],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_a_council_that_fails_keeps_no_results_of_an_earlier_run(tiny_warehouse, tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(_flaky_notebook(), str(notebooks / "flaky.ipynb"))
    out = tmp_path / "reports"

    def run(fail: bool):
        path = _evaluation(tmp_path / "flaky.yml", tiny_warehouse, "flaky", "201", f"parameters:\n  fail: {fail}\n")
        evaluation = load_evaluation(path, notebooks_dir=notebooks)
        return runner.run_evaluation(evaluation, out_dir=out, workers=1, notebooks_dir=notebooks, progress=False,
                                     log=lambda m: None, reuse_kernels=False)

    assert [r.status for r in run(False).runs] == ["ok"]
    council = out / "checks" / "201"
    assert json.loads((council / "results.json").read_text()) == {"la_code": "201"}
    second = run(True)
    assert [r.status for r in second.runs] == ["failed"] and second.exit_code == EXIT_SOME_FAILED
    assert not (council / "results.json").exists()  # the earlier figures are not left to be shown as this run's
    manifest = json.loads((council / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["outputs"] == ["flaky.ipynb"]


def test_an_intervention_the_data_do_not_record_stops_the_run_with_what_they_do(tmp_path):
    """A CIN census return records FGDM meetings, not "Family Group Conference": said before anything runs."""
    from test_readers import _with_fgdm

    extract = tmp_path / "extract"
    extract.mkdir()
    (extract / "return.xml").write_text(_with_fgdm("1", "1"))
    wh = tmp_path / "extract.duckdb"
    warehouse.load_directory(extract, wh, key=KEY)
    path = _evaluation(tmp_path / "fgc.yml", wh, "intervention_effect", "202",
                       "parameters:\n  intervention: Family Group Conference\n")
    result = invoke("run", path, "--out", tmp_path / "reports", "--no-progress")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    text = " ".join(result.output.split())
    assert "the evaluation fgc.yml names intervention 'Family Group Conference'" in text
    assert ("council 202: no interventions recorded as 'Family Group Conference' (recorded: "
            "'Family Group Decision Making', 'Family Group Decision Making offered')") in text
    assert not (tmp_path / "reports" / "checks").exists()


def test_every_council_notebook_names_the_tables_it_needs():
    """`insight run` checks NOTEBOOK_TABLES before a run: a notebook missing from it is never checked
    (practice_insight was), so every notebook on the canonical contract has an entry (skills_gap reads
    its own skills-gap data, not these tables)."""
    from insightlib.batch.evaluation import NOTEBOOK_TABLES

    names = {p.stem for p in plan.default_notebooks_dir().glob("*.ipynb")} - {"skills_gap"}
    assert names <= set(NOTEBOOK_TABLES), sorted(names - set(NOTEBOOK_TABLES))
    assert NOTEBOOK_TABLES["practice_insight"] == ("children", "referrals")


def test_a_council_without_referrals_is_failed_up_front_for_the_practice_report(tmp_path):
    data = write_valid_directory(tmp_path / "extract")
    for name in ("referrals", "assessments", "plans", "interventions", "allocations"):
        rows = (data / f"{name}.csv").read_text().splitlines()
        (data / f"{name}.csv").write_text("\n".join(r for r in rows if not r.startswith("202,")) + "\n")
    wh = tmp_path / "extract.duckdb"
    warehouse.load_directory(data, wh, key=KEY)
    path = _evaluation(tmp_path / "practice.yml", wh, "practice_insight", "all")
    evaluation = load_evaluation(path, notebooks_dir=plan.default_notebooks_dir())
    summary = runner.RunSummary(evaluation=evaluation, out_dir=tmp_path / "reports" / "checks")
    messages = []
    tasks, _ = plan._plan_councils(evaluation, None, tmp_path / "reports", plan.default_notebooks_dir(),
                                     False, summary, messages.append)
    assert [t["la_code"] for t in tasks] == ["201"]
    assert [(r.la_code, r.status) for r in summary.runs] == [("202", "failed")]
    assert "no referrals table" in summary.runs[0].error and "practice_insight" in summary.runs[0].error
    only = _evaluation(tmp_path / "p202.yml", wh, "practice_insight", "202")
    result = invoke("run", only, "--out", tmp_path / "reports", "--no-progress")
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "(notebook practice_insight) needs the children, referrals tables" in " ".join(result.output.split())
