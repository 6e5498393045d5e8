"""One council of about 20,000 episodes: every council notebook executed and rendered.

DESIGN.md's target: within 60 s. Prints the episodes built, then for each evaluation the
notebook's wall time (kernel start included) and time inside cells, then the render time.

    .venv/bin/python benchmarks/one_council.py                   # about 20,000 closed episodes
    .venv/bin/python benchmarks/one_council.py --children 4000   # a quicker look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import run_fresh, synthetic_warehouse

from insightlib.batch.site import render_site
from insightlib.ingest import episodes, warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=12_700, help="children in the council (12,700 gives about 20,000 episodes)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--evaluations", nargs="+", default=["demo.yml", "fgc.yml"],
                        help="council-scope evaluation files under evaluations/")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wh, _failed, _t_synth, t_load = synthetic_warehouse(tmp, 1, args.children, args.seed)
        [la_code] = warehouse.council_codes(wh)
        n_episodes = len(episodes.build_episodes(warehouse.read_council(wh, la_code)))
        print(f"council {la_code}: {args.children:,} children, {n_episodes:,} closed episodes; "
              f"validate + pseudonymise + load {t_load:.1f}s")

        total = 0.0
        for name in args.evaluations:
            ev, runs = run_fresh(name, wh, tmp / "reports")
            for run in runs:
                print(f"{ev.notebook}: {run.seconds_total:.1f}s wall (cells {run.seconds_cells:.1f}s, "
                      f"fresh kernel start and papermill {run.seconds_total - run.seconds_cells:.1f}s)")
                total += run.seconds_total
        t0 = time.perf_counter()
        render_site(tmp / "reports", engine="html")
        t_render = time.perf_counter() - t0
        total += t_render
        print(f"render (HTML fallback): {t_render:.1f}s")
        print(f"every notebook executed and rendered: {total:.1f}s (target 60s)")


if __name__ == "__main__":
    main()
