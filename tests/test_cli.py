"""The command line: each kind of bad input gives its plain message, exit 2, no traceback, nothing written."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fixtures.tiny import tables, write_csv, write_valid_directory
from insightlib.batch.cli import EXIT_BAD_INPUT, app
from test_readers import CIN_XML


def _missing_column(t, d):
    for row in t["children"]:
        del row["ethnicity"]


def _unknown_code(t, d):
    t["referrals"][2]["primary_need"] = "N99"


def _closure_before_referral(t, d):
    t["referrals"][1]["closure_date"] = "2021-03-02"


def _duplicate_id(t, d):
    t["referrals"][3]["referral_id"] = "RF2011"


def _unparseable_date(t, d):
    t["children"][4]["date_of_birth"] = "31/13/2015"


BAD_TABLES = {
    "missing column": (_missing_column, "children.csv", "'ethnicity' is missing"),
    "unknown code": (_unknown_code, "referrals.csv row 3", "'N99' is not a primary need code"),
    "closure before referral": (_closure_before_referral, "referrals.csv row 2", "before the referral"),
    "duplicate id": (_duplicate_id, "referrals.csv row 4", "first at row 1"),
    "unparseable date": (_unparseable_date, "children.csv row 5", "31/13/2015"),
}


def _bad_directory(kind: str, tmp_path):
    d = tmp_path / "data"
    if kind in BAD_TABLES:
        t = tables()
        BAD_TABLES[kind][0](t, d)
        return write_valid_directory(d, t), BAD_TABLES[kind][1:]
    if kind == "empty file":
        write_valid_directory(d)
        (d / "assessments.csv").write_bytes(b"")
        return d, ("assessments.csv", "empty")
    if kind == "wrong encoding":
        t = tables()
        t["councils"][0]["region"] = "Londres-Île"
        write_valid_directory(d, t)
        write_csv(d / "councils.csv", t["councils"], encoding="cp1252")
        return d, ("councils.csv", "0xce")
    if kind == "broken CIN XML":
        d.mkdir()
        (d / "cin.xml").write_text(CIN_XML.replace("<ReferralSource>6</ReferralSource>",
                                                   "<ReferralSource>6</ReferalSource>"))
        return d, ("cin.xml", "mismatched tag")
    raise AssertionError(kind)


KINDS = [*BAD_TABLES, "empty file", "wrong encoding", "broken CIN XML"]


@pytest.mark.parametrize("kind", KINDS)
def test_validate_names_the_file_row_and_rule_and_exits_2(kind, tmp_path):
    d, expected = _bad_directory(kind, tmp_path)
    result = CliRunner().invoke(app, ["validate", str(d)])
    text = " ".join(result.output.split())  # the console may wrap long messages
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{result.output}"


def test_validate_of_clean_data_says_so_with_every_tables_rows(tmp_path):
    """``insight validate`` checks in batches of councils and keeps only counts: the rows it names are the
    files' rows."""
    d = write_valid_directory(tmp_path / "d")
    result = CliRunner().invoke(app, ["validate", str(d)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no problems found" in text
    for name, rows in tables().items():
        assert f"{name} {len(rows):,}" in text


@pytest.mark.parametrize("kind", ["unknown code", "broken CIN XML"])
def test_load_of_bad_data_writes_no_warehouse(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", "a-test-key-that-is-long-enough-0123456789")
    d, _ = _bad_directory(kind, tmp_path)
    target = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["load", str(d), "--warehouse", str(target)])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    if kind == "broken CIN XML":  # the only council is broken: nothing to load at all
        assert result.exit_code == EXIT_BAD_INPUT and not target.exists()
    assert not list(tmp_path.glob("w.duckdb.*")), "no temporary file is left behind"
