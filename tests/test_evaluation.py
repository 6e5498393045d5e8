from pathlib import Path

import pytest
import yaml

from insightlib.errors import EvaluationFileError
from insightlib.batch.evaluation import load_evaluation, parse_evaluation

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"name": "demo", "title": "Re-referral", "notebook": "rereferral", "data": "data/demo"}


def test_minimal_file_gets_defaults():
    ev = parse_evaluation(dict(GOOD))
    assert ev.councils == "all" and ev.disclosure_threshold == 5 and ev.scope == "council" and ev.parameters == {}


def test_council_codes_read_as_numbers_are_kept_as_three_digit_text():
    ev = parse_evaluation({**GOOD, "councils": [201, "202", 201]})
    assert ev.councils == ("201", "202")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"name": "Demo Run"}, "'name' must be"),
        ({"councils": "everything"}, "'councils' must be"),
        ({"councils": ["20"]}, "not a 3-digit council code"),
        ({"disclosure_threshold": 0}, "'disclosure_threshold'"),
        ({"rounding": 10}, "'rounding' must be 5"),
        ({"parameters": {"la_code": "201"}}, "set by insight itself"),
        ({"parameters": ["a"]}, "'parameters' must be a mapping"),
        ({"titel": "x"}, "Did you mean 'title'?"),
        ({"scope": "region"}, "'scope' must be"),
    ],
)
def test_each_mistake_has_its_own_message(change, words):
    with pytest.raises(EvaluationFileError, match=None) as info:
        parse_evaluation({**GOOD, **change}, source="evaluations/x.yml")
    assert words in str(info.value)
    assert str(info.value).startswith("evaluations/x.yml")


def test_every_problem_is_reported_at_once():
    with pytest.raises(EvaluationFileError) as info:
        parse_evaluation({"name": "BAD NAME", "councils": 7}, source="e.yml")
    text = str(info.value)
    for expected in ("'title' is required", "'notebook' is required", "'data' is required", "'name' must be", "'councils' must be"):
        assert expected in text


def test_unknown_notebook_is_named_with_a_suggestion(tmp_path):
    (tmp_path / "rereferral.ipynb").write_text("{}")
    with pytest.raises(EvaluationFileError) as info:
        parse_evaluation({**GOOD, "notebook": "rereferal"}, notebooks_dir=tmp_path)
    assert "no notebook 'rereferal'" in str(info.value) and "Did you mean 'rereferral'" in str(info.value)


def test_broken_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("name: demo\ntitle: [unclosed\nnotebook: x\n")
    with pytest.raises(EvaluationFileError) as info:
        load_evaluation(path)
    assert "not valid YAML" in str(info.value) and "line" in str(info.value)


def test_shipped_evaluation_files_are_valid():
    files = sorted((ROOT / "evaluations").glob("*.yml"))
    assert files, "the demo needs at least one evaluation file"
    for path in files:
        ev = load_evaluation(path, notebooks_dir=ROOT / "notebooks")
        assert ev.name and ev.title


def test_a_misspelt_notebook_parameter_is_named_with_a_suggestion():
    raw = {"name": "x", "title": "X", "notebook": "rereferral", "data": "d", "parameters": {"grup_by": "primary_need"}}
    with pytest.raises(EvaluationFileError) as info:
        parse_evaluation(raw, "x.yml", notebooks_dir=ROOT / "notebooks")
    message = str(info.value)
    assert "'parameters.grup_by'" in message and "group_by" in message and "has no such parameter" in message


def test_intervention_parameters_are_checked_before_anything_runs():
    raw = yaml.safe_load((ROOT / "evaluations" / "fgc.yml").read_text())
    raw["parameters"]["estimand"] = "ATX"
    with pytest.raises(EvaluationFileError) as info:
        parse_evaluation(raw, "fgc.yml", notebooks_dir=ROOT / "notebooks")
    assert "estimand" in str(info.value) and "ATX" in str(info.value)


@pytest.mark.parametrize("notebook", ["../notebooks/rereferral", "/tmp/evil", "notebooks/rereferral",
                                      "..", "sub\\rereferral", "~/x", "rereferral.ipynb/../x", ".hidden"])
def test_notebook_is_a_bare_name_never_a_path(notebook, tmp_path):
    """A path in 'notebook:' would run a notebook from anywhere and write beside it."""
    (tmp_path / "rereferral.ipynb").write_text("{}")
    for notebooks_dir in (None, tmp_path):
        with pytest.raises(EvaluationFileError) as info:
            parse_evaluation({**GOOD, "notebook": notebook}, source="e.yml", notebooks_dir=notebooks_dir)
        assert "'notebook' must be the name of a notebook in notebooks/" in str(info.value)


def test_a_run_never_reads_a_notebook_outside_notebooks_or_writes_into_it(tmp_path):
    from dataclasses import replace

    from insightlib.errors import InputError
    from insightlib.batch.runner import run_evaluation

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "rereferral.ipynb").write_text("{}")
    ev = parse_evaluation(dict(GOOD), notebooks_dir=notebooks)
    with pytest.raises(EvaluationFileError):  # built by hand, bypassing the schema
        run_evaluation(replace(ev, notebook="../evil"), out_dir=tmp_path / "out", notebooks_dir=notebooks,
                       progress=False, log=lambda _m: None)
    for out in (notebooks, notebooks / "reports"):
        with pytest.raises(InputError, match="inside the notebooks folder"):
            run_evaluation(ev, out_dir=out, notebooks_dir=notebooks, progress=False, log=lambda _m: None)
    assert sorted(p.name for p in notebooks.rglob("*")) == ["rereferral.ipynb"]
