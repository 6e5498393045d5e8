"""What the analysis notebooks share: which of a notebook's variables are its analysis parameters.

papermill injects every parameter of the evaluation file as a variable, so a notebook calls its analysis's
``notebook_parameters(globals())`` straight after the parameters cell; a parameter misspelt in the evaluation
file (``horizon_day``) then arrives as an extra variable and is reported instead of silently ignored."""

from __future__ import annotations

import types

from insightlib.errors import EvaluationFileError

#: Variables `insight run` sets for every notebook, or only about the report: never analysis parameters.
REPORT_PARAMETERS = ("data", "la_code", "output_dir", "disclosure_threshold", "rounding", "title")
#: Variables IPython itself puts in a notebook's namespace.
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


def notebook_variables(namespace: dict, reserved) -> dict:
    """The notebook's own variables in ``namespace`` (its globals()): not private (a leading underscore), not
    one of ``reserved`` nor IPython's, and neither a module nor a function (the notebook's imports)."""
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in reserved
        and k not in IPYTHON_NAMES
        and not isinstance(v, types.ModuleType)
        and not callable(v)
    }


def refuse_parameters(notebook: str, problems: list[str]) -> None:
    """Every mistake in a notebook's parameters at once, in one EvaluationFileError (nothing when there are none),
    so that an evaluator mends the evaluation file in one go."""
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise EvaluationFileError(
            f"The evaluation file's parameters for the {notebook} notebook have "
            f"{len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{listing}"
        )
