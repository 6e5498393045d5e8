"""Excel workbooks read safely: sizes and row counts checked before anything is decompressed or
loaded (zip bombs), the sheet's ``<dimension>`` not trusted, hidden sheets known and not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from insightlib.ingest.files import CHUNK, STR, Limits, Problem, cell_text, normalise_header, with_location


class SheetTooBig(Exception):
    """A workbook or sheet past the limits (its message says which and how to raise them)."""


_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
#: A row element of a worksheet part, with or without a namespace prefix (not <rowBreaks>).
_ROW_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]")


class Workbook:
    """An .xlsx opened safely: sizes checked before anything is decompressed, hidden sheets known.

    Cells are read with calamine (Rust), which reads every cell and so does not trust the sheet's
    ``<dimension>`` element (openpyxl's read-only mode does, and silently loses rows when it is wrong).
    """

    def __init__(self, path: Path, limits: Limits):
        import zipfile

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
            self.book = CalamineWorkbook.from_path(str(path))
            meta = self.book.sheets_metadata
        except Exception as err:  # noqa: BLE001 - calamine's errors are the file's
            raise ValueError(str(err).split("\n")[0][:200]) from None
        meta = [m for m in meta if m.typ == SheetTypeEnum.WorkSheet]
        self.sheets = [m.name for m in meta if m.visible == SheetVisibleEnum.Visible]
        self.hidden = [m.name for m in meta if m.visible != SheetVisibleEnum.Visible]

    def _sheet_part(self, sheet: str) -> str | None:
        """The zip member holding ``sheet``'s cells (from xl/workbook.xml and its relationships), if found."""
        import posixpath
        import zipfile

        from defusedxml import ElementTree

        try:
            with zipfile.ZipFile(self.path) as z:
                book = ElementTree.fromstring(z.read("xl/workbook.xml"))
                rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        except (KeyError, zipfile.BadZipFile, OSError, ValueError, ElementTree.ParseError):
            return None
        rid = next(
            (el.get(f"{{{_REL_NS}}}id") for el in book.iter() if el.tag.endswith("}sheet") and el.get("name") == sheet),
            None,
        )
        target = next((el.get("Target") for el in rels.iter() if el.get("Id") == rid), None) if rid else None
        if not target:
            return None
        return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))

    def _check_row_count(self, sheet: str) -> None:
        """Refuse a sheet with more rows than the limit before calamine loads it: a small zip can hold
        millions of rows well inside the size limit (3 MB unpacking to 900 MB and 10 million rows took
        30 s and 2 GB in calamine before its row count could be checked). The sheet's XML is streamed
        through once, counting ``<row`` elements, and stops as soon as the limit is passed."""
        import zipfile

        part = self._sheet_part(sheet)
        if part is None:
            return
        count, tail = 0, b""
        try:
            with zipfile.ZipFile(self.path) as z, z.open(part) as fh:
                while block := fh.read(1 << 20):
                    data = tail + block
                    tail = data[max(0, len(data) - 64) :]  # a tag cut at the block's end is counted next time
                    count += len(_ROW_TAG.findall(data)) - len(_ROW_TAG.findall(tail))
                    if count > self.limits.rows:
                        raise SheetTooBig(
                            f"{self.name}, sheet '{sheet}': more than {self.limits.rows:,} rows (the limit), so it was "
                            "not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS."
                        )
            count += len(_ROW_TAG.findall(tail))
        except (KeyError, zipfile.BadZipFile, OSError, EOFError):
            return  # calamine reports a damaged part in its own words

    def rows(self, sheet: str) -> tuple[np.ndarray, list[pa.Array]]:
        """(Excel row numbers, columns of text) of a sheet's non-empty rows; refuses past the row limit.

        Columns are packed into Arrow every CHUNK rows, so a million-row sheet stays small in memory.
        """
        self._check_row_count(sheet)
        ws = self.book.get_sheet_by_name(sheet)
        height = max(ws.height, ws.total_height)
        if height > self.limits.rows:
            raise SheetTooBig(
                f"{self.name}, sheet '{sheet}': {height:,} rows, more than the limit of {self.limits.rows:,}, so it "
                "was not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS."
            )
        first = ws.start[0] if ws.start else 0
        width = ws.width
        numbers: list[int] = []
        kept: list[list[str]] = []  # up to CHUNK rows of text, each padded to the sheet's width
        packed: list[list[pa.Array]] = [[] for _ in range(width)]

        def pack():
            columns = list(zip(*kept))[:width] if kept else [()] * width
            for j in range(width):
                packed[j].append(pa.array(columns[j], type=pa.large_string()))
            kept.clear()

        for i, row in enumerate(ws.iter_rows()):
            cells = [cell_text(v) for v in row]
            if not any(cells):
                continue
            if len(cells) < width:
                cells += [""] * (width - len(cells))
            kept.append(cells)
            numbers.append(first + i + 1)
            if len(kept) >= CHUNK:
                pack()
        pack()
        ws = None  # calamine's copy of the sheet goes before the columns are joined
        columns = []
        for j in range(width):  # one column's chunks at a time, so the text is never held twice
            columns.append(pa.chunked_array(packed[j], type=pa.large_string()).combine_chunks())
            packed[j] = []
        return np.asarray(numbers, dtype="int64"), columns


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
