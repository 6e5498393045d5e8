"""Readers: canonical CSV/Parquet/Excel, the CIN census XML return and Ofsted Annex A workbooks."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from fixtures.tiny import tables, write_csv, write_valid_directory
from insightlib.ingest.directory import read_directory, read_tables
from insightlib.ingest.validate import validate_directory

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "reference" / "cin_census_samples"


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"outside test vector {name} not found in ../shared/reference/cin_census_samples (not shipped: no licence)")
    return path


def xml_dir(tmp_path: Path, *names: str) -> Path:
    d = tmp_path / "xml"
    d.mkdir()
    for n in names:
        shutil.copy(sample(n), d / n)
    return d


# --- canonical formats ---------------------------------------------------------------------


def test_csv_values_are_stripped_strings_with_data_row_numbers(tmp_path):
    t = tables()
    t["children"][0]["ethnicity"] = "  WBRI "
    t["children"][0]["la_code"] = "201"
    d = write_valid_directory(tmp_path / "d", t)
    raw = read_directory(d)
    children = raw.parts["children"][0]
    assert children["ethnicity"].iat[0] == "WBRI"
    assert children["_row"].tolist() == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(v, str) for v in children["upn"])


def test_mixed_csv_parquet_and_excel_read_the_same(tmp_path):
    csv_dir = write_valid_directory(tmp_path / "csv")
    mixed = write_valid_directory(tmp_path / "mixed")
    # children as Parquet with real dates, a categorical and an integer la_code
    children = pd.read_csv(csv_dir / "children.csv", dtype=str, keep_default_na=False)
    pq = children.assign(date_of_birth=pd.to_datetime(children["date_of_birth"]), la_code=children["la_code"].astype(int),
                         sex=children["sex"].astype("category"), upn=children["upn"].replace("", None))
    pq.to_parquet(mixed / "children.parquet", index=False)
    (mixed / "children.csv").unlink()
    # referrals as a workbook with real date cells, a boolean cell and a title-less header
    ref = pd.read_csv(csv_dir / "referrals.csv", dtype=str, keep_default_na=False)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "referrals"
    ws.append(list(ref.columns))
    for row in ref.itertuples(index=False):
        cells = list(row)
        for i, col in enumerate(ref.columns):
            if col.endswith("_date") and cells[i]:
                cells[i] = dt.datetime.fromisoformat(cells[i])
            if col == "la_code":
                cells[i] = int(cells[i])
        cells[list(ref.columns).index("referral_nfa")] = cells[list(ref.columns).index("referral_nfa")] in ("1", "true", "yes")
        ws.append(cells)
    wb.save(mixed / "referrals.xlsx")
    (mixed / "referrals.csv").unlink()

    a, b = validate_directory(csv_dir), validate_directory(mixed)
    assert a.ok and b.ok, b.format_text()
    for name in ("children", "referrals"):
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])


def test_excel_problem_rows_are_the_rows_excel_shows(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    t = tables()
    t["plans"][1]["plan_type"] = "XX"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(t["plans"][0]))
    for row in t["plans"]:
        ws.append(list(row.values()))
    wb.save(d / "plans.xlsx")
    (d / "plans.csv").unlink()
    [p] = validate_directory(d).problems
    assert (p.file, p.row, p.column, p.rule) == ("plans.xlsx", 3, "plan_type", "unknown code")


def test_other_files_are_ignored_with_a_note(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    (d / "notes.csv").write_text("a,b\n1,2\n")
    (d / "truth.json").write_text("{}")
    report = validate_directory(d)
    assert report.ok and any("notes.csv" in n for n in report.notes)


# --- CIN census XML ------------------------------------------------------------------------

CIN_XML = """<?xml version="1.0" encoding="utf-8"?>
<Message>
  <Header>
    <CollectionDetails><Collection>CIN</Collection><Year>2024</Year><ReferenceDate>2024-03-31</ReferenceDate></CollectionDetails>
    <Source><SourceLevel>L</SourceLevel><LEA>202</LEA></Source>
  </Header>
  <Children>
    <Child>
      <ChildIdentifiers>
        <LAchildID>KID-1</LAchildID>
        <UPN>A123456789012</UPN>
        <PersonBirthDate>2012-06-01</PersonBirthDate>
        <GenderCurrent>2</GenderCurrent>
      </ChildIdentifiers>
      <ChildCharacteristics>
        <Ethnicity>APKN</Ethnicity>
        <Disabilities><Disability>AUT</Disability><Disability>COMM</Disability></Disabilities>
      </ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2022-01-10</CINreferralDate>
        <ReferralSource>5D</ReferralSource>
        <PrimaryNeedCode>N1</PrimaryNeedCode>
        <CINclosureDate>2022-09-30</CINclosureDate>
        <ReasonForClosure>RC7</ReasonForClosure>
        <ReferralNFA>0</ReferralNFA>
        <Assessments>
          <AssessmentActualStartDate>2022-01-12</AssessmentActualStartDate>
          <AssessmentAuthorisationDate>2022-02-20</AssessmentAuthorisationDate>
          <FactorsIdentifiedAtAssessment><AssessmentFactors>2B</AssessmentFactors><AssessmentFactors>4A</AssessmentFactors></FactorsIdentifiedAtAssessment>
        </Assessments>
        <CINPlanDates><CINPlanStartDate>2022-03-01</CINPlanStartDate><CINPlanEndDate>2022-05-01</CINPlanEndDate></CINPlanDates>
        <Section47><S47ActualStartDate>2022-05-02</S47ActualStartDate></Section47>
        <ChildProtectionPlans><CPPstartDate>2022-05-20</CPPstartDate><CPPendDate>2022-09-01</CPPendDate><InitialCategoryOfAbuse>EMO</InitialCategoryOfAbuse></ChildProtectionPlans>
      </CINdetails>
      <CINdetails>
        <CINreferralDate>2023-11-02</CINreferralDate>
        <ReferralSource>6</ReferralSource>
        <PrimaryNeedCode>N4</PrimaryNeedCode>
        <ReferralNFA>true</ReferralNFA>
      </CINdetails>
    </Child>
    <Child>
      <ChildIdentifiers>
        <LAchildID>KID-2</LAchildID>
        <PersonBirthDate>2019-02-03</PersonBirthDate>
        <Sex>1</Sex>
      </ChildIdentifiers>
      <ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>
      <CINdetails>
        <CINreferralDate>2023-04-04</CINreferralDate>
        <ReferralSource>3A</ReferralSource>
        <PrimaryNeedCode>N2</PrimaryNeedCode>
        <ReferralNFA>false</ReferralNFA>
      </CINdetails>
    </Child>
  </Children>
</Message>
"""


def test_cin_xml_maps_to_the_canonical_tables(tmp_path):
    (tmp_path / "return_2024.xml").write_text(CIN_XML)
    report = validate_directory(tmp_path)
    assert report.ok, report.format_text()
    t = report.tables
    assert t["councils"][["la_code", "la_name"]].values.tolist() == [["202", "Camden"]]
    assert t["councils"]["extract_date"].iat[0] == pd.Timestamp("2024-03-31")
    kids = t["children"].set_index("child_id")
    assert kids.loc["KID-1", ["sex", "ethnicity", "disability", "upn"]].tolist() == ["F", "APKN", "AUT;COMM", "A123456789012"]
    assert kids.loc["KID-2", "sex"] == "M" and kids.loc["KID-2", "upn"] is None
    ref = t["referrals"]
    assert ref["referral_id"].tolist() == ["KID-1/2022-01-10/1", "KID-1/2023-11-02/2", "KID-2/2023-04-04/1"]
    assert ref["referral_nfa"].tolist() == [False, True, False]
    assert ref["closure_reason"].tolist() == ["RC7", None, None]
    a = t["assessments"]
    assert a[["referral_id", "factors"]].values.tolist() == [["KID-1/2022-01-10/1", "2B;4A"]]
    assert a["authorised_date"].iat[0] == pd.Timestamp("2022-02-20")
    plans = t["plans"]
    assert plans[["plan_type", "category_of_abuse"]].values.tolist() == [["CIN", None], ["CP", "EMO"]]
    assert plans["end_date"].tolist() == [pd.Timestamp("2022-05-01"), pd.Timestamp("2022-09-01")]
    # deterministic: a second read gives the same ids
    assert read_tables(tmp_path)["referrals"]["referral_id"].tolist() == ref["referral_id"].tolist()


def test_cin_xml_with_a_broken_element_names_the_line(tmp_path):
    broken = CIN_XML.replace("<ReferralSource>6</ReferralSource>", "<ReferralSource>6</ReferalSource>")
    (tmp_path / "cin.xml").write_text(broken)
    report = validate_directory(tmp_path)
    [p] = report.problems
    line = broken.splitlines().index(next(l for l in broken.splitlines() if "</ReferalSource>" in l)) + 1
    assert (p.file, p.row, p.column, p.rule) == ("cin.xml", line, None, "broken XML")
    assert p.la_code == "202" and "mismatched tag" in p.message and f"line {line}" in p.message


def test_cin_xml_bad_value_names_the_line_of_its_element(tmp_path):
    bad = CIN_XML.replace("<CINreferralDate>2023-04-04</CINreferralDate>", "<CINreferralDate>2023-04-31</CINreferralDate>")
    (tmp_path / "cin.xml").write_text(bad)
    [p] = validate_directory(tmp_path).problems
    line = next(i for i, l in enumerate(bad.splitlines(), 1) if "2023-04-31" in l)
    assert (p.file, p.row, p.column, p.rule) == ("cin.xml", line, "referral_date", "unparseable date")


def test_fake_cin_sample_loads_332_children(tmp_path):
    d = xml_dir(tmp_path, "fake_CIN_data.xml")
    raw = read_directory(d)
    assert not raw.problems
    t = read_tables(d)
    assert len(t["children"]) == 332 and t["children"]["child_id"].is_unique
    assert len(t["referrals"]) == 402 and t["referrals"]["referral_id"].is_unique
    assert t["councils"][["la_code", "extract_date"]].values.tolist() == [["975", "2022-07-21"]]
    assert set(t["children"]["sex"]) <= {"M", "F", "U"}
    report = validate_directory(d)
    # The sample is made up: its LEA 975 is not a council code and some of its random dates fall
    # after its ReferenceDate. Validation says exactly that, and nothing else.
    assert {p.rule for p in report.problems} == {"unknown council", "date in the future"}
    assert list(report.failed_councils) == ["975"]
    assert report.tables["children"].shape[0] == 332


def test_cin_2024_sample_gives_clear_problems_not_a_crash(tmp_path):
    d = xml_dir(tmp_path, "CIN_Census_2024.xml")
    report = validate_directory(d)
    got = {(p.row, p.column, p.rule) for p in report.problems}
    assert (44, "factors", "unknown code") in got  # AssessmentFactors RB
    assert (42, "start_date", "date in the future") in got  # assessment starting 2028
    assert (43, "authorised_date", "end before start") in got
    assert (78, "sex", "unknown code") in got  # <Sex>M</Sex>
    assert (19, None, "broken XML") in got  # stray text in ChildIdentifiers
    assert any(p.rule == "before referral" and p.table == "assessments" for p in report.problems)
    assert all(p.la_code == "201" and p.file == "CIN_Census_2024.xml" for p in report.problems)
    assert "CIN_Census_2024.xml line 44, factors: 'RB' is not an assessment factor code" in report.format_text()


def test_cin_2026_structure_reads(tmp_path):
    d = xml_dir(tmp_path, "CIN_Census_2026.xml")
    t = read_tables(d)
    assert len(t["children"]) == 2 and len(t["referrals"]) == 2
    assert sorted(t["plans"]["plan_type"]) == ["CIN", "CP"]
    report = validate_directory(d)
    assert {p.rule for p in report.problems} >= {"unknown code", "date in the future"}


def test_xml_beside_csv_tables_of_other_councils(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    (d / "camden.xml").write_text(CIN_XML.replace("<LEA>202</LEA>", "<LEA>203</LEA>"))
    report = validate_directory(d)
    assert report.ok, report.format_text()
    assert report.clean_councils == ["201", "202", "203"]


# --- Annex A --------------------------------------------------------------------------------


def annex_a_workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "List 1 - Contacts"
    ws.append(["Annex A List 1: all contacts in the last six months"])  # a title row above the header
    ws.append(["Child ID", "Gender", "Ethnicity", "Date of Birth", "Age of Child (Years)", "Date of Contact", "Contact Source"])
    ws.append(["X9", "b) Female", "White British", dt.datetime(2016, 3, 4), 7, dt.datetime(2023, 5, 1), "a) 1A: Individual"])
    ws = wb.create_sheet("list 2 - early help")
    ws.append(["CHILD UNIQUE ID", "gender", "Ethnicity", "Date of birth", "Assessment start date", "Assessment completion date",
               "Organisation completing assessment"])
    ws.append(["X1", "a) Male", "a) WBRI", "01/02/2012", "05/01/2021", "30/03/2021", "Family hub"])
    ws = wb.create_sheet("List 3 - Referrals")
    ws.append(["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Date of referral", "Referral Source",
               "Referral NFA?", "Number of Referrals in Last 12 Months", "Allocated Team", "Allocated Worker"])
    ws.append(["X1", "a) Male", "a) WBRI", dt.datetime(2012, 2, 1), dt.datetime(2022, 1, 10), "e) 2A: Schools", "b) No", 1, "T", "W"])
    ws.append(["X1", "a) Male", "a) WBRI", dt.datetime(2012, 2, 1), dt.datetime(2023, 2, 1), "q) 6: Police", "a) Yes", 2, "T", "W"])
    ws.append(["X2", "c) Not stated/recorded", "Pakistani", "15/07/2018", "03/03/2023", "Housing 4", "No", 1, "T", "W"])
    ws = wb.create_sheet("List 4 - Assessments")
    ws.append(["Child ID", "Gender", "Ethnicity", "Date of birth", "Continuous Assessment Start Date",
               "Continuous Assessment Date of Authorisation"])
    ws.append(["X1", "a) Male", "a) WBRI", "", dt.datetime(2022, 1, 12), dt.datetime(2022, 2, 1)])
    ws.append(["X2", "", "", "", dt.datetime(2021, 1, 1), None])  # before any referral of X2
    ws = wb.create_sheet("List 6 - Children in need")
    ws.append(["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "CIN Start Date", "Primary Need Code",
               "CIN Closure Date", "Reason for Closure", "Case Status"])
    ws.append(["X1", "a) Male", "a) WBRI", "", dt.datetime(2022, 1, 10), "N1 - Abuse or neglect",
               dt.datetime(2022, 6, 30), "RC8 - Case closed after assessment, no further action", "e) Closed episode"])
    ws = wb.create_sheet("List 7 - Child Protection")
    ws.append(["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Child Protection Plan Start Date",
               "Initial Category of Abuse", "Latest Category of Abuse", "Child Protection Plan End Date"])
    ws.append(["X1", "a) Male", "a) WBRI", "", dt.datetime(2022, 2, 15), "a) Neglect", "a) Neglect", dt.datetime(2022, 6, 1)])
    ws = wb.create_sheet("List 8 - Children in care")
    ws.append(["Child Unique ID"])
    wb.save(path)
    return path


def test_annex_a_workbook_maps_lists_1_to_7(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "councils.csv", [tables()["councils"][0]])  # 201
    annex_a_workbook(d / "annex_a_2023.xlsx")
    report = validate_directory(d)
    t = report.tables
    kids = t["children"].set_index("child_id")
    assert sorted(kids.index) == ["X1", "X2", "X9"]
    assert kids.loc["X1", ["la_code", "sex", "ethnicity"]].tolist() == ["201", "M", "WBRI"]
    assert kids.loc["X1", "date_of_birth"] == pd.Timestamp("2012-02-01")
    assert kids.loc["X2", ["sex", "ethnicity"]].tolist() == ["U", "APKN"]
    assert kids.loc["X9", ["sex", "ethnicity"]].tolist() == ["F", "WBRI"]
    ref = t["referrals"]
    assert ref["referral_id"].tolist() == ["X1/2022-01-10/1", "X1/2023-02-01/1", "X2/03/03/2023/1"]
    assert ref["referral_source"].tolist() == ["2A", "6", "4"]
    assert ref["referral_nfa"].tolist() == [False, True, False]
    assert ref["primary_need"].tolist() == ["N1", "N0", "N0"]  # List 6 matched on the first only
    assert ref["closure_reason"].tolist() == ["RC8", None, None]
    assert ref["closure_date"].iat[0] == pd.Timestamp("2022-06-30")
    assert t["assessments"][["referral_id", "child_id"]].values.tolist() == [["X1/2022-01-10/1", "X1"]]
    assert t["plans"][["plan_type", "category_of_abuse", "referral_id"]].values.tolist() == [["CP", "NEG", "X1/2022-01-10/1"]]
    assert t["interventions"][["intervention", "child_id"]].values.tolist() == [["Early help", "X1"]]
    assert t["interventions"]["start_date"].iat[0] == pd.Timestamp("2021-01-05")
    # the one real fault: X2's assessment predates any referral of X2
    [p] = report.problems
    assert (p.file, p.row, p.column, p.rule, p.la_code) == ("annex_a_2023.xlsx", 3, "referral_id", "not present", "201")
    assert "sheet 'List 4 - Assessments'" in p.message
    assert any("List 8" in n for n in report.notes) and any("N0" in n for n in report.notes)


def test_annex_a_council_from_the_file_name_and_missing_column(tmp_path):
    d = write_valid_directory(tmp_path / "d")  # councils 201 and 202: ambiguous without the name
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "List 3"
    ws.append(["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Referral Source"])
    ws.append(["Z1", "a) Male", "a) WBRI", "01/01/2015", "6"])
    wb.save(d / "annex_a.xlsx")
    p = next(p for p in validate_directory(d).problems if p.file == "annex_a.xlsx")
    assert p.rule == "missing value" and p.column == "la_code" and "3-digit code in the file name" in p.message
    (d / "annex_a.xlsx").rename(d / "202_annex_a.xlsx")
    problems = [p for p in validate_directory(d).problems if p.file == "202_annex_a.xlsx"]
    assert [(p.rule, p.column, p.la_code) for p in problems] == [("missing column", "referral_date", "202")]


# --- never silently lose or invent data (issue 10) -----------------------------------------


def _rewrite_zip_member(path: Path, member_suffix: str, edit) -> None:
    """Rewrite one part of an .xlsx (a zip) in place, e.g. to falsify a sheet's <dimension>."""
    import zipfile

    data = {}
    with zipfile.ZipFile(path) as z:
        items = z.infolist()
        for item in items:
            data[item.filename] = z.read(item.filename)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for item in items:
            body = data[item.filename]
            z.writestr(item, edit(body) if item.filename.endswith(member_suffix) else body)


def test_a_wrong_sheet_dimension_loses_no_rows(tmp_path):
    import re

    d = write_valid_directory(tmp_path / "d")
    frame = pd.read_csv(d / "referrals.csv", dtype=str, keep_default_na=False)
    extra = [frame.iloc[0].tolist()[:1] + [f"RFX{i}"] + frame.iloc[0].tolist()[2:] for i in range(60)]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "referrals"
    ws.append(list(frame.columns))
    for row in frame.values.tolist() + extra:
        ws.append(row)
    (d / "referrals.csv").unlink()
    wb.save(d / "referrals.xlsx")
    _rewrite_zip_member(d / "referrals.xlsx", "sheet1.xml",
                        lambda b: re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:B1"/>', b))
    assert b'ref="A1:B1"' in __import__("zipfile").ZipFile(d / "referrals.xlsx").read("xl/worksheets/sheet1.xml")
    assert openpyxl.load_workbook(d / "referrals.xlsx", read_only=True)["referrals"].max_row == 1  # openpyxl trusts it
    t = read_tables(d)
    assert len(t["referrals"]) == len(frame) + 60  # every row, 68 in all
    assert validate_directory(d).ok


def test_hidden_sheets_are_not_read_and_are_named(tmp_path):
    d = write_valid_directory(tmp_path / "d")
    frame = pd.read_csv(d / "children.csv", dtype=str, keep_default_na=False)
    wb = openpyxl.Workbook()
    hidden = wb.active
    hidden.title = "old children"
    hidden.append(list(frame.columns))
    hidden.append(["201", "OLD1", "2010-01-01", "M", "WBRI", "", ""])
    hidden.sheet_state = "hidden"
    ws = wb.create_sheet("Sheet2")
    ws.append(list(frame.columns))
    for row in frame.values.tolist():
        ws.append(row)
    (d / "children.csv").unlink()
    wb.save(d / "children.xlsx")
    report = validate_directory(d)
    assert report.ok, report.format_text()
    assert "OLD1" not in set(report.tables["children"]["child_id"]) and len(report.tables["children"]) == len(frame)
    assert any("children.xlsx" in n and "'old children'" in n and "hidden" in n for n in report.notes)


def test_annex_a_hidden_later_list_3_does_not_replace_the_visible_one(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "councils.csv", [tables()["councils"][0]])
    path = annex_a_workbook(d / "annex_a_2023.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.create_sheet("List 3 (old)")
    ws.append(["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Date of referral", "Referral Source"])
    ws.append(["H1", "a) Male", "a) WBRI", "01/01/2015", "01/01/2020", "6"])
    ws.sheet_state = "hidden"
    wb.save(path)
    report = validate_directory(d)
    assert len(report.tables["referrals"]) == 3 and "H1" not in set(report.tables["children"]["child_id"])
    assert any("'List 3 (old)'" in n and "hidden" in n for n in report.notes)


def test_two_sheets_claiming_the_same_annex_a_list_is_an_error_naming_both(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_csv(d / "councils.csv", [tables()["councils"][0]])
    path = annex_a_workbook(d / "annex_a_2023.xlsx")
    wb = openpyxl.load_workbook(path)
    ws = wb.create_sheet("list 3 - referrals (copy)")
    ws.append(["Child Unique ID", "Date of referral"])
    ws.append(["H1", "01/01/2020"])
    wb.save(path)
    report = validate_directory(d)
    [p] = [p for p in report.problems if p.rule == "duplicate list"]
    assert "'List 3 - Referrals'" in p.message and "'list 3 - referrals (copy)'" in p.message
    assert p.la_code == "201" and "201" in report.failed_councils


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE Message [<!ENTITY xxe "K">]>',
    '<!DOCTYPE Message SYSTEM "file:///etc/passwd">',
    '<!DOCTYPE Message [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>',
])
def test_xml_dtds_and_entities_are_refused_with_a_clear_message(tmp_path, doctype):
    text = CIN_XML.replace('<?xml version="1.0" encoding="utf-8"?>\n', '<?xml version="1.0" encoding="utf-8"?>\n' + doctype + "\n")
    text = text.replace("<LAchildID>", "<LAchildID>&xxe;", 1) if "xxe" in doctype else text
    (tmp_path / "cin.xml").write_text(text)
    [p] = validate_directory(tmp_path).problems
    assert p.rule == "broken XML" and p.file == "cin.xml" and p.row == 2
    assert "DTD" in p.message or "entity" in p.message
    assert "nothing from this file was read" in p.message


def test_an_undeclared_entity_is_broken_xml_not_dropped(tmp_path):
    (tmp_path / "cin.xml").write_text(CIN_XML.replace("<LAchildID>", "<LAchildID>K&xxe;", 1))
    [p] = validate_directory(tmp_path).problems
    assert p.rule == "broken XML" and "undefined entity" in p.message


def test_deeply_nested_xml_is_refused_not_a_recursion_error(tmp_path):
    deep = "<Child>" + "<x>" * 1000 + "</x>" * 1000 + "</Child>"
    (tmp_path / "cin.xml").write_text(CIN_XML.replace("<Children>", "<Children>" + deep, 1))
    [p] = validate_directory(tmp_path).problems
    assert p.rule == "broken XML" and "nested more than 64 deep" in p.message and p.la_code == "202"


def test_xml_is_read_as_a_stream_one_child_at_a_time(tmp_path, monkeypatch):
    """No element tree of the whole return is kept: each <Child> is turned into rows and dropped."""
    from insightlib.ingest import cin_census

    seen = []
    original = cin_census._CinTables.child
    monkeypatch.setattr(cin_census._CinTables, "child", lambda self, node: (seen.append(node), original(self, node)))
    monkeypatch.setattr(cin_census, "CHUNK", 2)  # pack into Arrow every 2 rows
    children = "".join(CIN_XML.split("<Children>")[1].split("</Children>")[0] for _ in range(1))
    many = "".join(children.replace("<LAchildID>", f"<LAchildID>K{i}-") for i in range(5))
    (tmp_path / "cin.xml").write_text(CIN_XML.replace(children, many))
    t = read_tables(tmp_path)
    n = CIN_XML.count("<Child>")
    assert len(seen) == 5 * n and len(t["children"]) == 5 * n and t["children"]["child_id"].is_unique


# --- the 2026 structure's family group decision making (PreProceedingsandFGDM) -------------------

FGDM_BLOCK = """        <PreProceedingsandFGDM>
          <PPStartDate>2022-06-01</PPStartDate>
          <LBPSentDate>2022-06-08</LBPSentDate>
          <FGDMMeetingOffer>{offer}</FGDMMeetingOffer>
          <FGDMMeetingFac>{held}</FGDMMeetingFac>
          <StepDecisionDate>2022-08-30</StepDecisionDate>
        </PreProceedingsandFGDM>
      </CINdetails>"""


def _with_fgdm(offer: str, held: str) -> str:
    """CIN_XML with a pre-proceedings block in KID-1's first referral."""
    first_end = CIN_XML.index("</CINdetails>")
    return CIN_XML[:first_end] + FGDM_BLOCK.format(offer=offer, held=held).lstrip() + CIN_XML[first_end + len("</CINdetails>"):]


def test_cin_2026_sample_fgdm_offer_and_meeting_become_interventions(tmp_path):
    d = xml_dir(tmp_path, "CIN_Census_2026.xml")
    iv = read_tables(d)["interventions"]
    assert iv[["child_id", "referral_id", "intervention"]].values.tolist() == [
        ["DfEX0000001", "DfEX0000001/2022-10-06/1", "Family Group Decision Making offered"],
        ["DfEX0000001", "DfEX0000001/2022-10-06/1", "Family Group Decision Making"],
    ]
    # the offer is dated by the letter before proceedings; the meeting by the pre-proceedings period
    assert iv["start_date"].tolist() == ["2026-09-20", "2026-09-09"]
    assert iv["end_date"].tolist() == ["", "2026-12-01"]  # an offer has no end; a meeting's period ends at the decision
    # the sample's dates lie after its ReferenceDate (2024-03-31): said at the lines of those elements
    report = validate_directory(d)
    future = {(p.row, p.column) for p in report.problems if p.rule == "date in the future"}
    assert {(72, "start_date"), (73, "start_date"), (78, "end_date")} <= future


def test_fgdm_rows_validate_load_and_link_to_their_referral(tmp_path):
    (tmp_path / "return.xml").write_text(_with_fgdm("1", "1"))
    report = validate_directory(tmp_path)
    assert report.ok, report.format_text()
    iv = report.tables["interventions"]
    assert iv[["intervention", "referral_id"]].values.tolist() == [
        ["Family Group Decision Making offered", "KID-1/2022-01-10/1"], ["Family Group Decision Making", "KID-1/2022-01-10/1"]]
    assert iv["start_date"].tolist() == [pd.Timestamp("2022-06-08"), pd.Timestamp("2022-06-01")]
    assert iv["end_date"].iloc[1] == pd.Timestamp("2022-08-30") and pd.isna(iv["end_date"].iloc[0])
    from insightlib.ingest import warehouse

    wh = tmp_path / "wh.duckdb"
    warehouse.load_directory(tmp_path, wh, key="a-test-key-that-is-long-enough-0123456789")
    tables = warehouse.read_council(wh, "202")
    loaded = tables["interventions"]
    assert sorted(loaded["intervention"]) == ["Family Group Decision Making", "Family Group Decision Making offered"]
    first = tables["referrals"].sort_values("referral_date")["referral_id"].iloc[0]
    assert set(loaded["referral_id"]) == {first} and "KID-1" not in set(loaded["child_id"])  # pseudonymised


@pytest.mark.parametrize("offer,held,names", [
    ("0", "0", []), ("1", "0", ["Family Group Decision Making offered"]), ("true", "false", ["Family Group Decision Making offered"]),
    ("0", "1", ["Family Group Decision Making"]), ("", "", []),
])
def test_fgdm_yes_and_no(tmp_path, offer, held, names):
    (tmp_path / "return.xml").write_text(_with_fgdm(offer, held))
    t = read_tables(tmp_path)
    assert list(t.get("interventions", pd.DataFrame({"intervention": []}))["intervention"]) == names


def test_fgdm_unknown_answer_names_the_line(tmp_path):
    text = _with_fgdm("2", "1")
    (tmp_path / "return.xml").write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "<FGDMMeetingOffer>" in l)
    problems = [p for p in validate_directory(tmp_path).problems if p.table == "interventions"]
    assert [(p.row, p.rule) for p in problems] == [(line, "unknown code")]
    assert "FGDMMeetingOffer: '2' is not a census yes/no code" in problems[0].message


def test_a_return_without_fgdm_takes_its_interventions_from_a_file_beside_it(tmp_path):
    (tmp_path / "return.xml").write_text(CIN_XML)
    (tmp_path / "interventions.csv").write_text(
        "la_code,child_id,intervention,start_date,end_date,referral_id\n"
        "202,KID-1,Family Group Conference,2022-02-01,2022-02-01,KID-1/2022-01-10/1\n")
    report = validate_directory(tmp_path)
    assert report.ok, report.format_text()
    assert report.tables["interventions"]["intervention"].tolist() == ["Family Group Conference"]
