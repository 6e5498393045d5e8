"""Time the whole intervention-effect analysis on one council of about 20,000 episodes.

Target (DESIGN.md): within 60 seconds, refuters included. Usage:

    .venv/bin/python benchmarks/intervention_effect.py [--children 12500] [--seed 7] [--notebook]

Generates one synthetic council (insightlib.simulate.synth), loads it into a warehouse, then times
insightlib.analyses.intervention.evaluate_intervention with the fgc-demo parameters (200 bootstrap
replicates, 3 simulations per refuter). With --notebook it also executes
notebooks/intervention_effect.ipynb with papermill and times that. With --coverage it instead
repeats simulate_intervention.simulate_frame (known truth) and prints how often each 95% interval covers it
(the figures quoted in docs/causal.md; tests/test_causal.py checks the same at fewer repeats).
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
    ap.add_argument("--coverage", type=int, default=0, metavar="REPS",
                    help="instead: coverage of the intervals over REPS simulated data sets of 1,500 episodes")
    args = ap.parse_args()
    if args.coverage:
        print(json.dumps(coverage(args.coverage), indent=2))
        return

    from insightlib.analyses import intervention
    from insightlib.simulate import intervention as simulate_intervention
    from insightlib.simulate import synth
    from insightlib.ingest import warehouse

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
        result = intervention.evaluate_intervention(tables, **params)
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
                progress_bar=False, cwd=str(ROOT), extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
            out["seconds_notebook"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


def coverage(reps: int, n: int = 1500) -> dict:
    """Share of simulated data sets whose 95% interval covers the true ATE, by estimator."""
    from insightlib.analyses import intervention
    from insightlib.simulate import intervention as simulate_intervention

    _, truth = simulate_intervention.simulate_frame(10, seed=0, truth_draws=2_000_000)
    params = {"intervention": "x", "horizon_days": 365, "covariates": simulate_intervention.SIM_COVARIATES, "graph": simulate_intervention.SIM_GRAPH,
              "trim": "none", "bootstrap_reps": 200, "refutation_simulations": 0}
    keys = ("naive", "ipw", "matching", "regression", "aipw", "km_risk_difference", "rmst_difference",
            "hazard_ratio_conditional")
    hits = dict.fromkeys(keys, 0)
    bias = {"naive": 0.0, "aipw": 0.0, "km_risk_difference": 0.0}
    t0 = time.perf_counter()
    for s in range(reps):
        frame, _ = simulate_intervention.simulate_frame(n, seed=9000 + s, truth_draws=10)
        res = intervention.evaluate_intervention(frame=frame, **params)
        ests = {**res.methods, "naive": res.naive["risk_difference"], "km_risk_difference": res.effect["risk_difference"],
                "rmst_difference": res.effect["rmst_difference"],
                "hazard_ratio_conditional": res.effect["hazard_ratio_conditional"]}
        target = {"rmst_difference": truth["ate_rmst_difference"], "hazard_ratio_conditional": truth["conditional_hazard_ratio"]}
        for k in keys:
            hits[k] += ests[k].ci_low <= target.get(k, truth["ate_risk_difference"]) <= ests[k].ci_high
        for k in bias:
            bias[k] += (ests[k].estimate - truth["ate_risk_difference"]) / reps
    return {"repeats": reps, "episodes_each": n, "true_ate_risk_difference": truth["ate_risk_difference"],
            "coverage_of_95pct_intervals": {k: v / reps for k, v in hits.items()},
            "mean_bias_risk_difference_points": {k: round(100 * v, 2) for k, v in bias.items()},
            "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    main()
