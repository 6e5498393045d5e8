"""analyses/notebook.notebook_variables: the one rule both analysis notebooks use to find their parameters
among their globals() (intervention_parameters.notebook_parameters and risk_audit.notebook_parameters)."""

import types

import pytest

from insightlib.analyses import intervention_parameters, risk_audit
from insightlib.analyses.notebook import IPYTHON_NAMES, REPORT_PARAMETERS, notebook_variables, refuse_parameters
from insightlib.errors import EvaluationFileError


def _namespace(**parameters):
    """A notebook's globals() after its parameters cell and imports, with ``parameters`` as its variables."""
    return {
        **{name: object() for name in IPYTHON_NAMES},
        "__name__": "__main__",
        "_": 3,
        "_i1": "x = 1",
        "types": types,  # an import
        "display": print,  # an imported function
        "Markdown": type("Markdown", (), {}),  # an imported class (callable)
        **{name: "run setting" for name in REPORT_PARAMETERS},
        **parameters,
    }


def test_only_the_notebooks_own_variables_are_kept():
    got = notebook_variables(_namespace(horizon_days=365, covariates=["sex"], graph=None), REPORT_PARAMETERS)
    assert got == {"horizon_days": 365, "covariates": ["sex"], "graph": None}


def test_reserved_names_are_the_callers():
    ns = _namespace(horizon_days=365)
    assert "title" in notebook_variables(ns, ("data",))
    assert "title" not in notebook_variables(ns, REPORT_PARAMETERS)
    assert notebook_variables({"x": 1, "y": 2}, ("y",)) == {"x": 1}


def test_a_misspelt_parameter_reaches_each_analysis_check():
    ns = _namespace(**intervention_parameters.NOTEBOOK_DEFAULTS, horizon_day=365)
    with pytest.raises(EvaluationFileError, match="unknown parameter 'horizon_day'"):
        intervention_parameters.notebook_parameters(ns)
    ns = _namespace(**risk_audit.NOTEBOOK_DEFAULTS, flag_shares=0.2)
    with pytest.raises(EvaluationFileError, match="unknown parameter 'flag_shares'"):
        risk_audit.notebook_parameters(ns)


def test_both_analyses_check_what_notebook_variables_keeps():
    ns = _namespace(**intervention_parameters.NOTEBOOK_DEFAULTS)
    assert intervention_parameters.notebook_parameters(ns) == intervention_parameters.check_parameters(
        notebook_variables(ns, REPORT_PARAMETERS)
    )
    ns = _namespace(**risk_audit.NOTEBOOK_DEFAULTS)
    assert risk_audit.notebook_parameters(ns) == risk_audit.check_parameters(risk_audit.NOTEBOOK_DEFAULTS)


def test_refuse_parameters_lists_every_problem_in_one_sentence_and_passes_none():
    refuse_parameters("risk_model_audit", [])  # nothing wrong: nothing raised
    with pytest.raises(EvaluationFileError) as err:
        refuse_parameters("risk_model_audit", ["'a' is wrong.", "'b' is wrong."])
    assert str(err.value) == (
        "The evaluation file's parameters for the risk_model_audit notebook have 2 problems:\n"
        "  - 'a' is wrong.\n  - 'b' is wrong."
    )
    with pytest.raises(EvaluationFileError, match="have 1 problem:\n"):
        refuse_parameters("intervention_effect", ["'c' is wrong."])
