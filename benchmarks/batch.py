"""Batch benchmark: every evaluation of the demo, then the render, for many synthetic councils at a real size.

What an evaluator plans a national run by (issue 17 items 1 and 6). For each number of councils it runs, one
after another as `insight demo` does, every evaluation file of the demo (evaluations/*.yml whose data are the
demo's: the four council reports, the national programme evaluation, the skills explorer's areas) and then
renders the site, and prints for each: wall time, CPU seconds (the whole process tree), per-council cost, peak
memory (resident memory of the whole process tree, sampled), and the share of the workers' time spent outside
analysis: kernel start or reset, papermill and writing the notebook (outside the cells, measured per notebook),
the imports (the calibration below, paid once per kernel) and the pool's own start, planning and idle tail.
With two or more council counts it fits wall = fixed + per council x councils and extrapolates to 153.

The imports are split out with calibration notebooks run the same way (papermill, a fresh kernel each): an
empty one (kernel start, parameter injection, writing the notebook) and one that only imports what each
notebook imports.

    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/batch.py --councils 10 30 --children 12700 2000
    ... --councils 10 --children 2000           # a quicker look
    ... --separate                              # each evaluation in its own pool, one after another (as before
                                                # batch/suite.py), to compare
    ... --dask                                  # also the council reports on a local Dask cluster of two
                                                # workers (smallest size), results.json compared with the pool's
    ... --keep /tmp/bench-data                  # keep (and reuse) the synthetic warehouses between runs
    ... --json out.json                         # the figures as JSON as well

The machine's load average is printed before and after each stage: on a shared machine the wall times
mean little when other work was running (the CPU seconds mean more).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from common import use_benchmark_key

from insightlib.batch.demo import demo_evaluation_files
from insightlib.batch.evaluation import load_evaluation
from insightlib.batch.execute import execute_council, skip_iri_checker_import
from insightlib.batch.kernels import KERNEL_REUSE_LIMIT
from insightlib.batch.runner import FRESH_KERNELS_ENV, run_evaluation
from insightlib.batch.suite import run_suite

# The pool's workers are spawned: each imports this module again (as __mp_main__), so it imports only what a
# worker of 'insight run' would; the rest (nbformat, the render, the generator) is imported where it is used.
skip_iri_checker_import()

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
GB = 1024**3


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


class TreeMeter:
    """CPU seconds and peak resident memory of this process and everything it starts (pool workers, kernels,
    Quarto), sampled every 0.2 s: a process that ends between two samples keeps its last CPU reading."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._cpu, self._stop = every, 0, {}, threading.Event()
        self._kernels: set = set()  # the Jupyter kernels among them (where the notebooks' cells run)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        rss = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                with proc.oneshot():
                    times, mem, born = proc.cpu_times(), proc.memory_info(), proc.create_time()
                    key = (proc.pid, born)
                    if key not in self._cpu and any("ipykernel" in part for part in proc.cmdline()):
                        self._kernels.add(key)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += mem.rss
            self._cpu[key] = times.user + times.system
        self.peak = max(self.peak, rss)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def __enter__(self):
        self._sample()
        self._start_cpu = dict(self._cpu)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def cpu(self) -> float:
        return sum(v - self._start_cpu.get(k, 0.0) for k, v in self._cpu.items())

    @property
    def kernel_cpu(self) -> float:
        """CPU seconds of the kernels alone: the cells (analysis, imports) and the wipes between notebooks."""
        return sum(v - self._start_cpu.get(k, 0.0) for k, v in self._cpu.items() if k in self._kernels)


def _imports_of(notebook: Path) -> str:
    """The import lines of a notebook's code cells (what every kernel pays for before any analysis)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [ln for ln in cell.source.splitlines() if ln.startswith(("import ", "from "))]
    return "\n".join(dict.fromkeys(lines))


def calibrate(notebook: Path, folder: Path, repeats: int = 3) -> dict:
    """Fastest of ``repeats`` runs (the least disturbed by other work on the machine) of an empty
    notebook and of one that only imports what ``notebook`` imports, each in a fresh kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    folder.mkdir(parents=True, exist_ok=True)
    cells = {"empty": "pass", "imports": _imports_of(notebook)}
    out = {}
    for name, source in cells.items():
        nb = new_notebook(
            cells=[new_code_cell("x = 0", metadata={"tags": ["parameters"]}), new_code_cell(source)],
            metadata=KERNELSPEC,
        )
        path = folder / f"{notebook.stem}-{name}.ipynb"
        nbformat.write(nb, str(path))
        times, cpus = [], []
        for i in range(repeats):
            task = {
                "la_code": f"{name}{i}",
                "input_notebook": str(path),
                "parameters": {"x": 1},
                "output_notebook": str(folder / f"{notebook.stem}-{name}{i}" / f"{name}.ipynb"),
                "manifest": {},
            }
            with TreeMeter(every=0.05) as meter:
                t0 = time.perf_counter()
                run = execute_council(task)
                times.append(time.perf_counter() - t0)
            cpus.append(meter.kernel_cpu)
            if run["status"] != "ok":
                raise SystemExit(f"calibration notebook {name} failed: {run['error']}")
        out[name], out[f"{name}_kernel_cpu"] = min(times), min(cpus)
    out["imports_cost"] = max(out["imports"] - out["empty"], 0.0)
    out["imports_cpu"] = max(out["imports_kernel_cpu"] - out["empty_kernel_cpu"], 0.0)
    return out


def warehouse_for(councils: int, children: int, seed: int, keep: Path | None, tmp: Path) -> tuple[Path, dict]:
    """The synthetic councils validated, pseudonymised and loaded as `insight demo` does; reused from ``keep``."""
    from insightlib.batch.plan import prepare_warehouse
    from insightlib.simulate import synth

    folder = (keep or tmp) / f"{councils}x{children}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    use_benchmark_key(keep or tmp)
    done = folder / "warehouse.json"
    if done.exists():
        return Path(json.loads(done.read_text())["warehouse"]), {"reused": True}
    t0 = time.perf_counter()
    synth.generate(councils, children, seed, folder / "data", force=True)
    t_synth = time.perf_counter() - t0
    with TreeMeter() as meter:
        t0 = time.perf_counter()
        wh, failed = prepare_warehouse(folder / "data", folder / "load")
        t_load = time.perf_counter() - t0
    if failed:
        raise SystemExit(f"the synthetic councils failed validation: {failed}")
    figures = {"synth_seconds": t_synth, "load_seconds": t_load, "load_cpu": meter.cpu, "load_peak_gb": meter.peak / GB}
    done.write_text(json.dumps({"warehouse": str(wh), **figures}))
    return wh, figures


def kernel_starts(notebooks: int, workers: int) -> int:
    """Warm kernels: one per worker, replaced every KERNEL_REUSE_LIMIT notebooks."""
    workers = min(workers, notebooks)
    return min(notebooks, workers * math.ceil(notebooks / max(workers * KERNEL_REUSE_LIMIT, 1)))


def run_one(path: Path, wh: Path, out: Path, workers: int, cal: dict, scheduler: str | None = None) -> dict:
    """One evaluation file for every council (or area), as `insight demo` runs it; its figures."""
    evaluation = load_evaluation(path, notebooks_dir=ROOT / "notebooks")
    data = None if evaluation.areas else str(wh)  # area notebooks read published data, as in insight demo
    load = load_average()
    with TreeMeter() as meter:
        summary = run_evaluation(
            evaluation, data=data, out_dir=out, workers=workers, force=True, progress=False,
            log=lambda m: None, scheduler=scheduler,
        )  # fmt: skip
    ran = [r for r in summary.runs if r.status == "ok"]
    if summary.failed:
        print(
            f"  {path.name}: {len(summary.failed)} failed, e.g. {summary.failed[0].la_code}: {summary.failed[0].error}"
        )
    used = min(workers, max(len(summary.runs), 1))
    fresh = os.environ.get(FRESH_KERNELS_ENV, "") in ("1", "true", "yes")
    kernels = len(ran) if fresh else kernel_starts(len(ran), used)
    totals = sum(r.seconds_total for r in ran)
    cells = sum(r.seconds_cells for r in ran)
    imports = cal[evaluation.notebook]["imports_cost"] * kernels
    analysis = max(cells - imports, 0.0)
    capacity = used * summary.seconds  # the workers' time, idle tail and the pool's start included
    return {
        "evaluation": path.name, "notebook": evaluation.notebook, "notebooks": len(ran),
        "failed": len(summary.failed), "wall": summary.seconds, "cpu": meter.cpu, "peak_gb": meter.peak / GB,
        "workers_used": used, "kernel_starts": kernels, "notebook_seconds": totals,
        "outside_cells": totals - cells, "imports": imports, "analysis": analysis, "capacity": capacity,
        "outside_share": 1 - analysis / capacity if capacity else 0.0,
        "median_notebook": statistics.median(r.seconds_total for r in ran) if ran else None,
        "load_before": load, "kernel_cpu": meter.kernel_cpu,
        "imports_cpu": cal[evaluation.notebook]["imports_cpu"] * kernels,
    }  # fmt: skip


def run_suite_measured(paths: list[Path], wh: Path, out: Path, workers: int, cal: dict, scheduler=None) -> dict:
    """Every evaluation file in one pool, as `insight demo` runs them (batch/suite.py); the suite's figures and
    each evaluation's share of the notebooks' time (CPU and memory are the whole suite's: one pool)."""
    evaluations = [load_evaluation(p, notebooks_dir=ROOT / "notebooks") for p in paths]
    load = load_average()
    with TreeMeter() as meter:
        t0 = time.perf_counter()
        summaries = run_suite(
            [(ev, None if ev.areas else str(wh)) for ev in evaluations], out_dir=out, workers=workers, force=True,
            progress=False, log=lambda m: None, scheduler=scheduler,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    rows = []
    for path, ev, summary in zip(paths, evaluations, summaries):
        ran = [r for r in summary.runs if r.status == "ok"]
        if summary.failed:
            print(
                f"  {path.name}: {len(summary.failed)} failed, e.g. {summary.failed[0].la_code}: {summary.failed[0].error}"
            )
        kernels = sum(r.kernel_started for r in ran)
        cells = sum(r.seconds_cells for r in ran)
        imports = cal[ev.notebook]["imports_cost"] * kernels
        rows.append({
            "evaluation": path.name, "notebook": ev.notebook, "notebooks": len(ran), "failed": len(summary.failed),
            "workers_used": min(workers, max(len(ran), 1)), "finished_after": summary.seconds, "kernel_starts": kernels,
            "notebook_seconds": sum(r.seconds_total for r in ran), "outside_cells": sum(r.seconds_total for r in ran) - cells,
            "imports": imports, "analysis": max(cells - imports, 0.0),
            "median_notebook": statistics.median(r.seconds_total for r in ran) if ran else None,
        })  # fmt: skip
    capacity = workers * wall  # the workers' time: the pool's start, planning and the idle tail included
    analysis = sum(r["analysis"] for r in rows)
    # the same share in CPU seconds, which a busy machine disturbs less: the kernels' CPU less their imports'
    # (calibrated, per kernel started) against all the CPU of the run
    imports_cpu = sum(cal[ev.notebook]["imports_cpu"] * r["kernel_starts"] for ev, r in zip(evaluations, rows))
    analysis_cpu = max(meter.kernel_cpu - imports_cpu, 0.0)
    return {
        "evaluations": rows, "wall": wall, "cpu": meter.cpu, "peak_gb": meter.peak / GB, "capacity": capacity,
        "analysis": analysis, "outside_share": 1 - analysis / capacity if capacity else 0.0, "load_before": load,
        "kernel_cpu": meter.kernel_cpu, "imports_cpu": imports_cpu,
        "outside_share_cpu": 1 - analysis_cpu / meter.cpu if meter.cpu else 0.0,
    }  # fmt: skip


def print_suite(suite: dict, councils: int) -> None:
    for row in suite["evaluations"]:
        n = max(row["notebooks"], 1)
        print(
            f"  {row['evaluation']:<16} {row['notebooks']:>4} notebooks  {row['notebook_seconds']:7.1f}s in notebooks "
            f"({row['notebook_seconds'] / n:5.2f}s each, analysis {row['analysis'] / n:5.2f}s, outside cells "
            f"{row['outside_cells'] / n:4.2f}s, imports {row['imports']:.1f}s for {row['kernel_starts']} kernel(s)); "
            f"done after {row['finished_after']:.1f}s"
        )
    print(
        f"  evaluations in one pool: wall {suite['wall']:7.1f}s  CPU {suite['cpu']:7.1f}s  "
        f"{suite['wall'] / councils:5.2f}s/council  peak {suite['peak_gb']:4.1f} GB  outside analysis "
        f"{100 * suite['outside_share']:3.0f}% (pool, kernels, papermill, writing, idle: "
        f"{suite['capacity'] - suite['analysis']:.1f}s of {suite['capacity']:.1f}s)  load {suite['load_before']}"
    )
    print(
        f"  in CPU seconds: kernels {suite['kernel_cpu']:.1f}s of {suite['cpu']:.1f}s (imports {suite['imports_cpu']:.1f}s); "
        f"outside analysis {100 * suite['outside_share_cpu']:3.0f}% of the CPU (the kernels' wipes between notebooks "
        "count as analysis here)"
    )


def run_render(out: Path, engine: str) -> dict:
    from insightlib.batch.site import render_site

    load = load_average()
    with TreeMeter() as meter:
        t0 = time.perf_counter()
        result = render_site(out, engine=engine, force=True)
        wall = time.perf_counter() - t0
    return {"engine": engine, "wall": wall, "cpu": meter.cpu, "peak_gb": meter.peak / GB,
            "skipped": len(result.skipped or []), "load_before": load}  # fmt: skip


def print_evaluation(row: dict, councils: int) -> None:
    print(
        f"  {row['evaluation']:<16} {row['notebooks']:>4} notebooks  wall {row['wall']:7.1f}s  CPU {row['cpu']:7.1f}s"
        f"  {row['wall'] / councils:5.2f}s/council  peak {row['peak_gb']:4.1f} GB  "
        f"outside analysis {100 * row['outside_share']:3.0f}% (outside cells {row['outside_cells']:.1f}s, "
        f"imports {row['imports']:.1f}s for {row['kernel_starts']} kernel(s), pool and idle "
        f"{row['capacity'] - row['notebook_seconds']:.1f}s)  load {row['load_before']}"
    )


def run_size(councils: int, children: int, args, cal: dict, tmp: Path) -> dict:
    print(f"\n== {councils} councils x {children:,} children (load average {load_average()})")
    wh, load_figures = warehouse_for(councils, children, args.seed, args.keep, tmp)
    if not load_figures.get("reused"):
        print(
            f"  synthetic data {load_figures['synth_seconds']:.1f}s; validate + pseudonymise + load "
            f"{load_figures['load_seconds']:.1f}s wall, {load_figures['load_cpu']:.1f}s CPU, "
            f"peak {load_figures['load_peak_gb']:.1f} GB (issue 17 item 3, not part of the suite below)"
        )
    out = tmp / f"reports-{councils}x{children}"
    if args.separate:  # one evaluation after another, each in its own pool (as insight demo ran them before)
        rows = []
        for path in args.evaluations:
            rows.append(run_one(path, wh, out, args.workers, cal))
            print_evaluation(rows[-1], councils)
        suite = None
        evaluations_wall = sum(r["wall"] for r in rows)
        evaluations_cpu = sum(r["cpu"] for r in rows)
        capacity = sum(r["capacity"] for r in rows)
        analysis = sum(r["analysis"] for r in rows)
        peak = max(r["peak_gb"] for r in rows)
        analysis_cpu = sum(max(r["kernel_cpu"] - r["imports_cpu"], 0.0) for r in rows)
        outside_cpu = 1 - analysis_cpu / evaluations_cpu if evaluations_cpu else 0.0
    else:
        suite = run_suite_measured(args.evaluations, wh, out, args.workers, cal)
        print_suite(suite, councils)
        rows = suite["evaluations"]
        evaluations_wall, evaluations_cpu, peak = suite["wall"], suite["cpu"], suite["peak_gb"]
        capacity, analysis = suite["capacity"], suite["analysis"]
        outside_cpu = suite["outside_share_cpu"]
    render = run_render(out, args.render_engine)
    print(
        f"  render ({render['engine']})       wall {render['wall']:7.1f}s  CPU {render['cpu']:7.1f}s"
        f"  {render['wall'] / councils:5.2f}s/council  peak {render['peak_gb']:4.1f} GB  load {render['load_before']}"
    )
    wall = evaluations_wall + render["wall"]
    figures = {
        "councils": councils, "children": children, "separate": args.separate, "evaluations": rows,
        "suite": suite, "render": render, "load": load_figures, "evaluations_wall": evaluations_wall,
        "capacity": capacity,
        "suite_wall": wall, "suite_cpu": evaluations_cpu + render["cpu"],
        "peak_gb": max(peak, render["peak_gb"]),
        "per_council": wall / councils, "outside_share": 1 - analysis / capacity if capacity else 0.0,
        "outside_share_with_render": 1 - analysis / (capacity + args.workers * render["wall"]),
        "outside_share_cpu": outside_cpu,
    }  # fmt: skip
    print(
        f"  suite: {wall:.1f}s wall ({wall / 60:.1f} min), {figures['suite_cpu']:.1f}s CPU, "
        f"{figures['per_council']:.2f}s wall and {figures['suite_cpu'] / councils:.2f}s CPU per council, peak {figures['peak_gb']:.1f} GB; outside analysis "
        f"{100 * figures['outside_share']:.0f}% of the workers' time in the evaluations "
        f"({100 * figures['outside_share_with_render']:.0f}% counting the render as outside; "
        f"{100 * outside_cpu:.0f}% of the evaluations' CPU seconds)"
    )
    if args.dask and (councils, children) == min(((n, c) for c in args.children for n in args.councils), key=math.prod):
        figures["dask"] = compare_on_dask(args, wh, out, tmp / f"dask-{councils}x{children}", cal)
    return figures


def compare_on_dask(args, wh: Path, pool_out: Path, dask_out: Path, cal: dict) -> dict:
    """The council reports again on a local Dask cluster of two workers; their results.json against the pool's."""
    from compare_results import compare
    from distributed import LocalCluster

    evaluations = [load_evaluation(p, notebooks_dir=ROOT / "notebooks") for p in args.evaluations]
    files = [p for p, ev in zip(args.evaluations, evaluations) if not ev.areas]  # the skills areas need no cluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        if args.separate:
            walls = {
                p.name: run_one(p, wh, dask_out, 2, cal, scheduler=cluster.scheduler_address)["wall"] for p in files
            }
        else:
            walls = {
                "suite": run_suite_measured(files, wh, dask_out, 2, cal, scheduler=cluster.scheduler_address)["wall"]
            }
    count, diffs, worst = 0, [], 0.0
    for ev in evaluations:
        if not ev.areas:
            n, d, w = compare(pool_out / ev.name, dask_out / ev.name, args.tolerance)
            count, diffs, worst = count + n, diffs + d, max(worst, w)
    print(
        f"  Dask (local cluster, 2 workers): {sum(walls.values()):.1f}s wall; {count} results.json compared with the "
        f"process pool's: {len(diffs)} differences beyond {args.tolerance:g} (largest numeric gap {worst:.3g})"
    )
    for line in diffs[:20]:
        print(f"    {line}")
    return {"walls": walls, "compared": count, "differences": diffs, "largest_gap": worst}


def print_scaling(sizes: list[dict], workers: int, cal: dict) -> dict:
    """wall = fixed + per council x councils, by least squares, and extrapolated to 153 councils; plus the warm
    kernels replaced every KERNEL_REUSE_LIMIT notebooks that the measured sizes may not reach."""
    n = [s["councils"] for s in sizes]
    fixed, slope = _line(n, [s["suite_wall"] for s in sizes])
    cpu_fixed, cpu_slope = _line(n, [s["suite_cpu"] for s in sizes])
    peak_fixed, peak_slope = _line(n, [s["peak_gb"] for s in sizes])
    largest = max(sizes, key=lambda s: s["councils"])
    extra = 0.0  # kernel starts at 153 beyond those at the largest size measured, each a kernel start and imports
    for row in largest["evaluations"]:
        if row["notebooks"] == largest["councils"] > row["kernel_starts"]:  # a notebook a council, warm kernels
            more = kernel_starts(153, row["workers_used"]) - row["kernel_starts"]
            c = cal[row["notebook"]]
            extra += more * (c["empty"] + c["imports_cost"]) / row["workers_used"]
    at_153 = fixed + 153 * slope + extra
    # the workers' time outside analysis, fitted the same way: its share at 153 councils
    o_fixed, o_slope = _line(n, [s["outside_share"] * s["capacity"] for s in sizes])
    outside_153 = o_fixed + o_slope * 153 + extra * workers
    e_fixed, e_slope = _line(n, [s["evaluations_wall"] for s in sizes])
    capacity_153 = workers * (e_fixed + 153 * e_slope + extra)
    print(
        f" scaling ({workers} workers): suite wall = {fixed:.1f}s + {slope:.2f}s x councils; CPU = {cpu_fixed:.1f}s + "
        f"{cpu_slope:.2f}s x councils; peak memory = {peak_fixed:.2f} GB + {peak_slope:.3f} GB x councils"
    )
    for s in sizes:
        print(
            f"  {s['councils']:>4} councils: {s['per_council']:.2f}s wall and {s['suite_cpu'] / s['councils']:.2f}s CPU "
            f"per council (fit: {fixed / s['councils'] + slope:.2f}s)"
        )
    print(
        f"  extrapolated to 153 councils: {at_153:.0f}s ({at_153 / 60:.1f} min), of which {extra:.0f}s for the warm "
        f"kernels replaced every {KERNEL_REUSE_LIMIT} notebooks beyond the {largest['councils']} councils measured; "
        f"outside analysis about {100 * outside_153 / capacity_153:.0f}% of the workers' time in the evaluations; "
        f"CPU about {cpu_fixed + 153 * cpu_slope:.0f}s; peak memory about {peak_fixed + 153 * peak_slope:.1f} GB"
    )
    return {"fixed_seconds": fixed, "per_council_seconds": slope, "kernel_replacements": extra,
            "extrapolated_153": at_153, "outside_share_153": outside_153 / capacity_153,
            "cpu_per_council": cpu_slope, "cpu_153": cpu_fixed + 153 * cpu_slope,
            "peak_gb_153": peak_fixed + 153 * peak_slope}  # fmt: skip


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x: (a, b)."""
    mean_x, mean_y = statistics.fmean(x), statistics.fmean(y)
    b = sum((p - mean_x) * (q - mean_y) for p, q in zip(x, y)) / sum((p - mean_x) ** 2 for p in x)
    return mean_y - b * mean_x, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--councils", type=int, nargs="+", default=[10, 30])
    parser.add_argument(
        "--children", type=int, nargs="+", default=[12700], help="Children per council (several: each)."
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--evaluation", dest="evaluations", type=Path, action="append", default=None,
                        help="An evaluation file (repeat it); default: the demo's (as insight demo runs them).")  # fmt: skip
    parser.add_argument("--render-engine", default="html", choices=["html", "quarto"])
    parser.add_argument("--dask", action="store_true",
                        help="Also run the council reports on a local Dask cluster (at the smallest size only).")  # fmt: skip
    parser.add_argument("--separate", action="store_true",
                        help="Run the evaluations one after another, each in its own pool (the way before batch/suite.py).")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=1e-9, help="For --dask: numbers equal within this.")
    parser.add_argument(
        "--calibration-repeats", type=int, default=3, help="Calibration notebooks: fastest of this many."
    )
    parser.add_argument("--keep", type=Path, default=None, help="Keep and reuse the synthetic warehouses here.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    args.evaluations = args.evaluations or demo_evaluation_files(ROOT / "evaluations")
    figures: dict = {"cores": os.cpu_count(), "workers": args.workers, "load_before": os.getloadavg()}
    fresh = os.environ.get(FRESH_KERNELS_ENV, "") in ("1", "true", "yes")
    print(f"load average before: {load_average()} on {os.cpu_count()} cores; {args.workers} workers; "
          f"{'a fresh kernel per notebook' if fresh else 'warm kernels'}")  # fmt: skip
    print(f"evaluations: {', '.join(p.name for p in args.evaluations)}; then the render ({args.render_engine})")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        notebooks = {load_evaluation(p, notebooks_dir=ROOT / "notebooks").notebook for p in args.evaluations}
        cal = {
            nb: calibrate(ROOT / "notebooks" / f"{nb}.ipynb", tmp / "calibration", args.calibration_repeats)
            for nb in sorted(notebooks)
        }
        figures["calibration"] = cal
        print(f"calibration (fresh kernels, fastest of {args.calibration_repeats}): empty notebook "
              f"{min(c['empty'] for c in cal.values()):.2f}s (kernel start, papermill); imports "
              + ", ".join(f"{nb} {c['imports_cost']:.2f}s ({c['imports_cpu']:.2f}s CPU)" for nb, c in cal.items()))  # fmt: skip
        sizes = [run_size(n, children, args, cal, tmp) for children in args.children for n in args.councils]
    figures["sizes"] = sizes
    if len(args.councils) > 1:
        figures["scaling"] = {}
        for children in args.children:
            print(f"\n{children:,} children a council:", end="")
            of_size = [s for s in sizes if s["children"] == children]
            figures["scaling"][children] = print_scaling(of_size, args.workers, cal)
    figures["load_after"] = os.getloadavg()
    print(f"load average after: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
