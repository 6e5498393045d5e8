"""Hostile and broken files, through the command line (issue 10): every one gets exit 2 and a message
naming the file (and row or line where there is one), never a traceback or an "internal error", and
nothing half-written. Built from what analysts' extracts and attackers actually produce, and from
what the CIN census XML and Annex A formats allow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

from fixtures.tiny import tables, write_csv, write_valid_directory
from insightlib.batch.cli import EXIT_BAD_INPUT, app
from test_readers import CIN_XML

KEY = "a-test-key-that-is-long-enough-0123456789"


def _dir(tmp: Path, change=None) -> Path:
    t = tables()
    if change:
        change(t)
    return write_valid_directory(tmp / "data", t)


def _set(table: str, row: int, column: str, value: str):
    def change(t):
        t[table][row][column] = value
    return change


def _xml(tmp: Path, text: str | bytes, name: str = "cin.xml") -> Path:
    d = tmp / "data"
    d.mkdir()
    (d / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return d


def _replace_file(tmp: Path, name: str, data: bytes) -> Path:
    d = _dir(tmp)
    (d / name).write_bytes(data)
    return d


def cr_only(tmp):
    d = _dir(tmp, _set("referrals", 2, "primary_need", "N99"))
    p = d / "referrals.csv"
    p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
    return d, ["referrals.csv row 3", "'N99' is not a primary need code"]


def markup_in_a_value(tmp):
    return _dir(tmp, _set("referrals", 2, "primary_need", "[/bad]")), ["referrals.csv row 3", "'[/BAD]'"]


def markup_link_in_a_value(tmp):
    return (_dir(tmp, _set("referrals", 1, "referral_source", "[link=file:///etc/passwd]x[/link]")),
            ["referrals.csv row 2", "[LINK=FILE:///ETC/PASSWD]X[/LINK]"])


def markup_in_a_file_name(tmp):
    d = _dir(tmp)
    shutil.copy(d / "referrals.csv", d / "[bold]notes[red].csv")
    (d / "children.csv").write_bytes(b"")
    return d, ["children.csv is empty", "[bold]notes[red].csv is not one of the contract's tables"]


def latin1(tmp):
    d = _dir(tmp)
    (d / "children.csv").write_bytes((d / "children.csv").read_bytes().replace(b"WBRI", b"W\xc9RI", 1))
    return d, ["children.csv is not UTF-8", "0xc9"]


def utf16(tmp):
    d = _dir(tmp)
    (d / "children.csv").write_bytes((d / "children.csv").read_text().encode("utf-16"))
    return d, ["children.csv is not UTF-8"]


def binary_junk(tmp):
    return _replace_file(tmp, "referrals.csv", bytes(range(256)) * 40), ["referrals.csv"]


def empty_csv(tmp):
    return _replace_file(tmp, "referrals.csv", b""), ["referrals.csv is empty"]


def header_only(tmp):
    d = _dir(tmp)
    (d / "children.csv").write_text((d / "children.csv").read_text().splitlines()[0] + "\n")
    return d, ["children.csv has a header but no rows"]


def ragged_row(tmp):
    d = _dir(tmp)
    with (d / "referrals.csv").open("a") as fh:
        fh.write("201,RFX,CH201A,2020-01-01,2A,N1,false,,,extra,fields\n")
    return d, ["referrals.csv cannot be read as CSV"]


def unclosed_quote(tmp):
    d = _dir(tmp)
    with (d / "referrals.csv").open("a") as fh:
        fh.write('201,RFX,"CH201A,2020-01-01,2A,N1,false,,\n')
    return d, ["referrals.csv"]


def repeated_header(tmp):
    d = _dir(tmp)
    text = (d / "children.csv").read_text().replace("sex", "ethnicity", 1)
    (d / "children.csv").write_text(text)
    return d, ["children.csv", "'ethnicity' appears more than once"]


def nul_byte(tmp):
    return _dir(tmp, _set("referrals", 0, "primary_need", "N1\x00")), ["referrals.csv row 1", "primary need"]


def huge_value(tmp):
    return _dir(tmp, _set("referrals", 0, "closure_reason", "RC" + "9" * 100_000)), ["referrals.csv row 1", "closure reason"]


def formula(tmp):
    return (_dir(tmp, _set("referrals", 0, "referral_source", "=HYPERLINK(\"http://x\",\"1A\")")),
            ["referrals.csv row 1", "is not a referral source code"])


def impossible_date(tmp):
    return _dir(tmp, _set("children", 0, "date_of_birth", "2021-02-30")), ["children.csv row 1", "'2021-02-30' is not a date"]


def far_future(tmp):
    return _dir(tmp, _set("referrals", 0, "referral_date", "9999-12-31")), ["referrals.csv row 1"]


def missing_table(tmp):
    d = _dir(tmp)
    (d / "children.csv").unlink()
    return d, ["No children table"]


def parquet_truncated(tmp):
    import pandas as pd

    d = _dir(tmp)
    pd.read_csv(d / "plans.csv", dtype=str).to_parquet(d / "plans.parquet")
    (d / "plans.csv").unlink()
    data = (d / "plans.parquet").read_bytes()
    (d / "plans.parquet").write_bytes(data[: len(data) // 2])
    return d, ["plans.parquet cannot be read as Parquet"]


def csv_named_parquet(tmp):
    d = _dir(tmp)
    (d / "plans.csv").rename(d / "plans.parquet")
    return d, ["plans.parquet cannot be read as Parquet"]


def not_a_workbook(tmp):
    d = _dir(tmp)
    (d / "plans.csv").rename(d / "plans.xlsx")
    return d, ["plans.xlsx cannot be read as an Excel workbook"]


def truncated_workbook(tmp):
    d = _dir(tmp)
    wb = openpyxl.Workbook()
    wb.active.append(["la_code", "child_id"])
    wb.save(d / "plans.xlsx")
    (d / "plans.csv").unlink()
    data = (d / "plans.xlsx").read_bytes()
    (d / "plans.xlsx").write_bytes(data[: len(data) // 2])
    return d, ["plans.xlsx cannot be read as an Excel workbook"]


def zip_bomb(tmp, monkeypatch):
    """A workbook that unpacks far past the limit is refused before anything is unpacked."""
    d = _dir(tmp)
    wb = openpyxl.Workbook()
    wb.active.append(["la_code"])
    wb.save(d / "plans.xlsx")
    (d / "plans.csv").unlink()
    with zipfile.ZipFile(d / "plans.xlsx", "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/padding.bin", b"\0" * 30_000_000)  # 30 MB of zeros in ~30 KB
    monkeypatch.setenv("INSIGHT_MAX_WORKBOOK_MB", "20")
    return d, ["plans.xlsx: the workbook unpacks to 30 MB, more than the limit of 20 MB", "--max-workbook-mb"]


def zip_bomb_within_the_default_limits(tmp, monkeypatch):
    """A real zip bomb: a few MB that unpack inside the default size limit (1,024 MB) to more rows than the
    default row limit. It is refused while the sheet is streamed, before any reader loads it (calamine alone
    took 30 s and 2 GB on such a 3 MB file before it could count the rows)."""
    d = _dir(tmp)
    monkeypatch.delenv("INSIGHT_MAX_WORKBOOK_MB", raising=False)
    monkeypatch.delenv("INSIGHT_MAX_ROWS", raising=False)
    wb = openpyxl.Workbook()
    wb.active.append(["la_code", "child_id"])
    wb.save(d / "plans.xlsx")
    (d / "plans.csv").unlink()
    with zipfile.ZipFile(d / "plans.xlsx") as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    head, tail = parts["xl/worksheets/sheet1.xml"].decode().split("</sheetData>")
    block = ('<row><c t="inlineStr"><is><t>201</t></is></c><c t="inlineStr"><is><t>C</t></is></c></row>' * 10_000).encode()
    with zipfile.ZipFile(d / "plans.xlsx", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for name, data in parts.items():
            if name != "xl/worksheets/sheet1.xml":
                z.writestr(name, data)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(head.encode())
            for _ in range(110):  # 1.1 million rows, about 100 MB unpacked
                fh.write(block)
            fh.write(("</sheetData>" + tail).encode())
    assert (d / "plans.xlsx").stat().st_size < 5_000_000
    return d, ["plans.xlsx, sheet 'Sheet': more than 1,048,576 rows (the limit), so it was not read", "--max-rows"]


def too_many_rows(tmp, monkeypatch):
    d = _dir(tmp)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["la_code", "child_id", "worker_id", "start_date"])
    for i in range(30):
        ws.append(["201", "CH201A", f"W{i}", "2020-01-01"])
    wb.save(d / "allocations.xlsx")
    (d / "allocations.csv").unlink()
    monkeypatch.setenv("INSIGHT_MAX_ROWS", "20")
    return d, ["allocations.xlsx, sheet 'Sheet': more than 20 rows (the limit)", "--max-rows"]


def _annex(d: Path, sheets: dict[str, list[list]], name: str = "201_annex_a.xlsx") -> None:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r in rows:
            ws.append(r)
    wb.save(d / name)


LIST3 = [["Child Unique ID", "Gender", "Ethnicity", "Date of Birth", "Date of referral", "Referral Source"],
         ["A1", "a) Male", "a) WBRI", "01/01/2015", "01/01/2020", "6"]]


def annex_duplicate_list(tmp):
    d = tmp / "data"
    write_csv(d / "councils.csv", [tables()["councils"][0]])
    _annex(d, {"List 3 - Referrals": LIST3, "List 3": LIST3})
    return d, ["201_annex_a.xlsx: the sheets 'List 3 - Referrals' and 'List 3' both claim to be Annex A list 3"]


def annex_no_child_id(tmp):
    d = tmp / "data"
    write_csv(d / "councils.csv", [tables()["councils"][0]])
    _annex(d, {"List 3": [["Name", "Date of referral"], ["x", "01/01/2020"]]})
    return d, ["201_annex_a.xlsx, sheet 'List 3': no child id column"]


def annex_markup_header(tmp):
    d = tmp / "data"
    write_csv(d / "councils.csv", [tables()["councils"][0]])
    _annex(d, {"List 3": [["Child ID", "[bold]Gender[/bold]", "[/bad]"], ["x", "M", "y"]]})
    return d, ["201_annex_a.xlsx, sheet 'List 3': no column for referral_date", "[bold]Gender[/bold], [/bad]"]


def annex_which_council(tmp):
    d = _dir(tmp)
    _annex(d, {"List 3": LIST3}, name="annex_a.xlsx")
    return d, ["annex_a.xlsx: cannot tell which council"]


def xml_entity(tmp):
    text = CIN_XML.replace("<Message>", '<!DOCTYPE Message [<!ENTITY xxe "K">]>\n<Message>', 1)
    return _xml(tmp, text.replace("<LAchildID>", "<LAchildID>&xxe;", 1)), ["cin.xml line 2", "DTD"]


def xml_external_entity(tmp):
    text = CIN_XML.replace("<Message>", '<!DOCTYPE Message [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<Message>', 1)
    return _xml(tmp, text.replace("<LAchildID>", "<LAchildID>&xxe;", 1)), ["cin.xml line 2", "refuses"]


def xml_billion_laughs(tmp):
    lol = "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10 if i else "lol"}">' for i in range(10))
    text = CIN_XML.replace("<Message>", f"<!DOCTYPE Message [{lol}]>\n<Message>", 1)
    return _xml(tmp, text.replace("<LAchildID>", "<LAchildID>&l9;", 1)), ["cin.xml line 2", "refuses"]


def xml_undefined_entity(tmp):
    return _xml(tmp, CIN_XML.replace("<LAchildID>", "<LAchildID>K&xxe;", 1)), ["cin.xml line 10", "undefined entity"]


def xml_deep(tmp):
    deep = "<Child>" + "<x>" * 1000 + "</x>" * 1000 + "</Child>"
    return _xml(tmp, CIN_XML.replace("<Children>", "<Children>" + deep, 1)), ["cin.xml line 7", "nested more than 64 deep"]


def xml_truncated(tmp):
    return _xml(tmp, CIN_XML[: len(CIN_XML) // 2]), ["cin.xml line", "the XML is broken"]


def xml_binary(tmp):
    return _xml(tmp, bytes(range(256)) * 10), ["cin.xml line 1", "the XML is broken"]


def xml_empty(tmp):
    return _xml(tmp, b""), ["cin.xml is empty"]


def xml_wrong_root(tmp):
    return _xml(tmp, "<html><body>hello</body></html>"), ["cin.xml is not a CIN census return"]


def xml_no_lea(tmp):
    return _xml(tmp, CIN_XML.replace("<LEA>202</LEA>", "")), ["cin.xml: the header has no <LEA>"]


def xml_markup_value(tmp):
    return _xml(tmp, CIN_XML.replace("<Ethnicity>APKN</Ethnicity>", "<Ethnicity>[/bad]</Ethnicity>")), [
        "cin.xml line 16, ethnicity: '[/BAD]' is not an ethnicity code"]


def xml_stray_text(tmp):
    return _xml(tmp, CIN_XML.replace("</UPN>", "</UPN>stray", 1)), ["cin.xml line 9: stray text 'stray'"]


def xml_wrong_sex(tmp):
    return _xml(tmp, CIN_XML.replace("<GenderCurrent>2</GenderCurrent>", "<GenderCurrent>F</GenderCurrent>")), [
        "cin.xml line 13, sex: 'F' is not a census sex code"]


def xml_two_returns_in_one_file(tmp):
    return _xml(tmp, CIN_XML + CIN_XML.split("\n", 1)[1]), ["cin.xml line", "the XML is broken"]


def xml_latin1_declared_utf8(tmp):
    return _xml(tmp, CIN_XML.replace("KID-1", "KID-\u00e9").encode("latin-1")), ["cin.xml line 10", "the XML is broken"]


CASES = {f.__name__: f for f in [
    cr_only, markup_in_a_value, markup_link_in_a_value, markup_in_a_file_name, latin1, utf16, binary_junk,
    empty_csv, header_only, ragged_row, unclosed_quote, repeated_header, nul_byte, huge_value, formula,
    impossible_date, far_future, missing_table, parquet_truncated, csv_named_parquet, not_a_workbook,
    truncated_workbook, zip_bomb, zip_bomb_within_the_default_limits, too_many_rows, annex_duplicate_list, annex_no_child_id, annex_markup_header,
    annex_which_council, xml_entity, xml_external_entity, xml_billion_laughs, xml_undefined_entity, xml_deep,
    xml_truncated, xml_binary, xml_empty, xml_wrong_root, xml_no_lea, xml_markup_value, xml_stray_text,
    xml_wrong_sex, xml_two_returns_in_one_file, xml_latin1_declared_utf8,
]}


def _check(result, expected: list[str]) -> None:
    text = " ".join(result.output.split())  # the console may wrap long messages
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for fragment in expected:
        assert " ".join(fragment.split()) in text, f"{fragment!r} not in:\n{result.output}"


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_validate_and_load(case, tmp_path, monkeypatch):
    """Both commands: the same message, exit 2, and no warehouse (nor a temporary file) left behind."""
    make = CASES[case]
    d, expected = make(tmp_path, monkeypatch) if "monkeypatch" in make.__code__.co_varnames else make(tmp_path)
    _check(CliRunner().invoke(app, ["validate", str(d)]), expected)
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    target = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["load", str(d), "--warehouse", str(target)])
    if result.exit_code == 1:  # another council loaded; the broken one is named
        assert "not loaded" in result.output and "Traceback" not in result.output
    else:
        _check(result, expected[:1])
        assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".w.duckdb")], "a temporary file was left"


def test_the_battery_has_at_least_30_cases():
    assert len(CASES) >= 30


# --- warehouses and evaluation files -------------------------------------------------------------


@pytest.fixture()
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    target = tmp_path / "w.duckdb"
    result = CliRunner().invoke(app, ["load", str(_dir(tmp_path)), "--warehouse", str(target)])
    assert result.exit_code == 0, result.output
    return target


@pytest.mark.parametrize("cut", ["header", "middle", "garbage"])
def test_a_truncated_or_corrupt_warehouse_is_one_plain_sentence(cut, warehouse, tmp_path):
    from insightlib.ingest import warehouse as wh

    bad = tmp_path / "bad.duckdb"
    data = warehouse.read_bytes()
    bad.write_bytes({"header": data[:100], "middle": data[: len(data) - 300_000], "garbage": b"not a database"}[cut])
    problem = wh.warehouse_problem(bad)
    assert problem and str(bad) in problem and ("not an insight warehouse" in problem or "damaged" in problem)
    with pytest.raises(wh.InputError, match="warehouse|damaged"):
        wh.read_council(bad, "201")
    result = CliRunner().invoke(app, ["run", "evaluations/demo.yml", "--data", str(bad), "--out", str(tmp_path / "r")])
    _check(result, [str(bad)])


def test_markup_in_an_evaluation_title_is_printed_as_text(tmp_path):
    ev = tmp_path / "ev.yml"
    ev.write_text("name: x\ntitle: \"[/bad] and [bold]this[/bold]\"\nnotebook: rereferral\ndata: nowhere\n"
                  "councils: all\nparameters:\n  nonsense_parameter: [/bad]\n")
    result = CliRunner().invoke(app, ["run", str(ev), "--out", str(tmp_path / "r")])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert "MarkupError" not in result.output


def test_disk_full_during_load_is_a_plain_sentence_and_writes_nothing(tmp_path, monkeypatch):
    """ENOSPC from DuckDB while the warehouse is written: exit 2, the old warehouse untouched, no temp file."""
    from insightlib.ingest import warehouse as wh

    monkeypatch.setenv("INSIGHT_KEY", KEY)
    d = _dir(tmp_path)
    target = tmp_path / "w.duckdb"
    wh.load_directory(d, target, key=KEY)  # the user's previous warehouse (load replaces nothing else)
    previous = target.read_bytes()
    real = duckdb.connect

    class Full:
        def __init__(self, con):
            self.con = con

        def __getattr__(self, name):
            return getattr(self.con, name)

        def execute(self, sql, *args):
            if sql.startswith("CHECKPOINT") or sql.startswith("INSERT"):
                raise duckdb.IOException('Could not write file "x": No space left on device')
            return self.con.execute(sql, *args)

    monkeypatch.setattr(wh.duckdb, "connect", lambda path, *a, **k: Full(real(path, *a, **k)))
    result = CliRunner().invoke(app, ["load", str(d), "--warehouse", str(target)])
    _check(result, ["The disk is full", str(target), "is unchanged"])
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "w.duckdb"]


def test_disk_full_on_a_real_small_disk(tmp_path):
    """The same on a 1 MB tmpfs (where the machine lets us mount one): the real ENOSPC path."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        d = _dir(tmp_path)
        env = {**os.environ, "INSIGHT_KEY": KEY}
        insight = Path(os.sys.executable).with_name("insight")
        proc = subprocess.run([str(insight), "load", str(d), "--warehouse", str(disk / "w.duckdb")],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == EXIT_BAD_INPUT, proc.stdout + proc.stderr
        assert "The disk is full" in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_cr_only_csv_keeps_row_numbers(tmp_path):
    d, _ = cr_only(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(d)])
    assert re.search(r"referrals\.csv row 3, primary_need: 'N99'", " ".join(result.output.split()))


def test_hidden_sheets_are_named_by_validate_and_load_even_when_all_is_well(tmp_path, monkeypatch):
    import pandas as pd

    d = _dir(tmp_path)
    frame = pd.read_csv(d / "plans.csv", dtype=str, keep_default_na=False)
    wb = openpyxl.Workbook()
    wb.active.append(list(frame.columns))
    for row in frame.values.tolist():
        wb.active.append(row)
    secret = wb.create_sheet("old (bold) secret")
    secret.append(["anything"])
    secret.sheet_state = "hidden"
    wb.save(d / "plans.xlsx")
    (d / "plans.csv").unlink()
    result = CliRunner().invoke(app, ["validate", str(d)])
    assert result.exit_code == 0 and "hidden sheet 'old (bold) secret' not read" in " ".join(result.output.split())
    monkeypatch.setenv("INSIGHT_KEY", KEY)
    result = CliRunner().invoke(app, ["load", str(d), "-w", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 0 and "hidden sheet 'old (bold) secret' not read" in " ".join(result.output.split())
