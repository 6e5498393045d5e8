"""Loading benchmark: validate + pseudonymise + load a national extract of synthetic councils at real size.

DESIGN.md / issue 17 item 3: all 153 councils at real size (12,700 children each, about 20,000 closed
episodes) within 90 s and 4 GB peak on this machine (2 shared cores), linear in councils; a national
extract is one file per table ("tables") or one folder per council ("folders"), and both are measured.

    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/loading.py                  # 10, 30, 153 councils
    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/loading.py --councils 10 30 # a quicker look
    ... --children 2000 --layout tables

The extracts are generated once into --cache (default /tmp/insight-bench-loading; not timed): ``insight
synth`` makes the 153 councils, and the smaller extracts are its first 10 and 30 councils, so each run
loads the same councils. Then a fresh Python process runs ``insightlib.ingest.warehouse.load_directory``
(what ``insight load`` calls) and prints wall seconds, CPU seconds (its own, children included), the peak
resident memory of it and its worker processes together (sampled from /proc every 50 ms, proportional set
size, so pages shared by a forked worker count once; ru_maxrss of the main process beside it) and the cost
per council; the load average is printed beside them.

Same warehouse before and after a change: ``--keep DIR`` keeps each warehouse as DIR/<layout>-<n>.duckdb;
``--check DIR`` compares each new warehouse with the one kept there: the same tables, the same rows of every
table (as multisets: EXCEPT ALL both ways, so row order does not matter but every pseudonym does), the same
per-council fingerprints and row counts, the same load metadata but for its time and source path.

    PYTHONPATH=<old tree> .venv/bin/python benchmarks/loading.py --councils 10 --keep /tmp/before
    .venv/bin/python benchmarks/loading.py --councils 10 --check /tmp/before
    .venv/bin/python benchmarks/loading.py compare A.duckdb B.duckdb
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

SEED = 17
KEY = b"benchmark-key-0123456789abcdef"
SIDE_FILES = ("SYNTHETIC.json",)


def _read_strings(path: Path) -> pa.Table:
    with path.open(encoding="utf-8") as fh:
        names = next(csv.reader(fh))
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}))


def national(cache: Path, children: int) -> Path:
    """The 153 councils written once by ``insight synth`` (one CSV per table)."""
    from insightlib.simulate import synth

    d = cache / f"c{children}" / "tables-153"
    if not (d / "referrals.csv").exists():
        t = time.perf_counter()
        synth.generate(153, children, SEED, d, force=True)
        print(f"generated {d} in {time.perf_counter() - t:.0f} s (not timed)", flush=True)
    return d


def subset(source: Path, dest: Path, la_codes: list[str] | None) -> None:
    """The tables of ``source`` cut to ``la_codes`` (None: all), one CSV per table."""
    if (dest / "councils.csv").exists():
        return
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in sorted(source.glob("*.csv")):
        table = _read_strings(f)
        if la_codes is not None:
            table = table.filter(pc.is_in(table["la_code"], value_set=pa.array(la_codes)))
        pacsv.write_csv(table, tmp / f.name)
    for name in SIDE_FILES:
        shutil.copy(source / name, tmp / name)
    os.replace(tmp, dest)


def folders(source: Path, dest: Path) -> None:
    """The same extract as one folder per council (``<la_code>/<table>.csv``)."""
    if dest.exists():
        return
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tables = {f.name: _read_strings(f) for f in sorted(source.glob("*.csv"))}
    for la in tables["councils.csv"]["la_code"].to_pylist():
        (tmp / la).mkdir()
        for name, table in tables.items():
            pacsv.write_csv(table.filter(pc.equal(table["la_code"], la)), tmp / la / name)
    for name in SIDE_FILES:
        shutil.copy(source / name, tmp / name)
    os.replace(tmp, dest)


def measure(data_dir: str, keep: str | None, stage: str = "load") -> None:
    """Runs in a fresh process: validate, pseudonymise and load (or, ``stage`` "validate", what ``insight
    validate`` does); print the figures as one JSON line."""
    import tempfile

    from insightlib.ingest import warehouse
    from insightlib.ingest.validate import check_directory

    t0, c0 = time.perf_counter(), os.times()
    if stage == "validate":
        report = check_directory(data_dir)
        figures = {"loaded": len(report.clean_councils), "failed": len(report.failed_councils), "rows": report.rows}
    else:
        with tempfile.TemporaryDirectory(dir=Path(data_dir).parent) as tmp:
            target = Path(keep) if keep else Path(tmp) / "bench.duckdb"
            if keep:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
            summary = warehouse.load_directory(data_dir, target, key=KEY)
        figures = {"loaded": len(summary.loaded), "failed": len(summary.failed), "rows": summary.rows}
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = sum(c1[:4]) - sum(c0[:4])
    print(json.dumps({"wall": wall, "cpu": cpu, "main_peak_gb": _high_water() / 1024**3} | figures))


def _high_water() -> int:
    """This process's peak resident memory since it started (bytes). Not ru_maxrss: Linux carries that over
    from the process that forked and exec'd it, here the benchmark's parent."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def _tree_memory(pid: int) -> int:
    """Proportional set size (bytes) of a process and its descendants (shared pages split between them)."""
    pids, total = [pid], 0
    while pids:
        p = pids.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("Pss:"))
            with open(f"/proc/{p}/task/{p}/children") as fh:
                pids += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def run(data_dir: Path, keep: Path | None = None, stage: str = "load") -> dict:
    cmd = [sys.executable, __file__, "_measure", str(data_dir), "--stage", stage]
    cmd += ["--keep-file", str(keep)] if keep else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_memory(proc.pid))
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"the {stage} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_gb"] = max(peak / 1024**3, result["main_peak_gb"])
    return result


def compare(a: Path, b: Path) -> list[str]:
    """How warehouse ``b`` differs from ``a`` (nothing: the same contents), each difference in a line."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    names = {}
    for db in ("a", "b"):
        names[db] = sorted(
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?", [db]
            ).fetchall()
        )
    if names["a"] != names["b"]:
        return [f"tables differ: {names['a']} against {names['b']}"]
    out = []
    for t in names["a"]:
        cols = "*"
        if t == "_insight_councils":
            cols = "la_code, fingerprint, rows"
        rows = con.execute(f'SELECT count(*) FROM a."{t}"').fetchone()[0]
        for x, y in (("a", "b"), ("b", "a")):
            where = " WHERE name NOT IN ('loaded_at', 'source')" if t == "_insight_load" else ""
            n = con.execute(
                f'SELECT count(*) FROM (SELECT {cols} FROM {x}."{t}"{where} EXCEPT ALL '
                f'SELECT {cols} FROM {y}."{t}"{where})'
            ).fetchone()[0]
            if n:
                out.append(f"{t}: {n:,} of the rows in {x} are not in {y}")
        out.append(f"= {t}: {rows:,} rows") if not any(o.startswith(t + ":") for o in out) else None
    return out


def _same(a: Path, b: Path) -> str:
    lines = compare(a, b)
    bad = [line for line in lines if not line.startswith("= ")]
    if bad:
        raise SystemExit(f"{b} differs from {a}:\n" + "\n".join(bad))
    return f"same contents as {a} (" + "; ".join(line[2:] for line in lines) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("which", nargs="?", default="bench", choices=["bench", "compare", "_measure"])
    ap.add_argument("target", nargs="*")
    ap.add_argument("--councils", type=int, nargs="+", default=[10, 30, 153])
    ap.add_argument("--children", type=int, default=12_700, help="children per council")
    ap.add_argument("--layout", choices=["tables", "folders", "both"], default="both")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/insight-bench-loading"))
    ap.add_argument("--keep", type=Path, help="keep each warehouse as KEEP/<layout>-<n>.duckdb")
    ap.add_argument("--check", type=Path, help="compare each warehouse with CHECK/<layout>-<n>.duckdb (from --keep)")
    ap.add_argument(
        "--stage",
        nargs="+",
        choices=["load", "validate"],
        default=["load", "validate"],
        help="load: insight load (validate + pseudonymise + load); validate: insight validate alone",
    )
    ap.add_argument("--keep-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.which == "_measure":
        measure(args.target[0], args.keep_file, args.stage[0])
        return
    if args.which == "compare":
        print(_same(Path(args.target[0]), Path(args.target[1])))
        return
    full = national(args.cache, args.children)
    codes = sorted(_read_strings(full / "councils.csv")["la_code"].to_pylist())
    layouts = ["tables", "folders"] if args.layout == "both" else [args.layout]
    print(f"{args.children:,} children per council; load average {os.getloadavg()[0]:.1f} before", flush=True)
    for n in args.councils:
        tables_dir = args.cache / f"c{args.children}" / f"tables-{n}"
        subset(full, tables_dir, None if n == len(codes) else codes[:n])
        for layout in layouts:
            d = tables_dir
            if layout == "folders":
                d = args.cache / f"c{args.children}" / f"folders-{n}"
                folders(tables_dir, d)
            kept = args.keep / f"{layout}-{n}.duckdb" if args.keep else None
            if args.check:
                kept = args.cache / f"c{args.children}" / f"check-{layout}-{n}.duckdb"
            for stage in args.stage:
                r = run(d, kept if stage == "load" else None, stage)
                if r["failed"]:
                    raise SystemExit(f"{r['failed']} synthetic councils failed validation in {d}")
                _say(n, layout, stage, r)
                if stage == "load" and args.check:
                    print("   " + _same(args.check / f"{layout}-{n}.duckdb", kept), flush=True)
                    kept.unlink()


def _say(n: int, layout: str, stage: str, r: dict) -> None:
    rows = r["rows"]
    print(
        f"{n:>3} councils, {layout:<7} {stage:<8}: {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU, "
        f"peak {r['peak_gb']:.2f} GB (main process {r['main_peak_gb']:.2f}); "
        f"{r['wall'] / n:.3f} s wall and {r['cpu'] / n:.3f} s CPU a council; "
        f"load average {os.getloadavg()[0]:.1f}; referrals {rows['referrals']:,}, children {rows['children']:,}",
        flush=True,
    )


if __name__ == "__main__":
    main()
