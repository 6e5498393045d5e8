"""The `insight` command line: synth, validate, load, run, render, demo.

Exit codes mean something: 0 all well, 1 some council failed, 2 bad input or usage,
3 an internal error (a bug: please report it). Bad input never shows a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import InputError, InsightError
from .init_evaluation import INIT_TEMPLATES

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="insight: do children come back after their case is closed, how soon, for whom, and did an intervention change that?",
)
console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


@contextmanager
def friendly_errors():
    """Bad input becomes its message and exit 2; a bug becomes one line and exit 3 (INSIGHT_DEBUG=1 for the traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except InsightError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" while writing {escape(str(exc.filename))}" if exc.filename else ""
            console.print(
                f"[bold red]error:[/] the disk is full{where}; free some space and run the command again.",
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_BAD_INPUT) from None
        if os.environ.get("INSIGHT_DEBUG"):
            raise
        console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
            "This is a bug in insight, not in your data. Run again with INSIGHT_DEBUG=1 to see the details.",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERNAL) from None


@app.command()
def synth(
    out_dir: Path = typer.Option(Path("data/demo"), "--out", help="Directory to write the data files into."),
    councils: int = typer.Option(3, "--councils", min=1, max=153, help="How many councils (real codes and names)."),
    children: int = typer.Option(2500, "--children", min=10, help="Children per council."),
    seed: int = typer.Option(2025, "--seed", help="Random seed: the same seed gives the same data."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    planted_identifiers: bool = typer.Option(False, help="Plant recognisable identifiers (for privacy tests)."),
    force: bool = typer.Option(False, "--force", help="Write even over an extract insight synth did not write."),
):
    """Write a synthetic data directory with known ground truth (truth.json)."""
    with friendly_errors():
        from ..simulate import synth as synth_mod

        if fmt not in ("csv", "parquet"):
            raise InsightError(f"--format must be csv or parquet; got {fmt!r}.")
        started = time.perf_counter()
        path = synth_mod.generate(
            councils, children, seed, out_dir, fmt=fmt, planted_identifiers=planted_identifiers, force=force
        )
        out.print(
            f"Wrote synthetic data for {councils} council(s) to {path} in {time.perf_counter() - started:.1f}s "
            f"(ground truth in {Path(path) / 'truth.json'})",
            markup=False,
        )


#: The spreadsheet limits `validate` and `load` both take.
MaxWorkbookMb = Annotated[
    Optional[int],
    typer.Option(
        "--max-workbook-mb",
        min=1,
        help="Refuse a workbook that unpacks to more than this many MB (default 1024, or $INSIGHT_MAX_WORKBOOK_MB).",
    ),
]
MaxRows = Annotated[
    Optional[int],
    typer.Option(
        "--max-rows", min=1, help="Refuse a sheet with more rows than this (default 1,048,576, or $INSIGHT_MAX_ROWS)."
    ),
]


def _limits(workbook_mb: int | None, rows: int | None):
    """Spreadsheet limits: the command line's, else the environment's, else the defaults."""
    from dataclasses import replace

    from ..ingest.files import Limits

    limits = Limits.from_env()
    return replace(limits, workbook_mb=workbook_mb or limits.workbook_mb, rows=rows or limits.rows)


@app.command()
def validate(
    data_dir: Path = typer.Argument(..., help="A data directory (CSV, Parquet, Excel, CIN census XML or Annex A)."),
    max_problems: int = typer.Option(200, help="Show at most this many problems."),
    max_workbook_mb: MaxWorkbookMb = None,
    max_rows: MaxRows = None,
):
    """Check a data directory against the data contract and report every problem at once."""
    with friendly_errors():
        from ..ingest.validate import check_directory

        report = check_directory(data_dir, limits=_limits(max_workbook_mb, max_rows))
        if report.ok:
            rows = ", ".join(f"{name} {n:,}" for name, n in report.rows.items() if n)
            out.print(f"[green]{escape(str(data_dir))}: no problems found[/] ({rows} rows).")
            for note in report.notes:  # e.g. hidden sheets not read: said even when all is well
                console.print(f"note: {note}", soft_wrap=True, markup=False)
            return
        out.print(report.format_text(max_problems), soft_wrap=True, markup=False)
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def load(
    data_dir: Path = typer.Argument(..., help="A data directory to validate, pseudonymise and load."),
    warehouse: Optional[Path] = typer.Option(
        None,
        "--warehouse",
        "-w",
        help="The DuckDB file to write (default: <DIR>.duckdb beside the directory). Only a warehouse is ever replaced.",
    ),
    key_file: Optional[Path] = typer.Option(
        None, help="The pseudonymisation key file (default: $INSIGHT_KEY_FILE or $INSIGHT_KEY)."
    ),
    max_workbook_mb: MaxWorkbookMb = None,
    max_rows: MaxRows = None,
    skip_invalid_rows: bool = typer.Option(
        False,
        "--skip-invalid-rows",
        help="Load a council whose problems are all in single rows, leaving out those rows and what depends on them; what was left out is recorded and every report says so.",
    ),
):
    """Validate, pseudonymise identifiers with a keyed hash, and load into one DuckDB warehouse."""
    with friendly_errors():
        from ..ingest import pseudonymise, warehouse as wh_mod

        target = warehouse or wh_mod.default_warehouse_path(data_dir)
        key = pseudonymise.load_key(key_file=key_file) if key_file else None
        summary = wh_mod.load_directory(
            data_dir, target, key=key, limits=_limits(max_workbook_mb, max_rows), skip_invalid_rows=skip_invalid_rows
        )
        _print_load(summary, target)
        if summary.failed:
            raise typer.Exit(EXIT_BAD_INPUT if not summary.loaded else EXIT_SOME_FAILED)


def _print_load(summary, target: Path) -> None:
    """What a load did: notes, rows left out, councils not loaded, what was loaded."""
    for note in summary.report.notes if summary.report is not None else []:
        console.print(f"note: {note}", soft_wrap=True, markup=False)
    for record in summary.left_out:
        console.print(
            f"council {record['la_code']}: left out {record['rows']:,} {record['table']} row(s) "
            f"({record['rule']}; {record['files']})",
            soft_wrap=True,
            markup=False,
        )
    for la_code, problems in summary.failed.items():
        console.print(
            f"[red]council {escape(la_code)} not loaded[/]: {len(problems)} problem(s), e.g. "
            f"{escape(problems[0].message)}",
            soft_wrap=True,
        )
    if summary.loaded:
        out.print(
            f"Loaded {len(summary.loaded)} council(s) into {target}: "
            + ", ".join(f"{t} {n:,}" for t, n in summary.rows.items()),
            markup=False,
        )


@app.command()
def run(
    evaluation_file: Path = typer.Argument(..., help="An evaluation YAML file, e.g. evaluations/demo.yml."),
    data: Optional[str] = typer.Option(None, "--data", help="Override the evaluation's data directory or warehouse."),
    out_dir: Path = typer.Option(Path("reports"), "--out", help="Where reports go: <out>/<name>/<la_code>/."),
    workers: int = typer.Option(2, "--workers", min=1, help="Notebooks run at once."),
    force: bool = typer.Option(False, "--force", help="Run councils again even when nothing changed."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="A Dask scheduler address (tcp://host:8786) to run on a cluster."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    fresh_kernels: bool = typer.Option(
        False,
        "--fresh-kernels",
        help="Start a fresh kernel for every notebook (slower; by default each worker reuses one kernel, wiped between councils).",
    ),
    cell_timeout: int = typer.Option(
        3600, "--cell-timeout", min=1, help="Seconds one notebook cell may run before that council fails."
    ),
):
    """Execute an evaluation's notebook for each council with papermill; results.json beside each."""
    with friendly_errors():
        code = _run_one(
            evaluation_file,
            data=data,
            out_dir=out_dir,
            workers=workers,
            force=force,
            scheduler=scheduler,
            progress=progress,
            reuse_kernels=False if fresh_kernels else None,
            cell_timeout=cell_timeout,
        )
        raise typer.Exit(code)


def _run_one(evaluation_file: Path, **kw) -> int:
    from .evaluation import load_evaluation
    from .plan import default_notebooks_dir
    from .runner import run_evaluation

    evaluation = load_evaluation(evaluation_file, notebooks_dir=default_notebooks_dir())
    summary = run_evaluation(evaluation, log=lambda m: console.print(m, soft_wrap=True, markup=False), **kw)
    _print_summary(summary)
    if summary.disk_full:
        _say_disk_full(summary)
    return summary.exit_code


def _say_disk_full(summary) -> None:
    console.print(
        f"[bold red]error:[/] the disk holding {escape(str(summary.out_dir))} is full, so some reports could not be "
        "written (nothing half-written was kept); free some space and run the same command again: "
        "councils already done are skipped.",
        soft_wrap=True,
    )


def _print_summary(summary) -> None:
    ok = sum(r.status == "ok" for r in summary.runs)
    skipped = sum(r.status == "skipped" for r in summary.runs)
    out.print(
        f"[bold]{escape(summary.evaluation.title)}[/]: {ok} ran, {skipped} unchanged, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f}s -> {escape(str(summary.out_dir))}"
    )
    if summary.failed:
        table = Table("council", "error", "where", title="Councils that failed", title_justify="left")
        for run in summary.failed:
            where = f"{run.notebook}#papermill-error-cell" if run.link else (run.notebook or "")
            table.add_row(Text(str(run.la_code)), Text(run.error or ""), Text(where))
        out.print(table)


@app.command()
def key(
    path: Path = typer.Argument(
        ..., help="Where to write the new key, outside the repository (e.g. ~/secure/insight.key)."
    ),
):
    """Make a new pseudonymisation key file (64 random hex characters, readable only by you); never overwrites one."""
    with friendly_errors():
        from ..ingest import pseudonymise

        if path.expanduser().exists():
            raise InputError(
                f"{path} already exists; a key is never overwritten (the pseudonyms made with it "
                "would no longer match a new load). Give another path."
            )
        written = pseudonymise.make_key_file(path).resolve()
        inside = _inside_git_work_tree(written.parent)
        out.print(
            f"Wrote a new key to {written} (permissions 0600). Use it with:\n  export INSIGHT_KEY_FILE={written}",
            markup=False,
        )
        if inside:
            console.print(
                f"warning: {written} is inside the git work tree {inside}; move it outside the repository "
                "so it is never committed or shared.",
                soft_wrap=True,
                markup=False,
            )


def _inside_git_work_tree(folder: Path) -> Path | None:
    for parent in (folder, *folder.parents):
        if (parent / ".git").exists():
            return parent
    return None


@app.command("init-evaluation")
def init_evaluation(
    name: str = typer.Argument(
        ...,
        help="The evaluation's name: its file evaluations/<name>.yml and its folder under reports/ (lower case letters, digits, '-', '_').",
    ),
    data: str = typer.Option(
        ..., "--data", help="Your data folder or the .duckdb warehouse 'insight load' made of it."
    ),
    councils: str = typer.Option(
        ..., "--councils", help="Your council code (e.g. 873), several separated by commas, or 'all'."
    ),
    notebook: str = typer.Option("rereferral", "--notebook", help=f"What to run: {', '.join(INIT_TEMPLATES)}."),
    title: Optional[str] = typer.Option(
        None, "--title", help="The title leaders read (default: the notebook's question)."
    ),
    description: Optional[str] = typer.Option(
        None, "--description", help="A sentence or two shown on the evaluation's page."
    ),
    intervention: Optional[str] = typer.Option(
        None,
        "--intervention",
        help="intervention_effect: the intervention as recorded in your interventions table (e.g. 'Family Group Decision Making' from a CIN census return).",
    ),
    out_file: Optional[Path] = typer.Option(None, "--out", help="The file to write (default: evaluations/<name>.yml)."),
):
    """Write a new evaluation file of your own (its own name, title and description), checked before it is written."""
    with friendly_errors():
        from .init_evaluation import check_choice, evaluation_text

        check_choice(notebook, intervention)
        target = out_file or Path("evaluations") / f"{name}.yml"
        if target.exists():
            raise InputError(f"{target} already exists; choose another name (or --out), nothing was written.")
        text = evaluation_text(
            name,
            data=data,
            councils=councils,
            notebook=notebook,
            title=title,
            description=description,
            intervention=intervention,
            target=target,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as fh:  # never over a file that appeared meanwhile
            fh.write(text)
        out.print(f"Wrote {target}. Run it with:\n  insight run {target}\n  insight render", markup=False)


@app.command()
def render(
    reports_dir: Path = typer.Argument(Path("reports"), help="The reports folder written by 'insight run'."),
    force: bool = typer.Option(
        False, "--force", help="Replace a _quarto.yml, index.qmd or _site/ that render did not write."
    ),
):
    """Build the website from the executed notebooks (no re-execution): Quarto if installed, else HTML."""
    with friendly_errors():
        from .site import render_site

        if not reports_dir.is_dir():
            raise InsightError(f"{reports_dir}: no reports folder; run 'insight run evaluations/<name>.yml' first.")
        result = render_site(reports_dir, force=force)
        for line in getattr(result, "messages", []) or []:
            console.print(line, soft_wrap=True, markup=False)
        out.print(f"Website: {result.index}", markup=False)
        if result.skipped:  # the site is built, but not every report is in it
            raise typer.Exit(EXIT_SOME_FAILED)


@app.command()
def demo(
    councils: int = typer.Option(
        6,
        "--councils",
        min=1,
        max=153,
        help="Councils to simulate (6 gives the programme evaluation adopters and councils that never adopt).",
    ),
    children: int = typer.Option(1500, "--children", min=10, help="Children per council."),
    seed: int = typer.Option(2025, "--seed"),
    workers: int = typer.Option(2, "--workers", min=1),
    evaluations: Optional[List[Path]] = typer.Option(
        None,
        "--evaluation",
        help="Evaluation files (default: the demo's files in evaluations/, those whose data: is data/demo, data/demo.duckdb or reference).",
    ),
    data_dir: Path = typer.Option(Path("data/demo"), "--data"),
    out_dir: Path = typer.Option(Path("reports"), "--out"),
    force: bool = typer.Option(
        False, "--force", help="Write the synthetic data even over an extract insight synth did not write."
    ),
    load_only: bool = typer.Option(
        False,
        "--load-only",
        help="Stop once the synthetic data are loaded into the demo warehouse (what make lab needs): no evaluation is run.",
    ),
):
    """Synthetic data for several councils, validated and loaded into data/demo.duckdb, the demo's evaluations run, the site rendered."""
    with friendly_errors():
        from .demo import demo_evaluation_files, prepare_demo_data
        from .site import render_site

        started = time.perf_counter()
        demo_warehouse = prepare_demo_data(
            data_dir,
            councils,
            children,
            seed,
            force=force,
            say=lambda m: out.print(m, markup=False),
            note=lambda m: console.print(m, markup=False),
        )
        if load_only:
            return
        files = evaluations or demo_evaluation_files(Path("evaluations"))
        if not files:
            raise InsightError("no demo evaluation files in evaluations/.")
        worst = _run_demo_evaluations(files, demo_warehouse, out_dir, workers)
        result = render_site(out_dir)
        for line in getattr(result, "messages", []) or []:
            console.print(line, soft_wrap=True, markup=False)
        out.print(f"4/4 website rendered in {time.perf_counter() - started:.0f}s: open {result.index}", markup=False)
        raise typer.Exit(max(worst, EXIT_SOME_FAILED if result.skipped else EXIT_OK))


def _run_demo_evaluations(files: list[Path], demo_warehouse: Path, out_dir: Path, workers: int) -> int:
    """The demo's evaluation files run on the demo warehouse, all in one pool (batch/suite.py); the worst exit code."""
    from .evaluation import load_evaluation
    from .plan import default_notebooks_dir
    from .suite import run_suite

    evaluations = [load_evaluation(path, notebooks_dir=default_notebooks_dir()) for path in files]
    out.print(
        f"3/4 running {len(files)} evaluation files in one pool: {', '.join(str(p) for p in files)}", markup=False
    )
    summaries = run_suite(
        # synthetic councils; area notebooks keep their published data
        [(ev, None if ev.areas else str(demo_warehouse)) for ev in evaluations],
        out_dir=out_dir,
        workers=workers,
        force=False,
        progress=sys.stderr.isatty(),
        log=lambda m: console.print(m, soft_wrap=True, markup=False),
    )
    worst = EXIT_OK
    for summary in summaries:
        _print_summary(summary)
        if summary.disk_full:
            _say_disk_full(summary)
        worst = max(worst, summary.exit_code)
    return worst


def main() -> None:
    from .execute import skip_iri_checker_import

    skip_iri_checker_import()  # the render and the runs' own notebook reading import jsonschema
    app()


if __name__ == "__main__":
    main()
