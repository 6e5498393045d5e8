"""A notebook worker leaves out jsonschema's IRI checker (seconds of grammar compiling) and validates as before."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from insightlib.batch.execute import skip_iri_checker_import
skip_iri_checker_import()
import nbformat
from nbformat.v4 import new_code_cell, new_notebook
nbformat.validate(new_notebook(cells=[new_code_cell("x = 1")]))
bad = new_notebook(cells=[new_code_cell("x = 1")])
bad.cells[0]["cell_type"] = "nonsense"
try:
    nbformat.validate(bad)
except nbformat.ValidationError:
    print("invalid notebook refused")
print("rfc3987_syntax loaded" if sys.modules.get("rfc3987_syntax") else "rfc3987_syntax not loaded")
"""


def test_a_worker_skips_the_iri_checker_and_still_refuses_an_invalid_notebook():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "invalid notebook refused" in proc.stdout
    assert "rfc3987_syntax not loaded" in proc.stdout


def test_it_changes_nothing_once_jsonschema_is_imported():
    probe = "import jsonschema, sys\nfrom insightlib.batch.execute import skip_iri_checker_import\n"
    probe += "skip_iri_checker_import()\nprint('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is None)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
