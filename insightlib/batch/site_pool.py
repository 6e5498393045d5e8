"""The fallback site's pages drawn on every core: a report page, an evaluation's page or the national
page is one task, run in a forked worker process, or here when there is one core.

Forked workers start with what this process has already imported and set up (nbconvert's exporter,
the page template, the time the site was built), so each page is drawn exactly as it would be here:
the same bytes. Each task writes its own files (a page, its figures, its downloads), which no other
task writes, and returns what the home page and the result need.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor

#: Pages drawn at once: by default every core this process may use.
WORKERS_ENV = "INSIGHT_RENDER_WORKERS"

#: What the running site's tasks share, set before the workers are forked (inherited, never pickled).
_SHARED: dict = {}


def render_workers(tasks: int, workers: int | None = None) -> int:
    """How many processes draw the pages: ``workers``, else INSIGHT_RENDER_WORKERS, else the usable cores;
    never more than the tasks, and one where processes cannot be forked."""
    if workers is None:
        setting = os.environ.get(WORKERS_ENV, "").strip()
        workers = int(setting) if setting.isdigit() and int(setting) > 0 else len(os.sched_getaffinity(0))
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(workers, tasks))


class PagePool:
    """Runs page tasks (module-level functions of picklable arguments) on ``workers`` forked processes,
    or one after another in this process for one worker. ``shared`` is what every task reads from
    ``shared()``: it is set before any worker is forked."""

    def __init__(self, workers: int, shared: dict):
        _SHARED.clear()
        _SHARED.update(shared)
        self._pool = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))

    def submit(self, task, *args) -> Future:
        if self._pool is not None:
            return self._pool.submit(task, *args)
        done: Future = Future()
        done.set_result(task(*args))
        return done

    def __enter__(self) -> PagePool:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        _SHARED.clear()


def shared() -> dict:
    return _SHARED
