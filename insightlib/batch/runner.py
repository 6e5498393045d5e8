"""Batch runs: execute one evaluation's notebook for every council with papermill.

A bounded pool of workers (or a Dask cluster), one council's failure never stops the
others, kernel start failures are retried, every output gets a run manifest, and councils
whose inputs, code and parameters are unchanged are skipped unless forced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

from . import results as results_mod
from ..errors import InputError
from .evaluation import Evaluation

#: How many times a kernel that fails to start (not a failing cell) is tried again.
KERNEL_RETRIES = 2
#: A worker's warm kernel runs at most this many notebooks before a fresh one replaces it.
KERNEL_REUSE_LIMIT = 25
#: Set INSIGHT_FRESH_KERNELS=1 to start a fresh kernel for every notebook (slower, nothing shared).
FRESH_KERNELS_ENV = "INSIGHT_FRESH_KERNELS"
NATIONAL = "national"
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # insightlib/, not batch/


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

    def to_dict(self) -> dict:
        return asdict(self)


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


# --- helpers ------------------------------------------------------------------------

#: The lock file ``insight run`` holds in its --out folder while it runs.
LOCK_NAME = ".insight-run.lock"
DISK_FULL = "the disk is full"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class RunLocked(InputError):
    """Another ``insight run`` is writing into the same --out folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def run_lock(out_dir: Path, what: str):
    """Hold ``<out>/.insight-run.lock`` for the whole run, so that a second run on the same folder refuses.

    The lock is an flock on the file, which the operating system drops when the process ends
    however it ends (even SIGKILL): a lock left by a dead run is never in the way. The file
    says who holds it (pid, evaluation, start time) for the message. Where flock is missing
    (Windows) the pid in the file is checked instead: a pid no longer running is a stale lock.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    me = {"pid": os.getpid(), "evaluation": what,
          "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    fh = open(path, "a+", encoding="utf-8")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunLocked(_locked_message(out_dir, path)) from None
        else:  # pragma: no cover - Windows
            holder = _read_lock(path)
            if holder.get("pid") and holder["pid"] != os.getpid() and _pid_alive(int(holder["pid"])):
                raise RunLocked(_locked_message(out_dir, path))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(me))
        fh.flush()
        yield path
    finally:
        try:
            fh.seek(0)
            fh.truncate()  # an empty lock file: nobody holds it
        except OSError:
            pass
        fh.close()  # closing drops the flock


def _read_lock(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _locked_message(out_dir: Path, path: Path) -> str:
    holder = _read_lock(path)
    who = f"pid {holder['pid']}" if holder.get("pid") else "another process"
    what = f" running {holder['evaluation']}" if holder.get("evaluation") else ""
    since = f" since {holder['started']}" if holder.get("started") else ""
    return (f"{out_dir}: another 'insight run' ({who}{what}{since}) is writing reports into this folder; "
            "wait for it to finish, or give this run another --out.")


def _tie_to_parent(parent_pid: int) -> None:
    """Pool worker initializer: die with the parent, however it dies (SIGKILL included).

    On Linux the kernel sends SIGKILL when the parent goes (PR_SET_PDEATHSIG); everywhere a
    watchdog thread notices the parent has gone (the worker is re-parented) within a second.
    A worker's Jupyter kernel polls its own parent, the worker, and so goes with it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="insight-parent-watchdog", daemon=True).start()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def outputs_intact(council_dir: Path, manifest: dict) -> bool:
    """True when every output the manifest lists is there with the hash it was written with."""
    hashes = manifest.get("hashes")
    if not isinstance(hashes, dict) or not hashes:
        return False  # a manifest from before hashes, or one written without outputs
    for name, expected in hashes.items():
        path = council_dir / name
        try:
            if Path(name).name != name or file_sha256(path) != expected:
                return False
        except OSError:
            return False
    return True


def default_notebooks_dir() -> Path:
    here = Path.cwd() / "notebooks"
    return here if here.is_dir() else PACKAGE_DIR.parent / "notebooks"


def code_fingerprint() -> str:
    """A hash of insightlib's own source, so a code change re-runs every council."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".csv", ".html", ".css", ".j2", ".qmd", ".yml"}:
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_DIR,
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cache_key(notebook: Path, parameters: dict, data_fingerprint: str, code: str) -> str:
    digest = hashlib.sha256()
    digest.update(notebook.read_bytes())
    digest.update(json.dumps(results_mod.to_jsonable(parameters), sort_keys=True).encode())
    digest.update(data_fingerprint.encode())
    digest.update(code.encode())
    return digest.hexdigest()


def _directory_fingerprint(data_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def resolve_data(data: str, evaluation_path: Path | None = None) -> Path:
    """A data path as written in an evaluation file: relative to where insight runs, else to the project."""
    candidate = Path(data).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    if evaluation_path is not None:
        beside_project = evaluation_path.parent.parent / candidate
        if beside_project.exists():
            return beside_project.resolve()
    return candidate.resolve()


def prepare_warehouse(data: Path, out_dir: Path, log: Callable[[str], None] = lambda _m: None):
    """A warehouse for the run: a .duckdb file as it is, a data directory validated and loaded once.

    Returns the warehouse path and the councils that failed validation (la_code -> message).
    """
    from ..ingest import warehouse

    if not data.exists():
        raise InputError(f"{data}: no such data directory or warehouse file.")
    if data.is_file():
        if not warehouse.is_warehouse(data):
            raise InputError(f"{data}: not a warehouse file; give a data directory or a .duckdb file made by 'insight load'.")
        return data, {}
    cache = out_dir / ".warehouses"
    cache.mkdir(parents=True, exist_ok=True)
    slug = hashlib.sha256(str(data).encode()).hexdigest()[:12]
    wh = cache / f"{slug}.duckdb"
    stamp_path = cache / f"{slug}.json"
    stamp = {"source": str(data), "fingerprint": _directory_fingerprint(data)}
    if wh.exists() and stamp_path.exists():
        previous = json.loads(stamp_path.read_text())
        if previous.get("fingerprint") == stamp["fingerprint"]:
            log(f"Using the warehouse already loaded from {data}")
            return wh, previous.get("failed", {})
    log(f"Validating and loading {data}")
    summary = warehouse.load_directory(data, wh)
    failed = {
        la: "; ".join(p.message for p in problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        for la, problems in summary.failed.items()
    }
    stamp["failed"] = failed
    results_mod.write_json_atomic(stamp_path, stamp)
    return wh, failed


# --- a warm kernel per worker ---------------------------------------------------------
#
# Starting a kernel and importing pandas, scipy and matplotlib takes several seconds, more
# than the analysis of a small council. So each worker (process, or Dask worker thread)
# keeps one kernel and runs its councils in it one after another: before each notebook the
# kernel's namespace is wiped (%reset -f), open figures closed, the execution count set back
# to 1 and the working folder changed, so a notebook sees nothing of the one before; only
# imported modules stay loaded. A kernel that dies, times out or fails to reset is thrown
# away and the next notebook gets a fresh one; after KERNEL_REUSE_LIMIT notebooks it is
# replaced anyway so that memory cannot creep up.

_LOCAL = threading.local()
_KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
# longest path a Unix socket may have (108 bytes on Linux, 104 on macOS), with room for "-ipc-N"
_SOCKET_PATH_LIMIT = 96


def _kernel_manager_class():
    """Kernels talk over Unix sockets in the user's private runtime folder, not loopback ports.

    A loopback port is chosen free and bound a moment later by the kernel; with several
    kernels starting at once (parallel councils, or anything else on the machine) another
    process can take it in between, and the kernel's heartbeat then prints a traceback into
    the user's terminal. A socket file named after the kernel's own connection file cannot
    be taken. Windows, or a runtime folder whose path is too long for a socket, keep TCP.
    """
    from jupyter_client.localinterfaces import localhost
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    class LocalSocketKernelManager(AsyncKernelManager):
        @default("transport")
        def _local_sockets(self) -> str:
            return "ipc" if _sockets_fit(jupyter_runtime_dir()) else "tcp"

        @default("ip")
        def _socket_prefix(self) -> str:
            if self.transport != "ipc":
                return localhost()
            folder = jupyter_runtime_dir()
            os.makedirs(folder, mode=0o700, exist_ok=True)
            return os.path.join(folder, f"kernel-{uuid.uuid4()}-ipc")

    return LocalSocketKernelManager


def _sockets_fit(folder: str) -> bool:
    if os.name != "posix":
        return False
    # connection files are kernel-<36-character uuid>.json; sockets are kernel-<uuid>-ipc-<port>
    return len(os.path.join(folder, "kernel-" + "x" * 36 + "-ipc-65535")) <= _SOCKET_PATH_LIMIT


async def _await(fn, *args, **kwargs):
    from nbclient.util import ensure_async

    return await ensure_async(fn(*args, **kwargs))


def _sync(fn, *args, **kwargs):
    from nbclient.util import run_sync

    return run_sync(_await)(fn, *args, **kwargs)


def _reset_code(cwd: str) -> str:
    return (
        "get_ipython().run_line_magic('reset', '-f')\n"
        "import sys as _insight_sys, os as _insight_os\n"
        "if 'matplotlib.pyplot' in _insight_sys.modules:\n"
        "    _insight_sys.modules['matplotlib.pyplot'].close('all')\n"
        f"_insight_os.chdir({cwd!r})\n"
        "del _insight_sys, _insight_os\n"
        "get_ipython().execution_count = 1\n"
    )


class _WarmKernel:
    def __init__(self, kernel_name: str):
        import nbformat
        from nbclient import NotebookClient

        starter = NotebookClient(nbformat.v4.new_notebook(), kernel_name=kernel_name, extra_arguments=list(_KERNEL_ARGS),
                                 kernel_manager_class=_kernel_manager_class())
        self.kernel_name = kernel_name
        self.km = starter.create_kernel_manager()
        starter.start_new_kernel(cwd=tempfile.gettempdir())
        self.uses = 0

    def shutdown(self) -> None:
        try:
            _sync(self.km.shutdown_kernel, now=True)
        except Exception:  # noqa: BLE001 - already dead is fine
            pass


def _warm_kernel(kernel_name: str) -> _WarmKernel:
    warm = getattr(_LOCAL, "kernel", None)
    if warm is not None and (warm.kernel_name != kernel_name or warm.uses >= KERNEL_REUSE_LIMIT
                             or not _sync(warm.km.is_alive)):
        discard_warm_kernel()
        warm = None
    if warm is None:
        warm = _LOCAL.kernel = _WarmKernel(kernel_name)
        _register_shutdown()
    return warm


def discard_warm_kernel() -> None:
    """Shut down this worker's warm kernel, if it has one."""
    warm = getattr(_LOCAL, "kernel", None)
    _LOCAL.kernel = None
    if warm is not None:
        warm.shutdown()


_SHUTDOWN_REGISTERED = False


def _register_shutdown() -> None:
    """Shut the kernel down when the worker ends (pool workers skip atexit, so Finalize too)."""
    global _SHUTDOWN_REGISTERED
    if _SHUTDOWN_REGISTERED:
        return
    import atexit
    from multiprocessing import util

    atexit.register(discard_warm_kernel)
    util.Finalize(None, discard_warm_kernel, exitpriority=50)
    _SHUTDOWN_REGISTERED = True


def _warm_engine():
    """A papermill engine that runs a notebook in the worker's warm kernel (registered once)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from traitlets import Unicode

    if "insight-warm" in papermill_engines._engines:
        return "insight-warm"

    class ResettingClient(PapermillNotebookClient):
        reset_code = Unicode("").tag(config=True)

        def papermill_execute_cells(self):
            reply = self.wait_for_reply(self.kc.execute(self.reset_code, silent=True, store_history=False))
            if not reply or reply["content"].get("status") != "ok":
                raise RuntimeError("the kernel could not be reset for the next council")
            super().papermill_execute_cells()

    class WarmEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                     start_timeout=60, execution_timeout=None, **kwargs):
            warm = kwargs.pop("warm_kernel")
            for unused in ("input_path", "timeout", "startup_timeout", "extra_arguments"):
                kwargs.pop(unused, None)
            client = ResettingClient(nb_man, km=warm.km, timeout=execution_timeout, startup_timeout=start_timeout,
                                     kernel_name=kernel_name, log=logger, log_output=log_output,
                                     stdout_file=stdout_file, stderr_file=stderr_file, **kwargs)
            try:
                return client.execute()
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()

    papermill_engines.register("insight-warm", WarmEngine)
    return "insight-warm"


# --- executing one notebook ----------------------------------------------------------


BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _kernel_threads(threads: int | None):
    """Share the cores between parallel kernels: each BLAS gets cores / workers threads.

    Two kernels each starting one BLAS thread per core oversubscribe the machine and the
    linear algebra spends its time waiting. A value the user has set is left alone.
    """
    chosen = {v: str(threads) for v in BLAS_THREAD_VARIABLES if threads and v not in os.environ}
    os.environ.update(chosen)
    try:
        yield
    finally:
        for variable in chosen:
            os.environ.pop(variable, None)


def execute_council(task: dict) -> dict:
    """Run one notebook for one council. Top level so that process pools and Dask can ship it."""
    with _kernel_threads(task.get("blas_threads")):
        return _execute_council(task)


def _execute_council(task: dict) -> dict:
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

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
    kernel_name = task.get("kernel_name", "python3")
    for attempt in range(1, KERNEL_RETRIES + 2):
        run.attempts = attempt
        try:
            engine = {}
            if reuse:
                warm = _warm_kernel(kernel_name)
                engine = {"engine_name": _warm_engine(), "warm_kernel": warm, "reset_code": _reset_code(str(out_nb.parent))}
                warm.uses += 1
            pm.execute_notebook(
                task["input_notebook"], str(tmp_nb), parameters=task["parameters"],
                kernel_name=kernel_name, language="python", cwd=str(out_nb.parent),
                progress_bar=False, log_output=False, request_save_on_cell_execute=False,
                execution_timeout=task.get("execution_timeout", 3600),
                # the kernel talks to us over loopback only; its start-up warning about that is noise
                extra_arguments=list(_KERNEL_ARGS), kernel_manager_class=_kernel_manager_class(), **engine,
            )
            run.status, run.error = "ok", None
            break
        except PapermillExecutionError as exc:  # a cell failed; the kernel itself is fine
            run.error = f"{exc.ename}: {str(exc.evalue)[:500]}"
            if _says_disk_full(str(exc.evalue)):
                run.error = f"{DISK_FULL}: step {exc.exec_count} of the notebook could not write its output"
            run.failing_cell = exc.exec_count
            run.link = f"{out_nb.name}#papermill-error-cell"
            break
        except CellTimeoutError:  # the notebook itself is too slow: running it again would only be as slow
            if reuse:
                discard_warm_kernel()
            limit = task.get("execution_timeout", 3600)
            run.error = f"a cell ran longer than the limit of {limit} s (insight run --cell-timeout)"
            break
        except (DeadKernelError, RuntimeError, TimeoutError, OSError) as exc:  # kernel did not start or died: try again
            if reuse:
                discard_warm_kernel()
            if is_disk_full(exc):  # trying again would only fill it again
                run.error = f"{DISK_FULL}: the executed notebook could not be written"
                break
            run.error = f"kernel failed ({type(exc).__name__}: {str(exc)[:300]})"
            time.sleep(min(2 * attempt, 5))
        except Exception as exc:  # anything else will fail the same way again
            if reuse:
                discard_warm_kernel()
            run.error = f"{type(exc).__name__}: {str(exc)[:500]}"
            break
    if not _keep_notebook(tmp_nb, out_nb) and run.status == "ok":
        run.status, run.error = "failed", f"{DISK_FULL}: the executed notebook could not be written completely"
    run.seconds_total = time.perf_counter() - started
    run.seconds_cells = _cell_seconds(out_nb)
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
    return run.to_dict()


def _says_disk_full(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text or "[Errno 28]" in text


def _keep_notebook(tmp_nb: Path, out_nb: Path) -> bool:
    """Swap a completely written notebook in under its real name; a partial one is removed."""
    if not tmp_nb.exists():
        return False
    try:
        with open(tmp_nb, encoding="utf-8") as fh:
            whole = isinstance(json.load(fh).get("cells"), list)
    except (OSError, ValueError, AttributeError):
        whole = False
    try:
        if whole:
            os.replace(tmp_nb, out_nb)
            return True
    except OSError:
        pass
    tmp_nb.unlink(missing_ok=True)
    return False


def _cell_seconds(notebook: Path) -> float:
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0.0
    return float(sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0) for c in nb.get("cells", [])))


# --- the batch ----------------------------------------------------------------------


def plan_tasks(
    evaluation: Evaluation,
    warehouse_path: Path,
    councils: Iterable[str],
    out_dir: Path,
    notebooks_dir: Path,
    force: bool = False,
):
    """The tasks to run and the councils skipped because nothing about them changed."""
    from ..ingest import warehouse

    notebook = evaluation.notebook_path(notebooks_dir)
    code = code_fingerprint()
    commit = git_commit()
    versions = results_mod.package_versions()
    tasks, skipped = [], []
    for la_code in councils:
        council_dir = out_dir / evaluation.name / la_code
        if la_code == NATIONAL:
            fingerprint = hashlib.sha256(
                "".join(warehouse.data_fingerprint(warehouse_path, la) for la in warehouse.council_codes(warehouse_path)).encode()
            ).hexdigest()[:16]
        else:
            fingerprint = warehouse.data_fingerprint(warehouse_path, la_code)
        parameters = {
            **evaluation.parameters,
            "data": str(warehouse_path),
            "la_code": "all" if la_code == NATIONAL else la_code,
            "output_dir": str(council_dir),
            "disclosure_threshold": evaluation.disclosure_threshold,
        }
        if evaluation.rounding:
            parameters["rounding"] = evaluation.rounding
        if la_code == NATIONAL and evaluation.councils != "all":
            parameters["councils"] = list(evaluation.councils)
        planned = _plan_one(evaluation, la_code, parameters, fingerprint, notebook, out_dir, code, commit, versions, force)
        (skipped if isinstance(planned, CouncilRun) else tasks).append(planned)
    return tasks, skipped


def _plan_one(evaluation: Evaluation, key_dir: str, parameters: dict, fingerprint: str, notebook: Path, out_dir: Path,
              code: str, commit: str | None, versions: dict, force: bool, extra: dict | None = None):
    """One council's (or area's) task, or its skipped run when nothing about it changed."""
    council_dir = out_dir / evaluation.name / key_dir
    output_notebook = council_dir / f"{evaluation.notebook}.ipynb"
    rerun = False
    key = _cache_key(notebook, {k: v for k, v in parameters.items() if k != "data"}, fingerprint, code)
    manifest_path = council_dir / "manifest.json"
    if not force and manifest_path.exists() and output_notebook.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except ValueError:
            previous = {}
        if previous.get("cache_key") == key and previous.get("status") == "ok":
            if outputs_intact(council_dir, previous):
                return CouncilRun(
                    la_code=key_dir, status="skipped", notebook=str(output_notebook),
                    results=str(council_dir / "results.json") if (council_dir / "results.json").exists() else None,
                )
            rerun = True  # "ok" in the manifest, but a notebook or results.json cut short or changed since
    return {
        "la_code": key_dir,
        "input_notebook": str(notebook),
        "output_notebook": str(output_notebook),
        "parameters": parameters,
        "manifest": {
            "evaluation": evaluation.name,
            "title": evaluation.title,
            "notebook": evaluation.notebook,
            "cache_key": key,
            "git_commit": commit,
            "insightlib_version": versions.get("insightlib"),
            "code_fingerprint": code,
            "package_versions": versions,
            "parameters": {k: v for k, v in parameters.items() if k not in ("data", "output_dir")},
            "data_fingerprint": fingerprint,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(extra or {}),
        },
        **({"rerun": "outputs incomplete or changed since their run"} if rerun else {}),
    }


def plan_area_tasks(evaluation: Evaluation, data: str, out_dir: Path, notebooks_dir: Path, force: bool = False):
    """Tasks for a notebook that works by area from published data (evaluation.AREA_NOTEBOOKS).

    ``data`` is 'reference' (the package's shipped copy) or a folder of the published files;
    each area gets a folder named by its key (a council's code, else e.g. 'lsip-south-yorkshire').
    """
    import importlib

    from .evaluation import AREA_NOTEBOOKS

    module, function = AREA_NOTEBOOKS[evaluation.notebook]
    source = data if data == "reference" else str(resolve_data(data, evaluation.path))
    if source != "reference" and not Path(source).is_dir():
        raise InputError(f"{source}: no such folder of published data (or give 'reference' for the shipped copy).")
    areas = getattr(importlib.import_module(module), function)(evaluation.areas, source)
    fingerprint = "reference" if source == "reference" else _directory_fingerprint(Path(source))
    notebook = evaluation.notebook_path(notebooks_dir)
    code, commit, versions = code_fingerprint(), git_commit(), results_mod.package_versions()
    tasks, skipped = [], []
    for (key, name), spec in zip(areas, evaluation.areas):
        parameters = {
            **evaluation.parameters, "data": source, "area": spec,
            "output_dir": str(out_dir / evaluation.name / key), "disclosure_threshold": evaluation.disclosure_threshold,
        }
        if evaluation.rounding:
            parameters["rounding"] = evaluation.rounding
        planned = _plan_one(evaluation, key, parameters, fingerprint, notebook, out_dir, code, commit, versions, force,
                            extra={"area": name})
        (skipped if isinstance(planned, CouncilRun) else tasks).append(planned)
    return tasks, skipped


def _plan_councils(evaluation: Evaluation, data: str | None, out_dir: Path, notebooks_dir: Path, force: bool,
                   summary: RunSummary, log: Callable[[str], None]):
    """A warehouse for the run, the councils in it, and their tasks; councils that cannot run go in the summary."""
    data_path = resolve_data(data or evaluation.data, evaluation.path)
    warehouse_path, invalid = prepare_warehouse(data_path, out_dir, log)

    from ..ingest import warehouse

    available = warehouse.council_codes(warehouse_path)
    wanted = list(available) + list(invalid) if evaluation.councils == "all" else list(evaluation.councils)
    unknown = [la for la in dict.fromkeys(wanted) if la not in invalid and la not in available]
    if unknown:  # a mistake in the evaluation file (or the wrong data): said before anything runs
        from ..reference import council_name

        present = ", ".join(f"{la} {council_name(la)}" for la in sorted(set(available) | set(invalid))) or "none"
        where = f"{evaluation.path}: " if evaluation.path else ""
        raise InputError(f"{where}council{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                         f"{'are' if len(unknown) > 1 else 'is'} not in the data {data_path}. "
                         f"The councils in it: {present}. Set 'councils:' in the evaluation file to some of these "
                         "(or 'all').")
    runnable = []
    for la_code in dict.fromkeys(wanted):
        if la_code in invalid:
            summary.runs.append(CouncilRun(la_code, "failed", error=f"data failed validation: {invalid[la_code]}"))
        else:
            runnable.append(la_code)
    runnable = _councils_with_inputs(evaluation, warehouse_path, runnable, summary, log)
    runnable = _councils_with_values(evaluation, warehouse_path, runnable, summary, log)
    if evaluation.scope == "national":
        runnable = [NATIONAL] if runnable else []

    return plan_tasks(evaluation, warehouse_path, runnable, out_dir, notebooks_dir, force)


def _councils_with_inputs(evaluation: Evaluation, warehouse_path: Path, councils: list[str], summary: RunSummary,
                          log: Callable[[str], None]) -> list[str]:
    """The councils whose data hold every table the notebook needs (evaluation.NOTEBOOK_TABLES).

    Checked before anything runs: when no council can run, the run stops with exit 2 naming the
    evaluation, councils and tables; otherwise the councils that cannot are failed up front and the
    others run. A national report needs each table in at least one council.
    """
    from ..ingest import warehouse
    from .evaluation import NOTEBOOK_TABLES

    needed = NOTEBOOK_TABLES.get(evaluation.notebook, ())
    if not needed or not councils:
        return councils
    rows = {la: info.get("rows", {}) for la, info in warehouse.load_metadata(warehouse_path)["councils"].items()}
    lacking = {la: [t for t in needed if not rows.get(la, {}).get(t)] for la in councils}
    lacking = {la: tables for la, tables in lacking.items() if tables}
    national = evaluation.scope == "national"
    if national:
        absent = [t for t in needed if all(t in lacking.get(la, []) for la in councils)]
        lacking = {la: absent for la in councils} if absent else {}
    if not lacking:
        return councils
    name = evaluation.path.name if evaluation.path else evaluation.name
    lines = [f"council {la}: no {' and no '.join(tables)} table{'s' if len(tables) > 1 else ''} in the data"
             for la, tables in lacking.items()]
    why = (f"the evaluation {name} (notebook {evaluation.notebook}) needs the "
           f"{', '.join(needed)} table{'s' if len(needed) > 1 else ''}")
    hint = (" (a CIN census return holds interventions only from the 2026 structure's PreProceedingsandFGDM "
            "block; otherwise supply an interventions file: docs/data-contract.md)") if any(
        "interventions" in t for t in lacking.values()) else " (docs/data-contract.md)"
    if national or len(lacking) == len(councils):
        raise InputError(f"{why}{hint}; nothing was run:\n" + "\n".join(f"  - {line}" for line in lines))
    log(f"{why}{hint}; these councils cannot run: " + "; ".join(lines))
    for la, tables in lacking.items():
        summary.runs.append(CouncilRun(la, "failed", error=f"no {' and no '.join(tables)} table in the data "
                                                           f"(the {evaluation.notebook} notebook needs it)"))
    return [la for la in councils if la not in lacking]


def _councils_with_values(evaluation: Evaluation, warehouse_path: Path, councils: list[str], summary: RunSummary,
                          log: Callable[[str], None]) -> list[str]:
    """The councils whose data record the value a parameter names (evaluation.NOTEBOOK_VALUES), e.g. the
    intervention; the others are stopped as in ``_councils_with_inputs``, with what they do record."""
    from ..ingest import warehouse
    from .evaluation import NOTEBOOK_VALUES

    if evaluation.notebook not in NOTEBOOK_VALUES or not councils or evaluation.scope == "national":
        return councils
    parameter, table, column = NOTEBOOK_VALUES[evaluation.notebook]
    wanted = evaluation.parameters.get(parameter)
    if not isinstance(wanted, str):
        return councils  # the notebook's own default, or a check of its parameters, says what is wrong
    recorded = warehouse.recorded_values(warehouse_path, table, column)
    lacking = {la: recorded.get(la, []) for la in councils if wanted not in recorded.get(la, [])}
    if not lacking:
        return councils
    name = evaluation.path.name if evaluation.path else evaluation.name
    lines = [f"council {la}: no {table} recorded as {wanted!r} (recorded: "
             f"{', '.join(repr(v) for v in values[:10]) or 'none'})" for la, values in lacking.items()]
    why = f"the evaluation {name} names {parameter} {wanted!r}; set 'parameters.{parameter}' to one the data record"
    if len(lacking) == len(councils):
        raise InputError(f"{why}; nothing was run:\n" + "\n".join(f"  - {line}" for line in lines))
    log(f"{why}; these councils cannot run: " + "; ".join(lines))
    for la in lacking:
        summary.runs.append(CouncilRun(la, "failed", error=f"no {table} recorded as {wanted!r} in the data"))
    return [la for la in councils if la not in lacking]


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
    with run_lock(out_dir, evaluation.name):  # one run at a time writes into one --out folder
        return _run_locked(evaluation, data, out_dir, workers, force, scheduler, notebooks_dir, progress, log,
                           reuse_kernels, cell_timeout, started)


def _run_locked(evaluation, data, out_dir, workers, force, scheduler, notebooks_dir, progress, log,
                reuse_kernels, cell_timeout, started) -> RunSummary:
    summary = RunSummary(evaluation=evaluation, out_dir=out_dir / evaluation.name)
    if evaluation.areas:
        tasks, skipped = plan_area_tasks(evaluation, data or evaluation.data, out_dir, notebooks_dir, force)
    else:
        tasks, skipped = _plan_councils(evaluation, data, out_dir, notebooks_dir, force, summary, log)
    rerun = [t["la_code"] for t in tasks if t.get("rerun")]
    if rerun:
        log(f"{len(rerun)} council(s) whose notebook or results.json is incomplete or changed since their last run: "
            f"running again ({', '.join(rerun[:10])}{' ...' if len(rerun) > 10 else ''})")
    for task in tasks:
        task["reuse_kernel"] = reuse_kernels
        task["execution_timeout"] = int(cell_timeout)
    if not scheduler and workers > 1:
        for task in tasks:
            task["blas_threads"] = max(1, (os.cpu_count() or 1) // min(workers, len(tasks)))
    summary.runs.extend(skipped)
    if skipped:
        log(f"{len(skipped)} council(s) unchanged since their last run: skipped (use --force to run them again)")
    summary.runs.extend(_execute(tasks, workers, scheduler, progress, evaluation.title))
    summary.runs.sort(key=lambda r: r.la_code)
    summary.seconds = time.perf_counter() - started
    try:
        _write_run_log(summary)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        summary.disk_full_log = True
    return summary


def _execute(tasks: list[dict], workers: int, scheduler: str | None, progress: bool, title: str) -> list[CouncilRun]:
    if not tasks:
        return []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.markup import escape

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not progress,
    )
    done: list[CouncilRun] = []
    with bar:
        job = bar.add_task(escape(title[:40]), total=len(tasks))  # a title is text, never markup
        for outcome in _iter_outcomes(tasks, workers, scheduler):
            run = CouncilRun(**outcome)
            done.append(run)
            bar.advance(job)
    return done


def _iter_outcomes(tasks: list[dict], workers: int, scheduler: str | None):
    """Each task's outcome as it finishes; a crash of the worker itself becomes that council's failure."""
    if scheduler:
        from distributed import Client, as_completed as dask_completed

        with Client(scheduler) as client:
            futures = {client.submit(execute_council, t, pure=False): t for t in tasks}
            for future in dask_completed(futures):
                yield _outcome_or_failure(future.result, futures[future])
        return
    if workers == 1 or len(tasks) == 1:
        try:
            with _terminate_as_interrupt():
                for task in tasks:
                    yield _outcome_or_failure(lambda t=task: execute_council(t), task)
        finally:
            discard_warm_kernel()
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=get_context("spawn"),
                               initializer=_tie_to_parent, initargs=(os.getpid(),))
    finished = False
    try:
        with _terminate_as_interrupt():
            futures = {pool.submit(execute_council, t): t for t in tasks}
            for future in as_completed(futures):
                yield _outcome_or_failure(future.result, futures[future])
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
        return CouncilRun(task["la_code"], "failed", notebook=task["output_notebook"], error=f"worker failed: {detail}").to_dict()


def _write_run_log(summary: RunSummary) -> None:
    folder = summary.out_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} {summary.evaluation.name}: "
             f"{len(summary.runs)} council(s), {len(summary.failed)} failed, {summary.seconds:.1f}s"]
    for run in summary.runs:
        lines.append(f"  {run.la_code} {run.status} {run.seconds_total:.1f}s" + (f" {run.error}" if run.error else ""))
    with open(folder / "run.log", "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    # the evaluation as run (title, description, councils...), not only its name
    results_mod.write_json_atomic(folder / "run.json", {**summary.to_dict(), "evaluation": summary.evaluation.to_dict()})
