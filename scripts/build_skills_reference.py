"""Build insightlib/reference/skills/*.csv (the shipped contract tables) from the published source files.

    python scripts/build_skills_reference.py [SOURCE_DIR]   # default ../shared/reference/skills

Only Open Government Licence files are read; the Skills Imperative workbook is never shipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from insightlib.ingest import skills

OUT = Path(__file__).resolve().parent.parent / "insightlib" / "reference" / "skills"


def main(source: str) -> None:
    tables = skills.to_contract(skills.read_sources(source))
    OUT.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(OUT / skills.CONTRACT[name], index=False)
        print(f"{name}: {len(df)} rows -> {OUT / skills.CONTRACT[name]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[3] / "shared" / "reference" / "skills"))
