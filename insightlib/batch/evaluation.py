"""Evaluation files: one YAML file under evaluations/ says what to run, on what data, for whom.

Checked against a schema so that every mistake gets its own plain-English message naming
the file and the field, before anything runs.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import EvaluationFileError, InputError
from insightlib.contract import DISCLOSURE_THRESHOLD

#: Keys an evaluation file may have, with what each is for (used in messages).
KEYS = {
    "name": "folder name under reports/ (lower case letters, digits, '-', '_')",
    "title": "the report's title, as leaders will read it",
    "notebook": "a notebook in notebooks/, without .ipynb",
    "data": "a data directory or a warehouse (.duckdb) file",
    "councils": "'all', one 3-digit council code, or a list of them",
    "areas": "for notebooks that work by area from published data (skills_gap): council codes, LSIP or combined authority names",
    "scope": "'council' (one report per council, the default) or 'national' (one report across councils)",
    "disclosure_threshold": "counts below this are suppressed in reports (default 5)",
    "rounding": "round published counts to this base (5), or leave out",
    "description": "a sentence or two about the evaluation, shown on its page",
    "parameters": "handed to the notebook; each notebook documents its own",
}
REQUIRED = ("name", "title", "notebook", "data")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: A notebook is named, never given as a path: it can only be one of notebooks/*.ipynb.
NOTEBOOK_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
COUNCIL_PATTERN = re.compile(r"^\d{3}$")
#: Parameters the runner sets itself; an evaluation file may not override them.
RESERVED_PARAMETERS = ("data", "la_code", "area", "output_dir", "disclosure_threshold", "rounding")
#: Notebooks that run per area of published data rather than per council of a warehouse:
#: notebook -> (module, function) turning the evaluation's area specs into (folder key, name) pairs.
AREA_NOTEBOOKS = {"skills_gap": ("insightlib.analyses.skills_area", "area_keys")}


@dataclass(frozen=True)
class Evaluation:
    name: str
    title: str
    notebook: str
    data: str
    councils: str | tuple[str, ...] = "all"
    areas: tuple[str, ...] = ()
    scope: str = "council"
    disclosure_threshold: int = DISCLOSURE_THRESHOLD
    rounding: int | None = None
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def notebook_path(self, notebooks_dir: Path) -> Path:
        """The source notebook: always inside ``notebooks_dir`` (a name with a path in it is refused)."""
        if not isinstance(self.notebook, str) or not NOTEBOOK_PATTERN.match(self.notebook):
            raise EvaluationFileError(
                f"'notebook' must be the name of a notebook in {notebooks_dir} (letters, digits, "
                f"'_' and '-'; no folder, no '..'); got {self.notebook!r}."
            )
        return Path(notebooks_dir) / f"{self.notebook}.ipynb"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "notebook": self.notebook,
            "data": self.data,
            "councils": self.councils if isinstance(self.councils, str) else list(self.councils),
            "areas": list(self.areas),
            "scope": self.scope,
            "disclosure_threshold": self.disclosure_threshold,
            "rounding": self.rounding,
            "description": self.description,
            "parameters": self.parameters,
        }


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _council_code(value: Any) -> str | None:
    text = str(value).strip()
    if isinstance(value, int) and 0 <= value < 1000:
        text = f"{value:03d}"
    return text if COUNCIL_PATTERN.match(text) else None


#: The tables each notebook cannot do without: `insight run` checks the data has them for every
#: council before anything runs (a CIN census return without the 2026 FGDM block has no interventions).
NOTEBOOK_TABLES = {
    "rereferral": ("children", "referrals"),
    "intervention_effect": ("children", "referrals", "interventions"),
    "programme_evaluation": ("referrals",),
    "risk_model_audit": ("children", "referrals"),
    # assessments (groupings of need), plans and allocations (practice patterns) are optional: without them
    # the report says what it could not do; rates by group and what happens after referral need these two
    "practice_insight": ("children", "referrals"),
}

#: Parameters that name a value the data must hold: notebook -> (parameter, table, column). An
#: intervention_effect run for "Family Group Conference" on a CIN census return, which records
#: "Family Group Decision Making", is stopped before it runs, with what is recorded.
NOTEBOOK_VALUES = {"intervention_effect": ("intervention", "interventions", "intervention")}

#: Notebooks whose module checks the values of its parameters before anything runs.
PARAMETER_CHECKS = {
    "intervention_effect": ("insightlib.analyses.intervention_parameters", "check_evaluation_parameters"),
    "risk_model_audit": ("insightlib.analyses.risk_audit", "check_evaluation_parameters"),
}


def notebook_parameter_names(path: Path) -> list[str]:
    """The variables set in a notebook's cell tagged 'parameters': what an evaluation may give it."""
    import ast
    import json

    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    names: list[str] = []
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell.get("source", []))
            for node in ast.walk(ast.parse(source)):
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign)
                    else []
                )
                names.extend(t.id for t in targets if isinstance(t, ast.Name))
    return list(dict.fromkeys(names))


def _notebook_parameter_problems(path: Path, notebook: str, parameters: dict) -> list[str]:
    """A misspelt parameter would otherwise be ignored silently and the notebook's default used."""
    if not path.exists():
        return []
    known = notebook_parameter_names(path)
    problems = [
        f"'parameters.{key}': the notebook '{notebook}' has no such parameter.{_suggest(key, known)}"
        f" Its parameters: {', '.join(k for k in known if k not in RESERVED_PARAMETERS)}."
        for key in parameters
        if key not in known
    ]
    if problems or notebook not in PARAMETER_CHECKS:
        return problems
    import importlib

    module, function = PARAMETER_CHECKS[notebook]
    try:
        getattr(importlib.import_module(module), function)(dict(parameters))
    except EvaluationFileError as exc:
        problems.append(f"'parameters': {exc}")
    return problems


def parse_evaluation(raw: Any, source: str = "<evaluation>", notebooks_dir: Path | None = None) -> Evaluation:
    """Check an evaluation mapping and return it normalised; every problem is reported at once."""
    where = source
    if not isinstance(raw, dict):
        raise EvaluationFileError(
            f"{where}: an evaluation file must be a YAML mapping of keys to values (name, title, notebook, data, ...)."
        )
    problems: list[str] = []
    name = _check_keys(raw, problems)
    notebook = _check_notebook(raw, notebooks_dir, problems)
    councils = _check_councils(raw, problems)
    areas = _check_areas(raw, notebook, problems)
    scope, threshold, rounding = _check_settings(raw, problems)
    parameters = _check_parameters(raw, problems)
    if notebook and notebooks_dir is not None and not problems:
        problems.extend(_notebook_parameter_problems(Path(notebooks_dir) / f"{notebook}.ipynb", notebook, parameters))

    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise EvaluationFileError(f"{where} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{listing}")
    return Evaluation(
        name=name,
        title=raw["title"],
        notebook=notebook,
        data=raw["data"],
        councils=councils,
        areas=areas,
        scope=scope,
        disclosure_threshold=threshold,
        rounding=rounding,
        description=raw.get("description") or "",
        parameters=dict(parameters),
    )


def _check_keys(raw: dict, problems: list[str]) -> Any:
    """Known keys, the required ones present, and text where text is due; returns the name."""
    for key in raw:
        if key not in KEYS:
            problems.append(f"unknown key '{key}'.{_suggest(str(key), KEYS)} Allowed keys: {', '.join(KEYS)}.")
    for key in REQUIRED:
        if key not in raw or raw[key] in (None, ""):
            problems.append(f"'{key}' is required: {KEYS[key]}.")

    name = raw.get("name")
    if name not in (None, "") and (not isinstance(name, str) or not NAME_PATTERN.match(name)):
        problems.append(f"'name' must be {KEYS['name']}; got {name!r}.")
    for key in ("title", "notebook", "data", "description"):
        value = raw.get(key)
        if value not in (None, "") and not isinstance(value, str):
            problems.append(f"'{key}' must be text; got {value!r}.")
    return name


def _check_notebook(raw: dict, notebooks_dir: Path | None, problems: list[str]) -> Any:
    """A notebook's name in notebooks/ (no folder, no path), returned without .ipynb."""
    notebook = raw.get("notebook")
    if isinstance(notebook, str) and notebook:
        stem = notebook[:-6] if notebook.endswith(".ipynb") else notebook
        if not NOTEBOOK_PATTERN.match(stem):
            problems.append(
                f"'notebook' must be the name of a notebook in notebooks/, without .ipynb (letters, digits, "
                f"'_' and '-'; no folder, no '..', no absolute path); got {notebook!r}."
            )
        elif notebooks_dir is not None and not (Path(notebooks_dir) / f"{stem}.ipynb").exists():
            available = sorted(p.stem for p in Path(notebooks_dir).glob("*.ipynb"))
            problems.append(
                f"'notebook': there is no notebook '{stem}' in {notebooks_dir}.{_suggest(stem, available)}"
                f" Available: {', '.join(available) or 'none'}."
            )
        notebook = stem
    return notebook


def _check_councils(raw: dict, problems: list[str]) -> Any:
    """'all', or council codes given as a list, a number or comma-separated text; returned as a tuple."""
    councils: Any = raw.get("councils", "all")
    if isinstance(councils, str) and councils.strip().lower() == "all":
        councils = "all"
    elif isinstance(councils, (str, int)) and not isinstance(councils, bool) and str(councils).strip():
        codes = str(councils).replace(",", " ").split()
        if all(COUNCIL_PATTERN.match(c) for c in codes):  # councils: 873 (or "873, 352") as well as [873]
            councils = codes
    if isinstance(councils, (list, tuple)) and councils:
        codes = []
        for item in councils:
            code = _council_code(item)
            if code is None:
                problems.append(
                    f"'councils': {item!r} is not a 3-digit council code (for example 201 for City of London)."
                )
            else:
                codes.append(code)
        councils = tuple(dict.fromkeys(codes))
    elif councils != "all":
        problems.append(f"'councils' must be {KEYS['councils']}; got {councils!r}.")
    return councils


def _check_areas(raw: dict, notebook: Any, problems: list[str]) -> tuple:
    """Areas, only for the notebooks that work by area, each one known to them."""
    areas: Any = raw.get("areas") or ()
    if isinstance(areas, (str, int)):
        areas = [areas]
    if not isinstance(areas, (list, tuple)):
        problems.append(f"'areas' must be a list of areas; got {areas!r}.")
        areas = ()
    areas = tuple(dict.fromkeys(str(a).strip() for a in areas))
    by_area = isinstance(notebook, str) and notebook in AREA_NOTEBOOKS
    if areas and not by_area:
        problems.append(
            f"'areas' is only for notebooks that work by area ({', '.join(AREA_NOTEBOOKS)}); use 'councils' for '{notebook}'."
        )
    if by_area and not areas:
        problems.append(f"'areas' is required for the notebook '{notebook}' (for example: [371, South Yorkshire]).")
    if by_area and raw.get("councils", "all") != "all":
        problems.append(f"'councils' does not apply to the notebook '{notebook}'; list its areas under 'areas'.")
    if by_area and areas:
        import importlib

        module, function = AREA_NOTEBOOKS[notebook]
        try:
            getattr(importlib.import_module(module), function)(areas)
        except InputError as exc:
            problems.append(f"'areas': {exc}")
    return areas


def _check_settings(raw: dict, problems: list[str]) -> tuple[Any, Any, Any]:
    """Scope, disclosure threshold and rounding."""
    scope = raw.get("scope", "council")
    if scope not in ("council", "national"):
        problems.append(f"'scope' must be 'council' or 'national'; got {scope!r}.")

    threshold = raw.get("disclosure_threshold", DISCLOSURE_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        problems.append(f"'disclosure_threshold' must be a whole number of at least 1; got {threshold!r}.")
    rounding = raw.get("rounding")
    if rounding not in (None, 5):
        problems.append(f"'rounding' must be 5 or left out; got {rounding!r}.")
    return scope, threshold, rounding


def _check_parameters(raw: dict, problems: list[str]) -> dict:
    """The notebook's parameters: a mapping of valid names, none of those insight sets itself."""
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        problems.append(f"'parameters' must be a mapping of parameter names to values; got {parameters!r}.")
        parameters = {}
    for key in parameters:
        if key in RESERVED_PARAMETERS:
            problems.append(f"'parameters.{key}' is set by insight itself and cannot be given here.")
        elif not isinstance(key, str) or not key.isidentifier():
            problems.append(f"'parameters': {key!r} is not a valid parameter name (letters, digits and _).")
    return parameters


def load_evaluation(path: str | Path, notebooks_dir: Path | None = None) -> Evaluation:
    path = Path(path)
    if not path.exists():
        raise EvaluationFileError(f"{path}: no such evaluation file.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise EvaluationFileError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise EvaluationFileError(f"{path}{at}: not valid YAML ({problem}).") from None
    evaluation = parse_evaluation(raw, source=str(path), notebooks_dir=notebooks_dir)
    object.__setattr__(evaluation, "path", path.resolve())
    return evaluation
