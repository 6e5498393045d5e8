"""The result of validation: every problem, the typed tables, and which councils are clean."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.ingest.files import Problem


@dataclass
class ValidationReport:
    """Every problem found, the typed tables, and which councils are clean."""

    problems: list[Problem]
    #: The contract tables as loading uses them: text as Arrow strings (missing where empty), no Python
    #: object per value; :attr:`tables` gives them with text as Python strings (None where empty).
    typed: dict[str, pd.DataFrame]
    councils: list[str] = field(default_factory=list)  # every la_code seen in the data
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: table -> for each row of ``tables[table]``, the first rule it breaks (None: no fault of its own).
    row_faults: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: ids of the problems that are about one row of a table other than councils (those rows can be left out).
    row_level: set[int] = field(default_factory=set, repr=False)
    #: table -> the file each row of ``tables[table]`` came from (categorical: a few files, many rows).
    row_files: dict[str, pd.Categorical] = field(default_factory=dict, repr=False)
    #: table -> its rows in the extract (also when ``typed`` does not hold the table: a batched check)
    rows: dict[str, int] = field(default_factory=dict)

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The typed tables with text columns as Python strings, None where empty (made when first asked for)."""
        return {name: _plain_text(frame) for name, frame in self.typed.items()}

    @property
    def ok(self) -> bool:
        return not self.problems

    def skippable(self, la_code: str) -> bool:
        """True when every problem of this council is about single rows that can be left out."""
        return all(id(p) in self.row_level for p in self.problems_by_council().get(la_code, []))

    def problems_by_council(self) -> dict[str | None, list[Problem]]:
        """la_code -> its problems; None holds problems that belong to no one council."""
        out: dict[str | None, list[Problem]] = defaultdict(list)
        for p in self.problems:
            out[p.la_code].append(p)
        return dict(out)

    @property
    def unattributed(self) -> list[Problem]:
        """Problems that stop every council (a missing column, an unreadable file)."""
        return [p for p in self.problems if p.la_code is None]

    @property
    def failed_councils(self) -> dict[str, list[Problem]]:
        return {la: ps for la, ps in self.problems_by_council().items() if la is not None}

    @property
    def clean_councils(self) -> list[str]:
        """Councils in the councils table with no problem of their own (and none unattributed)."""
        if self.unattributed:
            return []
        failed = self.failed_councils
        councils = self.typed.get("councils")
        present = [] if councils is None else list(councils["la_code"].dropna().unique())
        return sorted(la for la in present if la not in failed)

    def summary(self) -> str:
        if self.ok:
            return f"All well: {len(self.councils)} council(s), no problems."
        counts = Counter(p.rule for p in self.problems)
        rules = ", ".join(f"{rule}: {n:,}" for rule, n in counts.most_common())
        failed = sorted(self.failed_councils)
        text = f"{len(self.problems):,} problem(s) ({rules})."
        if failed:
            text += f" Councils with problems: {', '.join(failed)}."
        clean = self.clean_councils
        if clean:
            text += f" Clean councils: {', '.join(clean)}."
        if self.unattributed:
            text += " Some problems stop every council until they are fixed."
        return text

    def format_text(self, max_lines: int | None = 200) -> str:
        """The report for the command line: a summary, then one line per problem, grouped by council."""
        lines = [self.summary()]
        if self.ok:
            return "\n".join(lines + [f"note: {n}" for n in self.notes])
        shown = 0
        groups = self.problems_by_council()
        order = sorted(groups, key=lambda la: (la is not None, la or ""))
        total = len(self.problems)
        for la in order:
            title = "Problems for every council" if la is None else f"Council {la} ({_council_label(la)})"
            lines.append("")
            lines.append(f"{title}: {len(groups[la]):,}")
            for p in groups[la]:
                if max_lines is not None and shown >= max_lines:
                    break
                lines.append(f"  - {p.message}")
                shown += 1
        if max_lines is not None and shown < total:
            lines.append("")
            lines.append(f"... and {total - shown:,} more problem(s) not shown.")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "councils": self.councils,
            "clean_councils": self.clean_councils,
            "failed_councils": sorted(self.failed_councils),
            "problems": [p.to_dict() for p in self.problems],
            "notes": self.notes,
        }


def _council_label(la: str) -> str:
    name = reference.council_name(la)
    return "not a council code" if name == la else name


def _plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.StringDtype):
            out[c] = frame[c].to_numpy(dtype=object, na_value=None)
    return out
