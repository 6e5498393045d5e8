"""The streamed workbook reader (ingest/xlsx.py) reads exactly what calamine reads from the whole sheet.

Workbook.rows cuts a sheet's XML into slices at row boundaries and has calamine read each slice as a
small workbook of its own. Here every generated workbook (cell types, empty cells, sparse and leading
empty columns, dates and times in several formats, shared and inline strings, rows and cells without
numbers, namespace prefixes, escapes) is read with slices of a few hundred bytes, so that nearly every row
is a slice boundary, and compared with the sheet read whole by calamine: same row numbers, same text.
"""

from __future__ import annotations

import datetime as dt
import random
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from insightlib.ingest import xlsx
from insightlib.ingest.files import Limits, cell_text

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def whole_sheet(path: Path, sheet: str) -> tuple[list[int], list[list[str]]]:
    """The rows as the reader read them before it streamed: calamine's whole sheet, rows with any text.

    (Then with iter_rows, which starts at row 1 whatever the first used row, while the row numbers
    counted from the first used row: a sheet starting lower had every row number too high.)"""
    ws = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet)
    first = ws.start[0] if ws.start else 0
    numbers, rows = [], []
    for i, row in enumerate(ws.to_python()):
        cells = [cell_text(v) for v in row]
        if any(cells):
            numbers.append(first + i + 1)
            rows.append(cells + [""] * (ws.width - len(cells)))
    return numbers, rows


def streamed(path: Path, sheet: str) -> tuple[list[int], list[list[str]]]:
    numbers, columns = xlsx.Workbook(path, Limits()).rows(sheet)
    rows = [list(r) for r in zip(*[c.to_pylist() for c in columns])] if columns else []
    return numbers.tolist(), rows


@pytest.fixture(params=[97, 400, xlsx.SLICE_BYTES], ids=["slices-97B", "slices-400B", "slices-default"])
def slice_bytes(request, monkeypatch):
    monkeypatch.setattr(xlsx, "SLICE_BYTES", request.param)
    return request.param


def assert_same(path: Path, sheet: str = "Sheet") -> None:
    want = whole_sheet(path, sheet)
    got = streamed(path, sheet)
    assert got[0] == want[0]
    assert got[1] == want[1]


def _random_value(rng: random.Random):
    kind = rng.randrange(12)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(["R1", " padded ", "x" * rng.randrange(1, 40), "Zoë", "a&b <c>", "1A", "0012"])
    if kind == 2:
        return rng.randrange(-10**6, 10**6)
    if kind == 3:
        return rng.choice([0.5, -1.25, 1e-7, 3.0, 123456789.123, 2.5e15, 1 / 3])
    if kind == 4:
        return rng.choice([True, False])
    if kind == 5:
        return dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(10_000))
    if kind == 6:
        return dt.datetime(2019, 5, 1, rng.randrange(24), rng.randrange(60), rng.randrange(60))
    if kind == 7:
        return dt.time(rng.randrange(24), rng.randrange(60))
    if kind == 8:
        return ""
    if kind == 9:
        return f"=A{rng.randrange(1, 5)}"  # a formula (no cached value: empty)
    return f"C{rng.randrange(10**5):05d}"


@pytest.mark.parametrize("seed", range(8))
def test_random_workbooks_read_the_same_as_the_whole_sheet(seed, tmp_path, slice_bytes):
    rng = random.Random(seed)
    wb = openpyxl.Workbook(write_only=seed % 2 == 0)  # write-only: inline strings; else shared strings
    ws = wb.create_sheet("Sheet") if seed % 2 == 0 else wb.active
    if seed % 2:
        ws.title = "Sheet"
    width = rng.randrange(1, 12)
    for r in range(rng.randrange(5, 120)):
        if rng.random() < 0.1:
            ws.append([])  # an empty row
            continue
        ws.append([_random_value(rng) if rng.random() < 0.8 else None for _ in range(width)])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    assert_same(path)


def test_sparse_columns_and_a_late_first_column(tmp_path, slice_bytes):
    """Columns far apart, data starting in column D in some rows and in column B only later."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet"
    ws["D2"], ws["F2"] = "head", "tail"
    for r in range(3, 40):
        ws.cell(r, 4 + r % 3, f"v{r}")
    ws["B45"] = "far left, far down"
    ws["AB50"] = 7
    path = tmp_path / "sparse.xlsx"
    wb.save(path)
    assert_same(path)


def _with_sheet_xml(
    tmp_path: Path, sheet_data: str, *, root: str = "worksheet", prefix: str = "", styles=None, shared=None
) -> Path:
    """An openpyxl workbook whose sheet part is replaced by hand-written XML (what other programs write)."""
    wb = openpyxl.Workbook()
    wb.active.title = "Sheet"
    wb.active["A1"] = "x"
    path = tmp_path / "hand.xlsx"
    wb.save(path)
    with zipfile.ZipFile(path) as z:
        parts = {i.filename: z.read(i.filename) for i in z.infolist()}
    p = f"{prefix}:" if prefix else ""
    ns = NS.replace("xmlns=", f"xmlns:{prefix}=") if prefix else NS
    parts["xl/worksheets/sheet1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<{p}{root} {ns}>'
        f'<{p}dimension ref="A1"/><{p}sheetData>{sheet_data}</{p}sheetData></{p}{root}>'
    ).encode()
    if styles is not None:
        parts["xl/styles.xml"] = styles.encode()
    if shared is not None:
        parts["xl/sharedStrings.xml"] = shared.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return path


def test_rows_and_cells_without_numbers_keep_calamines_count(tmp_path, slice_bytes):
    """Some writers give rows and cells no r="": calamine counts on from the row before, across slices too."""
    rows = "".join(
        f'<row><c t="inlineStr"><is><t>r{i}</t></is></c><c><v>{i}</v></c></row>' if i % 7 else f'<row r="{i + 3}"/>'
        for i in range(1, 60)
    )
    assert_same(_with_sheet_xml(tmp_path, rows))


def test_a_namespace_prefix_and_whitespace_in_tags(tmp_path, slice_bytes):
    rows = "".join(
        f'<x:row r="{i}" spans="1:2">\n  <x:c r="A{i}" t="inlineStr"><x:is><x:t>p{i}</x:t></x:is></x:c>'
        f'<x:c r="B{i}"><x:v>{i}.5</x:v></x:c>\n</x:row >'
        for i in range(1, 40)
    )
    assert_same(_with_sheet_xml(tmp_path, rows, prefix="x"))


def test_text_escapes_rich_text_errors_and_typed_cells(tmp_path, slice_bytes):
    cells = [
        '<c r="A{i}" t="inlineStr"><is><r><t>rich </t></r><r><rPr><b/></rPr><t xml:space="preserve">text </t></r></is></c>',
        '<c r="B{i}" t="inlineStr"><is><t>line_x000D_break &amp; &#233;</t><rPh><t>phonetic</t></rPh></is></c>',
        '<c r="C{i}" t="e"><v>#DIV/0!</v></c>',
        '<c r="D{i}" t="b"><v>1</v></c>',
        '<c r="E{i}" t="str"><f>A1</f><v>formula text</v></c>',
        '<c r="F{i}" t="d"><v>2021-03-04T05:06:07</v></c>',
        '<c r="G{i}" t="d"><v>2021-03-04</v></c>',
        '<c r="H{i}"><v>44240.75</v></c>',
        '<c r="I{i}" s="1"><v>44240.75</v></c>',
        '<c r="J{i}" s="2"><v>1.5</v></c>',
        '<c r="K{i}" s="1"><v>0.25</v></c>',
        '<c r="L{i}"/>',
        '<c r="M{i}" t="inlineStr"><is><t></t></is></c>',
    ]
    styles = (
        f'<styleSheet {NS}><numFmts count="2"><numFmt numFmtId="164" formatCode="dd/mm/yyyy hh:mm"/>'
        '<numFmt numFmtId="165" formatCode="[h]:mm:ss"/></numFmts>'
        '<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="165"/></cellXfs></styleSheet>'
    )
    rows = "".join(f'<row r="{i}">' + "".join(c.format(i=i) for c in cells) + "</row>" for i in range(1, 25))
    assert_same(_with_sheet_xml(tmp_path, rows, styles=styles))


def test_shared_strings_with_many_slices(tmp_path, slice_bytes):
    """Excel writes text as indexes into xl/sharedStrings.xml (openpyxl writes inline strings only)."""
    strings = [f"S{i}" for i in range(40)] + [
        "<r><t>rich </t></r><r><t>run</t></r>",
        "<t>a &amp; b_x000A_c</t><rPh sb=\"0\" eb=\"1\"><t>ph</t></rPh>",
        "<t xml:space=\"preserve\">  spaced  </t>",
        "<t/>",
    ]
    sst = f'<sst {NS} count="{len(strings)}" uniqueCount="{len(strings)}">' + "".join(
        f"<si>{t}</si>" if t.startswith("<") else f"<si><t>{t}</t></si>" for t in strings
    ) + "</sst>"
    rows = "".join(
        f'<row r="{i}"><c r="A{i}" t="s"><v>{i % len(strings)}</v></c><c r="B{i}" t="s"><v>{(i * 7) % len(strings)}</v></c>'
        f'<c r="C{i}" s="1"><v>{44000 + i}</v></c></row>'
        for i in range(1, 120)
    )
    styles = f'<styleSheet {NS}><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14"/></cellXfs></styleSheet>'
    assert_same(_with_sheet_xml(tmp_path, rows, styles=styles, shared=sst))


def test_rows_out_of_order_are_put_in_order_and_a_repeated_row_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx, "SLICE_BYTES", 60)
    rows = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in (5, 6, 2, 3, 9))
    assert_same(_with_sheet_xml(tmp_path, rows))
    rows = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in (1, 2, 3, 2))
    with pytest.raises(xlsx.SheetUnreadable, match="row 2 is given more than once"):
        streamed(_with_sheet_xml(tmp_path, rows), "Sheet")


def test_broken_sheet_xml_is_a_sentence_naming_file_and_sheet(tmp_path, slice_bytes):
    rows = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c></row>' for i in range(1, 20)) + '<row r="20"><c r="A20">'
    path = _with_sheet_xml(tmp_path, rows)
    frame, problems = xlsx.read_excel_table(path, "referrals")
    assert frame is None and problems[0].rule == "unreadable file"
    assert problems[0].message.startswith("hand.xlsx, sheet 'Sheet': ")


def test_row_limit_counts_rows_across_slices(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx, "SLICE_BYTES", 100)
    rows = "".join(f"<row><c><v>{i}</v></c></row>" for i in range(1, 51))
    path = _with_sheet_xml(tmp_path, rows)
    with pytest.raises(xlsx.SheetTooBig, match="more than 49 rows"):
        xlsx.Workbook(path, Limits(rows=49)).rows("Sheet")
    assert len(xlsx.Workbook(path, Limits(rows=50)).rows("Sheet")[0]) == 50
    far = _with_sheet_xml(tmp_path, '<row r="1"><c><v>1</v></c></row><row r="900"><c><v>2</v></c></row>')
    with pytest.raises(xlsx.SheetTooBig, match="900 rows, more than the limit of 50"):
        xlsx.Workbook(far, Limits(rows=50)).rows("Sheet")


def test_memory_follows_a_slice_not_the_sheet(tmp_path, monkeypatch):
    """calamine is handed one slice at a time: no document it reads is much bigger than SLICE_BYTES."""
    monkeypatch.setattr(xlsx, "SLICE_BYTES", 4000)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Sheet")
    for i in range(3000):
        ws.append([f"R{i:06d}", i, dt.date(2020, 1, 1)])
    path = tmp_path / "big.xlsx"
    wb.save(path)
    sizes = []
    real = xlsx._read_slice

    def spy(doc, *args):
        sizes.append(len(doc))
        return real(doc, *args)

    monkeypatch.setattr(xlsx, "_read_slice", spy)
    numbers, columns = xlsx.Workbook(path, Limits()).rows("Sheet")
    assert len(numbers) == 3000 and np.all(np.diff(numbers) == 1)
    assert len(sizes) > 20 and max(sizes) < 4000 + 2000


def test_row_numbers_are_the_rows_excel_shows_when_the_sheet_starts_lower(tmp_path, slice_bytes):
    """A sheet whose first rows are empty: each row keeps the number Excel shows (the reader before
    streaming added the empty rows twice)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet"
    for r in (4, 5, 9):
        ws.cell(r, 2, f"row {r}")
    path = tmp_path / "low.xlsx"
    wb.save(path)
    numbers, rows = streamed(path, "Sheet")
    assert numbers == [4, 5, 9] and rows == [["row 4"], ["row 5"], ["row 9"]]
