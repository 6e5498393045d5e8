"""The areas a skills gap can be for: a council (one whose area is a single district), a Local Skills
Improvement Plan area or a mayoral combined authority, resolved from the shipped lookups."""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.ingest import skills as src


@dataclass(frozen=True)
class Area:
    key: str  # folder name: a council's 3-digit code, else "lsip-..." / "ca-..."
    name: str
    kind: str  # "council", "lsip", "combined_authority"
    districts: tuple[str, ...]
    councils: tuple[str, ...]  # 3-digit codes of the councils that make up the area, where it is whole councils
    region: str = ""
    lsip: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def area_options(tables: dict | None = None) -> dict[str, str]:
    """Every area one may ask for: spec -> description (for messages and docs)."""
    geo = (tables or src.load_tables())["geography"]
    la = reference.local_authorities()
    single = {src.name_key(n) for n in geo["lad_name"]}
    options = {r.la_code: f"{r.la_name} (council)" for r in la.itertuples() if src.name_key(r.la_name) in single}
    options.update({n: f"{n} (LSIP area)" for n in sorted(geo["lsip"].unique())})
    options.update({n: f"{n} (combined authority)" for n in sorted(set(geo["combined_authority"]) - {""})})
    return options


def _councils_of(districts, la: pd.DataFrame) -> tuple[str, ...]:
    keys = {src.name_key(d) for d in districts}
    return tuple(sorted(r.la_code for r in la.itertuples() if src.name_key(r.la_name) in keys))


def resolve_area(spec, tables: dict | None = None) -> Area:
    """A council code, LSIP or combined authority name -> an Area (a clear message when unknown)."""
    tables = tables or src.load_tables()
    geo = tables["geography"]
    la = reference.local_authorities()
    text = str(spec).strip()
    if re.fullmatch(r"\d{1,3}", text):
        code = text.zfill(3)
        row = la[la["la_code"] == code]
        if row.empty:
            raise InputError(f"area {spec!r}: no council has the code {code}.")
        name = row["la_name"].iloc[0]
        hit = geo[geo["lad_name"].map(src.name_key) == src.name_key(name)]
        if hit.empty:
            raise InputError(
                f"area {code} ({name}): its area is several districts, and the shipped lookups do not say which;"
                " choose its LSIP area by name instead (see docs/skills.md for the list)."
            )
        return Area(code, name, "council", tuple(hit["lad_name"]), (code,), row["region"].iloc[0], hit["lsip"].iloc[0])
    for kind, column, prefix in (("lsip", "lsip", "lsip"), ("combined_authority", "combined_authority", "ca")):
        hit = geo[geo[column].map(src.name_key) == src.name_key(text)]
        if not hit.empty:
            name = hit[column].iloc[0]
            councils = _councils_of(hit["lad_name"], la)
            whole = len(councils) == len(hit)  # every district is a council of its own
            regions = la[la["la_code"].isin(councils)]["region"].unique()
            return Area(
                f"{prefix}-{_slug(name)}",
                name,
                kind,
                tuple(hit["lad_name"]),
                councils if whole else (),
                regions[0] if len(regions) == 1 else "",
                hit["lsip"].iloc[0],
            )
    described = {d.rsplit(" (", 1)[0]: d for d in area_options(tables).values()}
    close = difflib.get_close_matches(text, list(described), n=3)
    hint = f" Did you mean: {'; '.join(described[c] for c in close)}?" if close else ""
    raise InputError(f"area {spec!r} is not a council code, LSIP area or combined authority in the skills data.{hint}")


def among(series: pd.Series, names) -> pd.Series:
    """Which of ``series`` (area names) are among ``names``, matched as the lookups spell them (name_key)."""
    keys = {src.name_key(n) for n in names}
    return series.map(src.name_key).isin(keys)


def neighbours(la_code: str) -> list[str]:
    """The council's ten statistical neighbours (DfE 2025), closest first."""
    return reference.neighbours_of(la_code)


def area_keys(specs, data: str | Path = src.REFERENCE) -> list[tuple[str, str]]:
    """(folder key, name) for each area asked for; every unknown area reported at once."""
    tables = src.load_tables(data)
    out, problems = [], []
    for spec in specs:
        try:
            area = resolve_area(spec, tables)
            out.append((area.key, area.name))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(" ".join(problems))
    return out
