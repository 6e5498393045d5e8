"""National-scale benchmark for re-referral survival (DESIGN.md performance targets).

About 3.4 million closed episodes across 153 councils (England 2014-2019 scale): times and
peak memory of building episodes from referral tables, Kaplan-Meier by primary need,
the child-clustered group test, Aalen-Johansen, RMST and the Cox model with child-clustered robust errors; then
lifelines' own ``cluster_col`` on 100,000 episodes against ours on the same rows.

    .venv/bin/python benchmarks/national_survival.py [--children 1550000] [--lifelines-rows 100000]

Target (issue 17): building episodes, KM, log-rank, clustered Cox and the PH test together within
30 s wall and 4 GB peak on 2 cores. The Cox model fits each distinct (time, event, covariates) row
once with a count (insightlib.stats.cox.collapse_rows: 662k distinct of 3.27M episodes). The referral tables are simulated with insightlib.simulate.survival.simulate_tables
(vectorised numpy; not part of the timed target).

Each stage prints wall-clock seconds, the CPU seconds this process used (user + system,
all threads) and the machine's 1-minute load average: on a shared machine the wall time
grows with other people's work, the CPU time much less so. Run it under the shared lock:

    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/national_survival.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.analyses import rereferral
from insightlib.simulate import survival as simulate_survival
from insightlib.stats import competing_risks
from insightlib.stats import cox as cox_model
from insightlib.stats import logrank
from insightlib.stats import survival as surv
from insightlib.ingest.episodes import at_risk, build_episodes

NEED_LOG_HR = {f"N{i}": v for i, v in enumerate([0.0, 0.3, -0.5, -0.1, 0.2, 0.25, 0.1, -0.6, 0.15, -0.8])}


def peak_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024**3 if sys.platform == "darwin" else 1024**2)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(label: str, results: list, fn, *args, **kw):
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = fn(*args, **kw)
    dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
    load = os.getloadavg()[0]
    results.append({"stage": label, "seconds": round(dt, 2), "cpu_seconds": round(dc, 2), "load_1min": round(load, 1),
                    "peak_gb_so_far": round(peak_gb(), 2)})
    print(f"{label:<48} {dt:8.2f} s wall {dc:8.2f} s cpu   load {load:4.1f}   peak {peak_gb():5.2f} GB", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=1_550_000, help="children simulated (about 2.2 episodes each)")
    ap.add_argument("--lifelines-rows", type=int, default=100_000, help="0 skips the lifelines comparison")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    la_codes = tuple(reference.local_authorities()["la_code"])
    print(f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}; "
          f"{len(la_codes)} councils, {args.children:,} children", flush=True)
    res: list[dict] = []
    tables = timed("simulate referral tables (not in target)", res, simulate_survival.simulate_tables, args.children, seed=args.seed,
                   la_codes=la_codes, need_log_hr=NEED_LOG_HR, start="2013-04-01", extract="2019-03-31",
                   base_rate=1 / 500)
    print(f"  {len(tables['referrals']):,} referrals", flush=True)
    target_start = len(res)
    episodes = timed("build episodes from tables", res, build_episodes, tables)
    del tables
    ep = timed("groupings (age band ...) and at-risk episodes", res,
               lambda e: rereferral.add_groupings(at_risk(e, renumber=True)), episodes)
    print(f"  {len(episodes):,} closed episodes, {len(ep):,} with follow-up, "
          f"{ep['child_id'].nunique():,} children", flush=True)
    del episodes
    t = ep["duration_days"].to_numpy()
    e = ep["event"].to_numpy()
    need = ep["primary_need"].to_numpy()
    clusters = timed("child key for clustering", res, rereferral.child_key, ep)
    timed("Kaplan-Meier by primary need, bands clustered by child", res, surv.kaplan_meier, t, e, need,
          clusters=clusters)
    lr = timed("group test (robust score, clustered), 10 groups", res, logrank.logrank_test, t, e, need,
               clusters=clusters)
    X, refs = timed("Cox design matrix (14 terms)", res, rereferral.cox_design, ep,
                 ["primary_need", "age_band", "referral_nfa", "previous_referrals"])
    cox = timed("Cox (Efron) + clustered robust variance + PH test", res, cox_model.cox_ph, t, e, X, clusters=clusters)
    target = sum(r["seconds"] for r in res[target_start:])
    target_cpu = sum(r["cpu_seconds"] for r in res[target_start:])
    timed("Aalen-Johansen by need, clustered bands (extra)", res, competing_risks.cumulative_incidence, t, e, need,
          clusters=clusters)
    timed("RMST by need, clustered differences (extra)", res, surv.rmst, t, e, need, 365, clusters)
    print(f"\nTarget stages (episodes, groupings, KM, log-rank, design, Cox): {target:.1f} s wall, "
          f"{target_cpu:.1f} s CPU; peak memory {peak_gb():.2f} GB (simulated input tables included)", flush=True)
    print(f"{lr.method} chi-square {lr.statistic:.0f} on {lr.df} df (log-rank {lr.logrank_statistic:.0f})")
    tab = cox.terms.set_index("term")
    ref_need = refs["primary_need"]
    print(f"log hazard ratios of re-referral against {ref_need} (simulated truth in brackets):")
    for k, truth in NEED_LOG_HR.items():
        term = f"primary_need[{k}]"
        if term in tab.index:
            print(f"  {term}: {tab.loc[term, 'coef']:+.3f} (robust se {tab.loc[term, 'robust_se']:.4f}) "
                  f"[{truth - NEED_LOG_HR[ref_need]:+.3f}]")
    if args.lifelines_rows <= 0:  # lifelines' cluster_col takes minutes: skip with --lifelines-rows 0
        print(pd.DataFrame(res).to_string(index=False))
        return 0
    # lifelines' own clustered fit on a sample, for the ratio
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    sample = rng.choice(len(ep), size=min(args.lifelines_rows, len(ep)), replace=False)
    Xs = X.iloc[sample].reset_index(drop=True)
    df = Xs.copy()
    df.columns = [f"x{i}" for i in range(Xs.shape[1])]
    df["T"], df["E"], df["id"] = t[sample], (e[sample] == 1).astype(int), clusters[sample]
    ours = timed(f"ours: Cox clustered on {len(sample):,} rows", res, cox_model.cox_ph, t[sample], e[sample], Xs,
                 clusters=clusters[sample])
    ll = timed(f"lifelines cluster_col on {len(sample):,} rows", res,
               lambda: CoxPHFitter().fit(df, "T", "E", cluster_col="id"))
    ratio = res[-1]["seconds"] / max(res[-2]["seconds"], 1e-9)
    diff_coef = np.max(np.abs(ours.terms["coef"].to_numpy() - ll.params_.to_numpy()))
    rel_se = np.max(np.abs(ours.terms["robust_se"].to_numpy() / ll.standard_errors_.to_numpy() - 1))
    print(f"lifelines / ours on the same rows: {ratio:.0f}x; max |coef difference| {diff_coef:.2e}; "
          f"max relative robust-SE difference {rel_se:.2%} (lifelines' Efron score residuals differ from R's with ties)")
    print(f"peak memory {peak_gb():.2f} GB")
    print(pd.DataFrame(res).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
