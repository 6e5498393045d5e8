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
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import InputError, InsightError

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
    max_workbook_mb: Optional[int] = typer.Option(
        None,
        "--max-workbook-mb",
        min=1,
        help="Refuse a workbook that unpacks to more than this many MB (default 1024, or $INSIGHT_MAX_WORKBOOK_MB).",
    ),
    max_rows: Optional[int] = typer.Option(
        None,
        "--max-rows",
        min=1,
        help="Refuse a sheet with more rows than this (default 1,048,576, or $INSIGHT_MAX_ROWS).",
    ),
):
    """Check a data directory against the data contract and report every problem at once."""
    with friendly_errors():
        from ..ingest.validate import validate_directory

        report = validate_directory(data_dir, limits=_limits(max_workbook_mb, max_rows))
        if report.ok:
            rows = ", ".join(f"{name} {len(df):,}" for name, df in report.tables.items() if len(df))
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
    max_workbook_mb: Optional[int] = typer.Option(
        None,
        "--max-workbook-mb",
        min=1,
        help="Refuse a workbook that unpacks to more than this many MB (default 1024, or $INSIGHT_MAX_WORKBOOK_MB).",
    ),
    max_rows: Optional[int] = typer.Option(
        None,
        "--max-rows",
        min=1,
        help="Refuse a sheet with more rows than this (default 1,048,576, or $INSIGHT_MAX_ROWS).",
    ),
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
        if summary.failed:
            raise typer.Exit(EXIT_BAD_INPUT if not summary.loaded else EXIT_SOME_FAILED)


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


def _run_one(evaluation_file: Path, demo_data: str | None = None, **kw) -> int:
    from .evaluation import load_evaluation
    from .plan import default_notebooks_dir
    from .runner import run_evaluation

    evaluation = load_evaluation(evaluation_file, notebooks_dir=default_notebooks_dir())
    if demo_data is not None and not evaluation.areas:  # synthetic councils; area notebooks keep their published data
        kw["data"] = demo_data
    summary = run_evaluation(evaluation, log=lambda m: console.print(m, soft_wrap=True, markup=False), **kw)
    _print_summary(summary)
    if summary.disk_full:
        console.print(
            f"[bold red]error:[/] the disk holding {escape(str(summary.out_dir))} is full, so some reports could not be "
            "written (nothing half-written was kept); free some space and run the same command again: "
            "councils already done are skipped.",
            soft_wrap=True,
        )
    return summary.exit_code


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


def _block_dumper():
    import yaml

    class BlockDumper(yaml.SafeDumper):
        """Safe YAML, with text of several lines (a causal graph) written as a readable block."""

    def text(dumper, value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    BlockDumper.add_representer(str, text)
    return BlockDumper


#: init-evaluation: the notebooks it can start an evaluation for, with the shipped demo file each copies parameters from.
INIT_TEMPLATES = {
    "rereferral": "demo.yml",
    "intervention_effect": "fgc.yml",
    "practice_insight": "practice.yml",
    "risk_model_audit": "risk_audit.yml",
}
#: Notebooks that need more than a data folder and councils: what to do instead of init-evaluation.
INIT_BY_HAND = {
    "programme_evaluation": "For a programme evaluation copy evaluations/programme.yml and give its adoption dates "
    "(docs/programme.md).",
    "skills_gap": "The skills gap explorer reads published data by area, not a council's extract: copy "
    "evaluations/skills.yml and list your areas (docs/skills.md).",
}


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
        import yaml

        from .evaluation import load_evaluation, parse_evaluation
        from .plan import default_notebooks_dir

        if notebook in INIT_BY_HAND:
            raise InputError(INIT_BY_HAND[notebook])
        if notebook not in INIT_TEMPLATES:
            raise InputError(
                f"--notebook must be one of {', '.join(INIT_TEMPLATES)}; got {notebook!r}. "
                + INIT_BY_HAND["programme_evaluation"]
            )
        if intervention is not None and notebook != "intervention_effect":
            raise InputError("--intervention is for --notebook intervention_effect.")
        target = out_file or Path("evaluations") / f"{name}.yml"
        if target.exists():
            raise InputError(f"{target} already exists; choose another name (or --out), nothing was written.")
        template = load_evaluation(default_notebooks_dir().parent / "evaluations" / INIT_TEMPLATES[notebook])
        words = [c.strip() for c in councils.replace(",", " ").split()]
        raw = {
            "name": name,
            "title": title or template.title,
            "description": description
            or f"{template.title} For council{'s' if len(words) != 1 else ''} {', '.join(words)}, from {data}.",
            "notebook": notebook,
            "data": data,
            "councils": "all" if words == ["all"] else words,
            "disclosure_threshold": template.disclosure_threshold,
            "parameters": {**template.parameters, **({"intervention": intervention} if intervention else {})},
        }
        evaluation = parse_evaluation(raw, source=str(target), notebooks_dir=default_notebooks_dir())
        raw["councils"] = evaluation.councils if isinstance(evaluation.councils, str) else list(evaluation.councils)
        text = (
            "# Written by 'insight init-evaluation'; edit it as you need (the keys: README.md; "
            "the parameters: the notebook's first cell).\n"
            + yaml.dump(raw, Dumper=_block_dumper(), sort_keys=False, allow_unicode=True, width=100)
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
        from ..ingest import pseudonymise
        from ..ingest import warehouse as wh_mod
        from ..simulate import synth as synth_mod
        from .site import render_site
        from ..ingest.validate import validate_directory

        synth_mod.check_out_dir(data_dir, force)  # before the key and the minutes of simulation
        started = time.perf_counter()
        if not (os.environ.get("INSIGHT_KEY") or os.environ.get("INSIGHT_KEY_FILE")):
            key_path = Path(".insight/demo.key")
            if not key_path.exists():
                pseudonymise.make_key_file(key_path)
            os.environ["INSIGHT_KEY_FILE"] = str(key_path.resolve())
            console.print(
                f"Demo pseudonymisation key: {key_path} (for real data keep the key outside the repository)",
                markup=False,
            )
        synth_mod.generate(councils, children, seed, data_dir, force=force)
        out.print(f"1/4 synthetic data for {councils} councils -> {data_dir}", markup=False)
        report = validate_directory(data_dir)
        if not report.ok:
            out.print(report.format_text(50), markup=False)
            raise InsightError("the synthetic data failed validation (a bug: please report it).")
        demo_warehouse = wh_mod.default_warehouse_path(data_dir)  # data/demo -> data/demo.duckdb, beside it
        wh_mod.load_directory(data_dir, demo_warehouse)
        out.print(
            f"2/4 validated against the data contract and loaded into {demo_warehouse} (the notebooks' default data)",
            markup=False,
        )
        if load_only:
            return
        files = evaluations or demo_evaluation_files(Path("evaluations"))
        if not files:
            raise InsightError("no demo evaluation files in evaluations/.")
        worst = EXIT_OK
        for index, path in enumerate(files, 1):
            out.print(f"3/4 running {path} ({index}/{len(files)})", markup=False)
            worst = max(
                worst,
                _run_one(
                    path,
                    demo_data=str(demo_warehouse),
                    out_dir=out_dir,
                    workers=workers,
                    force=False,
                    scheduler=None,
                    progress=sys.stderr.isatty(),
                ),
            )
        result = render_site(out_dir)
        for line in getattr(result, "messages", []) or []:
            console.print(line, soft_wrap=True, markup=False)
        out.print(f"4/4 website rendered in {time.perf_counter() - started:.0f}s: open {result.index}", markup=False)
        raise typer.Exit(max(worst, EXIT_SOME_FAILED if result.skipped else EXIT_OK))


#: The data an evaluation file names when it is one of the demo's: the synthetic councils, or the
#: published data shipped with insight. An evaluation of your own data is never run by the demo.
DEMO_DATA = ("data/demo", "data/demo.duckdb", "reference")


def demo_evaluation_files(folder: Path) -> list[Path]:
    """The evaluation files of the demo in ``folder``: those whose data are the demo's (DEMO_DATA)."""
    import yaml

    files = []
    for path in sorted(folder.glob("*.yml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not the demo's: insight run of that file says what is wrong with it
        if isinstance(raw, dict) and str(raw.get("data", "")).strip().rstrip("/") in DEMO_DATA:
            files.append(path)
    return files


def main() -> None:
    app()


if __name__ == "__main__":
    main()
