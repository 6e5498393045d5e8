"""Skills gap benchmark: the analysis for several areas from the shipped published data.

Prints the time to load the shipped tables, the first area (which also runs the projections'
back-tests over every council and district, once per process) and each further area.

    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/skills.py
    ... --areas 371 "South Yorkshire" "Greater Manchester" 372 --draws 2000

The machine's load average is printed before and after: figures from a shared machine mean little.
"""

from __future__ import annotations

import argparse
import os
import time

from insightlib.analyses import skills, skills_gap
from insightlib.ingest import skills as src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", nargs="+", default=["371", "South Yorkshire", "Greater Manchester", "372"])
    parser.add_argument("--draws", type=int, default=skills_gap.DRAWS)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    started = time.perf_counter()
    src.load_tables()
    print(f"shipped tables loaded: {time.perf_counter() - started:.2f} s")
    for i, area in enumerate(args.areas):
        t = time.perf_counter()
        result = skills.analyse(area, draws=args.draws)
        note = " (includes the back-tests, once per process)" if i == 0 else ""
        print(f"{result.area.name}: {time.perf_counter() - t:.2f} s, {args.draws} draws{note}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
