"""Read one data directory into raw string tables, whatever shape the council's extract has.

A directory may hold canonical tables (``<table>.csv``, ``.parquet`` or ``.xlsx``), CIN census
XML returns (any ``*.xml``) and Ofsted Annex A workbooks (any other ``*.xlsx`` with sheets
named like "List 3 - Referrals"), mixed freely. Every value is read as a stripped string so
that validation, not the reader, decides what is wrong; each raw row remembers where it came
from (``_file``, ``_sheet``, ``_row``) so a problem can name the file and row the user sees.
Readers never raise on bad input: they return :class:`Problem` objects instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import xml.parsers.expat
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from insightlib import contract, reference

#: Internal columns carried by raw frames (dropped before anything leaves validation).
META = ("_file", "_sheet", "_row")
#: Per-cell location columns (XML: the line of each element) are named ``_row__<column>``.
CELL_ROW_PREFIX = "_row__"

CANONICAL_SUFFIXES = (".csv", ".parquet", ".xlsx")
#: Rows gathered before they are packed into Arrow arrays (keeps big sheets and XML returns small in memory).
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, in words the person who made the file can act on.

    ``row`` is what the user looks for in the file: for CSV and Parquet the data row counting
    from 1 below the header; for Excel the row number Excel shows; for XML the line number.
    ``la_code`` is the council the problem belongs to, when that can be told.
    """

    file: str | None
    row: int | None
    column: str | None
    rule: str
    message: str
    la_code: str | None = None
    table: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return self.message


@dataclass
class RawData:
    """What the readers found: table name -> list of raw parts (one per file or sheet)."""

    parts: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: Files that could not be read at all: name -> the table they held (None: an XML return, any table).
    unread: dict[str, str | None] = field(default_factory=dict)

    def add(self, table: str, frame: pd.DataFrame) -> None:
        self.parts.setdefault(table, []).append(frame)


def location(file: str | None, row: int | None = None, sheet: str | None = None, column: str | None = None) -> str:
    """"referrals.csv row 17, closure_date" / "cin.xml line 40" / "a.xlsx, sheet 'List 3', row 5"."""
    if file is None:
        text = "the data directory"
    else:
        text = file
    if sheet:
        text += f", sheet '{sheet}'"
    if row is not None:
        unit = "line" if file and file.lower().endswith(".xml") else "row"
        text += f"{',' if sheet else ''} {unit} {row}"
    if column:
        text += f", {column}"
    return text


# --- dates ----------------------------------------------------------------------------

_TIME_TAIL = r"^[T ]\d{2}:\d{2}(:\d{2}(\.\d*)?)?(Z|[+-]\d{2}:?\d{2})?$"
#: pandas keeps dates as datetime64[ns]: years outside this range cannot be held.
_YEARS = (1678, 2261)

#: Raw text columns are pyarrow-backed strings: comparisons, isin and joins run in Arrow, not Python.
STR = pd.StringDtype("pyarrow")


def _iso_dates(head: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """'YYYY-MM-DD' -> datetime64[ns] and a mask of real dates, in numpy (2021-02-30 is not one)."""
    shape = _mask_np(pc.match_substring_regex(head, r"^\d{4}-\d{2}-\d{2}$"))
    n = len(head)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if not shape.any():
        return out, shape
    text = pc.if_else(pa.array(shape), head, "2000-01-01")
    y = pc.cast(pc.utf8_slice_codeunits(text, 0, 4), pa.int64()).to_numpy()
    m = pc.cast(pc.utf8_slice_codeunits(text, 5, 7), pa.int64()).to_numpy()
    d = pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64()).to_numpy()
    ok = shape & (y >= _YEARS[0]) & (y <= _YEARS[1]) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31)
    month = (np.where(ok, y, 2000) - 1970) * 12 + np.where(ok, m, 1) - 1
    month_start = month.astype("datetime64[M]")
    day = month_start.astype("datetime64[D]") + (np.where(ok, d, 1) - 1)
    ok &= day.astype("datetime64[M]") == month_start  # day within its month
    out[ok] = day[ok].astype("datetime64[ns]")
    return out, ok


def _mask_np(x) -> np.ndarray:
    return np.asarray(pc.fill_null(x, False).to_numpy(zero_copy_only=False), dtype=bool)


def parse_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ISO (YYYY-MM-DD, optionally with a time) or UK (DD/MM/YYYY) dates, vectorised.

    Returns the dates (datetime64[ns], NaT where empty or bad) and a boolean mask of the
    values that are present but not a real date (2021-02-30 is not one).
    """
    arr = pa.array(values.astype(STR).fillna(""), type=pa.large_string())
    present = _mask_np(pc.not_equal(arr, ""))
    head = pc.utf8_slice_codeunits(arr, 0, 10)
    out, ok = _iso_dates(head)
    long = _mask_np(pc.greater(pc.utf8_length(arr), 10))
    if long.any():
        tail_ok = _mask_np(pc.match_substring_regex(pc.utf8_slice_codeunits(arr, 10, 1 << 30), _TIME_TAIL))
        ok &= ~long | tail_ok
        out[~ok] = np.datetime64("NaT")
    failed = present & ~ok
    if failed.any():
        text = values.astype(object).to_numpy()[failed]
        uk = pd.to_datetime(pd.Series(text, dtype=object), format="%d/%m/%Y", errors="coerce")
        uk = uk.where((uk.dt.year >= _YEARS[0]) & (uk.dt.year <= _YEARS[1]))
        idx = np.flatnonzero(failed)
        out[idx] = uk.to_numpy(dtype="datetime64[ns]")
        failed[idx[uk.notna().to_numpy()]] = False
    return pd.Series(out, index=values.index), pd.Series(failed, index=values.index)


# --- canonical files --------------------------------------------------------------------


def _normalise_header(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower().lstrip("\ufeff"))


def _finish(frame: pd.DataFrame, file: str, rows: np.ndarray, sheet: str = "") -> pd.DataFrame:
    frame = frame.copy()
    frame["_file"] = file
    frame["_sheet"] = sheet
    frame["_row"] = np.asarray(rows, dtype="int64")
    frame.attrs["file"] = file
    return frame


def _utf8_problem(name: str, data: bytes, err: UnicodeDecodeError, table: str | None) -> Problem:
    pos = err.start
    line = data.count(b"\n", 0, pos) + 1
    bad = data[pos:pos + 1].hex()
    return Problem(
        name, None, None, "wrong encoding",
        f"{name} is not UTF-8 text: the byte 0x{bad} at byte position {pos} (line {line}) cannot be read. "
        "Save the file as UTF-8 (in Excel: Save As > 'CSV UTF-8').",
        table=table,
    )


def read_csv_file(path: Path, table: str | None = None) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A canonical CSV as strings; UTF-8 or UTF-8 with BOM, anything else is a problem."""
    name = path.name
    data = path.read_bytes()
    if not data.strip():
        return None, [Problem(name, None, None, "empty file", f"{name} is empty.", table=table)]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, [_utf8_problem(name, data, err, table)]
    # The header ends at the first line break of any kind (CR-only files come from old Mac Excel).
    first = re.split(rb"\r\n|\r|\n", data, maxsplit=1)[0].decode("utf-8")
    try:
        header = next(csv.reader([first]), [])
    except csv.Error as err:
        return None, [Problem(name, None, None, "unreadable file", f"{name}: the header cannot be read as CSV ({err}).",
                              table=table)]
    names = [_normalise_header(h) for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        return None, [Problem(name, None, dupes[0], "unreadable file",
                              f"{name}: the column {dupes[0]!r} appears more than once in the header.", table=table)]
    try:
        tbl = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as err:  # ragged rows, unclosed quotes
        detail = str(err).split("\n")[0]
        detail = re.sub(r"\s*Row #?\d+:.*$", "", detail) if len(detail) > 200 else detail
        return None, [Problem(name, None, None, "unreadable file",
                              f"{name} cannot be read as CSV: {detail[:200]}", table=table)]
    cols = {}
    for n in names:
        arr = pc.utf8_trim_whitespace(tbl.column(n)).cast(pa.large_string())
        cols[n] = pd.Series(pd.arrays.ArrowStringArray(arr), dtype=STR)
    frame = pd.DataFrame(cols)
    return _finish(frame, name, np.arange(1, len(frame) + 1)), []


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def read_parquet_file(path: Path, table: str | None = None) -> tuple[pd.DataFrame | None, list[Problem]]:
    import pyarrow.parquet as pq

    name = path.name
    if path.stat().st_size == 0:
        return None, [Problem(name, None, None, "empty file", f"{name} is empty.", table=table)]
    try:
        tbl = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - any parquet failure is the user's file
        return None, [Problem(name, None, None, "unreadable file", f"{name} cannot be read as Parquet: {err}", table=table)]
    frame = tbl.to_pandas()
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            text = s.dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_bool_dtype(s):
            text = s.map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(s):
            text = s.map(_cell_text)
        elif pd.api.types.is_integer_dtype(s):
            text = s.astype("Int64").astype(str)
        else:
            text = s.map(_cell_text)
        out[_normalise_header(col)] = text.where(s.notna(), "").astype(object)
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    return _finish(result, name, np.arange(1, len(result) + 1)), []


@dataclass(frozen=True)
class Limits:
    """How big a spreadsheet may be before it is refused rather than read (zip bombs, wrong files).

    ``workbook_mb``: the workbook's parts decompressed, in MB; ``rows``: rows in one sheet (Excel's own
    maximum by default). Set with ``INSIGHT_MAX_WORKBOOK_MB`` / ``INSIGHT_MAX_ROWS`` or the command line.
    """

    workbook_mb: int = 1024
    rows: int = 1_048_576

    @classmethod
    def from_env(cls) -> Limits:
        import os

        def number(var: str, default: int) -> int:
            text = os.environ.get(var, "").strip()
            return int(text) if text.isdigit() and int(text) > 0 else default

        return cls(workbook_mb=number("INSIGHT_MAX_WORKBOOK_MB", cls.workbook_mb),
                   rows=number("INSIGHT_MAX_ROWS", cls.rows))


class _SheetTooBig(Exception):
    pass


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
            raise _SheetTooBig(
                f"{self.name}: the workbook unpacks to {size / 1e6:,.0f} MB, more than the limit of "
                f"{limits.workbook_mb:,} MB, so it was not read (a damaged file or a zip bomb?). If it is genuine, "
                "raise the limit with --max-workbook-mb or INSIGHT_MAX_WORKBOOK_MB.")
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
        rid = next((el.get(f"{{{_REL_NS}}}id") for el in book.iter() if el.tag.endswith("}sheet")
                    and el.get("name") == sheet), None)
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
                    tail = data[max(0, len(data) - 64):]  # a tag cut at the block's end is counted next time
                    count += len(_ROW_TAG.findall(data)) - len(_ROW_TAG.findall(tail))
                    if count > self.limits.rows:
                        raise _SheetTooBig(
                            f"{self.name}, sheet '{sheet}': more than {self.limits.rows:,} rows (the limit), so it was "
                            "not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS.")
            count += len(_ROW_TAG.findall(tail))
        except (KeyError, zipfile.BadZipFile, OSError, EOFError):
            return  # calamine reports a damaged part in its own words

    def rows(self, sheet: str) -> tuple[np.ndarray, list[pa.Array]]:
        """(Excel row numbers, columns of text) of a sheet's non-empty rows; refuses past the row limit.

        Columns are packed into Arrow every _CHUNK rows, so a million-row sheet stays small in memory.
        """
        self._check_row_count(sheet)
        ws = self.book.get_sheet_by_name(sheet)
        height = max(ws.height, ws.total_height)
        if height > self.limits.rows:
            raise _SheetTooBig(
                f"{self.name}, sheet '{sheet}': {height:,} rows, more than the limit of {self.limits.rows:,}, so it "
                "was not read. If it is genuine, raise the limit with --max-rows or INSIGHT_MAX_ROWS.")
        first = ws.start[0] if ws.start else 0
        width = ws.width
        numbers: list[int] = []
        open_: list[list[str]] = [[] for _ in range(width)]
        packed: list[list[pa.Array]] = [[] for _ in range(width)]

        def pack():
            for j in range(width):
                packed[j].append(pa.array(open_[j], type=pa.large_string()))
                open_[j] = []

        for i, row in enumerate(ws.iter_rows()):
            cells = [_cell_text(v) for v in row]
            if not any(cells):
                continue
            for j in range(width):
                open_[j].append(cells[j] if j < len(cells) else "")
            numbers.append(first + i + 1)
            if len(open_[0]) >= _CHUNK:
                pack()
        pack()
        columns = [pa.chunked_array(p, type=pa.large_string()).combine_chunks() for p in packed]
        return np.asarray(numbers, dtype="int64"), columns


def _row_cells(columns: list[pa.Array], k: int) -> list[str]:
    return [c[k].as_py() for c in columns]


def _text_series(values: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(values), dtype=STR)


def _open(path: Path, limits: Limits | None, table: str | None = None) -> tuple[Workbook | None, Problem | None]:
    try:
        return Workbook(path, limits or Limits.from_env()), None
    except _SheetTooBig as err:
        return None, Problem(path.name, None, None, "too big", str(err), table=table)
    except ValueError as err:
        return None, Problem(path.name, None, None, "unreadable file",
                             f"{path.name} cannot be read as an Excel workbook: {err}", table=table)


def read_excel_table(path: Path, table: str, limits: Limits | None = None) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A canonical table in a workbook: the visible sheet named like the table, else the first visible sheet."""
    name = path.name
    wb, problem = _open(path, limits, table)
    if wb is None:
        return None, [problem]
    if not wb.sheets:
        return None, [Problem(name, None, None, "empty file", f"{name} has no visible sheet.", table=table)]
    sheet = next((s for s in wb.sheets if _normalise_header(s) == table), wb.sheets[0])
    notes = []
    if wb.hidden:
        notes.append(f"{name}: hidden sheet{'s' if len(wb.hidden) > 1 else ''} "
                     f"{', '.join(repr(s) for s in wb.hidden)} not read (only visible sheets are data).")
    try:
        numbers, columns = wb.rows(sheet)
    except _SheetTooBig as err:
        return None, [Problem(name, None, None, "too big", str(err), table=table)]
    if not len(numbers):
        return None, [Problem(name, None, None, "empty file", f"{name} is empty.", table=table)]
    names = [_normalise_header(h) for h in _row_cells(columns, 0)]
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        return None, [Problem(name, int(numbers[0]), dupes[0], "unreadable file",
                              f"{name}, sheet '{sheet}': the column {dupes[0]!r} appears more than once in the header.",
                              table=table)]
    cols = {}
    for n, values in zip(names, columns):
        if n:
            cols[n] = _text_series(values.slice(1))
    frame = pd.DataFrame(cols, index=pd.RangeIndex(len(numbers) - 1))
    frame = _finish(frame, name, numbers[1:], sheet=sheet)
    frame.attrs["notes"] = notes
    return frame, []


# --- CIN census XML ---------------------------------------------------------------------


#: A CIN census return nests 7 elements deep; anything far deeper is refused, not recursed into.
XML_MAX_DEPTH = 64


class XMLRefused(Exception):
    """An XML construct the reader refuses (a DTD, an entity, nesting far too deep): line and sentence."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line


class _Node:
    __slots__ = ("tag", "line", "text", "children", "nested")

    def __init__(self, tag: str, line: int):
        self.tag = tag
        self.line = line
        self.text: list[str] = []
        self.children: list[_Node] = []
        self.nested = False  # had child elements (kept or not)

    def find(self, tag: str) -> _Node | None:
        for c in self.children:
            if c.tag == tag:
                return c
        return None

    def findall(self, tag: str) -> list[_Node]:
        return [c for c in self.children if c.tag == tag]

    def value(self) -> str:
        return "".join(self.text).strip()


class _Columns:
    """One table's rows as column lists, packed into Arrow every _CHUNK rows (strings) / numpy (lines)."""

    def __init__(self, text: tuple[str, ...], lines: tuple[str, ...]):
        self.text, self.lines = text, lines
        self.open: dict[str, list] = {c: [] for c in text + lines}
        self.packed: dict[str, list] = {c: [] for c in text + lines}
        self.n = 0

    def add(self, *values) -> None:
        for c, v in zip(self.text + self.lines, values):
            self.open[c].append(v)
        self.n += 1
        if len(self.open[self.text[0]]) >= _CHUNK:
            self._pack()

    def _pack(self) -> None:
        for c in self.text:
            self.packed[c].append(pa.array(self.open[c], type=pa.large_string()))
            self.open[c] = []
        for c in self.lines:
            self.packed[c].append(np.asarray(self.open[c], dtype="int64"))
            self.open[c] = []

    def frame(self, la_code: str, name: str) -> pd.DataFrame:
        self._pack()
        cols: dict[str, object] = {"la_code": pd.Series(np.full(self.n, la_code, dtype=object), dtype=STR)}
        for c in self.text:
            arr = pa.chunked_array(self.packed[c], type=pa.large_string()).combine_chunks()
            cols[c] = pd.Series(pd.arrays.ArrowStringArray(arr), dtype=STR)
            self.packed[c] = []
        for c in self.lines:
            cols[c] = np.concatenate(self.packed[c]) if self.packed[c] else np.array([], dtype="int64")
            self.packed[c] = []
        frame = pd.DataFrame(cols)
        frame["_file"] = name
        frame["_sheet"] = ""
        return frame


def _xml_sex(raw: str) -> str | None:
    return {"1": "M", "2": "F", "0": "U", "9": "U"}.get(raw)


CIN_SEX_CODES = "1 (male), 2 (female), 0 (not known) or 9 (not specified)"

#: The interventions the CIN census (2026 structure, PreProceedingsandFGDM) records, as named in
#: the interventions table: a family group decision making meeting held during pre-proceedings
#: (FGDMMeetingFac, N00829) and one offered in the letter before proceedings (FGDMMeetingOffer, N00828).
FGDM_MEETING = "Family Group Decision Making"
FGDM_OFFER = "Family Group Decision Making offered"
_CIN_YES, _CIN_NO = ("1", "true", "y", "yes"), ("0", "false", "n", "no")


def _stray_text(top: _Node, name: str, problems: list[Problem]) -> None:
    """Text mixed between child elements is not allowed by the census schema (walked without recursion)."""
    todo = [top]
    while todo:
        node = todo.pop()
        if node.nested:
            text = node.value()
            if text:
                problems.append(Problem(
                    name, node.line, None, "broken XML",
                    f"{name} line {node.line}: stray text {text[:40]!r} inside <{node.tag}> "
                    "(only elements belong there).",
                ))
            todo.extend(reversed(node.children))


class _CinTables:
    """The canonical rows of one return, filled one <Child> at a time as the parser meets them."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[Problem] = []
        self.children = _Columns(("child_id", "upn", "date_of_birth", "sex", "ethnicity", "disability"),
                                 ("_row", "_row__child_id", "_row__upn", "_row__date_of_birth", "_row__sex",
                                  "_row__ethnicity", "_row__disability"))
        self.referrals = _Columns(("referral_id", "child_id", "referral_date", "referral_source", "primary_need",
                                   "referral_nfa", "closure_date", "closure_reason"),
                                  ("_row", "_row__referral_id", "_row__child_id", "_row__referral_date",
                                   "_row__referral_source", "_row__primary_need", "_row__referral_nfa",
                                   "_row__closure_date", "_row__closure_reason"))
        self.assessments = _Columns(("referral_id", "child_id", "start_date", "authorised_date", "factors"),
                                    ("_row", "_row__start_date", "_row__authorised_date", "_row__factors"))
        self.plans = _Columns(("referral_id", "child_id", "plan_type", "start_date", "end_date", "category_of_abuse"),
                              ("_row", "_row__start_date", "_row__end_date", "_row__category_of_abuse"))
        self.interventions = _Columns(("referral_id", "child_id", "intervention", "start_date", "end_date"),
                                      ("_row", "_row__intervention", "_row__start_date", "_row__end_date"))

    def child(self, child: _Node) -> None:
        name = self.name

        def val(node: _Node | None, tag: str, fallback_line: int) -> tuple[str, int]:
            el = node.find(tag) if node is not None else None
            return (el.value(), el.line) if el is not None else ("", fallback_line)

        _stray_text(child, name, self.problems)
        ids = child.find("ChildIdentifiers")
        chars_ = child.find("ChildCharacteristics")
        cid, cid_line = val(ids, "LAchildID", child.line)
        upn, upn_line = val(ids, "UPN", child.line)
        dob, dob_line = val(ids, "PersonBirthDate", child.line)
        if not dob:
            dob, dob_line = val(ids, "ExpectedPersonBirthDate", dob_line)
        sex_raw, sex_line = val(ids, "Sex", child.line)
        if not sex_raw:
            sex_raw, sex_line = val(ids, "GenderCurrent", child.line)
        sex = _xml_sex(sex_raw)
        if sex is None:
            if sex_raw:
                self.problems.append(Problem(
                    name, sex_line, "sex", "unknown code",
                    f"{name} line {sex_line}, sex: {sex_raw!r} is not a census sex code; use {CIN_SEX_CODES}.",
                    table="children",
                ))
                sex = "U"
            else:
                sex = ""
        eth, eth_line = val(chars_, "Ethnicity", child.line)
        dis_node = chars_.find("Disabilities") if chars_ is not None else None
        disabilities = [d.value() for d in dis_node.findall("Disability")] if dis_node is not None else []
        self.children.add(cid, upn, dob, sex, eth, ";".join(d for d in disabilities if d),
                          child.line, cid_line, upn_line, dob_line, sex_line, eth_line,
                          dis_node.line if dis_node is not None else child.line)
        for position, cin in enumerate(child.findall("CINdetails"), start=1):
            ref_date, ref_line = val(cin, "CINreferralDate", cin.line)
            rid = f"{cid}/{ref_date}/{position}"
            values, lines = [], []
            for tag in ("ReferralSource", "PrimaryNeedCode", "ReferralNFA", "CINclosureDate", "ReasonForClosure"):
                v, line = val(cin, tag, cin.line)
                values.append(v)
                lines.append(line)
            source, need, nfa, closed, reason = values
            self.referrals.add(rid, cid, ref_date, source, need, nfa, closed, reason,
                               cin.line, ref_line, cin.line, ref_line, *lines)
            for a in cin.findall("Assessments"):
                start, start_line = val(a, "AssessmentActualStartDate", a.line)
                auth, auth_line = val(a, "AssessmentAuthorisationDate", a.line)
                fac = a.find("FactorsIdentifiedAtAssessment")
                factors = [f.value() for f in fac.findall("AssessmentFactors")] if fac is not None else []
                self.assessments.add(rid, cid, start, auth, ";".join(f for f in factors if f),
                                     a.line, start_line, auth_line, fac.line if fac is not None else a.line)
            for p in cin.findall("CINPlanDates"):
                start, start_line = val(p, "CINPlanStartDate", p.line)
                end, end_line = val(p, "CINPlanEndDate", p.line)
                self.plans.add(rid, cid, "CIN", start, end, "", p.line, start_line, end_line, p.line)
            for p in cin.findall("ChildProtectionPlans"):
                start, start_line = val(p, "CPPstartDate", p.line)
                end, end_line = val(p, "CPPendDate", p.line)
                cat, cat_line = val(p, "InitialCategoryOfAbuse", p.line)
                self.plans.add(rid, cid, "CP", start, end, cat, p.line, start_line, end_line, cat_line)
            for pp in cin.findall("PreProceedingsandFGDM"):
                self._fgdm(pp, rid, cid, val)

    def _fgdm(self, pp: _Node, rid: str, cid: str, val) -> None:
        """A pre-proceedings block's FGDM offer and meeting as interventions rows.

        The census gives no date of the meeting itself: an offer is dated by the letter before
        proceedings that made it (else the start of pre-proceedings); a meeting by the
        pre-proceedings period it was held in (PPStartDate, else the letter; to StepDecisionDate).
        """
        pp_start, pp_line = val(pp, "PPStartDate", pp.line)
        letter, letter_line = val(pp, "LBPSentDate", pp.line)
        decision, decision_line = val(pp, "StepDecisionDate", pp.line)
        for tag, intervention, start, start_line, end, end_line in (
            ("FGDMMeetingOffer", FGDM_OFFER, letter or pp_start, letter_line if letter else pp_line, "", pp.line),
            ("FGDMMeetingFac", FGDM_MEETING, pp_start or letter, pp_line if pp_start else letter_line,
             decision, decision_line),
        ):
            raw, line = val(pp, tag, pp.line)
            answer = raw.lower()
            if answer in _CIN_YES:
                self.interventions.add(rid, cid, intervention, start, end, line, line, start_line, end_line)
            elif answer and answer not in _CIN_NO:
                self.problems.append(Problem(
                    self.name, line, "intervention", "unknown code",
                    f"{self.name} line {line}, {tag}: {raw!r} is not a census yes/no code; use 1 (yes) or 0 (no).",
                    table="interventions",
                ))


def _refuse_dtd(parser) -> None:
    """No DTDs or entity declarations in a census return (defusedxml's rules, on our own line-keeping parser)."""
    from defusedxml.common import DTDForbidden, EntitiesForbidden

    def doctype(name, sysid, pubid, has_internal_subset):
        raise DTDForbidden(name, sysid, pubid)

    def entity(name, is_parameter, value, base, sysid, pubid, notation_name):
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)

    def unparsed(name, base, sysid, pubid, notation_name):
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = unparsed
    parser.ExternalEntityRefHandler = lambda *a: False


def read_cin_xml(path: Path) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """The CIN census return mapped to the canonical tables (see docs/data-contract.md).

    Streamed: each <Child> is turned into rows as soon as it closes and then dropped, so memory
    follows the rows, not the file's element tree. DTDs and entities are refused (defusedxml's rules).
    """
    from defusedxml.common import DefusedXmlException

    name = path.name
    if path.stat().st_size == 0:
        return {}, [Problem(name, None, None, "empty file", f"{name} is empty.")]
    root = _Node("#document", 0)
    stack = [root]
    rows = _CinTables(name)
    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    _refuse_dtd(parser)

    def start(tag, attrs):
        if len(stack) > XML_MAX_DEPTH:
            raise XMLRefused(parser.CurrentLineNumber,
                             f"elements are nested more than {XML_MAX_DEPTH} deep (a CIN census return nests 7 deep)")
        node = _Node(tag.rsplit(":", 1)[-1], parser.CurrentLineNumber)
        parent = stack[-1]
        parent.nested = True
        # A <Child> of Message/Children is read and dropped when it closes; everything else is kept.
        if not (node.tag == "Child" and len(stack) == 3 and parent.tag == "Children" and stack[1].tag == "Message"):
            parent.children.append(node)
        stack.append(node)

    def end(tag):
        node = stack.pop()
        if node.tag == "Child" and len(stack) == 3 and stack[-1].tag == "Children" and stack[1].tag == "Message":
            rows.child(node)

    def chars(text):
        if not text.isspace():
            stack[-1].text.append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    err: tuple[int, str] | None = None
    try:
        with path.open("rb") as fh:
            parser.ParseFile(fh)
    except xml.parsers.expat.ExpatError as exc:
        err = (exc.lineno, f"column {exc.offset + 1}: the XML is broken ({xml.parsers.expat.ErrorString(exc.code)})")
    except DefusedXmlException as exc:
        what = "a DTD (<!DOCTYPE ...>)" if type(exc).__name__ == "DTDForbidden" else "an entity declaration"
        err = (parser.CurrentLineNumber, f"it holds {what}, which a CIN census return never needs and insight refuses "
               "for safety (entities can hide or invent data); remove it")
    except XMLRefused as exc:
        err = (exc.line, str(exc))
    message = root.find("Message")
    header = message.find("Header") if message else None
    la_code = extract = None
    if header is not None:
        src = header.find("Source")
        lea = src.find("LEA") if src else None
        la_code = lea.value() if lea else None
        cd = header.find("CollectionDetails")
        ref = cd.find("ReferenceDate") if cd else None
        extract = ref.value() if ref else None
    if err is not None:
        return {}, [Problem(
            name, err[0], None, "broken XML",
            f"{name} line {err[0]}, {err[1]}; nothing from this file was read. Fix the element at that line and try again.",
            la_code=la_code or None,
        )]
    if message is None:
        return {}, [Problem(name, None, None, "broken XML",
                            f"{name} is not a CIN census return: its top element should be <Message>.")]
    if not la_code:
        return {}, [Problem(name, header.line if header else None, "la_code", "missing value",
                            f"{name}: the header has no <LEA> (the council's 3-digit code), so the return "
                            "cannot be matched to a council.")]
    problems: list[Problem] = []
    _stray_text(message, name, problems)
    problems = [replace(p, la_code=la_code) for p in problems + rows.problems]
    councils = pd.DataFrame({
        "la_code": [la_code], "la_name": [reference.council_name(la_code)], "extract_date": [extract or ""],
        "_row": [header.line], "_row__extract_date": [header.line], "_file": [name], "_sheet": [""],
    })
    out = {"councils": councils}
    for table in ("children", "referrals", "assessments", "plans", "interventions"):
        cols: _Columns = getattr(rows, table)
        if cols.n:
            out[table] = cols.frame(la_code, name)
    for frame in out.values():
        frame.attrs.update(file=name, la_code=la_code)
    return out, problems


# --- Annex A workbooks ------------------------------------------------------------------


def _key(text: object) -> str:
    """Header key: lower case, letters and digits only ("Child Unique ID" -> "childuniqueid")."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


#: Loose header synonyms (compared after _key). First match wins.
ANNEX_A_HEADERS: dict[str, tuple[str, ...]] = {
    "child_id": ("childuniqueid", "childid", "id", "uniqueid", "childuid", "lachildid", "childreference",
                 "childref", "personid", "clientid"),
    "sex": ("gender", "sex", "gendercurrent"),
    "ethnicity": ("ethnicity", "ethnicorigin", "ethnicgroup"),
    "date_of_birth": ("dateofbirth", "dob", "birthdate", "personbirthdate"),
    "contact_date": ("dateofcontact", "contactdate"),
    "referral_date": ("dateofreferral", "referraldate", "cinreferraldate", "dateofthereferral"),
    "referral_source": ("referralsource", "sourceofreferral", "source"),
    "referral_nfa": ("referralnfa", "nfa", "referralnofurtheraction", "wasthereferralnfa"),
    "eh_start_date": ("assessmentstartdate", "earlyhelpstartdate", "dateearlyhelpstarted", "startdate"),
    "eh_end_date": ("assessmentcompletiondate", "earlyhelpenddate", "dateearlyhelpended", "enddate"),
    "assessment_start": ("continuousassessmentstartdate", "assessmentstartdate", "startdate"),
    "assessment_authorised": ("continuousassessmentdateofauthorisation", "assessmentauthoriseddate",
                              "dateofauthorisation", "assessmentauthorisationdate", "authoriseddate"),
    "cin_start_date": ("cinstartdate", "dateofreferral", "referraldate"),
    "primary_need": ("primaryneedcode", "primaryneed", "categoryofneed"),
    "closure_date": ("cinclosuredate", "closuredate", "dateofclosure", "caseclosuredate"),
    "closure_reason": ("reasonforclosure", "closurereason"),
    "cp_start_date": ("childprotectionplanstartdate", "cppstartdate", "planstartdate", "startdate"),
    "cp_end_date": ("childprotectionplanenddate", "cppenddate", "planenddate", "enddate"),
    "category_of_abuse": ("initialcategoryofabuse", "categoryofabuse"),
}

#: Which fields each list can carry (lists not named here are not mapped: see docs/data-contract.md).
ANNEX_A_LISTS: dict[int, tuple[str, ...]] = {
    1: ("child_id", "sex", "ethnicity", "date_of_birth", "contact_date"),
    2: ("child_id", "sex", "ethnicity", "date_of_birth", "eh_start_date", "eh_end_date"),
    3: ("child_id", "sex", "ethnicity", "date_of_birth", "referral_date", "referral_source", "referral_nfa"),
    4: ("child_id", "sex", "ethnicity", "date_of_birth", "assessment_start", "assessment_authorised"),
    6: ("child_id", "sex", "ethnicity", "date_of_birth", "cin_start_date", "primary_need", "closure_date",
        "closure_reason"),
    7: ("child_id", "sex", "ethnicity", "date_of_birth", "cp_start_date", "cp_end_date", "category_of_abuse"),
}
ANNEX_A_REQUIRED = {3: ("child_id", "referral_date"), 2: ("child_id", "eh_start_date"),
                    4: ("child_id", "assessment_start"), 6: ("child_id",), 7: ("child_id", "cp_start_date"),
                    1: ("child_id",)}

_ETHNICITY_NAMES = {
    "whitebritish": "WBRI", "whiteirish": "WIRI", "travellerofirishheritage": "WIRT", "anyotherwhitebackground": "WOTH",
    "gypsyroma": "WROM", "whiteandblackcaribbean": "MWBC", "whiteandblackafrican": "MWBA", "whiteandasian": "MWAS",
    "anyothermixedbackground": "MOTH", "indian": "AIND", "pakistani": "APKN", "bangladeshi": "ABAN",
    "anyotherasianbackground": "AOTH", "caribbean": "BCRB", "african": "BAFR", "anyotherblackbackground": "BOTH",
    "chinese": "CHNE", "anyotherethnicgroup": "OOTH", "refused": "REFU", "informationnotyetobtained": "NOBT",
}
_ABUSE_NAMES = {"neglect": "NEG", "physical": "PHY", "sexual": "SAB", "emotional": "EMO", "multiple": "MUL"}
_LIST_PREFIX = re.compile(r"^\s*[a-z]\d?\)\s*", re.I)


def _strip_prefix(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.replace(_LIST_PREFIX, "", regex=True).str.strip()


def _leading_code(s: pd.Series, codes: tuple[str, ...], labels: dict[str, str] | None = None) -> pd.Series:
    """"a) 1A: Individual" -> "1A"; "N1 - Abuse or neglect" -> "N1"; "Housing 4" -> "4"; "Police" -> "6".

    Text that names no code is kept as it is, for validation to report.
    """
    text = _strip_prefix(s)
    upper = text.str.upper()
    token = upper.str.extract(r"^([A-Z0-9]+)", expand=False).fillna("")
    anywhere = upper.str.extract(r"(?<![A-Z0-9])(" + "|".join(sorted(codes, key=len, reverse=True)) + r")(?![A-Z0-9])",
                                 expand=False)
    out = token.where(token.isin(codes), anywhere)
    if labels:
        by_label = {_key(v): k for k, v in labels.items()}
        out = out.fillna(text.map(lambda v: by_label.get(_key(v))))
    return out.fillna(text).astype(object)


def _annex_sex(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s).str.lower()
    out = pd.Series("U", index=s.index, dtype=object)
    out[text.str.match(r"^(m|male|1)$")] = "M"
    out[text.str.match(r"^(f|female|2)$")] = "F"
    out[text == ""] = ""
    return out


def _annex_ethnicity(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s)
    code = text.str.upper().str.extract(r"\b(" + "|".join(contract.ETHNICITY) + r")\b", expand=False)
    by_name = text.map(lambda v: _ETHNICITY_NAMES.get(_key(v)))
    return code.fillna(by_name).fillna(text).astype(object)


def _annex_abuse(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s)
    code = text.str.upper().str.extract(r"\b(" + "|".join(contract.ABUSE_CATEGORIES) + r")\b", expand=False)
    first = text.str.lower().str.extract(r"^([a-z]+)", expand=False).map(_ABUSE_NAMES)
    return code.fillna(first).fillna(text).astype(object)


def _annex_yes_no(s: pd.Series) -> pd.Series:
    return _strip_prefix(s)


def _match_headers(header: list[str], wanted: tuple[str, ...]) -> dict[str, int]:
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    used: set[int] = set()
    for fld in wanted:
        for syn in ANNEX_A_HEADERS[fld]:
            hit = next((i for i, k in enumerate(keys) if k == syn and i not in used), None)
            if hit is not None:
                found[fld] = hit
                used.add(hit)
                break
    # Looser pass: a header containing the whole first synonym ("Child Unique ID (LA)").
    for fld in wanted:
        if fld not in found:
            syn = ANNEX_A_HEADERS[fld][0]
            hit = next((i for i, k in enumerate(keys) if syn in k and i not in used), None)
            if hit is not None:
                found[fld] = hit
                used.add(hit)
    return found


_LIST_SHEET = re.compile(r"^\s*list\s*(\d{1,2})\b", re.I)


def is_annex_a(path: Path, limits: Limits | None = None) -> bool:
    try:
        wb = Workbook(path, limits or Limits.from_env())
    except Exception:  # noqa: BLE001 - read_annex_a / read_directory report it
        return False
    return any(_LIST_SHEET.match(s) for s in wb.sheets + wb.hidden)


def _annex_la_code(path: Path, known_councils: list[str]) -> str | None:
    codes = reference.council_codes()
    in_name = [c for c in re.findall(r"(?<!\d)(\d{3})(?!\d)", path.stem) if c in codes]
    if len(in_name) == 1:
        return in_name[0]
    if len(known_councils) == 1:
        return known_councils[0]
    return None


def read_annex_a(path: Path, known_councils: list[str] | None = None,
                 limits: Limits | None = None) -> tuple[dict[str, pd.DataFrame], list[Problem], list[str]]:
    """Ofsted Annex A lists 1, 2, 3, 4, 6 and 7 mapped to the canonical tables.

    Only visible sheets are read (hidden ones are named in a note); two visible sheets claiming the
    same list are an error naming both, since either choice could silently drop or invent rows.
    """
    name = path.name
    notes: list[str] = []
    la_code = _annex_la_code(path, known_councils or [])
    if la_code is None:
        return {}, [Problem(name, None, "la_code", "missing value",
                            f"{name}: cannot tell which council this Annex A workbook belongs to. Put the "
                            "council's 3-digit code in the file name (e.g. 201_annex_a.xlsx) or give a "
                            "councils.csv with that one council.")], notes
    wb, problem = _open(path, limits)
    if wb is None:
        return {}, [replace(problem, la_code=la_code)], notes
    if wb.hidden:
        notes.append(f"{name}: hidden sheet{'s' if len(wb.hidden) > 1 else ''} "
                     f"{', '.join(repr(s) for s in wb.hidden)} not read (only visible sheets are data; unhide "
                     "a sheet in Excel if it should be read).")
    problems: list[Problem] = []
    lists: dict[int, pd.DataFrame] = {}
    claimed: dict[int, list[str]] = {}
    for sheet in wb.sheets:
        m = _LIST_SHEET.match(sheet)
        if m:
            claimed.setdefault(int(m.group(1)), []).append(sheet)
    for number, sheets in claimed.items():
        if len(sheets) > 1 and number in ANNEX_A_LISTS:
            problems.append(Problem(name, None, None, "duplicate list",
                                    f"{name}: the sheets {' and '.join(repr(s) for s in sheets)} both claim to be "
                                    f"Annex A list {number}; keep one (or rename or hide the other) so it is clear "
                                    "which holds the data.", la_code=la_code))
    for number, sheets in claimed.items():
        sheet = sheets[0]
        if number not in ANNEX_A_LISTS:
            notes.append(f"{name}: sheet '{sheet}' (Annex A list {number}) carries no contract fields; not read.")
            continue
        if len(sheets) > 1:
            continue
        try:
            numbers, columns = wb.rows(sheet)
        except _SheetTooBig as err:
            problems.append(Problem(name, None, None, "too big", str(err), la_code=la_code))
            continue
        # The header is the first of the top rows with a child id column (some sheets have a title row).
        top = [_row_cells(columns, k) for k in range(min(10, len(numbers)))]
        header_at = next((k for k, cells in enumerate(top) if "child_id" in _match_headers(cells, ("child_id",))), None)
        if header_at is None:
            problems.append(Problem(name, None, "child_id", "missing column",
                                    f"{name}, sheet '{sheet}': no child id column (such as 'Child Unique ID') "
                                    "in the first rows.", la_code=la_code))
            continue
        header = top[header_at]
        found = _match_headers(header, ANNEX_A_LISTS[number])
        missing = [f for f in ANNEX_A_REQUIRED[number] if f not in found]
        if missing:
            problems.append(Problem(name, int(numbers[header_at]), missing[0], "missing column",
                                    f"{name}, sheet '{sheet}': no column for {', '.join(missing)} "
                                    f"(headers found: {', '.join(h for h in header if h)}).", la_code=la_code))
            continue
        frame = pd.DataFrame({fld: columns[i].slice(header_at + 1).to_pylist() for fld, i in found.items()},
                             dtype=object)
        frame = _finish(frame, name, numbers[header_at + 1:], sheet=sheet)
        frame = frame[frame["child_id"] != ""].reset_index(drop=True)
        lists[number] = frame
    if not lists:
        return {}, problems, notes
    out: dict[str, pd.DataFrame] = {}

    # children: every list that names a child, first appearance wins (referral list first).
    kids = []
    for number in (3, 6, 4, 7, 2, 1):
        if number in lists:
            f = lists[number]
            kids.append(f[[c for c in ("child_id", "sex", "ethnicity", "date_of_birth") if c in f.columns]
                          + list(META)])
    children = pd.concat(kids, ignore_index=True).drop_duplicates("child_id").reset_index(drop=True)
    for col in ("sex", "ethnicity", "date_of_birth"):
        if col not in children.columns:
            children[col] = ""
    children["sex"] = _annex_sex(children["sex"])
    children["ethnicity"] = _annex_ethnicity(children["ethnicity"])
    children.insert(0, "la_code", la_code)
    out["children"] = children

    referrals = None
    if 3 in lists:
        r = lists[3].copy()
        r["referral_date"] = r["referral_date"]
        r["referral_source"] = _leading_code(r.get("referral_source", pd.Series("", index=r.index)), contract.REFERRAL_SOURCES,
                                           contract.REFERRAL_SOURCE_LABELS)
        r["referral_nfa"] = _annex_yes_no(r.get("referral_nfa", pd.Series("", index=r.index)))
        pos = r.groupby(["child_id", "referral_date"]).cumcount() + 1
        r["referral_id"] = r["child_id"] + "/" + r["referral_date"] + "/" + pos.astype(str)
        r["primary_need"] = ""
        r["closure_date"] = ""
        r["closure_reason"] = ""
        if 6 in lists and "cin_start_date" in lists[6].columns:
            cin = lists[6].drop_duplicates(["child_id", "cin_start_date"])
            cin = cin.rename(columns={"cin_start_date": "referral_date"})
            carry = [c for c in ("primary_need", "closure_date", "closure_reason") if c in cin.columns]
            merged = r[["child_id", "referral_date"]].merge(cin[["child_id", "referral_date"] + carry],
                                                            on=["child_id", "referral_date"], how="left")
            for c in carry:
                r[c] = merged[c].fillna("").to_numpy()
        r["primary_need"] = _leading_code(r["primary_need"], contract.PRIMARY_NEED, contract.PRIMARY_NEED_LABELS)
        r["closure_reason"] = _leading_code(r["closure_reason"], contract.CLOSURE_REASONS, contract.CLOSURE_REASON_LABELS)
        no_need = r["primary_need"] == ""
        if no_need.any():
            r.loc[no_need, "primary_need"] = "N0"
            notes.append(f"{name}: {int(no_need.sum())} referrals in List 3 have no primary need in List 6 "
                         "(matched on child and CIN start date = referral date); recorded as N0 (not stated).")
        r.insert(0, "la_code", la_code)
        referrals = r[[c for c in contract.TABLES["referrals"].columns] + list(META)].copy()
        out["referrals"] = referrals

    def link(frame: pd.DataFrame, date_col: str, what: str, sheet_number: int) -> pd.DataFrame:
        """Attach each row to the child's latest referral on or before its date."""
        frame = frame.copy()
        frame["referral_id"] = ""
        if referrals is not None and len(frame):
            when, _ = parse_dates(frame[date_col])
            refs = referrals[["child_id", "referral_id", "referral_date"]].copy()
            refs["_when"], _ = parse_dates(refs["referral_date"])
            refs = refs.dropna(subset=["_when"]).sort_values("_when")
            left = frame.assign(_when=when, _i=np.arange(len(frame))).dropna(subset=["_when"]).sort_values("_when")
            joined = pd.merge_asof(left, refs[["child_id", "referral_id", "_when"]].rename(columns={"referral_id": "_rid"}),
                                   on="_when", by="child_id", direction="backward")
            frame.loc[joined["_i"].to_numpy(), "referral_id"] = joined["_rid"].fillna("").to_numpy()
        unlinked = frame["referral_id"] == ""
        for _, row in frame[unlinked].head(50).iterrows():
            problems.append(Problem(
                name, int(row["_row"]), "referral_id", "not present",
                f"{location(name, int(row['_row']), row['_sheet'])}: this {what} has no referral for the same "
                f"child on or before its date ({row[date_col] or 'no date'}) in List 3.",
                la_code=la_code, table="assessments" if sheet_number == 4 else "plans",
            ))
        if unlinked.sum() > 50:
            problems.append(Problem(name, None, "referral_id", "not present",
                                    f"{name}: and {int(unlinked.sum()) - 50} more {what}s with no referral in List 3.",
                                    la_code=la_code))
        return frame[~unlinked]

    if 4 in lists:
        a = link(lists[4], "assessment_start", "assessment", 4)
        a = a.rename(columns={"assessment_start": "start_date", "assessment_authorised": "authorised_date"})
        a.insert(0, "la_code", la_code)
        out["assessments"] = a[[c for c in contract.TABLES["assessments"].columns if c in a.columns] + list(META)].copy()
    if 7 in lists:
        p = link(lists[7], "cp_start_date", "child protection plan", 7)
        p = p.rename(columns={"cp_start_date": "start_date", "cp_end_date": "end_date"})
        p["plan_type"] = "CP"
        if "category_of_abuse" in p.columns:
            p["category_of_abuse"] = _annex_abuse(p["category_of_abuse"])
        p.insert(0, "la_code", la_code)
        out["plans"] = p[[c for c in contract.TABLES["plans"].columns if c in p.columns] + list(META)].copy()
    if 2 in lists:
        e = lists[2].rename(columns={"eh_start_date": "start_date", "eh_end_date": "end_date"}).copy()
        e["intervention"] = "Early help"
        e.insert(0, "la_code", la_code)
        out["interventions"] = e[[c for c in contract.TABLES["interventions"].columns if c in e.columns] + list(META)].copy()
    for frame in out.values():
        for c in frame.columns:
            if c not in META:
                frame[c] = frame[c].fillna("").astype(object)
        frame.attrs.update(file=name, la_code=la_code)
    return out, problems, notes


# --- a whole directory ------------------------------------------------------------------


def read_directory(path: str | Path, limits: Limits | None = None) -> RawData:
    """Every table the directory holds, as raw string parts, plus the problems met reading them."""
    limits = limits or Limits.from_env()
    root = Path(path)
    raw = RawData()
    if not root.exists():
        raw.problems.append(Problem(str(root), None, None, "missing table", f"{root} does not exist."))
        return raw
    if not root.is_dir():
        raw.problems.append(Problem(str(root), None, None, "missing table",
                                    f"{root} is not a directory: give the folder holding councils.csv, children.csv ..."))
        return raw
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))
    annex: list[Path] = []
    for p in files:
        suffix = p.suffix.lower()
        table = p.stem.lower()
        if suffix in CANONICAL_SUFFIXES and table in contract.TABLES:
            if suffix == ".xlsx":
                frame, problems = read_excel_table(p, table, limits)
            else:
                frame, problems = {".csv": read_csv_file, ".parquet": read_parquet_file}[suffix](p, table)
            raw.problems += problems
            raw.files.append(p.name)
            if frame is not None:
                raw.notes += frame.attrs.pop("notes", [])
                raw.add(table, frame)
            else:
                raw.unread[p.name] = table
        elif suffix == ".xml":
            tables, problems = read_cin_xml(p)
            raw.problems += problems
            raw.files.append(p.name)
            if not tables:
                raw.unread[p.name] = None
            for t, frame in tables.items():
                raw.add(t, frame)
        elif suffix == ".xlsx":
            annex.append(p)
        elif suffix in (".csv", ".parquet"):
            raw.notes.append(f"{p.name} is not one of the contract's tables ({', '.join(contract.TABLES)}); not read.")
    # Annex A workbooks last: they may take their council from councils.csv.
    known = []
    for frame in raw.parts.get("councils", []):
        if "la_code" in frame.columns:
            known += [c for c in frame["la_code"].unique() if c]
    for p in annex:
        if is_annex_a(p, limits):
            tables, problems, notes = read_annex_a(p, sorted(set(known)), limits)
            raw.problems += problems
            raw.notes += notes
            raw.files.append(p.name)
            for t, frame in tables.items():
                raw.add(t, frame)
        else:
            _, problem = _open(p, limits)
            if problem is not None:  # an unreadable or oversized workbook is said, not passed over
                raw.problems.append(problem)
                raw.files.append(p.name)
                continue
            raw.notes.append(f"{p.name} is neither a contract table nor an Annex A workbook (sheets named "
                             "'List 1', 'List 3' ...); not read.")
    return raw


def read_tables(path: str | Path, limits: Limits | None = None) -> dict[str, pd.DataFrame]:
    """Raw string tables (one frame per table, location columns dropped); for inspection and tests."""
    raw = read_directory(path, limits)
    out = {}
    for table, parts in raw.parts.items():
        frame = pd.concat(parts, ignore_index=True)
        out[table] = frame[[c for c in frame.columns if not c.startswith("_")]].fillna("")
    return out
