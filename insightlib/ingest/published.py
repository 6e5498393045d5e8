"""What the readers of published sources (ingest/skills.py, ingest/practice.py) share.

A published file is checked, not trusted: it is read as text, its required columns are looked
for, and every problem in every file is collected (file, row, column, rule) and reported at
once as one ``InputError``, so nothing is half-read and nobody fixes one problem at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from insightlib.errors import InputError


@lru_cache(maxsize=None)
def name_key(name) -> str:
    """Area names differ between files ("Stoke-on-Trent", "Stoke on Trent ", "Bedford Borough")."""
    text = str(name).lower().replace("&", " and ").replace("-", " ").replace(",", " ").replace(".", " ")
    text = re.sub(r"\b(city of|borough|county|council|the)\b", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass
class Problems:
    """Every problem found in the published files, reported together (``what`` names the data)."""

    items: list[str] = field(default_factory=list)
    what: ClassVar[str] = "The published data"

    def add(self, file: str, message: str, row: int | None = None, column: str | None = None) -> None:
        where = file + (f", row {row}" if row is not None else "") + (f", column '{column}'" if column else "")
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            shown = "\n".join(f"  - {p}" for p in self.items[:50])
            more = f"\n  (and {len(self.items) - 50} more)" if len(self.items) > 50 else ""
            n = len(self.items)
            raise InputError(f"{self.what} has {n} problem{'s' if n > 1 else ''}:\n{shown}{more}")


def read_csv(path: Path, problems: Problems) -> pd.DataFrame | None:
    """A published CSV as text (UTF-8, with or without BOM); a missing or unreadable file is a problem."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except FileNotFoundError:
        problems.add(path.name, f"no such file in {path.parent}")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        problems.add(path.name, f"not a readable CSV file ({str(exc).splitlines()[0]})")
    return None


def read_parquet(path: Path, problems: Problems) -> pd.DataFrame | None:
    """A published Parquet file; a missing or unreadable file is a problem."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        problems.add(path.name, f"no such file in {path.parent}")
    except Exception as exc:  # noqa: BLE001 - any Parquet failure is the file's
        problems.add(path.name, f"not a readable Parquet file ({type(exc).__name__})")
    return None


def sheet_rows(path: Path, sheet: str, problems: Problems, what: str) -> list[list] | None:
    """A workbook sheet's cells as rows (empty cells None), read with calamine (every cell, no trust in <dimension>)."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
    except FileNotFoundError:
        problems.add(path.name, f"no such file in {path.parent}")
        return None
    except Exception as exc:  # noqa: BLE001 - calamine's errors are the file's
        problems.add(path.name, f"not a readable Excel workbook ({str(exc).splitlines()[0][:120]})")
        return None
    if sheet not in book.sheet_names:
        problems.add(path.name, f"no sheet '{sheet}' ({what})")
        return None
    cells = book.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    return [[None if v == "" else v for v in row] for row in cells]


def require_columns(df: pd.DataFrame, file: str, required, problems: Problems, *, name_all: bool = True) -> bool:
    """True when every required column is there; each missing one is a problem (naming all that are expected)."""
    missing = [c for c in required if c not in df.columns]
    for c in missing:
        expected = f" (expected columns: {', '.join(required)})" if name_all else ""
        problems.add(file, f"the column is missing{expected}", column=c)
    return not missing


def read_checked(path: Path, columns, problems: Problems, *, name_all: bool = True) -> pd.DataFrame | None:
    """A published CSV or Parquet file (by its suffix) with its required columns; None, with each problem
    reported, where it cannot be read or a column is missing."""
    df = read_parquet(path, problems) if path.suffix == ".parquet" else read_csv(path, problems)
    if df is None or not require_columns(df, path.name, columns, problems, name_all=name_all):
        return None
    return df


def number(value, allowed_symbols) -> tuple[float, str]:
    """A published cell: (number, "") or (NaN, symbol). Anything else is a problem (ValueError)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return np.nan, "x"
    text = str(value).strip().replace(",", "")
    if text in allowed_symbols:
        return np.nan, text
    return float(text), ""


def numbers(df: pd.DataFrame, column: str, file: str, symbols, problems: Problems, header_rows: int = 1):
    """A column of counts as (numbers, symbols); a value that is neither is a problem naming its row."""
    values, flags = [], []
    for i, raw in enumerate(df[column].tolist()):
        try:
            v, s = number(raw, symbols)
            if not s and v < 0:
                raise ValueError
        except ValueError:
            problems.add(
                file,
                f"{raw!r} is not a count of 0 or more nor a published symbol ({', '.join(sorted(symbols))})",
                row=i + 1 + header_rows,
                column=column,
            )
            v, s = np.nan, "?"
        values.append(v)
        flags.append(s)
    return values, flags
