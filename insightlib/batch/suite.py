"""A suite of evaluations (what `insight demo` runs) in one pool of workers.

Run one after another, each evaluation paid again for its own pool, its workers' imports and kernels, and
the idle tail while its last council finished; the national programme notebook ran alone on one of two
cores. Here every evaluation is checked and planned first (under the --out folder's run lock, as `insight run` would),
then all their notebooks go to one pool: the national notebooks first (the longest), then each evaluation's
councils largest first, so the other worker runs councils beside the national notebook and the run ends on
small ones. Each worker keeps a warm kernel per notebook kind (kernels._warm_kernel). Each evaluation's
run.log and run.json are written as soon as its last notebook finishes; every council's notebook, manifest
and results.json are written exactly as by `insight run` (batch/execute.py), so a killed or failing suite
loses nothing that `insight run` would keep.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from .evaluation import Evaluation
from .execute import CouncilRun
from .manifest import run_lock
from .plan import NATIONAL
from .runner import RunSettings, RunSummary, _execute, finish_run, plan_run, run_settings, share_cores


def run_suite(
    runs: list[tuple[Evaluation, str | None]],
    *,
    out_dir: str | Path = "reports",
    workers: int = 2,
    force: bool = False,
    scheduler: str | None = None,
    notebooks_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    reuse_kernels: bool | None = None,
    cell_timeout: int = 3600,
) -> list[RunSummary]:
    """Each (evaluation, data) run for its councils, all in one pool; a summary per evaluation, in the order given.

    ``data`` overrides the evaluation file's data as ``insight run --data`` does (None: the file's own)."""
    settings = [
        run_settings(
            evaluation,
            data=data,
            out_dir=out_dir,
            workers=workers,
            force=force,
            scheduler=scheduler,
            notebooks_dir=notebooks_dir,
            progress=progress,
            log=log,
            reuse_kernels=reuse_kernels,
            cell_timeout=cell_timeout,
        )
        for evaluation, data in runs
    ]
    with ExitStack() as locks:
        folders: dict[Path, list[str]] = {}
        for (evaluation, _data), s in zip(runs, settings):
            folders.setdefault(s.out_dir, []).append(evaluation.name)
        for folder, names in folders.items():  # one run at a time writes into one --out folder
            locks.enter_context(run_lock(folder, ", ".join(names)))
        summaries, tasks = _plan_all([evaluation for evaluation, _data in runs], settings)
        if not scheduler and workers > 1:
            share_cores(tasks, workers)
        title = f"{len(runs)} evaluations" if len(runs) > 1 else (runs[0][0].title if runs else "")
        _execute(tasks, workers, scheduler, progress, title, on_done=_finisher(summaries, settings, tasks))
    return summaries


def _plan_all(evaluations: list[Evaluation], settings: list[RunSettings]) -> tuple[list[RunSummary], list[dict]]:
    """Every evaluation planned (nothing runs if one cannot be); all their tasks, longest first."""
    planned = [plan_run(evaluation, s) for evaluation, s in zip(evaluations, settings)]
    tasks = []
    for index, (_summary, its_tasks) in enumerate(planned):
        for task in its_tasks:
            task["suite_index"] = index
        tasks.extend(its_tasks)
    return [summary for summary, _tasks in planned], longest_first(tasks)


def _finisher(summaries: list[RunSummary], settings: list[RunSettings], tasks: list[dict]):
    """What to do as each notebook finishes: into its evaluation's summary, whose run.log is written after its last."""
    waiting = [sum(t["suite_index"] == i for t in tasks) for i in range(len(summaries))]
    for index, count in enumerate(waiting):
        if not count:  # nothing of it to run (all skipped, or no council could run)
            finish_run(summaries[index], settings[index])

    def done(task: dict, run: CouncilRun) -> None:
        index = task["suite_index"]
        summaries[index].runs.append(run)
        waiting[index] -= 1
        if not waiting[index]:  # its last notebook: its run.log and run.json now, not at the suite's end
            finish_run(summaries[index], settings[index])

    return done


def longest_first(tasks: list[dict]) -> list[dict]:
    """National notebooks first, then each evaluation's councils in the order given, the most rows first."""
    rows = _council_rows(
        {t["parameters"]["data"] for t in tasks if t["la_code"] != NATIONAL and "area" not in t["parameters"]}
    )

    def key(task: dict):
        national = task["la_code"] == NATIONAL
        size = rows.get((task["parameters"].get("data"), task["la_code"]), 0)
        return (not national, task["suite_index"], -size)

    return sorted(tasks, key=key)


def _council_rows(warehouses: set[str]) -> dict[tuple[str, str], int]:
    """Each council's rows, from each warehouse's metadata (written at load)."""
    from ..ingest import warehouse

    rows = {}
    for path in warehouses:
        try:
            councils = warehouse.load_metadata(path)["councils"]
        except Exception:  # noqa: BLE001 - the order is only a hint; planning has checked the warehouse
            continue
        for la, info in councils.items():
            rows[(path, la)] = sum((info.get("rows") or {}).values())
    return rows
