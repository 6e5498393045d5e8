"""Time the whole intervention-effect analysis on one council of about 20,000 episodes.

Target (issue 17): within 2 seconds of analysis a council. Usage:

    .venv/bin/python benchmarks/intervention_effect.py [--children 12500] [--seed 7] [--notebook]
    .venv/bin/python benchmarks/intervention_effect.py --baseline /tmp/base [--rounds 2]

Generates one synthetic council (insightlib.simulate.synth), loads it into a warehouse, then times
insightlib.analyses.intervention.evaluate_intervention with the fgc-demo parameters (200 bootstrap
replicates, 3 simulations per refuter). With --baseline DIR (a checkout of an older commit, e.g.
``git archive <commit> | tar -x -C DIR``) it times that code and this one on the same warehouse, in
fresh processes taking turns, and prints both: wall and CPU seconds of reading the council and of the
analysis, for the first council a process analyses (DoWhy and pydot warming up) and for the next ones
(a batch's warm kernel), with the load average, and the headline intervals of each. With --notebook it
also executes notebooks/intervention_effect.ipynb with papermill and times that. With --coverage it
instead repeats simulate_intervention.simulate_frame (known truth) and prints how often each 95%
interval covers it (the figures quoted in docs/causal.md; tests/test_causal.py checks the same).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, synthetic_council


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=12500, help="children in the council (12,500 gives about 20,000 episodes)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--notebook", action="store_true", help="also execute the notebook with papermill")
    ap.add_argument("--coverage", type=int, default=0, metavar="REPS",
                    help="instead: coverage of the intervals over REPS simulated data sets of 1,500 episodes")
    ap.add_argument("--baseline", type=Path, help="also time the code in this checkout (before/after in one run)")
    ap.add_argument("--rounds", type=int, default=2, help="with --baseline: processes per version, taking turns")
    ap.add_argument("--councils", type=int, default=3, help="with --baseline: analyses per process (first cold, rest warm)")
    ap.add_argument("--worker", nargs=2, metavar=("WAREHOUSE", "LA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(_time_in_process(Path(args.worker[0]), args.worker[1], args.councils)))
        return
    if args.baseline:
        compare(args)
        return
    if args.coverage:
        print(json.dumps(coverage(args.coverage), indent=2))
        return

    from insightlib.analyses import intervention
    from insightlib.ingest import warehouse

    params = yaml.safe_load((ROOT / "evaluations" / "fgc.yml").read_text())["parameters"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        wh, la = synthetic_council(tmp, args.children, args.seed, key="benchmark-key-not-secret-0123456789")
        prep = time.perf_counter() - t0

        t0 = time.perf_counter()
        tables = warehouse.read_council(wh, la)
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
                parameters={"data": str(wh), "la_code": la, "output_dir": str(tmp), **params},
                progress_bar=False, cwd=str(ROOT), extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
            out["seconds_notebook"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


def _time_in_process(wh: Path, la: str, councils: int) -> dict:
    """Import, then read and analyse the council ``councils`` times in this process (wall and CPU seconds)."""
    t0, c0 = time.perf_counter(), time.process_time()
    from insightlib.analyses import intervention
    from insightlib.ingest import warehouse

    out = {"import_seconds": round(time.perf_counter() - t0, 2), "import_cpu": round(time.process_time() - c0, 2),
           "runs": []}
    params = yaml.safe_load((ROOT / "evaluations" / "fgc.yml").read_text())["parameters"]
    for _ in range(councils):
        t0, c0 = time.perf_counter(), time.process_time()
        tables = warehouse.read_council(wh, la)
        t1, c1 = time.perf_counter(), time.process_time()
        res = intervention.evaluate_intervention(tables, **params)
        t2, c2 = time.perf_counter(), time.process_time()
        out["runs"].append({"read": round(t1 - t0, 2), "read_cpu": round(c1 - c0, 2), "analysis": round(t2 - t1, 2),
                            "analysis_cpu": round(c2 - c1, 2), "load_1min": round(os.getloadavg()[0], 1)})
    out["episodes"] = res.counts["episodes"]
    out["intervals"] = {k: [round(v, 5) for v in (e.estimate, e.ci_low, e.ci_high)]
                        for k, e in res.effect.items() if hasattr(e, "ci_low")}
    return out


def compare(args) -> None:
    """The baseline checkout and this one on the same council, in fresh processes taking turns."""
    from insightlib.ingest import warehouse
    from insightlib.simulate import synth

    versions = {"before": Path(args.baseline).resolve(), "after": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synth.generate(1, args.children, args.seed, tmp / "data")
        warehouse.load_directory(tmp / "data", tmp / "w.duckdb", key="benchmark-key-not-secret-0123456789")
        la = warehouse.council_codes(tmp / "w.duckdb")[0]
        got: dict[str, list] = {k: [] for k in versions}
        for _ in range(args.rounds):
            for name, root in versions.items():
                env = {**os.environ, "PYTHONPATH": str(root)}
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tmp / "w.duckdb"), la,
                       "--councils", str(args.councils)]
                r = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True)
                got[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"council {la}: {got['after'][0]['episodes']:,} episodes; {args.rounds} processes per version, "
          f"{args.councils} analyses each (the first in a process is cold, the rest as in a warm batch kernel)")
    print(f"{'version':<8} {'process':>7} {'council':>7} {'read s':>7} {'read cpu':>8} {'analysis s':>10} "
          f"{'analysis cpu':>12} {'load':>5}")
    for name, procs in got.items():
        for i, p in enumerate(procs):
            for j, r in enumerate(p["runs"]):
                print(f"{name:<8} {i + 1:>7} {j + 1:>7} {r['read']:>7.2f} {r['read_cpu']:>8.2f} {r['analysis']:>10.2f} "
                      f"{r['analysis_cpu']:>12.2f} {r['load_1min']:>5.1f}")
    for name, procs in got.items():
        warm = [r for p in procs for r in p["runs"][1:]]
        cold = [p["runs"][0] for p in procs]
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        print(f"{name}: median analysis {med([r['analysis'] for r in warm]):.2f} s wall, "
              f"{med([r['analysis_cpu'] for r in warm]):.2f} s CPU a council (warm); first council in a process "
              f"{med([r['analysis_cpu'] for r in cold]):.2f} s CPU; read {med([r['read_cpu'] for r in warm]):.2f} s CPU")
    for name, procs in got.items():
        print(f"{name} intervals (estimate, low, high): {json.dumps(procs[0]['intervals'])}")


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
