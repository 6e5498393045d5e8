"""Batch benchmark: the demo evaluation for many small synthetic councils.

Prints total wall time, per-notebook overhead (kernel start, imports, papermill) against the
analysis time itself (time inside cells), and the speed-up from 1 to 2 workers.

    .venv/bin/python benchmarks/batch.py                 # 153 councils, 200 children each
    .venv/bin/python benchmarks/batch.py --councils 20   # a quicker look
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from insightlib import pseudonymise, synth
from insightlib.evaluation import load_evaluation, parse_evaluation
from insightlib.runner import prepare_warehouse, run_evaluation

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--councils", type=int, default=153)
    parser.add_argument("--children", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--evaluation", default=str(ROOT / "evaluations" / "demo.yml"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("INSIGHT_KEY_FILE", str(tmp / "bench.key"))
        if not Path(os.environ["INSIGHT_KEY_FILE"]).exists():
            pseudonymise.make_key_file(Path(os.environ["INSIGHT_KEY_FILE"]))
        t0 = time.perf_counter()
        synth.generate(args.councils, args.children, 7, tmp / "data")
        t_synth = time.perf_counter() - t0
        t0 = time.perf_counter()
        warehouse, failed = prepare_warehouse(tmp / "data", tmp / "load")
        t_load = time.perf_counter() - t0
        print(f"councils: {args.councils}, children per council: {args.children}")
        print(f"synthetic data: {t_synth:.1f}s; validate + pseudonymise + load: {t_load:.1f}s; failed validation: {len(failed)}")

        base = load_evaluation(args.evaluation, notebooks_dir=ROOT / "notebooks")
        walls = {}
        for workers in args.workers:
            ev = parse_evaluation({**base.to_dict(), "name": f"bench-{workers}"}, notebooks_dir=ROOT / "notebooks")
            summary = run_evaluation(ev, data=str(warehouse), out_dir=tmp / "reports", workers=workers,
                                     force=True, progress=True, log=lambda m: None)
            ran = [r for r in summary.runs if r.status == "ok"]
            walls[workers] = summary.seconds
            totals = [r.seconds_total for r in ran]
            cells = [r.seconds_cells for r in ran]
            overhead = [t - c for t, c in zip(totals, cells)]
            print(f"\nworkers={workers}: wall {summary.seconds:.1f}s for {len(ran)} notebooks "
                  f"({len(summary.failed)} failed), {summary.seconds / max(len(ran), 1):.2f}s per council")
            if ran:
                print(f"  per notebook: total median {statistics.median(totals):.2f}s, "
                      f"analysis (in cells) median {statistics.median(cells):.2f}s, "
                      f"overhead (kernel start, papermill) median {statistics.median(overhead):.2f}s "
                      f"= {100 * sum(overhead) / max(sum(totals), 1e-9):.0f}% of notebook time")
        if 1 in walls and 2 in walls:
            print(f"\nspeed-up from 1 to 2 workers: {walls[1] / walls[2]:.2f}x")


if __name__ == "__main__":
    main()
