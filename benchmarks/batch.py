"""Batch benchmark: the demo evaluation for many small synthetic councils.

Prints total wall time, per-notebook overhead against the analysis time itself, and the
speed-up from 1 to 2 workers. The overhead is split with two calibration notebooks run the
same way (papermill, a fresh kernel each): an empty one (kernel start, parameter injection,
writing the notebook) and one that only imports what the demo notebook imports.

    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/batch.py                # 153 councils, 200 children each
    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/batch.py --councils 30  # a quicker look
    ... --json out.json     # the figures as JSON as well

The machine's load average is printed before and after: on a shared machine the figures
(and above all the speed-up) mean little when other work was running.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from common import synthetic_warehouse

from insightlib.batch.evaluation import load_evaluation, parse_evaluation
from insightlib.batch.execute import execute_council
from insightlib.batch.kernels import KERNEL_REUSE_LIMIT
from insightlib.batch.runner import FRESH_KERNELS_ENV, run_evaluation

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _imports_of(notebook: Path) -> str:
    """The import lines of a notebook's code cells (what every kernel pays for before any analysis)."""
    nb = nbformat.read(str(notebook), as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [ln for ln in cell.source.splitlines() if ln.startswith(("import ", "from "))]
    return "\n".join(dict.fromkeys(lines))


def calibrate(notebook: Path, folder: Path, repeats: int = 5) -> dict:
    """Fastest of ``repeats`` runs (the least disturbed by other work on the machine) of an empty
    notebook and of one that only imports, each in a fresh kernel, as the batch runs them."""
    folder.mkdir(parents=True, exist_ok=True)
    cells = {"empty": "pass", "imports": _imports_of(notebook)}
    out = {}
    for name, source in cells.items():
        nb = new_notebook(cells=[new_code_cell("x = 0", metadata={"tags": ["parameters"]}), new_code_cell(source)],
                          metadata=KERNELSPEC)
        path = folder / f"{name}.ipynb"
        nbformat.write(nb, str(path))
        times = []
        for i in range(repeats):
            task = {"la_code": f"{name}{i}", "input_notebook": str(path), "parameters": {"x": 1},
                    "output_notebook": str(folder / f"{name}{i}" / f"{name}.ipynb"), "manifest": {}}
            t0 = time.perf_counter()
            run = execute_council(task)
            times.append(time.perf_counter() - t0)
            if run["status"] != "ok":
                raise SystemExit(f"calibration notebook {name} failed: {run['error']}")
        out[name] = min(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--councils", type=int, default=153)
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--evaluation", default=str(ROOT / "evaluations" / "demo.yml"))
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    figures: dict = {"councils": args.councils, "children": args.children, "cores": os.cpu_count(),
                     "load_before": os.getloadavg()}
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warehouse, failed, t_synth, t_load = synthetic_warehouse(tmp, args.councils, args.children, 7,
                                                                 stop_on_failure=False)
        print(f"councils: {args.councils}, children per council: {args.children}")
        print(f"synthetic data: {t_synth:.1f}s; validate + pseudonymise + load: {t_load:.1f}s; failed validation: {len(failed)}")
        figures.update(synth_seconds=t_synth, load_seconds=t_load)

        base = load_evaluation(args.evaluation, notebooks_dir=ROOT / "notebooks")
        cal = calibrate(base.notebook_path(ROOT / "notebooks"), tmp / "calibration")
        figures["calibration"] = cal
        print(f"calibration (one worker, fastest of 5, fresh kernels): empty notebook {cal['empty']:.2f}s "
              f"(kernel start, papermill); imports only {cal['imports']:.2f}s "
              f"(so imports cost {cal['imports'] - cal['empty']:.2f}s)")
        walls = {}
        reuse = os.environ.get(FRESH_KERNELS_ENV, "") not in ("1", "true", "yes")
        figures["kernels"] = "warm (reused)" if reuse else "fresh per notebook"
        print(f"kernels: {figures['kernels']}")
        for workers in args.workers:
            ev = parse_evaluation({**base.to_dict(), "name": f"bench-{workers}"}, notebooks_dir=ROOT / "notebooks")
            summary = run_evaluation(ev, data=str(warehouse), out_dir=tmp / "reports", workers=workers,
                                     force=True, progress=True, log=lambda m: None)
            ran = [r for r in summary.runs if r.status == "ok"]
            walls[workers] = summary.seconds
            totals = [r.seconds_total for r in ran]
            cells = [r.seconds_cells for r in ran]
            outside = [t - c for t, c in zip(totals, cells)]
            imports = max(cal["imports"] - cal["empty"], 0.0)
            # With warm kernels (the default) only a kernel's first notebook pays for the imports:
            # one kernel per worker, replaced every KERNEL_REUSE_LIMIT notebooks.
            if reuse:
                kernels = min(len(ran), workers * math.ceil(len(ran) / (workers * KERNEL_REUSE_LIMIT)))
            else:
                kernels = len(ran)
            import_share = imports * kernels / max(len(ran), 1)  # imports per notebook, on average
            analysis = [max(c - import_share, 0.0) for c in cells]
            row = {"wall_seconds": summary.seconds, "notebooks": len(ran), "failed": len(summary.failed),
                   "median_total": statistics.median(totals) if ran else None,
                   "median_in_cells": statistics.median(cells) if ran else None,
                   "median_outside_cells": statistics.median(outside) if ran else None,
                   "median_analysis_estimate": statistics.median(analysis) if ran else None,
                   "kernel_starts": kernels, "imports_per_notebook": import_share}
            figures[f"workers_{workers}"] = row
            print(f"\nworkers={workers}: wall {summary.seconds:.1f}s for {len(ran)} notebooks "
                  f"({len(summary.failed)} failed), {summary.seconds / max(len(ran), 1):.2f}s per council")
            if ran:
                share = 100 * (sum(outside) + imports * kernels) / max(sum(totals), 1e-9)
                print(f"  per notebook (median): total {row['median_total']:.2f}s = "
                      f"outside cells (kernel start or reset, papermill) {row['median_outside_cells']:.2f}s"
                      f" + in cells {row['median_in_cells']:.2f}s, of which imports about {import_share:.2f}s "
                      f"on average ({kernels} kernel start(s) for {len(ran)} notebooks) "
                      f"and analysis about {row['median_analysis_estimate']:.2f}s")
                print(f"  overhead (kernel start, papermill, imports) = {share:.0f}% of notebook time")
        if 1 in walls and 2 in walls:
            figures["speed_up_1_to_2"] = walls[1] / walls[2]
            print(f"\nspeed-up from 1 to 2 workers: {walls[1] / walls[2]:.2f}x")
    figures["load_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
