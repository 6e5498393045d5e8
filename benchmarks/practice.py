"""The practice insight notebook for one council of about 20,000 episodes and 15,000 assessments.

DESIGN.md's target: within 60 s. Prints the council's size, the analysis in process by step
(latent class analysis with its BIC curve and stability checks, the Cox models, the rest), then
the notebook's wall time through papermill (kernel start included) and its time inside cells.

    .venv/bin/python benchmarks/practice.py                   # about 20,000 episodes, 15,000 assessments
    .venv/bin/python benchmarks/practice.py --children 3000   # a quicker look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import run_fresh, synthetic_warehouse

from insightlib.analyses import practice
from insightlib.ingest import warehouse
from insightlib.report.practice import PracticeReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=10_500, help="children (10,500 give about 20,000 episodes)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wh, _failed, _t_synth, _t_load = synthetic_warehouse(tmp, 1, args.children, args.seed, la_codes=["392"])
        tables = warehouse.read_council(wh, "392")
        t0 = time.perf_counter()
        result = practice.analyse(tables, "392")
        t1 = time.perf_counter()
        report = PracticeReport(result)
        report.headlines(), report.groupings_table(), report.population_table(), report.figures()
        t2 = time.perf_counter()
        print(f"council 392: {args.children:,} children, {len(tables['referrals']):,} referrals, "
              f"{result.episodes:,} episodes at risk, {len(tables['assessments']):,} assessments")
        print(f"in process: analyse {t1 - t0:.1f}s ({result.groupings.choice.chosen} groupings chosen), "
              f"report tables {t2 - t1:.1f}s")
        for run in run_fresh("practice.yml", wh, tmp / "reports")[1]:
            print(f"practice_insight notebook: {run.seconds_total:.1f}s wall (cells {run.seconds_cells:.1f}s); target 60 s")


if __name__ == "__main__":
    main()
