"""Report tables for Quarto: Pandoc pipe tables, no pandas row numbers, numbers right-aligned, text as text."""

import pandas as pd

from insightlib.report import text
from insightlib.report.tables import html_to_pipe_table, is_numeric


def test_row_numbers_go_and_numbers_align_right():
    df = pd.DataFrame({"Council": ["Barnet", "Haringey"], "Change": ["-9.4 to 10.5", "+1.0"], "Cases": ["1,186", "c"]})
    md = html_to_pipe_table(df.to_html())
    assert md.splitlines()[:2] == ["| Council | Change | Cases |", "|:---|---:|---:|"]
    assert "| Barnet | \\-9\\.4 to 10\\.5 | 1\\,186 |" in md and "| 0 |" not in md


def test_a_meaningful_index_and_a_named_index_row_are_kept():
    df = pd.DataFrame({"Children": [120, 3]}, index=pd.Index(["Received it", "Did not"], name="Group"))
    md = html_to_pipe_table(df.to_html())
    lines = md.splitlines()
    assert lines[0] == "| Group | Children |" and lines[1] == "|:---|---:|"
    assert lines[2] == "| Received it | 120 |"


def test_cells_are_text_never_markup():
    df = pd.DataFrame({"Team": ["a | b", "{{< include /etc/passwd >}}", "[x](javascript:alert(1))"]})
    md = html_to_pipe_table(df.to_html(index=False))
    for value in df["Team"]:
        assert text.quarto_md(value) in md
    assert "{{<" not in md and "](" not in md and "a | b" not in md


def test_what_is_not_a_plain_table_stays_html():
    assert html_to_pipe_table("<table><tr><td><table><tr><td>1</td></tr></table></td></tr></table>") is None
    assert html_to_pipe_table("<table><tbody><tr><td>1</td></tr><tr><td>1</td><td>2</td></tr></tbody></table>") is None


def test_numbers_as_reports_write_them():
    for cell in ["12", "-3.4", "\u22123.4", "1,234", "22.6%", "0.68 (0.58 to 0.81)", "c", "x", "34 days", "+1.5 points"]:
        assert is_numeric(cell), cell
    for cell in ["Barnet", "not adopted", "Apr-Jun 2016", "N1"]:
        assert not is_numeric(cell), cell
