"""The warm Jupyter kernel each worker keeps, its Unix-socket transport, and the worker's tie to its parent.

Split from runner.py: how a kernel is started, reused, reset and shut down, so that the
runner itself only schedules councils.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import uuid
import weakref
from contextlib import contextmanager

#: A worker's warm kernel runs at most this many notebooks before a fresh one replaces it.
KERNEL_REUSE_LIMIT = 100
#: ... and is replaced sooner once its resident memory, between notebooks, has grown past this (bytes), so that
#: memory cannot creep up; a replacement costs a kernel start and its imports (2-4 s).
KERNEL_MEMORY_LIMIT = 1536 * 1024**2
#: How many notebook kinds' kernels a worker keeps warm at once (a suite's evaluations run one kind after another).
KERNELS_KEPT = 2


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


# --- a warm kernel per worker ---------------------------------------------------------
#
# Starting a kernel and importing pandas, scipy and matplotlib takes several seconds, more
# than the analysis of a small council. So each worker (process, or Dask worker thread)
# keeps a kernel per notebook kind (at most KERNELS_KEPT; one pool serves a whole suite of
# evaluations) and runs that kind's councils in it one after another: before each notebook the
# kernel's namespace is wiped (%reset -f), open figures closed, the execution count set back
# to 1 and the working folder changed, so a notebook sees nothing of the one before; only
# imported modules stay loaded. A kernel that dies, times out or fails to reset is thrown
# away and the next notebook gets a fresh one; after KERNEL_REUSE_LIMIT notebooks, or once its
# memory has grown past KERNEL_MEMORY_LIMIT, it is replaced anyway so that memory cannot creep up.

_LOCAL = threading.local()
_KERNEL_ARGS = ["--IPKernelApp.log_level=CRITICAL"]
#: On a Dask worker a warm kernel left idle this long is shut down: one run's councils follow each
#: other at once, so a run that has ended, or whose 'insight run' was killed, leaves no kernel behind.
DASK_IDLE_SECONDS = 10.0
# every kernel manager started, by the thread that started it (a Dask task's watchdog stops them)
_MANAGERS: dict[int, weakref.WeakSet] = {}
_WARM = weakref.WeakSet()  # every warm kernel of this process (the idle reaper's list)
_WARM_LOCK = threading.Lock()
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
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            _MANAGERS.setdefault(threading.get_ident(), weakref.WeakSet()).add(self)

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
    """Wipe the namespace, close figures, move to the council's folder; then freeze what survived.

    %reset -f collects garbage twice (a full pass over every object of pandas, scipy, matplotlib...: 0.1-0.7 s
    each). gc.freeze() after it moves the survivors (imported modules, mostly) out of the collector's sight, so
    the next reset's passes, and the automatic ones while a notebook runs, look only at what came after."""
    return (
        "get_ipython().run_line_magic('reset', '-f')\n"
        "import sys as _insight_sys, os as _insight_os, gc as _insight_gc\n"
        "if 'matplotlib.pyplot' in _insight_sys.modules:\n"
        "    _insight_sys.modules['matplotlib.pyplot'].close('all')\n"
        f"_insight_os.chdir({cwd!r})\n"
        "_insight_gc.freeze()\n"
        "del _insight_sys, _insight_os, _insight_gc\n"
        "get_ipython().execution_count = 1\n"
    )


class _WarmKernel:
    def __init__(self, kernel_name: str):
        import nbformat
        from nbclient import NotebookClient

        starter = NotebookClient(
            nbformat.v4.new_notebook(),
            kernel_name=kernel_name,
            extra_arguments=list(_KERNEL_ARGS),
            kernel_manager_class=_kernel_manager_class(),
        )
        self.kernel_name = kernel_name
        self.km = starter.create_kernel_manager()
        starter.start_new_kernel(cwd=tempfile.gettempdir())
        # one client for the kernel's life: a new one per notebook waits for its channels (0.2 s at least)
        self.kc = starter.start_new_kernel_client()
        self.uses = 0
        self.idle_since: float | None = None  # None while a notebook runs in it
        self.reaped = False
        _WARM.add(self)

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        except Exception:  # noqa: BLE001 - already closed is fine
            pass
        try:
            _sync(self.km.shutdown_kernel, now=True)
        except Exception:  # noqa: BLE001 - already dead is fine
            pass


def _warm_kernel(kernel_name: str, kind: str = "") -> _WarmKernel:
    """This thread's warm kernel for notebooks of ``kind`` (one kernel per notebook kind, kept across evaluations).

    A kernel serves only notebooks of one kind: a notebook's module-level settings (pandas display options,
    matplotlib's) outlive the namespace wipe, so another kind's notebook could render differently after it.
    At most KERNELS_KEPT kinds stay warm in a thread; the one used longest ago is shut down first."""
    kept = _kept_kernels()
    key = (kernel_name, kind)
    warm = kept.get(key)
    if warm is not None:
        with _WARM_LOCK:  # claimed for this notebook: the idle reaper passes it over from now on
            reaped, warm.idle_since = warm.reaped, None
        worn = warm.uses >= KERNEL_REUSE_LIMIT or _resident_bytes(warm.km) > KERNEL_MEMORY_LIMIT
        if reaped or worn or not _sync(warm.km.is_alive):
            _LOCAL.current = key
            discard_warm_kernel()
            warm = None
    if warm is None:
        while len(kept) >= KERNELS_KEPT:
            kept.pop(next(iter(kept))).shutdown()
        warm = _WarmKernel(kernel_name)
        _register_shutdown()
    kept.pop(key, None)
    kept[key] = warm  # the most recently used last
    _LOCAL.current = key
    return warm


def _resident_bytes(km) -> int:
    """A kernel's resident memory (Linux /proc; 0 where that cannot be read: then only the count replaces it)."""
    pid = getattr(getattr(km, "provisioner", None), "pid", None)
    try:
        with open(f"/proc/{int(pid)}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, TypeError, IndexError):
        return 0


def _kept_kernels() -> dict:
    if not hasattr(_LOCAL, "kernels"):
        _LOCAL.kernels, _LOCAL.current = {}, None
    return _LOCAL.kernels


def release_warm_kernel() -> None:
    """The notebook in this thread's warm kernel has finished: from now it counts as idle."""
    warm = _kept_kernels().get(_LOCAL.current)
    if warm is not None:
        with _WARM_LOCK:
            warm.idle_since = time.monotonic()


def kill_kernel(km) -> None:
    """Kill a kernel's whole process group at once (it is started in a session of its own)."""
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pgid", None) or getattr(provisioner, "pid", None)
    if not pid:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            os.kill(pid, signal.SIGTERM)
    except OSError:
        pass
    process = getattr(provisioner, "process", None)
    try:
        if process is not None:
            process.wait(timeout=5)  # reaped, not left a zombie
    except Exception:  # noqa: BLE001 - gone is all that matters
        pass


def kill_thread_kernels(thread_id: int) -> None:
    """Kill every kernel the given thread started (a council's task abandoned by its client)."""
    for km in list(_MANAGERS.get(thread_id, ())):
        kill_kernel(km)


def reap_idle_kernels(after: float = DASK_IDLE_SECONDS) -> None:
    """Start, once per process, a thread that kills warm kernels idle for ``after`` seconds (Dask workers).

    A Dask worker belongs to the cluster and outlives the 'insight run' that sent it councils; its
    warm kernels must not: between one council and the next a kernel is idle for milliseconds."""
    global _REAPER
    with _WARM_LOCK:
        if _REAPER is not None:
            return
        _REAPER = threading.Thread(target=_reap, args=(after,), name="insight-idle-kernels", daemon=True)
    _REAPER.start()


_REAPER: threading.Thread | None = None


def _reap(after: float) -> None:
    while True:
        time.sleep(min(1.0, after / 2))
        now = time.monotonic()
        with _WARM_LOCK:
            idle = [w for w in list(_WARM) if not w.reaped and w.idle_since is not None and now - w.idle_since > after]
            for warm in idle:
                warm.reaped = True
        for warm in idle:
            kill_kernel(warm.km)


def discard_warm_kernel() -> None:
    """Shut down the warm kernel this thread's current notebook ran in (it died, timed out or failed)."""
    warm = _kept_kernels().pop(_LOCAL.current, None)
    _LOCAL.current = None
    if warm is not None:
        warm.shutdown()


def discard_warm_kernels() -> None:
    """Shut down every warm kernel of this thread (the run is over, or the worker ends)."""
    kept = _kept_kernels()
    _LOCAL.current = None
    while kept:
        kept.pop(next(iter(kept))).shutdown()


_SHUTDOWN_REGISTERED = False


def _register_shutdown() -> None:
    """Shut the kernel down when the worker ends (pool workers skip atexit, so Finalize too)."""
    global _SHUTDOWN_REGISTERED
    if _SHUTDOWN_REGISTERED:
        return
    import atexit
    from multiprocessing import util

    atexit.register(discard_warm_kernels)
    util.Finalize(None, discard_warm_kernels, exitpriority=50)
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
        def execute_managed_notebook(
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            **kwargs,
        ):
            warm = kwargs.pop("warm_kernel")
            for unused in ("input_path", "timeout", "startup_timeout", "extra_arguments"):
                kwargs.pop(unused, None)
            client = ResettingClient(
                nb_man,
                km=warm.km,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                **kwargs,
            )
            client.kc = warm.kc  # the warm kernel's own client, kept open between notebooks
            return client.execute()

    papermill_engines.register("insight-warm", WarmEngine)
    return "insight-warm"


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
