"""Run manifests and what a skip trusts: output hashes, the code and data fingerprints, and the
lock that keeps two runs out of one --out folder.

Split from runner.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from . import results as results_mod
from ..ingest.fingerprint import file_sha256
from ..errors import InputError

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # insightlib/, not batch/

#: The lock file ``insight run`` holds in its --out folder while it runs.
LOCK_NAME = ".insight-run.lock"


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
    me = {"pid": os.getpid(), "evaluation": what, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
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
    return (
        f"{out_dir}: another 'insight run' ({who}{what}{since}) is writing reports into this folder; "
        "wait for it to finish, or give this run another --out."
    )


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
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
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
