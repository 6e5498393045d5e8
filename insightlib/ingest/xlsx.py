"""Excel workbooks read safely: sizes and row counts checked before anything is decompressed or
loaded (zip bombs), the sheet's ``<dimension>`` not trusted, hidden sheets known and not read.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from insightlib.ingest.files import STR, Limits, Problem, cell_text, normalise_header, with_location


class SheetTooBig(Exception):
    """A workbook or sheet past the limits (its message says which and how to raise them)."""


class SheetUnreadable(Exception):
    """A sheet whose cells cannot be read (broken XML, a bad cell): its message names file and sheet."""


_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#: A row element of a worksheet part, with or without a namespace prefix (not <rowBreaks>).
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]")
#: The start of a worksheet's cells (its prefix, and "/" when the sheet has none).
_SHEET_DATA = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?)sheetData(?:\s[^>]*)?(/?)>")
_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)[\s>/]")
_ROW_NUMBER = re.compile(rb"\sr\s*=\s*[\"'](\d+)[\"']")
_NUMBERED_ROW = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row(?:\s[^>]*?)?\sr\s*=\s*[\"'](\d+)")
#: XML of the sheet read at a time: calamine parses one slice at a time, so memory follows a slice, not the sheet.
SLICE_BYTES = 16 << 20
#: The sheet's cells must start within this many bytes of its part (else the part is read whole).
_HEAD_LIMIT = 64 << 20


class Workbook:
    """An .xlsx opened safely: sizes checked before anything is decompressed, hidden sheets known.

    Cells are read with calamine (Rust), which reads every cell and so does not trust the sheet's
    ``<dimension>`` element (openpyxl's read-only mode does, and silently loses rows when it is wrong).
    A sheet is streamed: its XML is cut at row boundaries into slices of about SLICE_BYTES, and calamine
    reads each slice as a small workbook of its own (same styles and shared strings), so a million-row
    sheet is never held whole (calamine alone held 1.7 GB for one).
    """

    def __init__(self, path: Path, limits: Limits):
        from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

        self.path, self.limits, self.name = path, limits, path.name
        try:
            with zipfile.ZipFile(path) as z:
                size = sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise ValueError(f"it is not an .xlsx workbook (a zip file): {err}") from None
        if size > limits.workbook_mb * 1_000_000:
            raise SheetTooBig(
                f"{self.name}: the workbook unpacks to {size / 1e6:,.0f} MB, more than the limit of "
                f"{limits.workbook_mb:,} MB, so it was not read (a damaged file or a zip bomb?). If it is genuine, "
                "raise the limit with --max-workbook-mb or INSIGHT_MAX_WORKBOOK_MB."
            )
        try:
            with CalamineWorkbook.from_path(str(path)) as book:
                meta = book.sheets_metadata
        except Exception as err:  # noqa: BLE001 - calamine's errors are the file's
            raise ValueError(str(err).split("\n")[0][:200]) from None
        meta = [m for m in meta if m.typ == SheetTypeEnum.WorkSheet]
        self.sheets = [m.name for m in meta if m.visible == SheetVisibleEnum.Visible]
        self.hidden = [m.name for m in meta if m.visible != SheetVisibleEnum.Visible]

    def _sheet_part(self, sheet: str) -> str | None:
        """The zip member holding ``sheet``'s cells (from xl/workbook.xml and its relationships), if found.

        Names are matched as calamine matches them: without regard to case, with \\ read as /."""
        import posixpath

        from defusedxml import ElementTree

        try:
            with zipfile.ZipFile(self.path) as z:
                names = {n.replace("\\", "/").lower(): n for n in z.namelist()}
                book = ElementTree.fromstring(z.read(names.get("xl/workbook.xml", "xl/workbook.xml")))
                rels = ElementTree.fromstring(
                    z.read(names.get("xl/_rels/workbook.xml.rels", "xl/_rels/workbook.xml.rels"))
                )
        except (KeyError, zipfile.BadZipFile, OSError, ValueError, ElementTree.ParseError):
            return None
        rid = next(
            (el.get(f"{{{_REL_NS}}}id") for el in book.iter() if el.tag.endswith("}sheet") and el.get("name") == sheet),
            None,
        )
        target = next((el.get("Target") for el in rels.iter() if el.get("Id") == rid), None) if rid else None
        if not target:
            return None
        target = target.replace("\\", "/")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        return names.get(part.lower())

    def _too_many_rows(self, sheet: str) -> SheetTooBig:
        return SheetTooBig(
            f"{self.name}, sheet '{sheet}': more than {self.limits.rows:,} rows (the limit), so it was "
            "not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS."
        )

    def _count_rows(self, z: zipfile.ZipFile, part: str, sheet: str) -> None:
        """Refuse a sheet with more rows than the limit before calamine reads it: a small zip can hold
        millions of rows well inside the size limit (a 3 MB file unpacking to 10 million rows took 30 s
        and 2 GB in calamine). The sheet's XML is streamed through once, counting row elements, and the
        count stops as soon as the limit is passed."""
        count, tail = 0, b""
        with z.open(part) as fh:
            while block := fh.read(1 << 22):
                data = tail + block
                tail = data[max(0, len(data) - 64) :]  # a tag cut at the block's end is counted next time
                count += len(_ROW_TAG.findall(data)) - len(_ROW_TAG.findall(tail))
                if count > self.limits.rows:
                    raise self._too_many_rows(sheet)

    def rows(self, sheet: str) -> tuple[np.ndarray, list[pa.Array]]:
        """(Excel row numbers, columns of text) of a sheet's non-empty rows; refuses past the row limit.

        The sheet is read a slice at a time (see the class); each slice's rows are packed into Arrow at
        once, and its columns are placed by their Excel column, so the result is the sheet calamine reads
        whole: the same rows, numbers and columns (tests/test_xlsx_stream.py compares them).
        """
        part = self._sheet_part(sheet)
        if part is None:
            raise SheetUnreadable(f"{self.name}, sheet '{sheet}': its cells cannot be found in the workbook.")
        slices: list[_Slice] = []
        with zipfile.ZipFile(self.path) as z:
            parts = _other_parts(z, part)
            try:
                with z.open(part) as fh:
                    for doc, row_tags in _sheet_slices(fh):
                        if sum(s.row_tags for s in slices) + row_tags > self.limits.rows:
                            raise self._too_many_rows(sheet)
                        if not slices and z.getinfo(part).file_size * row_tags / len(doc) > self.limits.rows:
                            self._count_rows(z, part, sheet)  # rows as dense as these would pass the limit
                        slices.append(_read_slice(doc, part, parts, sheet, row_tags, self.name))
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
                raise SheetUnreadable(f"{self.name}, sheet '{sheet}': the workbook is damaged ({err}).") from None
        return _join_slices(slices, self, sheet)


class _Slice:
    """The non-empty rows calamine read from one slice: row numbers, first column, columns of text."""

    __slots__ = ("numbers", "first_col", "columns", "row_tags", "last_row")

    def __init__(self, numbers, first_col, columns, row_tags, last_row):
        self.numbers, self.first_col, self.columns = numbers, first_col, columns
        self.row_tags, self.last_row = row_tags, last_row


def _other_parts(z, sheet_part: str) -> dict[str, bytes]:
    """The parts a slice's workbook needs besides its sheet (workbook, relationships, styles, shared
    strings), read once; other sheets become empty stubs so that calamine never reads them."""
    stub = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData/></worksheet>'
    out = {}
    for info in z.infolist():
        name = info.filename
        low = name.replace("\\", "/").lower()
        if name == sheet_part or not low.endswith((".xml", ".rels")):
            continue
        if re.search(r"sheets/[^/]*\.xml$", low):
            out[name] = stub
        elif "sheets/_rels/" not in low and (
            info.file_size < 4_000_000 or low.rsplit("/", 1)[-1] in ("sharedstrings.xml", "styles.xml", "workbook.xml")
        ):
            out[name] = z.read(name)
    return out


def _sheet_slices(fh):
    """(an XML document of whole rows, the row elements in it) for each slice of a worksheet part.

    Each document is the part's own head (its root element and namespaces, up to <sheetData>), then an
    empty ``<row r="N"/>`` carrying on the row count of the slice before (for rows that give no number),
    then whole rows, then the closing tags. A part whose cells do not start near its beginning (another
    text encoding than UTF-8, say) is one document, the part itself."""
    data = b""
    while (m := _SHEET_DATA.search(data)) is None:
        block = fh.read(4096)
        data += block
        if not block or len(data) > _HEAD_LIMIT:
            yield data + fh.read(), len(_ROW_TAG.findall(data))
            return
    if m.group(2) == b"/":
        return
    head, rest, prefix = data[: m.end()], data[m.end() :], m.group(1)
    root = _ROOT.search(head, head.find(b"<", head.find(b"?>") + 1 if head.startswith(b"<?") else 0))
    tail = b"</" + prefix + b"sheetData></" + (root.group(1) if root else b"worksheet") + b">"
    row_end, row_tag, last, eof, more = b"</" + prefix + b"row", b"<" + prefix + b"row", 0, False, False
    while True:
        if not eof and (more or len(rest) < SLICE_BYTES):
            block = fh.read(SLICE_BYTES)
            eof, more, rest = not block, False, rest + block
        context = b"<" + prefix + b'row r="' + str(last).encode() + b'"/>' if last else b""
        if eof:
            yield head + context + rest, _count_rows(rest, row_tag)
            return
        close = _after_last_row(rest, row_end, SLICE_BYTES) or _after_last_row(rest, row_end, len(rest))
        if not close:
            more = True
            continue
        rows, rest = rest[:close], rest[close:]
        yield head + context + rows + tail, _count_rows(rows, row_tag)
        last = _last_row_number(rows, last, row_tag)


def _after_last_row(data: bytes, row_end: bytes, within: int) -> int:
    """Where the last row of ``data`` ending after its first ``within`` bytes ends (after its ``</row>``), 0 if none."""
    cut = within
    while (cut := data.rfind(row_end, 0, cut)) >= 0:
        close = data.find(b">", cut)
        if close > 0 and not data[cut + len(row_end) : close].strip():
            return close + 1
    return 0


def _last_row_number(rows: bytes, before: int, row_tag: bytes) -> int:
    """The Excel number of the last row element in ``rows`` (calamine's count: a row without r="N" is
    the one after the row before it), given the number of the row before them."""
    last = rows.rfind(row_tag)
    if last >= 0 and (m := _ROW_NUMBER.search(rows, last, rows.find(b">", last))):
        return int(m.group(1))
    numbered = None
    for numbered in _NUMBERED_ROW.finditer(rows):  # the last row that has a number, if any
        pass
    if numbered is None:
        return before + _count_rows(rows, row_tag)
    return int(numbered.group(1)) + _count_rows(rows[numbered.end() :], row_tag)


def _count_rows(rows: bytes, row_tag: bytes) -> int:
    """Row elements in ``rows`` (``<row`` followed by a space, ">" or "/"; not <rowBreaks>)."""
    return sum(rows.count(row_tag + end) for end in (b" ", b">", b"/", b"\t", b"\n", b"\r"))


def _read_slice(doc: bytes, part: str, parts: dict[str, bytes], sheet: str, row_tags: int, file: str) -> _Slice:
    """One slice read by calamine as a workbook of its own, its non-empty rows packed into Arrow."""
    from python_calamine import CalamineWorkbook

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in parts.items():
            z.writestr(name, data)
        z.writestr(part, doc)
    del doc
    buf.seek(0)
    try:
        with CalamineWorkbook.from_filelike(buf) as book:
            ws = book.get_sheet_by_name(sheet)
            if ws.start is None:
                return _Slice(np.zeros(0, "int64"), 0, [], row_tags, 0)
            first_row, first_col = ws.start
            width = ws.width
            numbers: list[int] = []
            kept: list[list[str]] = []
            for i, row in enumerate(ws.to_python()):  # from the first used row (iter_rows starts at row 1)
                cells = [cell_text(v) for v in row]
                if any(cells):
                    kept.append(cells + [""] * (width - len(cells)) if len(cells) < width else cells)
                    numbers.append(first_row + i + 1)
            last_row = ws.end[0] + 1 if ws.end else 0
    except Exception as err:  # noqa: BLE001 - calamine's errors are the file's
        raise SheetUnreadable(f"{file}, sheet '{sheet}': {str(err).splitlines()[0][:200]}") from None
    columns = list(zip(*kept))[:width] if kept else [()] * width
    packed = [pa.array(columns[j], type=pa.large_string()) for j in range(width)]
    return _Slice(np.asarray(numbers, dtype="int64"), first_col, packed, row_tags, last_row)


def _join_slices(slices: list[_Slice], wb: Workbook, sheet: str) -> tuple[np.ndarray, list[pa.Array]]:
    """The slices' rows as one sheet: columns aligned from the first column any slice uses (as calamine
    aligns a whole sheet), rows in order; a row given twice is refused rather than merged or duplicated."""
    used = [s for s in slices if s.columns]
    height = max((s.last_row for s in slices), default=0)
    if height > wb.limits.rows:
        raise SheetTooBig(
            f"{wb.name}, sheet '{sheet}': {height:,} rows, more than the limit of {wb.limits.rows:,}, so it "
            "was not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS."
        )
    if not used:
        return np.zeros(0, "int64"), []
    first = min(s.first_col for s in used)
    end = max(s.first_col + len(s.columns) for s in used)
    numbers = np.concatenate([s.numbers for s in used])
    columns = []
    for j in range(first, end):  # one column at a time, each slice's part of it then dropped
        chunks = []
        for s in used:
            k = j - s.first_col
            if 0 <= k < len(s.columns):
                chunks.append(s.columns[k])
                s.columns[k] = None
            else:
                chunks.append(pa.array([""] * len(s.numbers), type=pa.large_string()))
        columns.append(pa.chunked_array(chunks, type=pa.large_string()).combine_chunks())
    if len(numbers) > 1 and not (np.diff(numbers) > 0).all():
        order = np.argsort(numbers, kind="stable")
        numbers = numbers[order]
        repeated = numbers[1:][np.diff(numbers) == 0]
        if len(repeated):
            raise SheetUnreadable(
                f"{wb.name}, sheet '{sheet}': row {int(repeated[0])} is given more than once in the file "
                "(a damaged or hand-made workbook); open and save it in Excel and try again."
            )
        columns = [c.take(pa.array(order)) for c in columns]
    return numbers, columns


def row_cells(columns: list[pa.Array], k: int) -> list[str]:
    """The cells of the k-th non-empty row of columns read by Workbook.rows."""
    return [c[k].as_py() for c in columns]


def text_series(values: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(values), dtype=STR)


def open_workbook(
    path: Path, limits: Limits | None, table: str | None = None
) -> tuple[Workbook | None, Problem | None]:
    """The workbook, or the problem saying why it cannot be read (too big, not a workbook)."""
    try:
        return Workbook(path, limits or Limits.from_env()), None
    except SheetTooBig as err:
        return None, Problem(path.name, None, None, "too big", str(err), table=table)
    except ValueError as err:
        return None, Problem(
            path.name,
            None,
            None,
            "unreadable file",
            f"{path.name} cannot be read as an Excel workbook: {err}",
            table=table,
        )


def read_excel_table(path: Path, table: str, limits: Limits | None = None) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A canonical table in a workbook: the visible sheet named like the table, else the first visible sheet."""
    name = path.name
    wb, problem = open_workbook(path, limits, table)
    if wb is None:
        return None, [problem]
    if not wb.sheets:
        return None, [Problem(name, None, None, "empty file", f"{name} has no visible sheet.", table=table)]
    sheet = next((s for s in wb.sheets if normalise_header(s) == table), wb.sheets[0])
    notes = []
    if wb.hidden:
        notes.append(
            f"{name}: hidden sheet{'s' if len(wb.hidden) > 1 else ''} "
            f"{', '.join(repr(s) for s in wb.hidden)} not read (only visible sheets are data)."
        )
    try:
        numbers, columns = wb.rows(sheet)
    except SheetTooBig as err:
        return None, [Problem(name, None, None, "too big", str(err), table=table)]
    except SheetUnreadable as err:
        return None, [Problem(name, None, None, "unreadable file", str(err), table=table)]
    if not len(numbers):
        return None, [Problem(name, None, None, "empty file", f"{name} is empty.", table=table)]
    names = [normalise_header(h) for h in row_cells(columns, 0)]
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        return None, [
            Problem(
                name,
                int(numbers[0]),
                dupes[0],
                "unreadable file",
                f"{name}, sheet '{sheet}': the column {dupes[0]!r} appears more than once in the header.",
                table=table,
            )
        ]
    cols = {}
    for n, values in zip(names, columns):
        if n:
            cols[n] = text_series(values.slice(1))
    frame = pd.DataFrame(cols, index=pd.RangeIndex(len(numbers) - 1))
    frame = with_location(frame, name, numbers[1:], sheet=sheet)
    frame.attrs["notes"] = notes
    return frame, []
