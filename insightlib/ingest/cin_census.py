"""The CIN census XML return (the DfE's Children in Need census) mapped to the canonical tables.

Streamed: each <Child> becomes rows as soon as it closes and is then dropped. DTDs, entity
declarations and nesting far deeper than the census's own are refused with a sentence naming
the line (see docs/data-contract.md for the mapping).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from insightlib import reference
from insightlib.ingest.cin_xml import XMLElement, parse, stray_text
from insightlib.ingest.files import CHUNK, STR, Problem


class _Columns:
    """One table's rows as column lists, packed into Arrow every CHUNK rows (strings) / numpy (lines)."""

    def __init__(self, text: tuple[str, ...], lines: tuple[str, ...]):
        self.text, self.lines = text, lines
        self.packed: dict[str, list] = {c: [] for c in text + lines}
        self.n = 0
        self._rows: list[tuple] = []  # the hot path: one append of a row's values, columns made per chunk

    def add(self, *values) -> None:
        self._rows.append(values)
        self.n += 1
        if len(self._rows) >= CHUNK:
            self._pack()

    def _pack(self) -> None:
        names = self.text + self.lines
        columns = list(zip(*self._rows)) if self._rows else [()] * len(names)
        for c, values in zip(self.text, columns):
            self.packed[c].append(pa.array(values, type=pa.large_string()))
        for c, values in zip(self.lines, columns[len(self.text) :]):
            self.packed[c].append(np.asarray(values, dtype="int64"))
        self._rows = []

    def frame(self, la_code: str, name: str) -> pd.DataFrame:
        self._pack()
        cols: dict[str, object] = {"la_code": pd.Series(np.full(self.n, la_code, dtype=object), dtype=STR)}
        for c in self.text:
            arr = pa.chunked_array(self.packed[c], type=pa.large_string()).combine_chunks()
            cols[c] = pd.Series(pd.arrays.ArrowStringArray(arr), dtype=STR)
            self.packed[c] = []
        for c in self.lines:
            cols[c] = np.concatenate(self.packed[c]) if self.packed[c] else np.array([], dtype="int64")
            self.packed[c] = []
        frame = pd.DataFrame(cols)
        frame["_file"] = name
        frame["_sheet"] = ""
        return frame


def _xml_sex(raw: str) -> str | None:
    return {"1": "M", "2": "F", "0": "U", "9": "U"}.get(raw)


CIN_SEX_CODES = "1 (male), 2 (female), 0 (not known) or 9 (not specified)"

#: The interventions the CIN census (2026 structure, PreProceedingsandFGDM) records, as named in
#: the interventions table: a family group decision making meeting held during pre-proceedings
#: (FGDMMeetingFac, N00829) and one offered in the letter before proceedings (FGDMMeetingOffer, N00828).
FGDM_MEETING = "Family Group Decision Making"
FGDM_OFFER = "Family Group Decision Making offered"
_CIN_YES, _CIN_NO = ("1", "true", "y", "yes"), ("0", "false", "n", "no")


def _val(node: XMLElement | None, tag: str, fallback_line: int) -> tuple[str, int]:
    """The text and line of ``node``'s child ``tag``; ("", fallback_line) where there is none."""
    el = node.find(tag) if node is not None else None
    return (el.value(), el.line) if el is not None else ("", fallback_line)


class _CinTables:
    """The canonical rows of one return, filled one <Child> at a time as the parser meets them."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[Problem] = []
        #: Set by the parser: whether an element with child elements also had text (stray text) since the last <Child>.
        self.stray_text_seen = True
        self.children = _Columns(
            ("child_id", "upn", "date_of_birth", "sex", "ethnicity", "disability"),
            (
                "_row",
                "_row__child_id",
                "_row__upn",
                "_row__date_of_birth",
                "_row__sex",
                "_row__ethnicity",
                "_row__disability",
            ),
        )
        self.referrals = _Columns(
            (
                "referral_id",
                "child_id",
                "referral_date",
                "referral_source",
                "primary_need",
                "referral_nfa",
                "closure_date",
                "closure_reason",
            ),
            (
                "_row",
                "_row__referral_id",
                "_row__child_id",
                "_row__referral_date",
                "_row__referral_source",
                "_row__primary_need",
                "_row__referral_nfa",
                "_row__closure_date",
                "_row__closure_reason",
            ),
        )
        self.assessments = _Columns(
            ("referral_id", "child_id", "start_date", "authorised_date", "factors"),
            ("_row", "_row__start_date", "_row__authorised_date", "_row__factors"),
        )
        self.plans = _Columns(
            ("referral_id", "child_id", "plan_type", "start_date", "end_date", "category_of_abuse"),
            ("_row", "_row__start_date", "_row__end_date", "_row__category_of_abuse"),
        )
        self.interventions = _Columns(
            ("referral_id", "child_id", "intervention", "start_date", "end_date"),
            ("_row", "_row__intervention", "_row__start_date", "_row__end_date"),
        )

    def child(self, child: XMLElement) -> None:
        """One <Child>: text between its elements is a problem (looked for when the parser saw some); its rows."""
        if self.stray_text_seen:
            stray_text(child, self.name, self.problems)
        self.child_rows(child)

    def child_rows(self, child: XMLElement) -> None:
        """A <Child>'s children row, then a referrals row (and what hangs off it) per <CINdetails>."""
        cid = self._child_row(child)
        for position, cin in enumerate(child.findall("CINdetails"), start=1):
            self._cin_details(cin, cid, position)

    def _child_row(self, child: XMLElement) -> str:
        """The children row of a <Child> (identifiers and characteristics); returns its child id."""
        ids = child.find("ChildIdentifiers")
        chars_ = child.find("ChildCharacteristics")
        cid, cid_line = _val(ids, "LAchildID", child.line)
        upn, upn_line = _val(ids, "UPN", child.line)
        dob, dob_line = _val(ids, "PersonBirthDate", child.line)
        if not dob:
            dob, dob_line = _val(ids, "ExpectedPersonBirthDate", dob_line)
        sex_raw, sex_line = _val(ids, "Sex", child.line)
        if not sex_raw:
            sex_raw, sex_line = _val(ids, "GenderCurrent", child.line)
        sex = _xml_sex(sex_raw)
        if sex is None:
            if sex_raw:
                self.problems.append(
                    Problem(
                        self.name,
                        sex_line,
                        "sex",
                        "unknown code",
                        f"{self.name} line {sex_line}, sex: {sex_raw!r} is not a census sex code; use {CIN_SEX_CODES}.",
                        table="children",
                    )
                )
                sex = "U"
            else:
                sex = ""
        eth, eth_line = _val(chars_, "Ethnicity", child.line)
        dis_node = chars_.find("Disabilities") if chars_ is not None else None
        disabilities = [d.value() for d in dis_node.findall("Disability")] if dis_node is not None else []
        self.children.add(
            cid,
            upn,
            dob,
            sex,
            eth,
            ";".join(d for d in disabilities if d),
            child.line,
            cid_line,
            upn_line,
            dob_line,
            sex_line,
            eth_line,
            dis_node.line if dis_node is not None else child.line,
        )
        return cid

    def _cin_details(self, cin: XMLElement, cid: str, position: int) -> None:
        """One <CINdetails>: the referrals row and its assessments, plans and FGDM interventions."""
        ref_date, ref_line = _val(cin, "CINreferralDate", cin.line)
        rid = f"{cid}/{ref_date}/{position}"
        values, lines = [], []
        for tag in ("ReferralSource", "PrimaryNeedCode", "ReferralNFA", "CINclosureDate", "ReasonForClosure"):
            v, line = _val(cin, tag, cin.line)
            values.append(v)
            lines.append(line)
        source, need, nfa, closed, reason = values
        self.referrals.add(
            rid, cid, ref_date, source, need, nfa, closed, reason, cin.line, ref_line, cin.line, ref_line, *lines
        )
        for a in cin.findall("Assessments"):
            start, start_line = _val(a, "AssessmentActualStartDate", a.line)
            auth, auth_line = _val(a, "AssessmentAuthorisationDate", a.line)
            fac = a.find("FactorsIdentifiedAtAssessment")
            factors = [f.value() for f in fac.findall("AssessmentFactors")] if fac is not None else []
            self.assessments.add(
                rid,
                cid,
                start,
                auth,
                ";".join(f for f in factors if f),
                a.line,
                start_line,
                auth_line,
                fac.line if fac is not None else a.line,
            )
        for p in cin.findall("CINPlanDates"):
            start, start_line = _val(p, "CINPlanStartDate", p.line)
            end, end_line = _val(p, "CINPlanEndDate", p.line)
            self.plans.add(rid, cid, "CIN", start, end, "", p.line, start_line, end_line, p.line)
        for p in cin.findall("ChildProtectionPlans"):
            start, start_line = _val(p, "CPPstartDate", p.line)
            end, end_line = _val(p, "CPPendDate", p.line)
            cat, cat_line = _val(p, "InitialCategoryOfAbuse", p.line)
            self.plans.add(rid, cid, "CP", start, end, cat, p.line, start_line, end_line, cat_line)
        for pp in cin.findall("PreProceedingsandFGDM"):
            self._fgdm(pp, rid, cid)

    def _fgdm(self, pp: XMLElement, rid: str, cid: str) -> None:
        """A pre-proceedings block's FGDM offer and meeting as interventions rows.

        The census gives no date of the meeting itself: an offer is dated by the letter before
        proceedings that made it (else the start of pre-proceedings); a meeting by the
        pre-proceedings period it was held in (PPStartDate, else the letter; to StepDecisionDate).
        """
        pp_start, pp_line = _val(pp, "PPStartDate", pp.line)
        letter, letter_line = _val(pp, "LBPSentDate", pp.line)
        decision, decision_line = _val(pp, "StepDecisionDate", pp.line)
        for tag, intervention, start, start_line, end, end_line in (
            ("FGDMMeetingOffer", FGDM_OFFER, letter or pp_start, letter_line if letter else pp_line, "", pp.line),
            (
                "FGDMMeetingFac",
                FGDM_MEETING,
                pp_start or letter,
                pp_line if pp_start else letter_line,
                decision,
                decision_line,
            ),
        ):
            raw, line = _val(pp, tag, pp.line)
            answer = raw.lower()
            if answer in _CIN_YES:
                self.interventions.add(rid, cid, intervention, start, end, line, line, start_line, end_line)
            elif answer and answer not in _CIN_NO:
                self.problems.append(
                    Problem(
                        self.name,
                        line,
                        "intervention",
                        "unknown code",
                        f"{self.name} line {line}, {tag}: {raw!r} is not a census yes/no code; use 1 (yes) or 0 (no).",
                        table="interventions",
                    )
                )


def read_cin_xml(path: Path) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """The CIN census return mapped to the canonical tables (see docs/data-contract.md).

    Streamed: each <Child> is turned into rows as soon as it closes and then dropped, so memory
    follows the rows, not the file's element tree. DTDs and entities are refused (defusedxml's rules).
    """
    name = path.name
    if path.stat().st_size == 0:
        return {}, [Problem(name, None, None, "empty file", f"{name} is empty.")]
    rows = _CinTables(name)
    root, err = parse(path, rows)
    message = root.find("Message")
    header = message.find("Header") if message else None
    la_code = extract = None
    if header is not None:
        src = header.find("Source")
        lea = src.find("LEA") if src else None
        la_code = lea.value() if lea else None
        cd = header.find("CollectionDetails")
        ref = cd.find("ReferenceDate") if cd else None
        extract = ref.value() if ref else None
    if err is not None:
        return {}, [
            Problem(
                name,
                err[0],
                None,
                "broken XML",
                f"{name} line {err[0]}, {err[1]}; nothing from this file was read. Fix the element at that line and try again.",
                la_code=la_code or None,
            )
        ]
    if message is None:
        return {}, [
            Problem(
                name,
                None,
                None,
                "broken XML",
                f"{name} is not a CIN census return: its top element should be <Message>.",
            )
        ]
    if not la_code:
        return {}, [
            Problem(
                name,
                header.line if header else None,
                "la_code",
                "missing value",
                f"{name}: the header has no <LEA> (the council's 3-digit code), so the return "
                "cannot be matched to a council.",
            )
        ]
    problems: list[Problem] = []
    stray_text(message, name, problems)
    problems = [replace(p, la_code=la_code) for p in problems + rows.problems]
    return _tables(rows, name, la_code, extract, header.line), problems


def _tables(
    rows: _CinTables, name: str, la_code: str, extract: str | None, header_line: int
) -> dict[str, pd.DataFrame]:
    """The councils row from the header and the frames of the rows read."""
    councils = pd.DataFrame(
        {
            "la_code": [la_code],
            "la_name": [reference.council_name(la_code)],
            "extract_date": [extract or ""],
            "_row": [header_line],
            "_row__extract_date": [header_line],
            "_file": [name],
            "_sheet": [""],
        }
    )
    out = {"councils": councils}
    for table in ("children", "referrals", "assessments", "plans", "interventions"):
        cols: _Columns = getattr(rows, table)
        if cols.n:
            out[table] = cols.frame(la_code, name)
    for frame in out.values():
        frame.attrs.update(file=name, la_code=la_code)
    return out
