"""Batch runs: execute one evaluation's notebook for every council with papermill.

A bounded pool of workers (or a Dask cluster), one council's failure never stops the
others, kernel start failures are retried, every output gets a run manifest, and councils
whose inputs, code and parameters are unchanged are skipped unless forced.

This module schedules the councils (a process pool, one process, or Dask); planning is in
``plan``, running one notebook in ``execute``, the warm kernels in ``kernels``, manifests,
hashes and the run lock in ``manifest``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from . import kernels, results as results_mod
from ..errors import InputError
from .evaluation import Evaluation
from .execute import DISK_FULL, CouncilRun, execute_council, is_disk_full
from .kernels import _tie_to_parent, discard_warm_kernels
from .manifest import run_lock
from .plan import _plan_councils, default_notebooks_dir, plan_area_tasks

#: Set INSIGHT_FRESH_KERNELS=1 to start a fresh kernel for every notebook (slower, nothing shared).
FRESH_KERNELS_ENV = "INSIGHT_FRESH_KERNELS"


@dataclass
class RunSummary:
    evaluation: Evaluation
    out_dir: Path
    runs: list[CouncilRun] = field(default_factory=list)
    seconds: float = 0.0
    disk_full_log: bool = False  # run.log / run.json could not be written

    @property
    def failed(self) -> list[CouncilRun]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def disk_full(self) -> bool:
        return self.disk_full_log or any((r.error or "").startswith(DISK_FULL) for r in self.failed)

    @property
    def exit_code(self) -> int:
        if self.disk_full:
            return 2
        return 1 if self.failed else 0

    def to_dict(self) -> dict:
        return {
            "evaluation": self.evaluation.name,
            "out_dir": str(self.out_dir),
            "seconds": round(self.seconds, 2),
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class RunSettings:
    """What one run was asked for, checked by run_evaluation, carried to the planning and scheduling under the lock."""

    data: str | None
    out_dir: Path
    workers: int
    force: bool
    scheduler: str | None
    notebooks_dir: Path
    progress: bool
    log: Callable[[str], None]
    reuse_kernels: bool
    cell_timeout: int
    started: float  # time.perf_counter() when the run was asked for: the summary's seconds count from it


def run_evaluation(
    evaluation: Evaluation,
    *,
    data: str | None = None,
    out_dir: str | Path = "reports",
    workers: int = 2,
    force: bool = False,
    scheduler: str | None = None,
    notebooks_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    reuse_kernels: bool | None = None,
    cell_timeout: int = 3600,
) -> RunSummary:
    """Run an evaluation for each of its councils; failures are collected, never raised.

    ``reuse_kernels`` (default: yes, unless INSIGHT_FRESH_KERNELS=1) runs each worker's councils
    in one warm kernel, wiped between notebooks, instead of starting a kernel per notebook.
    """
    settings = run_settings(
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
    with run_lock(settings.out_dir, evaluation.name):  # one run at a time writes into one --out folder
        return _run_locked(evaluation, settings)


def run_settings(
    evaluation: Evaluation,
    *,
    data: str | None,
    out_dir: str | Path,
    workers: int,
    force: bool,
    scheduler: str | None,
    notebooks_dir: Path | None,
    progress: bool,
    log: Callable[[str], None],
    reuse_kernels: bool | None,
    cell_timeout: int,
) -> RunSettings:
    """What was asked for, checked before anything is planned (InputError when it cannot run)."""
    if reuse_kernels is None:
        reuse_kernels = os.environ.get(FRESH_KERNELS_ENV, "") not in ("1", "true", "yes")
    started = time.perf_counter()
    out_dir = Path(out_dir).resolve()
    notebooks_dir = Path(notebooks_dir or default_notebooks_dir()).resolve()
    if out_dir == notebooks_dir or notebooks_dir in out_dir.parents:
        # a run writes only inside --out, and never beside (or over) the source notebooks
        raise InputError(f"--out {out_dir} is inside the notebooks folder {notebooks_dir}; choose another folder.")
    if not evaluation.notebook_path(notebooks_dir).exists():
        raise InputError(f"{evaluation.notebook_path(notebooks_dir)}: no such notebook.")
    if workers < 1:
        raise InputError("--workers must be at least 1.")
    if cell_timeout < 1:
        raise InputError("--cell-timeout must be at least 1 second.")
    return RunSettings(
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
        started=started,
    )


def _run_locked(evaluation: Evaluation, settings: RunSettings) -> RunSummary:
    summary, tasks = plan_run(evaluation, settings)
    if not settings.scheduler and settings.workers > 1:
        share_cores(tasks, settings.workers)
    summary.runs.extend(_execute(tasks, settings.workers, settings.scheduler, settings.progress, evaluation.title))
    finish_run(summary, settings)
    return summary


def plan_run(evaluation: Evaluation, settings: RunSettings) -> tuple[RunSummary, list[dict]]:
    """The run's summary (councils skipped or unable to run already in it) and the tasks to execute."""
    summary = RunSummary(evaluation=evaluation, out_dir=settings.out_dir / evaluation.name)
    where = (settings.out_dir, settings.notebooks_dir, settings.force)
    if evaluation.areas:
        tasks, skipped = plan_area_tasks(evaluation, settings.data or evaluation.data, *where)
    else:
        tasks, skipped = _plan_councils(evaluation, settings.data, *where, summary, settings.log)
    log = settings.log
    rerun = [t["la_code"] for t in tasks if t.get("rerun")]
    if rerun:
        log(
            f"{len(rerun)} council(s) whose notebook or results.json is incomplete or changed since their last run: "
            f"running again ({', '.join(rerun[:10])}{' ...' if len(rerun) > 10 else ''})"
        )
    for task in tasks:
        task["reuse_kernel"] = settings.reuse_kernels
        task["execution_timeout"] = int(settings.cell_timeout)
    summary.runs.extend(skipped)
    if skipped:
        log(f"{len(skipped)} council(s) unchanged since their last run: skipped (use --force to run them again)")
    return summary, tasks


def share_cores(tasks: list[dict], workers: int) -> None:
    """Each of the notebooks running at once gets its share of the cores for its BLAS (kernels._kernel_threads)."""
    for task in tasks:
        task["blas_threads"] = max(1, (os.cpu_count() or 1) // min(workers, len(tasks)))


def finish_run(summary: RunSummary, settings: RunSettings) -> None:
    """Every council's run in order, the run's time, and its run.log and run.json written."""
    summary.runs.sort(key=lambda r: r.la_code)
    summary.seconds = time.perf_counter() - settings.started
    try:
        _write_run_log(summary)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        summary.disk_full_log = True


def _execute(
    tasks: list[dict],
    workers: int,
    scheduler: str | None,
    progress: bool,
    title: str,
    on_done: Callable[[dict, CouncilRun], None] | None = None,
) -> list[CouncilRun]:
    """Every task run (in the order given, as workers come free); ``on_done(task, run)`` as each one finishes."""
    if not tasks:
        return []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.markup import escape

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    )
    done: list[CouncilRun] = []
    with bar:
        job = bar.add_task(escape(title[:40]), total=len(tasks))  # a title is text, never markup
        for task, outcome in _iter_outcomes(tasks, workers, scheduler):
            run = CouncilRun(**outcome)
            done.append(run)
            bar.advance(job)
            if on_done is not None:
                on_done(task, run)
    return done


def _iter_outcomes(tasks: list[dict], workers: int, scheduler: str | None):
    """Each task with its outcome as it finishes; a crash of the worker itself becomes that council's failure."""
    if scheduler:
        from distributed import Client, as_completed as dask_completed

        for task in tasks:  # its kernel lives only while this run waits for it (execute._while_its_run_waits)
            task["dask"], task["kernel_idle_seconds"] = True, kernels.DASK_IDLE_SECONDS
        with Client(scheduler) as client:
            futures = {client.submit(execute_council, t, pure=False): t for t in tasks}
            for future in dask_completed(futures):
                yield futures[future], _outcome_or_failure(future.result, futures[future])
        return
    if workers == 1 or len(tasks) == 1:
        try:
            with _terminate_as_interrupt():
                for task in tasks:
                    yield task, _outcome_or_failure(lambda t=task: execute_council(t), task)
        finally:
            discard_warm_kernels()
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=get_context("spawn"),
        initializer=_tie_to_parent,
        initargs=(os.getpid(),),
    )
    finished = False
    try:
        with _terminate_as_interrupt():
            futures = {pool.submit(execute_council, t): t for t in tasks}
            for future in as_completed(futures):
                yield futures[future], _outcome_or_failure(future.result, futures[future])
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted: queued councils are not started, running ones are stopped now
            _stop_pool(pool)


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM (and SIGHUP) stop the batch the way Ctrl-C does, so the workers are stopped, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:  # each worker's kernel sees its parent go and shuts itself down
        try:
            proc.kill()
        except (OSError, ValueError, AttributeError):
            pass
    for proc in processes:
        try:
            proc.join(timeout=5)
        except (OSError, ValueError, AttributeError, AssertionError):
            pass


def _outcome_or_failure(get: Callable[[], dict], task: dict) -> dict:
    try:
        return get()
    except Exception as exc:  # a worker died: record it against the council, keep going
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return CouncilRun(
            task["la_code"], "failed", notebook=task["output_notebook"], error=f"worker failed: {detail}"
        ).to_dict()


def _write_run_log(summary: RunSummary) -> None:
    folder = summary.out_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {summary.evaluation.name}: "
        f"{len(summary.runs)} council(s), {len(summary.failed)} failed, {summary.seconds:.1f}s"
    ]
    for run in summary.runs:
        lines.append(f"  {run.la_code} {run.status} {run.seconds_total:.1f}s" + (f" {run.error}" if run.error else ""))
    with open(folder / "run.log", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    # the evaluation as run (title, description, councils...), not only its name
    results_mod.write_json_atomic(
        folder / "run.json", {**summary.to_dict(), "evaluation": summary.evaluation.to_dict()}
    )
