"""The programme evaluation's parameters: adoption dates (a mapping, a CSV / YAML / JSON file, or the
synthetic data's truth.json), each council code and date checked with a message naming the mistake. The
analysis is in analyses/programme.py; methods in docs/programme.md."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError


def as_date(value: Any, where: str) -> pd.Timestamp | None:
    """A date from a parameter or a file (None for empty / never), or a message naming where it was wrong."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "never", "na"):
        return None
    try:
        out = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(
            f"{where}: {value!r} is not a date (write it as YYYY-MM-DD, or leave it empty for never)."
        ) from None
    return None if pd.isna(out) else out.normalize()


def council_code(value: Any, where: str) -> str:
    """A 3-digit council code (201 or "201"), or a message naming where it was wrong."""
    text = f"{value:03d}" if isinstance(value, (int, np.integer)) else str(value).strip()
    if not (len(text) == 3 and text.isdigit()):
        raise InputError(f"{where}: {value!r} is not a 3-digit council code (for example 201 for City of London).")
    return text


def normalise_adoption(adoption: Mapping[Any, Any], where: str = "adoption") -> dict[str, pd.Timestamp | None]:
    """A mapping la_code -> adoption date (None: never adopted), checked and normalised."""
    if not isinstance(adoption, Mapping):
        raise InputError(f"{where} must map council codes to adoption dates; got {type(adoption).__name__}.")
    out: dict[str, pd.Timestamp | None] = {}
    for key, value in adoption.items():
        code = council_code(key, where)
        out[code] = as_date(value, f"{where}, council {code}")
    return out


def _truth_programme_adoption(truth: dict, source: str) -> dict:
    programme = truth.get("programme") if isinstance(truth, dict) else None
    if not isinstance(programme, dict):
        raise InputError(f"{source} has no 'programme' section, so adoption dates cannot be read from it.")
    for key in ("adoption", "adoption_dates", "adopters"):
        if isinstance(programme.get(key), Mapping):
            return dict(programme[key])
        if isinstance(programme.get(key), list):  # list of {la_code, adoption_date}
            rows = programme[key]
            return {r.get("la_code"): r.get("adoption_date", r.get("date")) for r in rows if isinstance(r, Mapping)}
    raise InputError(f"{source}: the 'programme' section names no adoption dates (expected a mapping 'adoption').")


def read_truth(data: str | Path) -> tuple[dict, Path]:
    """truth.json written by the synthetic data generator, found in or beside ``data``."""
    data = Path(data)
    candidates = [data / "truth.json"] if data.is_dir() else []
    if data.is_file():
        source = _warehouse_source(data)
        if source is not None:
            candidates.append(Path(source) / "truth.json")
    candidates.append(data.parent / "truth.json")
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8")), path
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    raise InputError(
        f"adoption is 'from_truth' but no truth.json was found in or beside {data}. "
        "Give the adoption dates as a mapping (la_code: date) or an adoption_file instead."
    )


def _warehouse_source(path: Path) -> str | None:
    """The data directory a warehouse was loaded from (recorded by insight load), if any."""
    try:
        from ..ingest import warehouse

        if warehouse.is_warehouse(path):
            return warehouse.load_metadata(path).get("source")
    except Exception:  # noqa: BLE001 - a missing or older warehouse module just means no hint
        return None
    return None


def read_adoption_file(path: str | Path) -> dict[str, pd.Timestamp | None]:
    """Adoption dates from a CSV (columns la_code, adoption_date), YAML or JSON mapping."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such adoption file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"la_code", "adoption_date"} - set(df.columns)
        if missing:
            raise InputError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected la_code, adoption_date."
            )
        out = {}
        for i, row in enumerate(df.itertuples(index=False), start=2):
            code = council_code(row.la_code, f"{path}, row {i}")
            out[code] = as_date(row.adoption_date, f"{path}, row {i}, column adoption_date")
        return out
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        raw = json.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    if isinstance(raw, dict) and "adoption" in raw and isinstance(raw["adoption"], Mapping):
        raw = raw["adoption"]
    return normalise_adoption(raw, where=str(path))


def resolve_adoption(
    adoption: Any = None, *, data: str | Path | None = None, adoption_file: str | Path | None = None
) -> dict[str, pd.Timestamp | None]:
    """The notebook's adoption parameters as one mapping: a dict, ``"from_truth"``, or a file."""
    if adoption_file not in (None, ""):
        return read_adoption_file(adoption_file)
    if isinstance(adoption, str) and adoption.strip().lower() == "from_truth":
        if data is None:
            raise InputError("adoption is 'from_truth' but no data location was given to find truth.json beside.")
        truth, path = read_truth(data)
        return normalise_adoption(_truth_programme_adoption(truth, str(path)), where=str(path))
    if isinstance(adoption, (str, Path)) and str(adoption).strip():
        return read_adoption_file(adoption)
    if adoption is None:
        raise InputError(
            "No adoption dates were given: set 'adoption' (la_code: date), 'adoption: from_truth', or 'adoption_file'."
        )
    return normalise_adoption(adoption)
