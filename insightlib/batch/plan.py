"""Planning a run: the warehouse it reads, the councils that can run, and each council's task
(or its skip when nothing about it changed since its manifest was written).

Split from runner.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from . import results as results_mod
from ..errors import InputError
from .evaluation import Evaluation
from .execute import CouncilRun
from ..ingest import fingerprint as fingerprints
from .manifest import PACKAGE_DIR, _cache_key, code_fingerprint, git_commit, outputs_intact

if TYPE_CHECKING:
    from .runner import RunSummary

NATIONAL = "national"


def default_notebooks_dir() -> Path:
    here = Path.cwd() / "notebooks"
    return here if here.is_dir() else PACKAGE_DIR.parent / "notebooks"


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
            raise InputError(
                f"{data}: not a warehouse file; give a data directory or a .duckdb file made by 'insight load'."
            )
        return data, {}
    cache = out_dir / ".warehouses"
    cache.mkdir(parents=True, exist_ok=True)
    slug = hashlib.sha256(str(data).encode()).hexdigest()[:12]
    wh = cache / f"{slug}.duckdb"
    stamp_path = cache / f"{slug}.json"
    stamp = {"source": str(data), "fingerprint": fingerprints.folder_stamp(data)}
    if wh.exists() and stamp_path.exists():
        previous = json.loads(stamp_path.read_text())
        if previous.get("fingerprint") == stamp["fingerprint"]:
            log(f"Using the warehouse already loaded from {data}")
            return wh, previous.get("failed", {})
    log(f"Validating and loading {data}")
    summary = warehouse.load_directory(data, wh)
    failed = {
        la: "; ".join(p.message for p in problems[:5])
        + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        for la, problems in summary.failed.items()
    }
    stamp["failed"] = failed
    results_mod.write_json_atomic(stamp_path, stamp)
    return wh, failed


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
    from ..ingest.warehouse_read import data_fingerprints

    notebook = evaluation.notebook_path(notebooks_dir)
    code = code_fingerprint()
    commit = git_commit()
    versions = results_mod.package_versions()
    stored = data_fingerprints(warehouse_path)  # every council's, in one query
    tasks, skipped = [], []
    for la_code in councils:
        council_dir = out_dir / evaluation.name / la_code
        if la_code == NATIONAL:
            fingerprint = fingerprints.combined(stored[la] for la in warehouse.council_codes(warehouse_path))
        elif la_code in stored:
            fingerprint = stored[la_code]
        else:
            fingerprint = warehouse.data_fingerprint(warehouse_path, la_code)  # says plainly it is not there
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
        planned = _plan_one(
            evaluation, la_code, parameters, fingerprint, notebook, out_dir, code, commit, versions, force
        )
        (skipped if isinstance(planned, CouncilRun) else tasks).append(planned)
    return tasks, skipped


def _plan_one(
    evaluation: Evaluation,
    key_dir: str,
    parameters: dict,
    fingerprint: str,
    notebook: Path,
    out_dir: Path,
    code: str,
    commit: str | None,
    versions: dict,
    force: bool,
    extra: dict | None = None,
):
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
                    la_code=key_dir,
                    status="skipped",
                    notebook=str(output_notebook),
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
    fingerprint = "reference" if source == "reference" else fingerprints.folder_stamp(Path(source))
    notebook = evaluation.notebook_path(notebooks_dir)
    code, commit, versions = code_fingerprint(), git_commit(), results_mod.package_versions()
    tasks, skipped = [], []
    for (key, name), spec in zip(areas, evaluation.areas):
        parameters = {
            **evaluation.parameters,
            "data": source,
            "area": spec,
            "output_dir": str(out_dir / evaluation.name / key),
            "disclosure_threshold": evaluation.disclosure_threshold,
        }
        if evaluation.rounding:
            parameters["rounding"] = evaluation.rounding
        planned = _plan_one(
            evaluation,
            key,
            parameters,
            fingerprint,
            notebook,
            out_dir,
            code,
            commit,
            versions,
            force,
            extra={"area": name},
        )
        (skipped if isinstance(planned, CouncilRun) else tasks).append(planned)
    return tasks, skipped


def _plan_councils(
    evaluation: Evaluation,
    data: str | None,
    out_dir: Path,
    notebooks_dir: Path,
    force: bool,
    summary: RunSummary,
    log: Callable[[str], None],
):
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
        raise InputError(
            f"{where}council{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"{'are' if len(unknown) > 1 else 'is'} not in the data {data_path}. "
            f"The councils in it: {present}. Set 'councils:' in the evaluation file to some of these "
            "(or 'all')."
        )
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


def _councils_with_inputs(
    evaluation: Evaluation, warehouse_path: Path, councils: list[str], summary: RunSummary, log: Callable[[str], None]
) -> list[str]:
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
    lines = [
        f"council {la}: no {' and no '.join(tables)} table{'s' if len(tables) > 1 else ''} in the data"
        for la, tables in lacking.items()
    ]
    why = (
        f"the evaluation {name} (notebook {evaluation.notebook}) needs the "
        f"{', '.join(needed)} table{'s' if len(needed) > 1 else ''}"
    )
    hint = (
        (
            " (a CIN census return holds interventions only from the 2026 structure's PreProceedingsandFGDM "
            "block; otherwise supply an interventions file: docs/data-contract.md)"
        )
        if any("interventions" in t for t in lacking.values())
        else " (docs/data-contract.md)"
    )
    if national or len(lacking) == len(councils):
        raise InputError(f"{why}{hint}; nothing was run:\n" + "\n".join(f"  - {line}" for line in lines))
    log(f"{why}{hint}; these councils cannot run: " + "; ".join(lines))
    for la, tables in lacking.items():
        summary.runs.append(
            CouncilRun(
                la,
                "failed",
                error=f"no {' and no '.join(tables)} table in the data (the {evaluation.notebook} notebook needs it)",
            )
        )
    return [la for la in councils if la not in lacking]


def _councils_with_values(
    evaluation: Evaluation, warehouse_path: Path, councils: list[str], summary: RunSummary, log: Callable[[str], None]
) -> list[str]:
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
    lines = [
        f"council {la}: no {table} recorded as {wanted!r} (recorded: "
        f"{', '.join(repr(v) for v in values[:10]) or 'none'})"
        for la, values in lacking.items()
    ]
    why = f"the evaluation {name} names {parameter} {wanted!r}; set 'parameters.{parameter}' to one the data record"
    if len(lacking) == len(councils):
        raise InputError(f"{why}; nothing was run:\n" + "\n".join(f"  - {line}" for line in lines))
    log(f"{why}; these councils cannot run: " + "; ".join(lines))
    for la in lacking:
        summary.runs.append(CouncilRun(la, "failed", error=f"no {table} recorded as {wanted!r} in the data"))
    return [la for la in councils if la not in lacking]
