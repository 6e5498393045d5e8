"""Faults during 'insight run' and 'insight render': a killed run leaves no worker or kernel behind,
a council is done only when its outputs are whole (hashes checked before a skip), a second run on
the same --out refuses, a full disk gives a plain sentence and leaves nothing half-written, and a
broken report is left out of the site while the rest is built."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from typer.testing import CliRunner

from insightlib.batch import kernels, runner, site, site_pages
from insightlib.batch.manifest import LOCK_NAME, run_lock
from insightlib.ingest.fingerprint import file_sha256
from insightlib.simulate import synth
from insightlib.ingest import warehouse
from insightlib.batch.cli import EXIT_BAD_INPUT, EXIT_SOME_FAILED, app
from insightlib.batch.evaluation import load_evaluation
from fake_quarto import write_fake_quarto
from test_site import build_small, skip_trend

INSIGHT = [sys.executable, "-m", "insightlib.batch.cli"]
KEY = "a-test-key-that-is-long-enough-0123456789"


def quick_notebook() -> nbformat.NotebookNode:
    """A notebook that takes the runner's parameters, may wait, may print ballast, writes results.json."""
    params = new_code_cell('data = ""\nla_code = ""\noutput_dir = "."\ndisclosure_threshold = 5\n'
                           "pause = 0.0\nballast_kb = 0\nresults_kb = 0", metadata={"tags": ["parameters"]})
    body = new_code_cell(
        "import pathlib, time\nfrom insightlib.batch import results\n"
        "time.sleep(pause)\n"
        "if ballast_kb:\n    print('x' * (ballast_kb * 1024))\n"
        "results.write_json_atomic(pathlib.Path(output_dir) / 'results.json',\n"
        "                          {'la_code': la_code, 'ballast': 'y' * (results_kb * 1024)})\n"
        "print('done', la_code)")
    return new_notebook(cells=[new_markdown_cell("# A quick check\n\nFor the fault tests."), params, body],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder: notebooks/quick.ipynb and a warehouse of three small synthetic councils."""
    root = tmp_path_factory.mktemp("project")
    (root / "notebooks").mkdir()
    nbformat.write(quick_notebook(), str(root / "notebooks" / "quick.ipynb"))
    data = synth.generate(3, 30, 5, root / "data")
    wh = root / "data.duckdb"
    warehouse.load_directory(data, wh, key=KEY)
    return root


def evaluation_file(project: Path, name: str, **parameters) -> Path:
    lines = [f"name: {name}", "title: Fault test", "notebook: quick", f"data: {project / 'data.duckdb'}",
             "councils: all"]
    if parameters:
        lines.append("parameters:")
        lines += [f"  {k}: {v}" for k, v in parameters.items()]
    path = project / f"{name}.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_in_process(project: Path, name: str, out: Path, log=None, **parameters):
    evaluation = load_evaluation(evaluation_file(project, name, **parameters), notebooks_dir=project / "notebooks")
    return runner.run_evaluation(evaluation, out_dir=out, workers=1, notebooks_dir=project / "notebooks",
                                 progress=False, log=log or (lambda m: None))


def kernels_and_workers(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def is_kernel(proc: psutil.Process) -> bool:
    try:
        return any("ipykernel" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


# --- a killed run leaves nothing running ----------------------------------------------------------


@pytest.mark.parametrize("workers,sig", [(2, signal.SIGKILL), (2, signal.SIGTERM), (1, signal.SIGKILL)])
def test_killing_insight_run_leaves_no_worker_or_kernel_running(project, tmp_path, workers, sig):
    name = f"kill{workers}{int(sig)}"
    evaluation = evaluation_file(project, name, pause=120)
    out = tmp_path / "out"
    env = {**os.environ, "INSIGHT_KEY": KEY}
    proc = subprocess.Popen(INSIGHT + ["run", str(evaluation), "--out", str(out), "--workers", str(workers),
                                       "--no-progress"], cwd=project, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        kernels: list[psutil.Process] = []
        while time.monotonic() < deadline and len(kernels) < workers:
            time.sleep(0.5)
            assert proc.poll() is None, proc.stdout.read().decode()
            kernels = [p for p in kernels_and_workers(proc.pid) if is_kernel(p)]
        assert len(kernels) == workers, "the kernels never started"
        time.sleep(2)  # the kernels are running the notebook's first cells
        if workers > 1:  # meanwhile a second run on the same --out refuses, saying who holds it
            second = subprocess.run(INSIGHT + ["run", str(evaluation), "--out", str(out), "--no-progress"],
                                    cwd=project, env=env, capture_output=True, text=True, timeout=120)
            assert second.returncode == EXIT_BAD_INPUT, second.stdout + second.stderr
            message = " ".join(second.stderr.split())
            assert f"another 'insight run' (pid {proc.pid} running {name}" in message, message
            assert "wait for it to finish" in message and "Traceback" not in second.stderr
        descendants = kernels_and_workers(proc.pid)
        assert len(descendants) >= 2 * workers - (workers == 1)  # workers (if a pool) and their kernels
        killed = time.monotonic()
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        _gone, alive = psutil.wait_procs(descendants, timeout=15)
        alive = still_running(alive)
        assert not alive, [" ".join(p.cmdline()) for p in alive]
        print(f"{len(descendants)} processes gone {time.monotonic() - killed:.1f} s after signal {int(sig)}")
    finally:
        for p in still_running(descendants + kernels_and_workers(proc.pid)):
            p.kill()
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()


# --- a council is done only when its outputs are whole --------------------------------------------


def test_a_truncated_or_changed_output_is_run_again_not_skipped(project, tmp_path):
    out = tmp_path / "out"
    first = run_in_process(project, "hashes", out)
    assert [r.status for r in first.runs] == ["ok"] * 3
    councils = [r.la_code for r in first.runs]
    folder = out / "hashes"
    manifest = json.loads((folder / councils[0] / "manifest.json").read_text())
    assert set(manifest["hashes"]) == {"quick.ipynb", "results.json"}
    assert manifest["hashes"]["quick.ipynb"] == file_sha256(folder / councils[0] / "quick.ipynb")
    # one notebook cut short under an "ok" manifest, one results.json edited, one left alone
    notebook = folder / councils[0] / "quick.ipynb"
    notebook.write_bytes(notebook.read_bytes()[:200])
    (folder / councils[1] / "results.json").write_text('{"la_code": "forged"}')
    messages = []
    second = run_in_process(project, "hashes", out, log=messages.append)
    status = {r.la_code: r.status for r in second.runs}
    assert status == {councils[0]: "ok", councils[1]: "ok", councils[2]: "skipped"}
    assert any("incomplete or changed since their last run: running again" in m for m in messages)
    assert json.loads(notebook.read_text())["cells"]  # whole again
    assert json.loads((folder / councils[1] / "results.json").read_text())["la_code"] == councils[1]
    # a manifest from before hashes is not trusted either
    old = json.loads((folder / councils[2] / "manifest.json").read_text())
    del old["hashes"]
    (folder / councils[2] / "manifest.json").write_text(json.dumps(old))
    third = run_in_process(project, "hashes", out)
    assert {r.la_code: r.status for r in third.runs}[councils[2]] == "ok"
    assert not list(folder.rglob(".tmp-*"))


# --- one run at a time on one --out ---------------------------------------------------------------


def test_a_second_run_on_the_same_out_refuses_and_a_stale_lock_is_ignored(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    out = tmp_path / "out"
    evaluation = evaluation_file(project, "locked")
    with run_lock(out, "someone-else"):
        result = CliRunner().invoke(app, ["run", str(evaluation), "--out", str(out), "--no-progress"])
        assert result.exit_code == EXIT_BAD_INPUT, result.output
        message = " ".join(result.output.split())
        assert f"another 'insight run' (pid {os.getpid()} running someone-else since" in message
        assert "give this run another --out" in message and "Traceback" not in result.output
        assert not (out / "locked").exists()  # nothing was started
    # a lock file left by a run that was killed names a pid that is gone: it does not stand in the way
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "evaluation": "killed"}))
    result = CliRunner().invoke(app, ["run", str(evaluation), "--out", str(out), "--no-progress", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert (out / LOCK_NAME).read_text() == ""  # released


# --- a full disk ------------------------------------------------------------------------------------


def test_a_full_disk_while_the_notebook_is_written_leaves_no_half_file(project, tmp_path, monkeypatch):
    """The notebook writer fails half-way with ENOSPC (as on a full disk)."""
    out = tmp_path / "out"
    run_in_process(project, "full", out)  # a good run first: its notebooks must survive
    folder = out / "full"
    good = {p: p.read_bytes() for p in folder.glob("*/quick.ipynb")}
    import papermill.iorw

    real_write = papermill.iorw.write_ipynb

    def full_disk(nb, path, *args, **kwargs):
        if nb.cells[-1].get("outputs"):  # the last write, after the notebook ran
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(nbformat.writes(nb)[:300])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_write(nb, path, *args, **kwargs)

    monkeypatch.setattr("papermill.engines.write_ipynb", full_disk)
    monkeypatch.setattr("papermill.execute.write_ipynb", full_disk)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(app, ["run", str(project / "full.yml"), "--out", str(out), "--force",
                                      "--workers", "1", "--no-progress"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    message = " ".join(result.output.split())
    assert "is full, so some reports could not be written" in message and "free some space" in message
    errors = {r["error"] for r in json.loads((out / "full" / "run.json").read_text())["runs"]}
    assert errors == {"the disk is full: the executed notebook could not be written"}
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert {p: p.read_bytes() for p in folder.glob("*/quick.ipynb")} == good  # the last good notebooks, whole
    assert not list(out.rglob(".tmp-*"))
    for manifest in folder.glob("*/manifest.json"):
        assert json.loads(manifest.read_text())["status"] == "failed"


def _unshare_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null"
                            " || mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs 'unshare -rm' to mount a small tmpfs (a real full disk); "
                                                 "the simulated full disk above runs everywhere")
@pytest.mark.parametrize("what", ["notebook", "results"])
def test_a_real_full_disk_gives_a_plain_sentence_and_no_half_files(project, tmp_path, what):
    """On a 256 KB file system: the executed notebook (or results.json) does not fit."""
    out = tmp_path / "small"
    out.mkdir()
    parameters = {"ballast_kb": 600} if what == "notebook" else {"results_kb": 600}
    evaluation = evaluation_file(project, f"disk{what}", **parameters)
    command = " ".join(["mount -t tmpfs -o size=256k tmpfs", str(out), "&&", *INSIGHT, "run", str(evaluation),
                        "--out", str(out), "--workers", "1", "--no-progress", ";",
                        "echo EXIT=$?; find", str(out), "-name '.tmp-*'; ls -la", str(out / f"disk{what}") + "/*"])
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", command], cwd=project, capture_output=True, text=True,
                          env={**os.environ, "INSIGHT_KEY": KEY}, timeout=600)
    text = proc.stdout + proc.stderr
    assert f"EXIT={EXIT_BAD_INPUT}" in proc.stdout, text
    message = " ".join(text.split())
    assert "is full, so some reports could not be written" in message, text
    assert "Traceback" not in text and "internal error" not in text
    assert ".tmp-" not in proc.stdout.split("EXIT=")[1], text  # no half-written temporary file
    assert "quick.ipynb" not in proc.stdout.split("EXIT=")[1] or what == "results", text


# --- render leaves out a broken report and builds the rest ----------------------------------------


@pytest.mark.parametrize("engine", ["html", "quarto"])
def test_render_leaves_out_a_broken_report_and_builds_the_rest(engine, tmp_path, monkeypatch):
    reports = build_small(tmp_path / "reports")
    broken = reports / "fgc" / "204" / "rereferral.ipynb"
    broken.write_bytes(broken.read_bytes()[:500])  # cut short
    monkeypatch.setattr("insightlib.report.national_charts.trend_plot", skip_trend)
    if engine == "quarto":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        write_fake_quarto(bindir)
        (bindir / "quarto").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
        stale = reports / "_site_src" / "fgc" / "204" / "rereferral.qmd"  # from an earlier render, in its folder
        stale.parent.mkdir(parents=True)
        stale.write_text("stale page source from an earlier render")
        (reports / "_site_src" / site_pages.MARKER).write_text("")
    else:
        monkeypatch.setattr(site.shutil, "which", lambda name: None)
    result = CliRunner().invoke(app, ["render", str(reports)])
    assert result.exit_code == EXIT_SOME_FAILED, result.output  # built, but not everything is in it
    notices = [line for line in result.output.splitlines() if "Left out of the site" in line]
    assert len(notices) == 1 and "fgc/204/rereferral.ipynb" in notices[0] and "not a readable notebook" in notices[0]
    assert "Traceback" not in result.output
    if engine == "html":
        assert (reports / "_site" / "fgc" / "205" / "rereferral.html").exists()
        assert not (reports / "_site" / "fgc" / "204" / "rereferral.html").exists()
        assert 'href="204/' not in (reports / "_site" / "fgc" / "index.html").read_text()
    else:
        assert (reports / "_site_src" / "fgc" / "205" / "rereferral.qmd").exists()
        assert not stale.exists()  # Quarto cannot render a stale page
        listed = (reports / "_site_src" / "fgc" / "councils.yml").read_text()
        assert "205" in listed and "204" not in listed


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets are POSIX only; Windows keeps loopback ports")
def test_kernels_talk_over_private_sockets_so_no_port_can_be_taken_between_choosing_and_binding(tmp_path, monkeypatch):
    """CI once saw a parallel test take a kernel's heartbeat port; the kernel then printed a traceback to the user."""
    from jupyter_core.paths import jupyter_runtime_dir

    manager = kernels._kernel_manager_class()(kernel_name="python3")
    assert manager.transport == "ipc"
    assert Path(manager.ip).parent == Path(jupyter_runtime_dir())  # the user's own 0700 folder, not the cwd
    assert kernels._kernel_manager_class()(kernel_name="python3").ip != manager.ip
    # a runtime folder too deep for a socket path falls back to loopback ports
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / ("deep" * 30)))
    assert kernels._kernel_manager_class()(kernel_name="python3").transport == "tcp"


# --- on a Dask cluster: the cluster's workers stay, the run's kernels and queued councils do not -----


def descendant_kernels() -> list[psutil.Process]:
    """Kernels started under this test process (by the LocalCluster's worker processes)."""
    return [p for p in still_running(kernels_and_workers(os.getpid())) if is_kernel(p)]


def test_killing_insight_run_on_a_dask_cluster_stops_its_kernels_and_queued_councils(project, tmp_path):
    distributed = pytest.importorskip("distributed")
    evaluation = evaluation_file(project, "daskkill", pause=120)
    out = tmp_path / "out"
    env = {**os.environ, "INSIGHT_KEY": KEY}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc = subprocess.Popen(INSIGHT + ["run", str(evaluation), "--out", str(out), "--scheduler",
                                           cluster.scheduler_address, "--no-progress"], cwd=project, env=env,
                                start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        kernels: list[psutil.Process] = []
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and len(kernels) < 2:  # two councils running, the third queued
                time.sleep(0.5)
                assert proc.poll() is None, proc.stdout.read().decode()
                kernels = descendant_kernels()
            assert len(kernels) == 2, "the kernels never started"
            time.sleep(2)  # the kernels are running the notebook's first cells
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            _gone, alive = psutil.wait_procs(kernels, timeout=20)
            assert not still_running(alive), [" ".join(p.cmdline()) for p in still_running(alive)]
            print(f"the run's kernels gone {time.monotonic() - killed:.1f} s after SIGKILL")
            time.sleep(3)  # the queued council is never started
            assert not descendant_kernels()
            assert not list(out.rglob("results.json"))
            manifests = [json.loads(p.read_text()) for p in out.rglob("manifest.json")]
            assert len(manifests) <= 2 and all(m["status"] == "failed" for m in manifests)
            with distributed.Client(cluster) as client:  # the cluster's own workers are left for the next run
                assert len(client.scheduler_info()["workers"]) == 2
        finally:
            for p in descendant_kernels():
                p.kill()
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()


def test_a_dask_workers_idle_kernels_are_shut_down_after_the_run(project, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(kernels, "DASK_IDLE_SECONDS", 4.0)
    evaluation = load_evaluation(evaluation_file(project, "daskidle"), notebooks_dir=project / "notebooks")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = runner.run_evaluation(evaluation, out_dir=tmp_path / "out", notebooks_dir=project / "notebooks",
                                        scheduler=cluster.scheduler_address, progress=False, log=lambda m: None)
        assert [r.status for r in summary.runs] == ["ok"] * 3
        assert descendant_kernels(), "the warm kernels are kept while councils follow each other"
        deadline = time.monotonic() + 30
        while descendant_kernels() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not descendant_kernels(), "a kernel left idle on a Dask worker was not shut down"
