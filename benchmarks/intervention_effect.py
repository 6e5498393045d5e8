"""Time the whole intervention-effect analysis on one council of about 20,000 episodes.

Target (DESIGN.md): within 60 seconds, refuters included. Usage:

    .venv/bin/python benchmarks/intervention_effect.py [--children 12500] [--seed 7] [--notebook]

Generates one synthetic council (insightlib.synth), loads it into a warehouse, then times
insightlib.causal.evaluate_intervention with the fgc-demo parameters (200 bootstrap
replicates, 5 simulations per refuter). With --notebook it also executes
notebooks/intervention_effect.ipynb with papermill and times that.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=12500, help="children in the council (12,500 gives about 20,000 episodes)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--notebook", action="store_true", help="also execute the notebook with papermill")
    args = ap.parse_args()

    from insightlib import causal, synth, warehouse

    params = yaml.safe_load((ROOT / "evaluations" / "fgc.yml").read_text())["parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        synth.generate(1, args.children, args.seed, tmp / "data")
        warehouse.load_directory(tmp / "data", tmp / "w.duckdb", key="benchmark-key-not-secret-0123456789")
        la = warehouse.council_codes(tmp / "w.duckdb")[0]
        prep = time.perf_counter() - t0

        t0 = time.perf_counter()
        tables = warehouse.read_council(tmp / "w.duckdb", la)
        result = causal.evaluate_intervention(tables, **params)
        analysis = time.perf_counter() - t0
        truth = json.loads((tmp / "data" / "truth.json").read_text())["intervention"]
        out = {
            "council": la,
            "episodes": result.counts["episodes"],
            "seconds_data_preparation": round(prep, 1),
            "seconds_analysis": round(analysis, 1),
            "seconds_by_step": result.seconds,
            "risk_difference": result.effect["risk_difference"].to_dict(),
            "true_ate_risk_difference": truth["ate_risk_difference"],
        }
        if args.notebook:
            import papermill as pm

            t0 = time.perf_counter()
            pm.execute_notebook(
                str(ROOT / "notebooks" / "intervention_effect.ipynb"), str(tmp / "out.ipynb"),
                parameters={"data": str(tmp / "w.duckdb"), "la_code": la, "output_dir": str(tmp), **params},
                progress_bar=False, cwd=str(ROOT),
            )
            out["seconds_notebook"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
