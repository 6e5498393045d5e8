"""Executing one council's notebook with papermill: retries when a kernel fails to start, the
notebook swapped in only when whole, and the manifest written beside it.

Split from runner.py; ``execute_council`` is what a process pool or a Dask worker runs.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import results as results_mod
from .kernels import (
    DASK_IDLE_SECONDS,
    _KERNEL_ARGS,
    _kernel_manager_class,
    _kernel_threads,
    _reset_code,
    _warm_engine,
    _warm_kernel,
    discard_warm_kernel,
    kill_thread_kernels,
    reap_idle_kernels,
    release_warm_kernel,
)
from .manifest import file_sha256

#: How many times a kernel that fails to start (not a failing cell) is tried again.
KERNEL_RETRIES = 2


@dataclass
class CouncilRun:
    """What happened to one council's notebook."""

    la_code: str
    status: str  # "ok", "failed", "skipped"
    notebook: str | None = None
    results: str | None = None
    error: str | None = None
    failing_cell: int | None = None
    link: str | None = None
    seconds_total: float = 0.0
    seconds_cells: float = 0.0
    attempts: int = 0
    kernel_started: bool = False  # a kernel was started for this notebook (its imports are in its cells' time)

    def to_dict(self) -> dict:
        return asdict(self)


DISK_FULL = "the disk is full"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


#: A council stopped because the 'insight run' that sent it to a Dask cluster has gone.
ABANDONED = "stopped: the 'insight run' that sent this council has gone"


def skip_iri_checker_import() -> None:
    """Leave out jsonschema's optional IRI format checker in this process, before anything imports jsonschema.

    papermill validates notebooks with nbformat, which imports jsonschema, which imports rfc3987-syntax (1.1) if
    installed (jupyterlab's dependencies install it): it compiles 39 grammars on import, about 3.5 s of CPU in every
    pool or Dask worker, for the "iri" formats that no notebook schema uses (python-jsonschema/jsonschema#1428).
    Marked absent, jsonschema skips that one checker; every check nbformat makes is unchanged."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def execute_council(task: dict) -> dict:
    """Run one notebook for one council. Top level so that process pools and Dask can ship it."""
    skip_iri_checker_import()
    with _kernel_threads(task.get("blas_threads")), _while_its_run_waits(task) as gone:
        return _execute_council(task, gone)


@contextmanager
def _while_its_run_waits(task: dict):
    """On a Dask worker, the council's kernel lives only as long as the 'insight run' waiting for it.

    A pool worker dies with its parent (kernels.tie_to_parent); a Dask worker is the cluster's
    and outlives it. When the client goes (killed, even by SIGKILL, or interrupted) the scheduler
    cancels its tasks: queued councils never start, and a watchdog here sees this council's task
    cancelled within half a second and kills its kernel, so the notebook stops. Warm kernels left
    idle are killed by kernels.reap_idle_kernels. Yields an event set once the run has gone."""
    gone = threading.Event()
    if not task.get("dask"):
        yield gone
        return
    from distributed import get_worker

    worker = get_worker()
    key, thread, stop = worker.get_current_task(), threading.get_ident(), threading.Event()
    reap_idle_kernels(task.get("kernel_idle_seconds") or DASK_IDLE_SECONDS)

    def watch() -> None:
        while not stop.wait(0.5):
            state = getattr(worker.state.tasks.get(key), "state", None)
            if state in (None, "cancelled", "released", "forgotten"):
                gone.set()
                kill_thread_kernels(thread)
                return

    threading.Thread(target=watch, name="insight-dask-watchdog", daemon=True).start()
    try:
        yield gone
    finally:
        stop.set()


def _execute_council(task: dict, gone: threading.Event | None = None) -> dict:
    """Every way out of the attempts reaches the notebook swap and the manifest at the end."""
    started = time.perf_counter()
    out_nb = Path(task["output_notebook"])
    out_nb.parent.mkdir(parents=True, exist_ok=True)
    run = CouncilRun(la_code=task["la_code"], status="failed", notebook=str(out_nb))
    # papermill writes the notebook several times as it runs: into a hidden file, swapped in
    # once complete, so that a kill or a full disk never leaves half a notebook under the real name
    tmp_nb = out_nb.with_name(f".tmp-{out_nb.stem}-{os.getpid()}.ipynb")
    # an earlier run's results.json goes first: if this run fails, none is left to be shown as its figures
    (out_nb.parent / "results.json").unlink(missing_ok=True)
    reuse = task.get("reuse_kernel", False)
    for attempt in range(1, KERNEL_RETRIES + 2):
        run.attempts = attempt
        if not _attempt(task, run, tmp_nb, out_nb, gone):
            break
        time.sleep(min(2 * attempt, 5))
    if reuse:
        release_warm_kernel()
    kept = _keep_notebook(tmp_nb, out_nb)
    if kept is None and run.status == "ok":
        run.status, run.error = "failed", f"{DISK_FULL}: the executed notebook could not be written completely"
    run.seconds_total = time.perf_counter() - started
    run.seconds_cells = _cell_seconds(kept)
    _write_manifest(task, run, out_nb, reuse)
    return run.to_dict()


def _attempt(task: dict, run: CouncilRun, tmp_nb: Path, out_nb: Path, gone: threading.Event | None) -> bool:
    """One try at the notebook, its outcome recorded in ``run``; True when the kernel failed and a retry may help."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    reuse = task.get("reuse_kernel", False)
    try:
        _papermill(task, tmp_nb, out_nb, reuse, run)
        run.status, run.error = "ok", None
    except PapermillExecutionError as exc:  # a cell failed; the kernel itself is fine
        run.error = f"{exc.ename}: {str(exc.evalue)[:500]}"
        if _says_disk_full(str(exc.evalue)):
            run.error = f"{DISK_FULL}: step {exc.exec_count} of the notebook could not write its output"
        run.failing_cell = exc.exec_count
        run.link = f"{out_nb.name}#papermill-error-cell"
    except CellTimeoutError:  # the notebook itself is too slow: running it again would only be as slow
        if reuse:
            discard_warm_kernel()
        limit = task.get("execution_timeout", 3600)
        run.error = f"a cell ran longer than the limit of {limit} s (insight run --cell-timeout)"
    except (DeadKernelError, RuntimeError, TimeoutError, OSError) as exc:  # kernel did not start or died: try again
        if reuse:
            discard_warm_kernel()
        if is_disk_full(exc):  # trying again would only fill it again
            run.error = f"{DISK_FULL}: the executed notebook could not be written"
            return False
        run.error = f"kernel failed ({type(exc).__name__}: {str(exc)[:300]})"
        if gone is not None and gone.is_set():  # its run has gone: nobody waits for another attempt
            run.error = ABANDONED
            return False
        return True
    except Exception as exc:  # anything else will fail the same way again
        if reuse:
            discard_warm_kernel()
        run.error = f"{type(exc).__name__}: {str(exc)[:500]}"
    return False


def _papermill(task: dict, tmp_nb: Path, out_nb: Path, reuse: bool, run: CouncilRun) -> None:
    """The notebook executed into ``tmp_nb`` in the council's folder, in this worker's warm kernel when ``reuse``."""
    import papermill as pm

    kernel_name = task.get("kernel_name", "python3")
    engine = {}
    run.kernel_started = True
    if reuse:
        warm = _warm_kernel(kernel_name, Path(task["input_notebook"]).stem)  # a kernel per notebook kind
        engine = {"engine_name": _warm_engine(), "warm_kernel": warm, "reset_code": _reset_code(str(out_nb.parent))}
        run.kernel_started = warm.uses == 0
        warm.uses += 1
    pm.execute_notebook(
        task["input_notebook"],
        str(tmp_nb),
        parameters=task["parameters"],
        kernel_name=kernel_name,
        language="python",
        cwd=str(out_nb.parent),
        progress_bar=False,
        log_output=False,
        request_save_on_cell_execute=False,
        execution_timeout=task.get("execution_timeout", 3600),
        # the kernel talks to us over loopback only; its start-up warning about that is noise
        extra_arguments=list(_KERNEL_ARGS),
        kernel_manager_class=_kernel_manager_class(),
        **engine,
    )


def _write_manifest(task: dict, run: CouncilRun, out_nb: Path, reuse: bool) -> None:
    """The council's manifest.json: how it ran, and the hashes a later run checks before it skips it."""
    results_path = out_nb.parent / "results.json"
    if results_path.exists() and run.status == "ok":
        run.results = str(results_path)
    outputs = [out_nb.name] + (["results.json"] if run.results else [])
    manifest = {
        **task["manifest"],
        "la_code": task["la_code"],
        "status": run.status,
        "error": run.error,
        "failing_cell": run.failing_cell,
        "timings": {
            "seconds_total": round(run.seconds_total, 3),
            "seconds_in_cells": round(run.seconds_cells, 3),
            "attempts": run.attempts,
            "kernel": "reused" if reuse else "fresh",
        },
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "outputs": outputs,
        # what a later run checks before it skips this council: the outputs are whole and unchanged
        "hashes": {name: file_sha256(out_nb.parent / name) for name in outputs if (out_nb.parent / name).exists()},
    }
    try:
        results_mod.write_json_atomic(out_nb.parent / "manifest.json", manifest)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # an older manifest left in place no longer matches the outputs' hashes, so nothing is skipped wrongly
        run.status, run.error = "failed", f"{DISK_FULL}: the run manifest could not be written"


def _says_disk_full(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text or "[Errno 28]" in text


def _keep_notebook(tmp_nb: Path, out_nb: Path) -> dict | None:
    """Swap a completely written notebook in under its real name and return it (parsed once: a council's
    notebook holds its charts); a partial one is removed (None)."""
    if not tmp_nb.exists():
        return None
    try:
        with open(tmp_nb, encoding="utf-8") as fh:
            nb = json.load(fh)
        whole = isinstance(nb.get("cells"), list)
    except (OSError, ValueError, AttributeError):
        whole = False
    try:
        if whole:
            os.replace(tmp_nb, out_nb)
            return nb
    except OSError:
        pass
    tmp_nb.unlink(missing_ok=True)
    return None


def _cell_seconds(nb: dict | None) -> float:
    """The cells' run time papermill recorded in the notebook (0 without a complete notebook)."""
    if nb is None:
        return 0.0
    return float(sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in nb["cells"]))
