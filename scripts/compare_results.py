"""Compare every results.json of two report folders (e.g. `make demo` before and after a refactor).

    python scripts/compare_results.py BEFORE_DIR AFTER_DIR [--tolerance 1e-12]

Fields that name the run rather than its numbers are ignored: when it was made, how long it took, the package
versions and the code's version/commit. Every other value must be equal (numbers within the
tolerance, 0 by default: a refactor that only moves code changes nothing). Prints one line per
difference and a summary; exit 1 when anything differs or a file is missing on one side.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

#: Keys that describe the run, not its results.
IGNORED = {"created", "versions", "code_version", "code_fingerprint", "git_commit", "insightlib_version", "seconds"}


def differences(a, b, where: str, tolerance: float, out: list[str], worst: list[float]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                out.append(f"{where}/{key}: only in {'after' if key not in a else 'before'}")
                continue
            differences(a[key], b[key], f"{where}/{key}", tolerance, out, worst)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items before, {len(b)} after")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            differences(x, y, f"{where}[{i}]", tolerance, out, worst)
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        if math.isnan(a) and math.isnan(b):
            return
        gap = abs(a - b)
        worst[0] = max(worst[0], gap)
        if gap > tolerance:
            out.append(f"{where}: {a!r} before, {b!r} after")
    elif a != b:
        out.append(f"{where}: {a!r} before, {b!r} after")


def compare(before: Path, after: Path, tolerance: float = 0.0) -> tuple[int, list[str], float]:
    """(files compared, differences, largest numeric gap) over every results.json below the two folders."""
    names = {p.relative_to(before) for p in before.rglob("results.json")}
    names |= {p.relative_to(after) for p in after.rglob("results.json")}
    out: list[str] = []
    worst = [0.0]
    for name in sorted(names):
        if not (before / name).is_file() or not (after / name).is_file():
            out.append(f"{name}: only {'after' if not (before / name).is_file() else 'before'}")
            continue
        a = json.loads((before / name).read_text(encoding="utf-8"))
        b = json.loads((after / name).read_text(encoding="utf-8"))
        differences(a, b, str(name), tolerance, out, worst)
    return len(names), out, worst[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tolerance", type=float, default=0.0)
    args = parser.parse_args(argv)
    count, diffs, worst = compare(args.before, args.after, args.tolerance)
    for line in diffs[:200]:
        print(line)
    print(f"{count} results.json compared, {len(diffs)} differences (ignoring {', '.join(sorted(IGNORED))}); "
          f"largest numeric gap {worst:.3g}")
    return 1 if diffs or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
