"""CPU seconds of what every council notebook reads before its analysis, in a warm process.

Each council report reads its tables (``warehouse.read_council``), asks whether the data are synthetic, for the
council's fingerprint and for what a load left out, and builds the episodes. Prints the median CPU of each over
warm repeats (the first call, which pays imports and reads the warehouse's catalogue, is left out), with the
load average; ``--baseline DIR`` runs the same in an older checkout first, for before and after in one run.

    .venv/bin/python benchmarks/council_read.py WAREHOUSE LA [--repeats 7] [--baseline /tmp/base]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(source: str, la_code: str, repeats: int) -> None:
    import insightlib
    from insightlib.ingest import warehouse
    from insightlib.ingest.episodes import build_episodes

    def once() -> tuple[float, float, float]:
        c = time.process_time()
        tables = warehouse.read_council(source, la_code)
        read = time.process_time() - c
        c = time.process_time()
        warehouse.is_synthetic(source)
        warehouse.data_fingerprint(source, la_code)
        warehouse.left_out_caveats(source, la_code)
        asked = time.process_time() - c
        c = time.process_time()
        build_episodes(tables)
        return read, asked, time.process_time() - c

    once()
    runs = [once() for _ in range(repeats)]
    read, asked, built = (statistics.median(r[i] for r in runs) for i in range(3))
    print(
        f"{Path(insightlib.__file__).parent.parent}: read_council {read * 1e3:.0f} ms CPU, is_synthetic + "
        f"data_fingerprint + left_out_caveats {asked * 1e3:.0f} ms, build_episodes {built * 1e3:.0f} ms, "
        f"together {(read + asked + built) * 1e3:.0f} ms a notebook (load {os.getloadavg()[0]:.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("warehouse")
    ap.add_argument("la_code")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline", help="an older checkout to measure first (its insightlib on PYTHONPATH)")
    args = ap.parse_args()
    if args.baseline:
        env = {**os.environ, "PYTHONPATH": str(Path(args.baseline).resolve())}
        cmd = [sys.executable, __file__, args.warehouse, args.la_code, "--repeats", str(args.repeats)]
        subprocess.run(cmd, env=env, check=True)
    measure(args.warehouse, args.la_code, args.repeats)


if __name__ == "__main__":
    main()
