"""Site benchmark: the Quarto render of a reports folder against the HTML fallback, in one run.

The design's target is the Quarto render within 2x the fallback's time. Both are built from the same
executed notebooks (nothing re-executed), each into a fresh copy of the folder, one after the other,
and the wall and CPU times (this process plus its children: Quarto, Pandoc, Typst) are printed with
the number of pages and PDFs.

    make demo                                          # reports/ with the 6-council demo
    flock /tmp/insight-bench.lock .venv/bin/python benchmarks/site_render.py reports
    ... --json out.json                                # the figures as JSON as well

The Quarto route's stages are printed too: the project written (each report's page body and PDF begun
on a second core as soon as its page source is written), ``quarto render`` of the site's own pages and
the reports' shell, the report pages and PDFs still to finish after it, and the pages put into the shell. The fallback draws its pages on every core unless ``--workers N`` (or INSIGHT_RENDER_WORKERS) says otherwise. The machine's load average is printed before and after: on a shared machine wall times mean little
when other work was running; CPU times are steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from insightlib.batch.execute import skip_iri_checker_import

skip_iri_checker_import()  # as the insight command does, before anything imports jsonschema

from insightlib.batch import site  # noqa: E402


def _copy(reports: Path, into: Path) -> Path:
    dest = into / "reports"
    shutil.copytree(
        reports,
        dest,
        ignore=shutil.ignore_patterns(
            "_site", "_quarto.yml", "*.qmd", "*-figures", "_metadata.yml", ".quarto", "_freeze"
        ),
    )
    return dest


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(reports: Path, engine: str, workers: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"insight-bench-{engine}-") as tmp:
        folder = _copy(reports, Path(tmp))
        cpu, wall = _cpu(), time.perf_counter()
        result = site.render_site(folder, engine=engine, workers=workers)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        out = folder / "_site"
        return {
            "engine": result.engine,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "pages": len(list(out.rglob("*.html"))),
            "pdfs": len(list(out.rglob("*.pdf"))),
            "stages_s": {k: round(v, 1) for k, v in result.stages.items()},
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, help="a reports folder written by insight run (e.g. reports/)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=None, help="processes drawing the fallback's pages")
    args = parser.parse_args(argv)
    if shutil.which("quarto") is None:
        print("quarto is not on PATH: only the fallback can be measured.")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    figures = [measure(args.reports, "html", args.workers)]
    if shutil.which("quarto"):
        figures.append(measure(args.reports, "quarto"))
    for f in figures:
        print(
            f"{f['engine']:>7}: {f['wall_s']:6.1f} s wall, {f['cpu_s']:6.1f} s CPU, {f['pages']} pages, {f['pdfs']} PDFs"
        )
        for stage, seconds in f["stages_s"].items():
            print(f"         {stage}: {seconds:.1f} s wall")
    if len(figures) == 2:
        print(
            f"Quarto / fallback: {figures[1]['wall_s'] / figures[0]['wall_s']:.2f}x wall, "
            f"{figures[1]['cpu_s'] / max(figures[0]['cpu_s'], 0.1):.2f}x CPU (target: within 2x)"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
