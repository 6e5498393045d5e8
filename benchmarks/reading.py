"""Reading benchmark: a 200 MB CIN census XML return and a 1M-row workbook, validated and loaded.

DESIGN.md / issue 10 targets on this machine (2 shared cores): the 200 MB CIN XML validated and
loaded within 30 s and 1 GB peak; a 1,000,000-row referrals workbook within 60 s and 1 GB.

    .venv/bin/python benchmarks/reading.py xml  [--mb 200]
    .venv/bin/python benchmarks/reading.py xlsx [--rows 1000000]
    .venv/bin/python benchmarks/reading.py all     # both, one after the other

The input is generated once into --cache (default /tmp/insight-bench-reading; not timed), then a
fresh Python process runs ``insightlib.ingest.warehouse.load_directory`` on it and prints wall seconds,
CPU seconds and its peak resident memory (ru_maxrss), so the generator's memory is not counted.
Run it under the shared lock on a busy machine: ``flock /tmp/insight-bench.lock ...``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_DATE = "2025-03-31"
LA = "201"


def _day(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1))


def make_xml(path: Path, megabytes: int, seed: int = 1) -> None:
    """A CIN census return of about `megabytes` MB in its real structure (every module per CINdetails)."""
    rng = random.Random(seed)
    start, end = dt.date(2015, 1, 1), dt.date(2024, 3, 31)
    target = megabytes * 1_000_000
    written = 0
    with path.open("w", encoding="utf-8") as fh:
        head = ("<?xml version='1.0' encoding='utf-8'?>\n<Message>\n  <Header>\n    <CollectionDetails>\n"
                "      <Collection>CIN</Collection>\n      <Year>2025</Year>\n"
                f"      <ReferenceDate>{REFERENCE_DATE}</ReferenceDate>\n    </CollectionDetails>\n"
                f"    <Source>\n      <SourceLevel>L</SourceLevel>\n      <LEA>{LA}</LEA>\n"
                "      <SoftwareCode>insight-benchmark</SoftwareCode>\n    </Source>\n  </Header>\n  <Children>\n")
        fh.write(head)
        written += len(head)
        i = 0
        while written < target:
            i += 1
            dob = _day(rng, dt.date(2007, 1, 1), dt.date(2014, 12, 31))
            parts = [f"    <Child>\n      <ChildIdentifiers>\n        <LAchildID>C{i:09d}</LAchildID>\n"
                     f"        <UPN>A{i:012d}</UPN>\n        <PersonBirthDate>{dob}</PersonBirthDate>\n"
                     f"        <GenderCurrent>{rng.choice('12')}</GenderCurrent>\n      </ChildIdentifiers>\n"
                     "      <ChildCharacteristics>\n        <Ethnicity>WBRI</Ethnicity>\n"
                     "        <Disabilities><Disability>NONE</Disability></Disabilities>\n"
                     "      </ChildCharacteristics>\n"]
            when = _day(rng, start, dt.date(2020, 12, 31))
            for _ in range(rng.choice((1, 1, 2, 3))):
                ref = when
                close = ref + dt.timedelta(days=rng.randrange(60, 300))
                a_start = ref + dt.timedelta(days=rng.randrange(0, 10))
                a_auth = a_start + dt.timedelta(days=rng.randrange(1, 40))
                parts.append(
                    "      <CINdetails>\n"
                    f"        <CINreferralDate>{ref}</CINreferralDate>\n"
                    f"        <ReferralSource>{rng.choice(('1A', '2A', '3A', '5A', '6'))}</ReferralSource>\n"
                    f"        <PrimaryNeedCode>N{rng.randrange(10)}</PrimaryNeedCode>\n"
                    f"        <CINclosureDate>{close}</CINclosureDate>\n"
                    f"        <ReasonForClosure>RC{rng.randrange(1, 10)}</ReasonForClosure>\n"
                    "        <ReferralNFA>false</ReferralNFA>\n"
                    "        <Assessments>\n"
                    f"          <AssessmentActualStartDate>{a_start}</AssessmentActualStartDate>\n"
                    f"          <AssessmentAuthorisationDate>{a_auth}</AssessmentAuthorisationDate>\n"
                    "          <FactorsIdentifiedAtAssessment>\n"
                    "            <AssessmentFactors>2A</AssessmentFactors>\n"
                    "            <AssessmentFactors>3A</AssessmentFactors>\n"
                    "          </FactorsIdentifiedAtAssessment>\n"
                    "        </Assessments>\n"
                    "        <CINPlanDates>\n"
                    f"          <CINPlanStartDate>{a_auth}</CINPlanStartDate>\n"
                    f"          <CINPlanEndDate>{close}</CINPlanEndDate>\n"
                    "        </CINPlanDates>\n"
                    "      </CINdetails>\n")
                when = close + dt.timedelta(days=rng.randrange(30, 900))
                if when > end:
                    break
            parts.append("    </Child>\n")
            text = "".join(parts)
            fh.write(text)
            written += len(text)
        fh.write("  </Children>\n</Message>\n")


def make_workbook(directory: Path, rows: int, seed: int = 1) -> None:
    """councils.csv, children.csv and a referrals.xlsx of `rows` rows (written by openpyxl, as Excel users have)."""
    import openpyxl

    rng = random.Random(seed)
    n_children = max(1, rows // 3)
    (directory / "councils.csv").write_text(f"la_code,la_name,extract_date\n{LA},City of London,{REFERENCE_DATE}\n")
    with (directory / "children.csv").open("w") as fh:
        fh.write("la_code,child_id,date_of_birth,sex,ethnicity\n")
        for i in range(n_children):
            fh.write(f"{LA},C{i:08d},{_day(rng, dt.date(2006, 1, 1), dt.date(2012, 12, 31))},{rng.choice('MF')},WBRI\n")
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("referrals")
    ws.append(["la_code", "referral_id", "child_id", "referral_date", "referral_source", "primary_need",
               "referral_nfa", "closure_date", "closure_reason"])
    for i in range(rows):
        ref = _day(rng, dt.date(2013, 1, 1), dt.date(2023, 12, 31))
        ws.append([LA, f"R{i:08d}", f"C{i % n_children:08d}", ref, rng.choice(("1A", "2A", "3A", "6")),
                   f"N{rng.randrange(10)}", "false", ref + dt.timedelta(days=rng.randrange(10, 300)),
                   f"RC{rng.randrange(1, 10)}"])
    wb.save(directory / "referrals.xlsx")


def measure(data_dir: str) -> None:
    """Runs in a fresh process: validate, pseudonymise and load; print the figures."""
    import tempfile

    from insightlib.ingest import warehouse

    t0, c0 = time.perf_counter(), os.times()
    with tempfile.TemporaryDirectory() as tmp:
        summary = warehouse.load_directory(data_dir, Path(tmp) / "bench.duckdb", key=b"benchmark-key-0123456789abcdef")
    wall = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    rows = ", ".join(f"{t} {n:,}" for t, n in summary.rows.items() if n)
    print(f"load_directory: {wall:.1f} s wall, {cpu:.1f} s CPU, peak {peak:.2f} GB; "
          f"load average {os.getloadavg()[0]:.1f}; {rows}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("which", choices=["xml", "xlsx", "all", "_measure"])
    ap.add_argument("target", nargs="?")
    ap.add_argument("--mb", type=int, default=200, help="size of the CIN XML return in MB")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the referrals workbook")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/insight-bench-reading"))
    args = ap.parse_args()
    if args.which == "_measure":
        measure(args.target)
        return
    for which in ("xml", "xlsx") if args.which == "all" else (args.which,):
        run(which, args)


def run(which: str, args: argparse.Namespace) -> None:
    """Generate the input once (not timed), then measure a fresh process loading it."""
    if which == "xml":
        d = args.cache / f"xml-{args.mb}mb"
        if not (d / "return.xml").exists():
            d.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            make_xml(d / ".partial.xml", args.mb)
            os.replace(d / ".partial.xml", d / "return.xml")
            print(f"generated {d / 'return.xml'} in {time.perf_counter() - t:.0f} s (not timed)")
        size = (d / "return.xml").stat().st_size / 1e6
        print(f"CIN census XML: {size:.0f} MB ({d / 'return.xml'})")
    else:
        d = args.cache / f"xlsx-{args.rows}"
        if not (d / "referrals.xlsx").exists():
            d.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            make_workbook(d, args.rows)
            print(f"generated {d} in {time.perf_counter() - t:.0f} s (not timed)")
        print(f"referrals.xlsx: {args.rows:,} rows, {(d / 'referrals.xlsx').stat().st_size / 1e6:.0f} MB")
    subprocess.run([sys.executable, __file__, "_measure", str(d)], check=True)


if __name__ == "__main__":
    main()
