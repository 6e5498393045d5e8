"""Build insightlib/reference/practice/*.csv (the shipped practice tables) from the published files.

    python scripts/build_practice_reference.py [SOURCE_DIR]   # default ../shared/reference/practice

Every file is Open Government Licence (DfE, ONS, MHCLG); only the columns the practice analysis
needs are kept (insightlib.ingest.practice says which), England and council rows only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from insightlib.ingest import practice

OUT = Path(__file__).resolve().parent.parent / "insightlib" / "reference" / "practice"


def main(source: str) -> None:
    tables = practice.read_sources(source)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df = practice.to_shipped(df)
        df.to_csv(OUT / practice.CONTRACT[name], index=False)
        print(f"{name}: {len(df)} rows, {df.shape[1]} columns -> {OUT / practice.CONTRACT[name]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[3] / "shared" / "reference" / "practice"))
