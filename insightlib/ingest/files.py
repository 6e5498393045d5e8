"""What every reader shares: the Problem a reader reports, raw rows with their place in the file,
dates read from text, limits on what is read, and the canonical CSV and Parquet tables.

Every value is read as a stripped string so that validation, not the reader, decides what is
wrong; each raw row remembers where it came from (``_file``, ``_sheet``, ``_row``) so a problem
can name the file and row the user sees. Readers never raise on bad input: they return
:class:`Problem` objects instead. The formats: :mod:`.xlsx` (workbooks), :mod:`.cin_census`
(the CIN census XML return), :mod:`.annex_a` (Ofsted Annex A workbooks); :mod:`.directory`
reads a whole data directory with them.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

#: Internal columns carried by raw frames (dropped before anything leaves validation).
META = ("_file", "_sheet", "_row")
#: Per-cell location columns (XML: the line of each element) are named ``_row__<column>``.
CELL_ROW_PREFIX = "_row__"

CANONICAL_SUFFIXES = (".csv", ".parquet", ".xlsx")
#: Rows gathered before they are packed into Arrow arrays (keeps big sheets and XML returns small in memory).
CHUNK = 1 << 16


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
    """ "referrals.csv row 17, closure_date" / "cin.xml line 40" / "a.xlsx, sheet 'List 3', row 5"."""
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


def normalise_header(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower().lstrip("\ufeff"))


def with_location(frame: pd.DataFrame, file: str, rows: np.ndarray, sheet: str = "") -> pd.DataFrame:
    """A copy of ``frame`` with the file, sheet and row each of its rows came from."""
    frame = frame.copy()
    frame["_file"] = file
    frame["_sheet"] = sheet
    frame["_row"] = np.asarray(rows, dtype="int64")
    frame.attrs["file"] = file
    return frame


def _utf8_problem(name: str, data: bytes, err: UnicodeDecodeError, table: str | None) -> Problem:
    pos = err.start
    line = data.count(b"\n", 0, pos) + 1
    bad = data[pos : pos + 1].hex()
    return Problem(
        name,
        None,
        None,
        "wrong encoding",
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
        return None, [
            Problem(
                name, None, None, "unreadable file", f"{name}: the header cannot be read as CSV ({err}).", table=table
            )
        ]
    names = [normalise_header(h) for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1 and n})
    if dupes:
        return None, [
            Problem(
                name,
                None,
                dupes[0],
                "unreadable file",
                f"{name}: the column {dupes[0]!r} appears more than once in the header.",
                table=table,
            )
        ]
    try:
        tbl = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as err:  # ragged rows, unclosed quotes
        detail = str(err).split("\n")[0]
        detail = re.sub(r"\s*Row #?\d+:.*$", "", detail) if len(detail) > 200 else detail
        return None, [
            Problem(name, None, None, "unreadable file", f"{name} cannot be read as CSV: {detail[:200]}", table=table)
        ]
    cols = {}
    for n in names:
        arr = pc.utf8_trim_whitespace(tbl.column(n)).cast(pa.large_string())
        cols[n] = pd.Series(pd.arrays.ArrowStringArray(arr), dtype=STR)
    frame = pd.DataFrame(cols)
    return with_location(frame, name, np.arange(1, len(frame) + 1)), []


def cell_text(value: object) -> str:
    """A spreadsheet or Parquet cell as the text validation reads (dates ISO, whole numbers without '.0')."""
    if type(value) is str:  # most cells: the same as the last line, without the checks before it
        return value.strip()
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
        return None, [
            Problem(name, None, None, "unreadable file", f"{name} cannot be read as Parquet: {err}", table=table)
        ]
    frame = tbl.to_pandas()
    out = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            text = s.dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_bool_dtype(s):
            text = s.map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(s):
            text = s.map(cell_text)
        elif pd.api.types.is_integer_dtype(s):
            text = s.astype("Int64").astype(str)
        else:
            text = s.map(cell_text)
        out[normalise_header(col)] = text.where(s.notna(), "").astype(object)
    result = pd.DataFrame(out, index=frame.index).reset_index(drop=True)
    return with_location(result, name, np.arange(1, len(result) + 1)), []


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

        return cls(
            workbook_mb=number("INSIGHT_MAX_WORKBOOK_MB", cls.workbook_mb), rows=number("INSIGHT_MAX_ROWS", cls.rows)
        )
