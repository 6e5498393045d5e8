"""Two websites built by ``insight render`` compared file by file: the same files, the same bytes.

    .venv/bin/python scripts/compare_site.py BEFORE/_site AFTER/_site

Only the line saying when each page was built ("Built 02 December 2026 01:55 UTC from ...") may
differ. Exit 0 when the sites are the same, 1 with the differing files listed otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_BUILT = re.compile(rb"<p>Built \d{2} \w+ \d{4} \d{2}:\d{2} UTC from")


def files(site: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(site)): _BUILT.sub(b"<p>Built ... from", p.read_bytes())
        for p in sorted(site.rglob("*"))
        if p.is_file()
    }


def compare(before: Path, after: Path) -> list[str]:
    """The differences: files on one side only, and files whose bytes differ."""
    a, b = files(before), files(after)
    problems = [f"only in {before}: {name}" for name in sorted(a.keys() - b.keys())]
    problems += [f"only in {after}: {name}" for name in sorted(b.keys() - a.keys())]
    problems += [f"differs: {name}" for name in sorted(a.keys() & b.keys()) if a[name] != b[name]]
    return problems


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__)
        return 2
    problems = compare(Path(args[0]), Path(args[1]))
    for line in problems[:50]:
        print(line)
    print(f"{len(files(Path(args[0])))} files compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
