"""CPU seconds of one council notebook's cells run in this process, as a batch's warm kernel runs them.

Runs a notebook's code cells (its parameters from the evaluation file, the warehouse and council given) several
times in one process and prints each pass's wall and CPU seconds with the load average, and each cell's wall
and CPU time in the last pass: the analysis and chart-drawing cost of a report without kernel start or papermill.
Pass 1 pays the imports; the later passes are what a warm kernel pays per council.

    .venv/bin/python benchmarks/notebook_cells.py rereferral.ipynb demo.yml WAREHOUSE LA [--passes 3]
    PYTHONPATH=/tmp/base .venv/bin/python /tmp/base/benchmarks/notebook_cells.py ...   # an older checkout

A warehouse of one large council: ``benchmarks/intervention_effect.py`` makes one in a temporary folder;
``insight synth --councils 1 --children 12700`` then ``insight load`` makes one to keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", help="a notebook under notebooks/, e.g. rereferral.ipynb")
    ap.add_argument("evaluation", help="an evaluation file under evaluations/, e.g. demo.yml")
    ap.add_argument("warehouse")
    ap.add_argument("la_code")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    import IPython.display

    IPython.display.display = lambda *a, **k: None  # the outputs are made (charts drawn) but not kept
    cells = [
        c for c in json.loads((ROOT / "notebooks" / args.notebook).read_text())["cells"] if c["cell_type"] == "code"
    ]
    params = yaml.safe_load((ROOT / "evaluations" / args.evaluation).read_text()).get("parameters") or {}
    with tempfile.TemporaryDirectory() as out:
        cpu = []
        for i in range(args.passes):
            # a fresh namespace each pass, as the warm kernel's wipe leaves it (modules stay imported)
            namespace: dict = {}
            exec("".join(cells[0]["source"]), namespace)
            namespace.update(params, data=args.warehouse, la_code=args.la_code, output_dir=out)
            t0, c0 = time.perf_counter(), time.process_time()
            timings = []
            for cell in cells[1:]:
                source = "".join(cell["source"])
                t, c = time.perf_counter(), time.process_time()
                exec(compile(source, args.notebook, "exec"), namespace)
                first_line = source.strip().splitlines()[0][:70] if source.strip() else ""
                timings.append((time.perf_counter() - t, time.process_time() - c, first_line))
            cpu.append(time.process_time() - c0)
            print(
                f"pass {i + 1}: {time.perf_counter() - t0:.2f} s wall, {cpu[-1]:.2f} s CPU, load {os.getloadavg()[0]:.1f}"
            )
    print("  the last pass's cells: wall, CPU seconds, first line")
    for seconds, cpu_seconds, first_line in timings:
        print(f"  {seconds:6.2f} s {cpu_seconds:6.2f} s CPU  {first_line}")
    if len(cpu) > 1:
        print(f"{args.notebook}: median CPU of the warm passes {statistics.median(cpu[1:]):.2f} s")


if __name__ == "__main__":
    main()
