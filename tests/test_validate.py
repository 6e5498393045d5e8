"""Validation: every kind of bad input gives a problem naming the exact file, row, column and rule."""

from __future__ import annotations

import pandas as pd
import pytest

from fixtures.tiny import tables, write_csv, write_valid_directory
from insightlib.ingest.validate import validate_directory
from insightlib.ingest.validate_rules import RULES


def only(report, rule):
    found = [p for p in report.problems if p.rule == rule]
    assert found, f"no {rule!r} problem in:\n{report.format_text()}"
    return found


def one(report, rule):
    found = only(report, rule)
    assert len(found) == 1, found
    return found[0]


def where(p):
    return (p.file, p.row, p.column, p.rule)


@pytest.fixture
def data(tmp_path):
    """Tables as lists of dicts; edit, then call write() to get the directory."""
    t = tables()

    def write():
        return write_valid_directory(tmp_path / "data", t)

    return t, write


def test_valid_directory_has_no_problems_and_typed_tables(tmp_path):
    report = validate_directory(write_valid_directory(tmp_path / "d"))
    assert report.ok, report.format_text()
    assert report.clean_councils == ["201", "202"]
    ref = report.tables["referrals"]
    assert ref["referral_date"].dtype == "datetime64[ns]" and ref["closure_date"].dtype == "datetime64[ns]"
    assert ref["referral_nfa"].dtype == bool
    assert ref["referral_nfa"].tolist()[:4] == [False, False, False, True]
    assert ref["la_code"].tolist()[0] == "201" and isinstance(ref["la_code"].iat[0], str)
    assert pd.isna(ref["closure_date"].iat[2]) and ref["closure_reason"].iat[2] is None
    assert report.format_text().startswith("All well")


def test_missing_column_is_reported_and_belongs_to_no_council(data):
    t, write = data
    for row in t["children"]:
        del row["ethnicity"]
    report = validate_directory(write())
    p = one(report, "missing column")
    assert where(p) == ("children.csv", None, "ethnicity", "missing column")
    assert p.la_code is None and report.unattributed and report.clean_councils == []
    assert "'ethnicity' is missing" in p.message


def test_unknown_code(data):
    t, write = data
    t["referrals"][2]["primary_need"] = "N99"
    p = one(validate_directory(write()), "unknown code")
    assert where(p) == ("referrals.csv", 3, "primary_need", "unknown code")
    assert p.la_code == "201" and "'N99' is not a primary need code" in p.message


def test_unknown_code_in_a_list_column(data):
    t, write = data
    t["children"][1]["disability"] = "HAND;WINGS"
    p = one(validate_directory(write()), "unknown code")
    assert where(p) == ("children.csv", 2, "disability", "unknown code") and "'WINGS'" in p.message


def test_closure_before_referral(data):
    t, write = data
    t["referrals"][1]["closure_date"] = "2021-03-02"  # referral 2021-04-01
    p = one(validate_directory(write()), "closure before referral")
    assert where(p) == ("referrals.csv", 2, "closure_date", "closure before referral")
    assert p.message == "referrals.csv row 2, closure_date: the case closes (2021-03-02) before the referral (2021-04-01)."


def test_plan_and_assessment_ending_before_they_start(data):
    t, write = data
    t["plans"][0]["end_date"] = "2020-03-01"  # start 2020-03-10
    t["assessments"][2]["authorised_date"] = "2020-02-01"  # council 202, start 2020-02-05
    report = validate_directory(write())
    got = sorted(where(p) + (p.la_code,) for p in only(report, "end before start"))
    assert got == [("assessments.csv", 3, "authorised_date", "end before start", "202"),
                   ("plans.csv", 1, "end_date", "end before start", "201")]


def test_duplicate_id(data):
    t, write = data
    t["referrals"][3]["referral_id"] = "RF2011"
    p = one(validate_directory(write()), "duplicate id")
    assert where(p) == ("referrals.csv", 4, "referral_id", "duplicate id")
    assert "first at row 1" in p.message


def test_same_id_in_two_councils_is_not_a_duplicate(data):
    t, write = data
    t["referrals"][4]["referral_id"] = "RF2011"  # council 202 reusing 201's id
    for table in ("assessments", "plans"):
        for row in t[table]:
            if row["la_code"] == "202" and row["referral_id"] == "RF2021":
                row["referral_id"] = "RF2011"
    t["interventions"][1]["referral_id"] = "RF2011"
    assert validate_directory(write()).ok


def test_unparseable_date(data):
    t, write = data
    t["children"][4]["date_of_birth"] = "31/13/2015"
    p = one(validate_directory(write()), "unparseable date")
    assert where(p) == ("children.csv", 5, "date_of_birth", "unparseable date") and p.la_code == "202"


def test_uk_dates_are_accepted(data):
    t, write = data
    t["children"][0]["date_of_birth"] = "01/05/2010"
    report = validate_directory(write())
    assert report.ok, report.format_text()
    assert report.tables["children"]["date_of_birth"].iat[0] == pd.Timestamp("2010-05-01")


def test_empty_file(data):
    t, write = data
    d = write()
    (d / "assessments.csv").write_bytes(b"")
    p = one(validate_directory(d), "empty file")
    assert where(p) == ("assessments.csv", None, None, "empty file")


def test_required_table_with_header_only_is_empty(data):
    t, write = data
    d = write()
    (d / "referrals.csv").write_text(",".join(t["referrals"][0]) + "\n")
    p = one(validate_directory(d), "empty file")
    assert where(p) == ("referrals.csv", None, None, "empty file")


def test_missing_table(data):
    t, write = data
    d = write()
    (d / "children.csv").unlink()
    p = one(validate_directory(d), "missing table")
    assert p.table == "children" and p.la_code is None and "children.csv" in p.message


def test_wrong_encoding_names_the_file_and_byte(data):
    t, write = data
    t["councils"][0]["region"] = "Londres-Île"
    d = write()
    write_csv(d / "councils.csv", t["councils"], encoding="cp1252")
    raw = (d / "councils.csv").read_bytes()
    p = one(validate_directory(d), "wrong encoding")
    assert where(p) == ("councils.csv", None, None, "wrong encoding")
    pos = raw.index(b"\xce")
    assert f"byte position {pos}" in p.message and "0xce" in p.message and "line 2" in p.message


def test_utf8_with_bom_is_fine(data):
    t, write = data
    d = write()
    write_csv(d / "councils.csv", t["councils"], encoding="utf-8-sig")
    assert (d / "councils.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert validate_directory(d).ok


def test_ragged_csv_is_unreadable_not_a_crash(data):
    t, write = data
    d = write()
    with (d / "plans.csv").open("a") as fh:
        fh.write("201,RF2011,CH201A,CP,2020-01-01,,NEG,extra,columns\n")
    p = one(validate_directory(d), "unreadable file")
    assert p.file == "plans.csv" and p.la_code is None


def test_future_date(data):
    t, write = data
    t["referrals"][5]["referral_date"] = "2025-01-01"  # extract date 2024-03-31
    t["referrals"][5]["closure_date"] = ""
    p = one(validate_directory(write()), "date in the future")
    assert where(p) == ("referrals.csv", 6, "referral_date", "date in the future") and p.la_code == "202"
    assert "2024-03-31" in p.message


def test_extract_date_after_today_is_in_the_future(data):
    t, write = data
    t["councils"][1]["extract_date"] = "2024-03-31"
    report = validate_directory(write(), today=pd.Timestamp("2023-01-01"))
    got = {where(p) for p in only(report, "date in the future") if p.table == "councils"}
    assert got == {("councils.csv", 1, "extract_date", "date in the future"),
                   ("councils.csv", 2, "extract_date", "date in the future")}


def test_child_over_25_at_referral(data):
    t, write = data
    t["children"][2]["date_of_birth"] = "1994-12-23"  # referral 2019-12-24: 25 years and a day -> fine
    t["children"][5]["date_of_birth"] = "1993-12-23"  # council 202, same referral date: 26
    p = one(validate_directory(write()), "over 25")
    assert where(p) == ("referrals.csv", 8, "referral_date", "over 25") and p.la_code == "202"
    assert "was 26 at referral" in p.message


def test_referral_before_birth(data):
    t, write = data
    t["children"][1]["date_of_birth"] = "2022-07-01"  # referral 2022-06-10
    t["assessments"][1]["start_date"] = "2022-07-02"
    t["plans"][1]["start_date"] = "2022-07-03"
    p = one(validate_directory(write()), "referral before birth")
    assert where(p) == ("referrals.csv", 3, "referral_date", "referral before birth")


def test_unknown_council(data):
    t, write = data
    for table in t.values():
        for row in table:
            if row["la_code"] == "202":
                row["la_code"] = "999"
    report = validate_directory(write())
    p = [p for p in only(report, "unknown council") if p.table == "councils"][0]
    assert where(p) == ("councils.csv", 2, "la_code", "unknown council") and p.la_code == "999"
    assert report.clean_councils == ["201"] and list(report.failed_councils) == ["999"]


def test_child_and_referral_referenced_but_not_present(data):
    t, write = data
    t["referrals"][1]["child_id"] = "NOBODY"
    t["plans"][1]["referral_id"] = "NOREF"
    report = validate_directory(write())
    got = sorted(where(p) for p in only(report, "not present"))
    assert got == [("plans.csv", 2, "referral_id", "not present"), ("referrals.csv", 2, "child_id", "not present")]


def test_boolean_not_yes_no(data):
    t, write = data
    t["referrals"][0]["referral_nfa"] = "maybe"
    p = one(validate_directory(write()), "not yes/no")
    assert where(p) == ("referrals.csv", 1, "referral_nfa", "not yes/no")


def test_missing_required_value(data):
    t, write = data
    t["children"][3]["sex"] = ""
    p = one(validate_directory(write()), "missing value")
    assert where(p) == ("children.csv", 4, "sex", "missing value") and p.la_code == "202"


def test_every_problem_is_reported_at_once_and_grouped_by_council(data):
    t, write = data
    t["referrals"][0]["primary_need"] = "XX"
    t["referrals"][1]["closure_date"] = "2021-03-02"
    t["referrals"][6]["referral_source"] = "99"
    t["children"][0]["date_of_birth"] = "soon"
    report = validate_directory(write())
    assert {p.rule for p in report.problems} == {"unknown code", "closure before referral", "unparseable date"}
    assert len(report.problems) == 4
    by = report.problems_by_council()
    assert set(by) == {"201", "202"} and len(by["201"]) == 3 and len(by["202"]) == 1
    assert report.clean_councils == [] and not report.ok
    text = report.format_text(max_lines=2)
    assert "4 problem(s)" in text and "2 more problem(s) not shown" in text
    assert "referrals.csv row 2, closure_date: the case closes (2021-03-02)" in report.format_text()


def test_many_bad_rows_are_summarised_but_counted(tmp_path):
    t = tables()
    base = t["referrals"][0]
    t["referrals"] = [dict(base, referral_id=f"R{i}", primary_need="BAD") for i in range(120)]
    report = validate_directory(write_valid_directory(tmp_path / "d", t))
    unknown = only(report, "unknown code")
    assert len([p for p in unknown if p.row is not None]) == 50
    assert any(p.row is None and "70 more rows" in p.message for p in unknown)


def test_rules_are_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-contract.md").read_text()
    for rule in RULES:
        assert f"`{rule}`" in doc, rule
