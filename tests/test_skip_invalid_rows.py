"""insight load --skip-invalid-rows: load what is clean, leave out the invalid rows and what depends on
them, record what was left out in the warehouse, and say so in every report of that council (issue 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.tiny import tables, write_valid_directory
from insightlib.ingest import warehouse as wh
from insightlib.batch.cli import EXIT_BAD_INPUT, app
from test_readers import sample

KEY = "a-test-key-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parents[1]


def _sample_dir(tmp_path: Path, lea: str = "201") -> Path:
    """The real-structure CIN sample (LEA 975 is no council's code: made a real one, the only change)."""
    d = tmp_path / "cin"
    d.mkdir()
    text = sample("fake_CIN_data.xml").read_text()
    (d / "fake_CIN_data.xml").write_text(text.replace("<LEA>975</LEA>", f"<LEA>{lea}</LEA>"))
    return d


def test_without_the_flag_the_sample_does_not_load_as_today(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    result = CliRunner().invoke(app, ["load", str(_sample_dir(tmp_path)), "-w", str(tmp_path / "w.duckdb")])
    assert result.exit_code == EXIT_BAD_INPUT and "no council's data is clean" in result.output
    assert not (tmp_path / "w.duckdb").exists()


def test_the_cin_sample_loads_with_the_flag_leaving_out_14_cindetails(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    target = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["load", str(_sample_dir(tmp_path)), "-w", str(target), "--skip-invalid-rows"])
    assert result.exit_code == 0, result.output
    assert "left out 14 referrals row(s) (date in the future; fake_CIN_data.xml)" in " ".join(result.output.split())
    t = wh.read_council(target, "201")
    assert len(t["children"]) == 332 and len(t["referrals"]) == 402 - 14
    assert (t["referrals"]["referral_date"] <= "2022-07-21").all()
    assert (t["referrals"]["closure_date"].dropna() <= "2022-07-21").all()
    assert wh.left_out(target, "201") == [{"la_code": "201", "table": "referrals", "rule": "date in the future",
                                           "rows": 14, "files": "fake_CIN_data.xml"}]
    [caveat] = wh.left_out_caveats(target, "201")
    assert "14 CINdetails for dates after the return's reference date" in caveat
    assert wh.load_metadata(target)["skip_invalid_rows"] is True


def test_a_council_code_that_is_no_council_is_not_skipped(tmp_path, monkeypatch):
    """The unchanged sample's LEA 975: the council itself is unknown, so there is nothing to load."""
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    d = _sample_dir(tmp_path, lea="975")
    result = CliRunner().invoke(app, ["load", str(d), "-w", str(tmp_path / "w.duckdb"), "--skip-invalid-rows"])
    assert result.exit_code == EXIT_BAD_INPUT and "'975' is not a council code" in " ".join(result.output.split())


def _tiny_with_faults(tmp_path: Path) -> Path:
    t = tables()
    # council 201: child CH201C has an unknown sex code -> its referral RF2014 goes with it;
    # referral RF2011 closes before it starts -> its assessment, CP plan and intervention go with it;
    # the allocation of CH201B ends before it starts -> it goes alone.
    t["children"][2]["sex"] = "X"
    t["referrals"][0]["closure_date"] = "2019-01-01"
    t["allocations"][1]["end_date"] = "2022-01-01"
    return write_valid_directory(tmp_path / "d", t)


def test_invalid_rows_and_what_depends_on_them_are_left_out_and_counted_by_rule(tmp_path):
    target = tmp_path / "w.duckdb"
    summary = wh.load_directory(_tiny_with_faults(tmp_path), target, key=KEY, skip_invalid_rows=True)
    assert summary.loaded == ["201", "202"] and not summary.failed
    got = {(r["la_code"], r["table"], r["rule"]): r["rows"] for r in wh.left_out(target)}
    assert got == {
        ("201", "children", "unknown code"): 1,
        ("201", "referrals", "closure before referral"): 1,
        ("201", "referrals", wh.WITH_CHILD): 1,
        ("201", "assessments", wh.WITH_REFERRAL): 1,
        ("201", "plans", wh.WITH_REFERRAL): 1,
        ("201", "interventions", wh.WITH_REFERRAL): 1,
        ("201", "allocations", "end before start"): 1,
    }
    t201, t202 = wh.read_council(target, "201"), wh.read_council(target, "202")
    assert len(t202["referrals"]) == 4 and len(t202["children"]) == 3  # the clean council is whole
    assert len(t201["children"]) == 2 and sorted(t201["referrals"]["referral_id"].str.len() > 0) == [True, True]
    assert len(t201["referrals"]) == 2 and len(t201["assessments"]) == 1 and len(t201["plans"]) == 1
    assert len(t201["interventions"]) == 0 and len(t201["allocations"]) == 1
    [caveat] = wh.left_out_caveats(target, "201")
    assert "1 child for codes not in the CIN census code lists" in caveat
    assert "1 referral because the case closed before the referral" in caveat
    assert "1 referral because they belong to a child left out" in caveat
    assert wh.left_out_caveats(target, "202") == []
    across = wh.left_out_caveats(target)
    assert len(across) == 1 and across[0].startswith("City of London (201): ")


def test_without_the_flag_nothing_changes(tmp_path):
    target = tmp_path / "w.duckdb"
    summary = wh.load_directory(_tiny_with_faults(tmp_path), target, key=KEY)
    assert summary.loaded == ["202"] and list(summary.failed) == ["201"] and summary.left_out == []
    assert wh.left_out(target) == [] and wh.left_out_caveats(target, "202") == []


def test_problems_beyond_single_rows_still_stop_the_council(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    (d / "camden.xml").write_text((ROOT / "tests" / "test_readers.py").read_text().split('CIN_XML = """')[1]
                                  .split('"""')[0].replace("<LEA>202</LEA>", "<LEA>203</LEA>")
                                  .replace("</UPN>", "</UPN>stray", 1))
    summary = wh.load_directory(d, tmp_path / "w.duckdb", key=KEY, skip_invalid_rows=True)
    assert "203" in summary.failed and summary.loaded == ["201", "202"]  # stray text: the file is not trusted


@pytest.mark.slow
def test_every_report_of_the_council_states_what_was_left_out(tmp_path, monkeypatch):
    """End to end: the re-referral report run on the trimmed sample says 14 CINdetails were left out, and why."""
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    target = tmp_path / "w.duckdb"
    assert CliRunner().invoke(app, ["load", str(_sample_dir(tmp_path)), "-w", str(target),
                                    "--skip-invalid-rows"]).exit_code == 0
    ev = tmp_path / "ev.yml"
    ev.write_text(f"name: sample\ntitle: CIN sample\nnotebook: rereferral\ndata: {target}\ncouncils: all\n")
    result = CliRunner().invoke(app, ["run", str(ev), "--out", str(tmp_path / "reports"), "--workers", "1",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    executed = json.loads((tmp_path / "reports" / "sample" / "201" / "rereferral.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "14 CINdetails for dates after the return's reference date" in text
