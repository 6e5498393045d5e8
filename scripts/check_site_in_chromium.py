#!/usr/bin/env python3
"""Open every page of the rendered website in headless Chromium and check it as a reader would.

For each .html page under the site folder (default reports/_site) Chromium loads the page
from disk, runs its scripts and prints the resulting DOM. The page passes when:

* Chromium loaded it (exit code 0, a <main> element in the DOM);
* every local link and image (href/src that is not http(s), mailto or data:) points to a file
  that exists in the site;
* every image has non-empty alt text;
* on pages with a sortable table, the sorting script ran (it marks the table data-sort-ready).

Usage:  python scripts/check_site_in_chromium.py [SITE_DIR] [--chromium /usr/bin/chromium] [--workers 2]
Exit code 0 when every page passes, 1 when any fails, 2 when Chromium or the site is missing.
Chromium on Debian: apt-get install -y chromium
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-extensions",
    "--virtual-time-budget=5000",
]


@dataclass
class PageCheck:
    page: Path
    problems: list[str] = field(default_factory=list)
    links: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.images_without_alt = 0
        self.has_main = False
        self.sortable_tables = 0
        self.sortable_ready = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "main":
            self.has_main = True
        if tag in ("a", "link") and a.get("href"):
            self.refs.append((tag, a["href"]))
        if tag in ("img", "script", "source") and a.get("src"):
            self.refs.append((tag, a["src"]))
        if tag in ("img", "source") and a.get("srcset"):  # the phone-width drawing of a chart
            self.refs += [(tag, part.split()[0]) for part in a["srcset"].split(",") if part.strip()]
        if tag == "img" and not (a.get("alt") or "").strip():
            self.images_without_alt += 1
        if tag == "table" and "sortable" in (a.get("class") or "").split():
            self.sortable_tables += 1
            if a.get("data-sort-ready"):
                self.sortable_ready += 1


def find_chromium(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def dump_dom(chromium: str, page: Path, timeout: float = 60.0) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory(prefix="insight-chromium-") as profile:
        proc = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout,
        )
    return proc.returncode, proc.stdout, proc.stderr


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith("#") and bool(parts.path)


def check_page(chromium: str, site: Path, page: Path) -> PageCheck:
    result = PageCheck(page=page.relative_to(site))
    try:
        code, dom, err = dump_dom(chromium, page)
    except subprocess.TimeoutExpired:
        result.problems.append("Chromium did not finish loading the page within 60 s")
        return result
    if code != 0 or not dom.strip():
        last = (err.strip().splitlines() or ["no output"])[-1]
        result.problems.append(f"Chromium could not load the page (exit {code}): {last}")
        return result
    parsed = _Collector()
    parsed.feed(dom)
    if not parsed.has_main:
        result.problems.append("the page has no <main> element (did it load?)")
    if parsed.images_without_alt:
        result.problems.append(f"{parsed.images_without_alt} image(s) without alt text")
    if parsed.sortable_tables and parsed.sortable_ready < parsed.sortable_tables:
        result.problems.append("the table-sorting script did not run")
    for tag, url in parsed.refs:
        if not is_local(url):
            continue
        result.links += 1
        target = (page.parent / unquote(urlsplit(url).path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            result.problems.append(f"broken {tag} link: {url}")
        elif site.resolve() not in target.parents and target != site.resolve():
            result.problems.append(f"{tag} link leaves the site folder: {url}")
    result.problems = list(dict.fromkeys(result.problems))
    return result


def check_site(site: Path, chromium: str, workers: int = 2) -> list[PageCheck]:
    pages = sorted(p for p in site.rglob("*.html") if "site_libs" not in p.parts)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: check_page(chromium, site, p), pages))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default="reports/_site", type=Path)
    parser.add_argument("--chromium", default=None, help="path to the Chromium binary (default: found on PATH)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    chromium = find_chromium(args.chromium)
    if not chromium:
        print("Chromium was not found. On Debian: apt-get install -y chromium", file=sys.stderr)
        return 2
    if not (args.site / "index.html").exists():
        print(f"{args.site}: no index.html; run 'insight render' first.", file=sys.stderr)
        return 2
    results = check_site(args.site, chromium, args.workers)
    failed = [r for r in results if not r.ok]
    for r in results:
        mark = "ok  " if r.ok else "FAIL"
        print(f"{mark} {r.page} ({r.links} local links)")
        for problem in r.problems:
            print(f"     - {problem}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
