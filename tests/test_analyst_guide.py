"""docs/analyst-guide.md runs as written, and its numbers are right; the notebooks' defaults point at the
demo warehouse and a demo council, take la_code as a number, and a run by hand writes under reports/."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from insightlib.batch.evaluation import notebook_parameter_names
from insightlib.ingest import warehouse
from insightlib.report.disclosure import SUPPRESSED
from insightlib.simulate import synth

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "analyst-guide.md"
KEY = "a-test-key-that-is-long-enough-0123456789"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder as after make demo: notebooks/ and the demo warehouse data/demo.duckdb (352 in it)."""
    root = tmp_path_factory.mktemp("project")
    (root / "notebooks").mkdir()
    data = synth.generate(2, 400, 3, root / "data" / "demo", la_codes=["352", "201"])
    warehouse.load_directory(data, root / "data" / "demo.duckdb", key=KEY)
    return root


def guide_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def test_the_guides_worked_example_runs_and_its_numbers_are_right(project, monkeypatch):
    monkeypatch.chdir(project / "notebooks")  # where a notebook of notebooks/ runs
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # la_code = 352 as a number: no pandas warning
        for block in guide_blocks():
            exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["la_code"] == 352 and namespace["data"] == "../data/demo.duckdb"
    tables = namespace["tables"]
    assert set(tables["councils"]["la_code"]) == {"352"}

    # by team: the counts are those worked out here by hand from the tables themselves
    team = namespace["team_table"]
    by_team = namespace["by_team"]
    truth = _by_hand_team_counts(tables, 365)
    counts = by_team.counts.set_index("group")
    shown = counts.index[counts.index != "Other"]
    for group in shown:
        assert tuple(counts.loc[group, ["closed", "rereferred"]]) == truth[group], group
    other = [g for g in truth if g not in shown]
    assert counts.loc["Other", "closed"] == sum(truth[g][0] for g in other)
    assert counts["closed"].sum() == sum(n for n, _ in truth.values())
    closed, back, not_back = by_team.columns
    assert team.loc["Total", closed] == counts["closed"].sum()

    # disclosure-controlled: no count from 1 to 4 is shown, and every hidden count hides its row's share
    for column in (closed, back, not_back):
        values = team[column]
        numbers = pd.to_numeric(values[values != SUPPRESSED])
        assert not ((numbers >= 1) & (numbers < 5)).any()
    share = [c for c in team.columns if c.startswith("share")][0]
    hidden_rows = team.index[(team[[closed, back, not_back]] == SUPPRESSED).any(axis=1)]
    assert (team.loc[hidden_rows, share] == SUPPRESSED).all()
    small = counts[(counts["rereferred"] > 0) & (counts["rereferred"] < 5)].index
    assert all(team.loc[g, back] == SUPPRESSED for g in small)

    # the share re-referred is the Kaplan-Meier estimate: with no censoring before a year it is the plain share
    total = team.loc["Total", share]
    km = by_team.km.at("All", 365)
    assert total.startswith(f"{1 - km['survival']:.0%}")

    # any table through disclosure control: the crosstab with its margins
    safe = namespace["safe"].display
    assert "Total" in safe.index and "Total" in safe.columns
    raw = pd.crosstab(tables["referrals"]["primary_need"], tables["referrals"]["referral_nfa"])
    for need, row in raw.iterrows():
        for value, shown_value in zip(row, safe.loc[need, ["assessed", "no further action"]]):
            if 1 <= value < 5:
                assert shown_value == SUPPRESSED
            elif shown_value != SUPPRESSED:
                assert int(shown_value) == value
    nfa = int(tables["referrals"]["referral_nfa"].sum())
    assert namespace["share_nfa"].display == f"{100 * nfa / len(tables['referrals']):.1f}%"

    kept = json.loads(Path(namespace["kept"]).read_text())
    assert Path(namespace["kept"]).resolve().parent == (project / "reports" / "lab" / "by-team").resolve()
    assert kept["la_code"] == "352" and kept["table"][-1]["team"] == "Total"
    assert not list((project / "notebooks").iterdir())  # nothing written beside the notebooks


def _by_hand_team_counts(tables: dict, horizon: int) -> dict[str, tuple[int, int]]:
    """Closed cases and re-referrals within the horizon by team at closure, from the referrals and
    allocations alone (a spell: referrals of a child that overlap are one; followed to the extract
    date, the 18th birthday, death or transfer)."""
    from insightlib.ingest.episodes import build_episodes

    ep = build_episodes(tables)
    ep = ep[ep["duration_days"] > 0]
    alloc = tables["allocations"]
    out: dict[str, list[int]] = {}
    for row in ep.itertuples():
        a = alloc[(alloc["child_id"] == row.child_id) & (alloc["start_date"] <= row.closure_date)
                  & (alloc["end_date"].isna() | (alloc["end_date"] >= row.closure_date))]
        team = a.sort_values("start_date")["team"].iloc[-1] if len(a) else "Not recorded"
        # re-referred within the horizon: the child's next referral after this closure, in time
        later = tables["referrals"][(tables["referrals"]["child_id"] == row.child_id)
                                    & (tables["referrals"]["referral_date"] > row.closure_date)]
        next_days = (later["referral_date"].min() - row.closure_date).days if len(later) else np.inf
        back = row.event == 1 and next_days <= horizon
        n = out.setdefault(team, [0, 0])
        n[0] += 1
        n[1] += int(back)
    return {k: tuple(v) for k, v in out.items()}


def test_the_notebooks_default_to_the_demo_warehouse_and_write_under_reports():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert {"rereferral", "intervention_effect", "programme_evaluation", "skills_gap"} <= set(notebooks)
    for notebook in notebooks:
        source = _parameter_cell(ROOT / "notebooks" / f"{notebook}.ipynb")
        defaults = {}
        exec(source, defaults)  # noqa: S102 - the notebook's own parameter cell
        assert defaults["output_dir"] == f"../reports/lab/{notebook}", notebook
        if notebook != "skills_gap":
            assert defaults["data"] == "../data/demo.duckdb", notebook
        assert set(notebook_parameter_names(ROOT / "notebooks" / f"{notebook}.ipynb")) >= {"data", "output_dir"}
    for notebook in set(notebooks) - {"programme_evaluation", "skills_gap"}:  # one council each
        defaults = {}
        exec(_parameter_cell(ROOT / "notebooks" / f"{notebook}.ipynb"), defaults)  # noqa: S102
        assert defaults["la_code"] == "352"  # Manchester, one of the demo's six councils
    assert "352" in set(synth.choose_councils(6, 2025, None)["la_code"])  # make demo's councils


def _parameter_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))


def test_a_hand_run_with_the_defaults_and_a_number_for_la_code(project, tmp_path):
    """The re-referral notebook as an analyst runs it in JupyterLab: only la_code given (a number)."""
    import papermill as pm

    notebooks = project / "notebooks"
    source = ROOT / "notebooks" / "rereferral.ipynb"
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(str(source), str(out), parameters={"la_code": 352}, cwd=str(notebooks),
                        progress_bar=False, kernel_name="python3")
    executed = json.loads(out.read_text())
    text = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "**Manchester** (352)" in text
    assert "FutureWarning" not in text and "Warning" not in text.replace("WARNING | Kernel", "")
    results = json.loads((project / "reports" / "lab" / "rereferral" / "results.json").read_text())
    assert results["la_code"] == "352" and results["notebook"] == "rereferral"
    assert not list(notebooks.iterdir())  # nothing beside the notebook


def test_a_missing_warehouse_says_not_found(tmp_path):
    from insightlib.errors import InputError

    with pytest.raises(InputError, match=r"demo\.duckdb: not found"):
        warehouse.read_council(tmp_path / "data" / "demo.duckdb", "352")
