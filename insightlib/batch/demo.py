"""`insight demo`'s steps: which evaluation files are the demo's, and the synthetic councils made, checked and loaded.

Split from cli.py, which keeps the command's options, its messages and its exit code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import InsightError

#: The data an evaluation file names when it is one of the demo's: the synthetic councils, or the
#: published data shipped with insight. An evaluation of your own data is never run by the demo.
DEMO_DATA = ("data/demo", "data/demo.duckdb", "reference")


def demo_evaluation_files(folder: Path) -> list[Path]:
    """The evaluation files of the demo in ``folder``: those whose data are the demo's (DEMO_DATA)."""
    import yaml

    files = []
    for path in sorted(folder.glob("*.yml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not the demo's: insight run of that file says what is wrong with it
        if isinstance(raw, dict) and str(raw.get("data", "")).strip().rstrip("/") in DEMO_DATA:
            files.append(path)
    return files


def use_demo_key(note: Callable[[str], None]) -> None:
    """The demo's own pseudonymisation key (.insight/demo.key), unless the environment names one."""
    from ..ingest import pseudonymise

    if os.environ.get("INSIGHT_KEY") or os.environ.get("INSIGHT_KEY_FILE"):
        return
    key_path = Path(".insight/demo.key")
    if not key_path.exists():
        pseudonymise.make_key_file(key_path)
    os.environ["INSIGHT_KEY_FILE"] = str(key_path.resolve())
    note(f"Demo pseudonymisation key: {key_path} (for real data keep the key outside the repository)")


def prepare_demo_data(
    data_dir: Path,
    councils: int,
    children: int,
    seed: int,
    *,
    force: bool,
    say: Callable[[str], None],
    note: Callable[[str], None],
) -> Path:
    """Synthetic councils written to ``data_dir``, validated and loaded into the warehouse beside it (returned)."""
    from ..ingest import warehouse as wh_mod
    from ..ingest.validate import check_directory
    from ..simulate import synth as synth_mod

    synth_mod.check_out_dir(data_dir, force)  # before the key and the minutes of simulation
    use_demo_key(note)
    synth_mod.generate(councils, children, seed, data_dir, force=force)
    say(f"1/4 synthetic data for {councils} councils -> {data_dir}")
    report = check_directory(data_dir)
    if not report.ok:
        say(report.format_text(50))
        raise InsightError("the synthetic data failed validation (a bug: please report it).")
    demo_warehouse = wh_mod.default_warehouse_path(data_dir)  # data/demo -> data/demo.duckdb, beside it
    wh_mod.load_directory(data_dir, demo_warehouse)
    say(f"2/4 validated against the data contract and loaded into {demo_warehouse} (the notebooks' default data)")
    return demo_warehouse
