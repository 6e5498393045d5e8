"""Read one data directory into raw string tables, whatever shape the council's extract has.

A directory may hold canonical tables (``<table>.csv``, ``.parquet`` or ``.xlsx``), CIN census
XML returns (any ``*.xml``) and Ofsted Annex A workbooks (any other ``*.xlsx`` with sheets
named like "List 3 - Referrals"), mixed freely. A national extract may also be one folder per
council (``201/referrals.csv`` ...): a directory with no data file of its own is read folder by
folder, every file named with its folder in problems. Each format has its module (:mod:`.files`,
:mod:`.xlsx`, :mod:`.cin_census`, :mod:`.annex_a`); this one decides which reads each file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from insightlib import contract
from insightlib.ingest.annex_a import is_annex_a, read_annex_a
from insightlib.ingest.cin_census import read_cin_xml
from insightlib.ingest.files import CANONICAL_SUFFIXES, Limits, Problem, RawData, read_csv_file, read_parquet_file
from insightlib.ingest.xlsx import open_workbook, read_excel_table


def read_directory(path: str | Path, limits: Limits | None = None) -> RawData:
    """Every table the directory holds, as raw string parts, plus the problems met reading them."""
    limits = limits or Limits.from_env()
    root = Path(path)
    raw = RawData()
    if not root.exists():
        raw.problems.append(Problem(str(root), None, None, "missing table", f"{root} does not exist."))
        return raw
    if not root.is_dir():
        raw.problems.append(
            Problem(
                str(root),
                None,
                None,
                "missing table",
                f"{root} is not a directory: give the folder holding councils.csv, children.csv ...",
            )
        )
        return raw
    _read_folder(root, limits, raw)
    if not any(p.suffix.lower() in DATA_SUFFIXES for p in _files(root)):  # one folder per council
        for sub in _council_folders(root):
            part = RawData()
            _read_folder(sub, limits, part)
            _merge(raw, part, sub.name)
    return raw


#: Files a data directory is read for (anything else is passed over).
DATA_SUFFIXES = (".csv", ".parquet", ".xlsx", ".xml")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith((".", "~$")))


def _council_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _read_folder(root: Path, limits: Limits, raw: RawData) -> None:
    """The files directly in ``root``, each by the reader its name and format call for."""
    annex: list[Path] = []
    for p in _files(root):
        suffix = p.suffix.lower()
        table = p.stem.lower()
        if suffix in CANONICAL_SUFFIXES and table in contract.TABLES:
            _read_canonical(p, table, limits, raw)
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
        _read_workbook(p, sorted(set(known)), limits, raw)


def _merge(raw: RawData, part: RawData, folder: str) -> None:
    """One council folder's reading into the whole, every file named as ``folder/file`` (in problems too).

    A problem of the folder that names no council (an unreadable file, a missing column) is its council's:
    the one council its councils file names, else the folder's name. So it stops that council only."""

    def named(name):
        return name if name is None else f"{folder}/{name}"

    owner = _folder_council(part, folder)
    for table, frames in part.parts.items():
        for frame in frames:
            if "file" in frame.attrs:
                frame.attrs["file"] = named(frame.attrs["file"])
            frame.attrs.setdefault("la_code", owner)
            frame["_file"] = _in_folder(folder, frame["_file"])
            raw.add(table, frame)
    for p in part.problems:
        message = p.message.replace(p.file, named(p.file), 1) if p.file else p.message
        raw.problems.append(dataclasses.replace(p, file=named(p.file), message=message, la_code=p.la_code or owner))
    raw.notes += [f"{folder}: {n}" for n in part.notes]
    raw.files += [named(f) for f in part.files]
    raw.unread.update({named(f): t for f, t in part.unread.items()})


def _in_folder(folder: str, files: pd.Series) -> pd.Series | str:
    """Each row's file named ``folder/file``: one string for the whole part when it came from one file (a new
    string a row cost about 0.6 GB over the 1,071 files of 153 council folders)."""
    values = files.to_numpy()
    if len(values) and values.dtype == object and (values == values[0]).all():
        return f"{folder}/{values[0]}"
    return folder + "/" + files.astype(str)


def _folder_council(part: RawData, folder: str) -> str:
    codes = set()
    for frame in part.parts.get("councils", []):
        if "la_code" in frame.columns:
            codes |= {str(c).strip() for c in frame["la_code"].dropna().unique()} - {""}
    return codes.pop() if len(codes) == 1 else folder


def _read_canonical(p: Path, table: str, limits: Limits, raw: RawData) -> None:
    """A file named like a contract table (``referrals.csv``, ``.parquet`` or ``.xlsx``)."""
    if p.suffix.lower() == ".xlsx":
        frame, problems = read_excel_table(p, table, limits)
    else:
        frame, problems = {".csv": read_csv_file, ".parquet": read_parquet_file}[p.suffix.lower()](p, table)
    raw.problems += problems
    raw.files.append(p.name)
    if frame is not None:
        raw.notes += frame.attrs.pop("notes", [])
        raw.add(table, frame)
    else:
        raw.unread[p.name] = table


def _read_workbook(p: Path, known: list[str], limits: Limits, raw: RawData) -> None:
    """Any other workbook: an Annex A return, else said to be unreadable or passed over with a note."""
    if is_annex_a(p, limits):
        tables, problems, notes = read_annex_a(p, known, limits)
        raw.problems += problems
        raw.notes += notes
        raw.files.append(p.name)
        for t, frame in tables.items():
            raw.add(t, frame)
        return
    _, problem = open_workbook(p, limits)
    if problem is not None:  # an unreadable or oversized workbook is said, not passed over
        raw.problems.append(problem)
        raw.files.append(p.name)
        return
    raw.notes.append(
        f"{p.name} is neither a contract table nor an Annex A workbook (sheets named 'List 1', 'List 3' ...); not read."
    )


def read_tables(path: str | Path, limits: Limits | None = None) -> dict[str, pd.DataFrame]:
    """Raw string tables (one frame per table, location columns dropped); for inspection and tests."""
    raw = read_directory(path, limits)
    out = {}
    for table, parts in raw.parts.items():
        frame = pd.concat(parts, ignore_index=True)
        out[table] = frame[[c for c in frame.columns if not c.startswith("_")]].fillna("")
    return out
