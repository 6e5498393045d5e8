"""The set-up the benchmarks share: a pseudonymisation key, synthetic councils in a warehouse, a notebook run.

Imported by the benchmark scripts (``python benchmarks/<name>.py`` puts this folder on the path).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from insightlib.batch.evaluation import load_evaluation
from insightlib.batch.plan import prepare_warehouse
from insightlib.batch.runner import run_evaluation
from insightlib.ingest import pseudonymise, warehouse
from insightlib.simulate import synth

ROOT = Path(__file__).resolve().parents[1]


def use_benchmark_key(tmp: Path) -> None:
    """A throwaway pseudonymisation key in ``tmp`` unless INSIGHT_KEY_FILE already names one."""
    os.environ.setdefault("INSIGHT_KEY_FILE", str(tmp / "bench.key"))
    if not Path(os.environ["INSIGHT_KEY_FILE"]).exists():
        pseudonymise.make_key_file(Path(os.environ["INSIGHT_KEY_FILE"]))


def synthetic_warehouse(tmp: Path, councils: int, children: int, seed: int, *, la_codes=None,
                        stop_on_failure: bool = True) -> tuple[Path, list, float, float]:
    """Synthetic councils validated, pseudonymised and loaded as ``insight run`` does (the key: use_benchmark_key).

    Returns (warehouse, councils that failed validation, seconds to generate, seconds to load); with
    ``stop_on_failure`` a council that fails validation stops the benchmark."""
    use_benchmark_key(tmp)
    t0 = time.perf_counter()
    synth.generate(councils, children, seed, tmp / "data", la_codes=la_codes)
    t_synth = time.perf_counter() - t0
    t0 = time.perf_counter()
    wh, failed = prepare_warehouse(tmp / "data", tmp / "load")
    t_load = time.perf_counter() - t0
    if failed and stop_on_failure:
        raise SystemExit(f"the synthetic council failed validation: {failed}")
    return wh, failed, t_synth, t_load


def synthetic_council(tmp: Path, children: int, seed: int, key: str) -> tuple[Path, str]:
    """One synthetic council loaded straight into a warehouse with ``key`` (no validation step): (warehouse, la_code)."""
    synth.generate(1, children, seed, tmp / "data")
    wh = tmp / "w.duckdb"
    warehouse.load_directory(tmp / "data", wh, key=key)
    return wh, warehouse.council_codes(wh)[0]


def run_fresh(evaluation: str, wh: Path, out_dir: Path):
    """Run ``evaluations/<evaluation>`` on the warehouse, a fresh kernel per notebook (as a council running one
    report would have); a council that fails stops the benchmark. Returns (the evaluation, its runs)."""
    ev = load_evaluation(ROOT / "evaluations" / evaluation, notebooks_dir=ROOT / "notebooks")
    summary = run_evaluation(ev, data=str(wh), out_dir=out_dir, workers=1, force=True, progress=False,
                             log=lambda m: None, reuse_kernels=False)
    for run in summary.runs:
        if run.status != "ok":
            raise SystemExit(f"{evaluation}: {run.la_code} failed: {run.error}")
    return ev, summary.runs
