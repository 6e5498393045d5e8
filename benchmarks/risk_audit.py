"""Time the risk model audit on one council of about 20,000 closed cases.

Target (DESIGN.md): a council's notebook within 60 seconds. Usage:

    .venv/bin/python benchmarks/risk_audit.py [--children 12500] [--seed 7] [--reps 200]

Generates one synthetic council (insightlib.simulate.synth), loads it into a warehouse, then times
building the closed cases (analyses.risk_audit.cases_frame) and the audit (both models fitted on the
earlier closures, judged on the later ones with a child bootstrap), and prints the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, synthetic_council


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=12500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=200, help="bootstrap replicates")
    args = ap.parse_args()

    from insightlib.analyses import risk_audit
    from insightlib.ingest import warehouse

    params = risk_audit.check_evaluation_parameters(
        yaml.safe_load((ROOT / "evaluations" / "risk_audit.yml").read_text())["parameters"])
    params["bootstrap_reps"] = args.reps
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wh, la = synthetic_council(tmp, args.children, args.seed, key="benchmark-key-0123456789abcdef")
        tables = warehouse.read_council(wh, la)
        t0 = time.perf_counter()
        frame = risk_audit.cases_frame(tables)
        t1 = time.perf_counter()
        res = risk_audit.audit(frame, **params)
        t2 = time.perf_counter()
    d = res.to_dict()
    print(json.dumps({
        "closed_cases": int(len(frame)), "train_cases": d["split"]["train_cases"], "test_cases": d["split"]["test_cases"],
        "bootstrap_reps": args.reps, "seconds_cases": round(t1 - t0, 2), "seconds_audit": round(t2 - t1, 2), "seconds_by_step": d["seconds"],
        "auc": {k: round(v["metrics"]["auc"]["estimate"], 3) for k, v in d["models"].items()},
    }, indent=2))


if __name__ == "__main__":
    main()
