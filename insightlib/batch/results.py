"""The results contract: every notebook, for every council, writes results.json beside itself.

It carries the parameters, the data fingerprint, package versions and the key figures
with machine-readable names (docs/architecture.md, results contract). National roll-ups and tests read these files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PACKAGES = ("insightlib", "pandas", "numpy", "scipy", "lifelines", "dowhy", "statsmodels", "duckdb", "papermill")


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions; insightlib's is the one derived from git (``code_version``)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["insightlib"] = code_version()
    return out


def code_version() -> str:
    """insightlib's version as setuptools-scm derived it from the git tags (e.g. 0.2.1.dev3+g1a2b3c4): which code
    made a results.json or a run."""
    from insightlib import __version__

    return __version__


def to_jsonable(value: Any) -> Any:
    """Plain JSON types; NaN and infinities become null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "to_dict") and not isinstance(value, (pd.DataFrame, pd.Series)):
        return to_jsonable(value.to_dict())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if value is pd.NaT:
        return None
    return value


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Write JSON so that a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(to_jsonable(payload), fh, indent=2, sort_keys=False)
        os.replace(tmp, path)
    except BaseException:  # a full disk or a bad value: no half-written .tmp-*.json is left behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_results(
    output_dir: str | os.PathLike,
    *,
    notebook: str,
    la_code: str,
    parameters: dict,
    data_fingerprint: str,
    figures: dict,
    synthetic: bool = False,
) -> Path:
    """Write ``results.json`` in ``output_dir``: the key figures plus how they were made.
    ``synthetic`` (from ``warehouse.is_synthetic``) marks figures of made-up data as such."""
    from ..contract import council_code

    payload = {
        "notebook": notebook,
        "la_code": council_code(la_code),
        "synthetic": bool(synthetic),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "parameters": parameters,
        "data_fingerprint": data_fingerprint,
        "insightlib_version": code_version(),
        "versions": package_versions(),
        **figures,
    }
    return write_json_atomic(Path(output_dir) / "results.json", payload)


def read_results(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
