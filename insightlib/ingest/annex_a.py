"""Ofsted Annex A workbooks (lists 1, 2, 3, 4, 6 and 7) mapped to the canonical tables.

Headers are matched loosely (councils word them differently), codes are taken from labels
("a) 1A: Individual" -> "1A"), only visible sheets are read, and two sheets claiming the same
list are an error naming both (see docs/data-contract.md for the mapping).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import contract, reference
from insightlib.ingest.files import META, Limits, Problem, location, parse_dates, with_location
from insightlib.ingest.xlsx import SheetTooBig, SheetUnreadable, Workbook, open_workbook, row_cells


def _key(text: object) -> str:
    """Header key: lower case, letters and digits only ("Child Unique ID" -> "childuniqueid")."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


#: Loose header synonyms (compared after _key). First match wins.
ANNEX_A_HEADERS: dict[str, tuple[str, ...]] = {
    "child_id": (
        "childuniqueid",
        "childid",
        "id",
        "uniqueid",
        "childuid",
        "lachildid",
        "childreference",
        "childref",
        "personid",
        "clientid",
    ),
    "sex": ("gender", "sex", "gendercurrent"),
    "ethnicity": ("ethnicity", "ethnicorigin", "ethnicgroup"),
    "date_of_birth": ("dateofbirth", "dob", "birthdate", "personbirthdate"),
    "contact_date": ("dateofcontact", "contactdate"),
    "referral_date": ("dateofreferral", "referraldate", "cinreferraldate", "dateofthereferral"),
    "referral_source": ("referralsource", "sourceofreferral", "source"),
    "referral_nfa": ("referralnfa", "nfa", "referralnofurtheraction", "wasthereferralnfa"),
    "eh_start_date": ("assessmentstartdate", "earlyhelpstartdate", "dateearlyhelpstarted", "startdate"),
    "eh_end_date": ("assessmentcompletiondate", "earlyhelpenddate", "dateearlyhelpended", "enddate"),
    "assessment_start": ("continuousassessmentstartdate", "assessmentstartdate", "startdate"),
    "assessment_authorised": (
        "continuousassessmentdateofauthorisation",
        "assessmentauthoriseddate",
        "dateofauthorisation",
        "assessmentauthorisationdate",
        "authoriseddate",
    ),
    "cin_start_date": ("cinstartdate", "dateofreferral", "referraldate"),
    "primary_need": ("primaryneedcode", "primaryneed", "categoryofneed"),
    "closure_date": ("cinclosuredate", "closuredate", "dateofclosure", "caseclosuredate"),
    "closure_reason": ("reasonforclosure", "closurereason"),
    "cp_start_date": ("childprotectionplanstartdate", "cppstartdate", "planstartdate", "startdate"),
    "cp_end_date": ("childprotectionplanenddate", "cppenddate", "planenddate", "enddate"),
    "category_of_abuse": ("initialcategoryofabuse", "categoryofabuse"),
}

#: Which fields each list can carry (lists not named here are not mapped: see docs/data-contract.md).
ANNEX_A_LISTS: dict[int, tuple[str, ...]] = {
    1: ("child_id", "sex", "ethnicity", "date_of_birth", "contact_date"),
    2: ("child_id", "sex", "ethnicity", "date_of_birth", "eh_start_date", "eh_end_date"),
    3: ("child_id", "sex", "ethnicity", "date_of_birth", "referral_date", "referral_source", "referral_nfa"),
    4: ("child_id", "sex", "ethnicity", "date_of_birth", "assessment_start", "assessment_authorised"),
    6: (
        "child_id",
        "sex",
        "ethnicity",
        "date_of_birth",
        "cin_start_date",
        "primary_need",
        "closure_date",
        "closure_reason",
    ),
    7: ("child_id", "sex", "ethnicity", "date_of_birth", "cp_start_date", "cp_end_date", "category_of_abuse"),
}
ANNEX_A_REQUIRED = {
    3: ("child_id", "referral_date"),
    2: ("child_id", "eh_start_date"),
    4: ("child_id", "assessment_start"),
    6: ("child_id",),
    7: ("child_id", "cp_start_date"),
    1: ("child_id",),
}

_ETHNICITY_NAMES = {
    "whitebritish": "WBRI",
    "whiteirish": "WIRI",
    "travellerofirishheritage": "WIRT",
    "anyotherwhitebackground": "WOTH",
    "gypsyroma": "WROM",
    "whiteandblackcaribbean": "MWBC",
    "whiteandblackafrican": "MWBA",
    "whiteandasian": "MWAS",
    "anyothermixedbackground": "MOTH",
    "indian": "AIND",
    "pakistani": "APKN",
    "bangladeshi": "ABAN",
    "anyotherasianbackground": "AOTH",
    "caribbean": "BCRB",
    "african": "BAFR",
    "anyotherblackbackground": "BOTH",
    "chinese": "CHNE",
    "anyotherethnicgroup": "OOTH",
    "refused": "REFU",
    "informationnotyetobtained": "NOBT",
}
_ABUSE_NAMES = {"neglect": "NEG", "physical": "PHY", "sexual": "SAB", "emotional": "EMO", "multiple": "MUL"}
_LIST_PREFIX = re.compile(r"^\s*[a-z]\d?\)\s*", re.I)


def _strip_prefix(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.replace(_LIST_PREFIX, "", regex=True).str.strip()


def _leading_code(s: pd.Series, codes: tuple[str, ...], labels: dict[str, str] | None = None) -> pd.Series:
    """ "a) 1A: Individual" -> "1A"; "N1 - Abuse or neglect" -> "N1"; "Housing 4" -> "4"; "Police" -> "6".

    Text that names no code is kept as it is, for validation to report.
    """
    text = _strip_prefix(s)
    upper = text.str.upper()
    token = upper.str.extract(r"^([A-Z0-9]+)", expand=False).fillna("")
    anywhere = upper.str.extract(
        r"(?<![A-Z0-9])(" + "|".join(sorted(codes, key=len, reverse=True)) + r")(?![A-Z0-9])", expand=False
    )
    out = token.where(token.isin(codes), anywhere)
    if labels:
        by_label = {_key(v): k for k, v in labels.items()}
        out = out.fillna(text.map(lambda v: by_label.get(_key(v))))
    return out.fillna(text).astype(object)


def _annex_sex(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s).str.lower()
    out = pd.Series("U", index=s.index, dtype=object)
    out[text.str.match(r"^(m|male|1)$")] = "M"
    out[text.str.match(r"^(f|female|2)$")] = "F"
    out[text == ""] = ""
    return out


def _annex_ethnicity(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s)
    code = text.str.upper().str.extract(r"\b(" + "|".join(contract.ETHNICITY) + r")\b", expand=False)
    by_name = text.map(lambda v: _ETHNICITY_NAMES.get(_key(v)))
    return code.fillna(by_name).fillna(text).astype(object)


def _annex_abuse(s: pd.Series) -> pd.Series:
    text = _strip_prefix(s)
    code = text.str.upper().str.extract(r"\b(" + "|".join(contract.ABUSE_CATEGORIES) + r")\b", expand=False)
    first = text.str.lower().str.extract(r"^([a-z]+)", expand=False).map(_ABUSE_NAMES)
    return code.fillna(first).fillna(text).astype(object)


def _annex_yes_no(s: pd.Series) -> pd.Series:
    return _strip_prefix(s)


def _match_headers(header: list[str], wanted: tuple[str, ...]) -> dict[str, int]:
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    used: set[int] = set()
    for fld in wanted:
        for syn in ANNEX_A_HEADERS[fld]:
            hit = next((i for i, k in enumerate(keys) if k == syn and i not in used), None)
            if hit is not None:
                found[fld] = hit
                used.add(hit)
                break
    # Looser pass: a header containing the whole first synonym ("Child Unique ID (LA)").
    for fld in wanted:
        if fld not in found:
            syn = ANNEX_A_HEADERS[fld][0]
            hit = next((i for i, k in enumerate(keys) if syn in k and i not in used), None)
            if hit is not None:
                found[fld] = hit
                used.add(hit)
    return found


_LIST_SHEET = re.compile(r"^\s*list\s*(\d{1,2})\b", re.I)


def is_annex_a(path: Path, limits: Limits | None = None) -> bool:
    try:
        wb = Workbook(path, limits or Limits.from_env())
    except Exception:  # noqa: BLE001 - read_annex_a / read_directory report it
        return False
    return any(_LIST_SHEET.match(s) for s in wb.sheets + wb.hidden)


def _annex_la_code(path: Path, known_councils: list[str]) -> str | None:
    codes = reference.council_codes()
    in_name = [c for c in re.findall(r"(?<!\d)(\d{3})(?!\d)", path.stem) if c in codes]
    if len(in_name) == 1:
        return in_name[0]
    if len(known_councils) == 1:
        return known_councils[0]
    return None


def read_annex_a(
    path: Path, known_councils: list[str] | None = None, limits: Limits | None = None
) -> tuple[dict[str, pd.DataFrame], list[Problem], list[str]]:
    """Ofsted Annex A lists 1, 2, 3, 4, 6 and 7 mapped to the canonical tables.

    Only visible sheets are read (hidden ones are named in a note); two visible sheets claiming the
    same list are an error naming both, since either choice could silently drop or invent rows.
    """
    name = path.name
    notes: list[str] = []
    la_code = _annex_la_code(path, known_councils or [])
    if la_code is None:
        return (
            {},
            [
                Problem(
                    name,
                    None,
                    "la_code",
                    "missing value",
                    f"{name}: cannot tell which council this Annex A workbook belongs to. Put the "
                    "council's 3-digit code in the file name (e.g. 201_annex_a.xlsx) or give a "
                    "councils.csv with that one council.",
                )
            ],
            notes,
        )
    wb, problem = open_workbook(path, limits)
    if wb is None:
        return {}, [replace(problem, la_code=la_code)], notes
    if wb.hidden:
        notes.append(
            f"{name}: hidden sheet{'s' if len(wb.hidden) > 1 else ''} "
            f"{', '.join(repr(s) for s in wb.hidden)} not read (only visible sheets are data; unhide "
            "a sheet in Excel if it should be read)."
        )
    problems: list[Problem] = []
    lists = _read_lists(wb, la_code, problems, notes)
    if not lists:
        return {}, problems, notes
    out: dict[str, pd.DataFrame] = {"children": _children(lists, la_code)}
    referrals = _referrals(lists, la_code, name, notes) if 3 in lists else None
    if referrals is not None:
        out["referrals"] = referrals
    _linked_tables(lists, referrals, la_code, name, problems, out)
    for frame in out.values():
        for c in frame.columns:
            if c not in META:
                frame[c] = frame[c].fillna("").astype(object)
        frame.attrs.update(file=name, la_code=la_code)
    return out, problems, notes


def _read_lists(wb: Workbook, la_code: str, problems: list[Problem], notes: list[str]) -> dict[int, pd.DataFrame]:
    """The visible sheets named "List N" as raw frames of contract fields, by list number."""
    name = wb.name
    lists: dict[int, pd.DataFrame] = {}
    claimed: dict[int, list[str]] = {}
    for sheet in wb.sheets:
        m = _LIST_SHEET.match(sheet)
        if m:
            claimed.setdefault(int(m.group(1)), []).append(sheet)
    for number, sheets in claimed.items():
        if len(sheets) > 1 and number in ANNEX_A_LISTS:
            problems.append(
                Problem(
                    name,
                    None,
                    None,
                    "duplicate list",
                    f"{name}: the sheets {' and '.join(repr(s) for s in sheets)} both claim to be "
                    f"Annex A list {number}; keep one (or rename or hide the other) so it is clear "
                    "which holds the data.",
                    la_code=la_code,
                )
            )
    for number, sheets in claimed.items():
        sheet = sheets[0]
        if number not in ANNEX_A_LISTS:
            notes.append(f"{name}: sheet '{sheet}' (Annex A list {number}) carries no contract fields; not read.")
            continue
        if len(sheets) > 1:
            continue
        frame = _read_list(wb, sheet, number, la_code, problems)
        if frame is not None:
            lists[number] = frame
    return lists


def _read_list(wb: Workbook, sheet: str, number: int, la_code: str, problems: list[Problem]) -> pd.DataFrame | None:
    """One list's sheet: its header found in the top rows, its columns matched to the list's fields."""
    name = wb.name
    try:
        numbers, columns = wb.rows(sheet)
    except SheetTooBig as err:
        problems.append(Problem(name, None, None, "too big", str(err), la_code=la_code))
        return None
    except SheetUnreadable as err:
        problems.append(Problem(name, None, None, "unreadable file", str(err), la_code=la_code))
        return None
    # The header is the first of the top rows with a child id column (some sheets have a title row).
    top = [row_cells(columns, k) for k in range(min(10, len(numbers)))]
    header_at = next((k for k, cells in enumerate(top) if "child_id" in _match_headers(cells, ("child_id",))), None)
    if header_at is None:
        problems.append(
            Problem(
                name,
                None,
                "child_id",
                "missing column",
                f"{name}, sheet '{sheet}': no child id column (such as 'Child Unique ID') in the first rows.",
                la_code=la_code,
            )
        )
        return None
    header = top[header_at]
    found = _match_headers(header, ANNEX_A_LISTS[number])
    missing = [f for f in ANNEX_A_REQUIRED[number] if f not in found]
    if missing:
        problems.append(
            Problem(
                name,
                int(numbers[header_at]),
                missing[0],
                "missing column",
                f"{name}, sheet '{sheet}': no column for {', '.join(missing)} "
                f"(headers found: {', '.join(h for h in header if h)}).",
                la_code=la_code,
            )
        )
        return None
    frame = pd.DataFrame({fld: columns[i].slice(header_at + 1).to_pylist() for fld, i in found.items()}, dtype=object)
    frame = with_location(frame, name, numbers[header_at + 1 :], sheet=sheet)
    return frame[frame["child_id"] != ""].reset_index(drop=True)


def _children(lists: dict[int, pd.DataFrame], la_code: str) -> pd.DataFrame:
    """Every list that names a child, first appearance wins (referral list first)."""
    kids = []
    for number in (3, 6, 4, 7, 2, 1):
        if number in lists:
            f = lists[number]
            kids.append(
                f[[c for c in ("child_id", "sex", "ethnicity", "date_of_birth") if c in f.columns] + list(META)]
            )
    children = pd.concat(kids, ignore_index=True).drop_duplicates("child_id").reset_index(drop=True)
    for col in ("sex", "ethnicity", "date_of_birth"):
        if col not in children.columns:
            children[col] = ""
    children["sex"] = _annex_sex(children["sex"])
    children["ethnicity"] = _annex_ethnicity(children["ethnicity"])
    children.insert(0, "la_code", la_code)
    return children


def _referrals(lists: dict[int, pd.DataFrame], la_code: str, name: str, notes: list[str]) -> pd.DataFrame:
    """List 3's referrals, with primary need and closure from List 6 (matched on child and CIN start date)."""
    r = lists[3].copy()
    r["referral_date"] = r["referral_date"]
    r["referral_source"] = _leading_code(
        r.get("referral_source", pd.Series("", index=r.index)),
        contract.REFERRAL_SOURCES,
        contract.REFERRAL_SOURCE_LABELS,
    )
    r["referral_nfa"] = _annex_yes_no(r.get("referral_nfa", pd.Series("", index=r.index)))
    pos = r.groupby(["child_id", "referral_date"]).cumcount() + 1
    r["referral_id"] = r["child_id"] + "/" + r["referral_date"] + "/" + pos.astype(str)
    r["primary_need"] = ""
    r["closure_date"] = ""
    r["closure_reason"] = ""
    if 6 in lists and "cin_start_date" in lists[6].columns:
        cin = lists[6].drop_duplicates(["child_id", "cin_start_date"])
        cin = cin.rename(columns={"cin_start_date": "referral_date"})
        carry = [c for c in ("primary_need", "closure_date", "closure_reason") if c in cin.columns]
        merged = r[["child_id", "referral_date"]].merge(
            cin[["child_id", "referral_date"] + carry], on=["child_id", "referral_date"], how="left"
        )
        for c in carry:
            r[c] = merged[c].fillna("").to_numpy()
    r["primary_need"] = _leading_code(r["primary_need"], contract.PRIMARY_NEED, contract.PRIMARY_NEED_LABELS)
    r["closure_reason"] = _leading_code(r["closure_reason"], contract.CLOSURE_REASONS, contract.CLOSURE_REASON_LABELS)
    no_need = r["primary_need"] == ""
    if no_need.any():
        r.loc[no_need, "primary_need"] = "N0"
        notes.append(
            f"{name}: {int(no_need.sum())} referrals in List 3 have no primary need in List 6 "
            "(matched on child and CIN start date = referral date); recorded as N0 (not stated)."
        )
    r.insert(0, "la_code", la_code)
    return r[[c for c in contract.TABLES["referrals"].columns] + list(META)].copy()


def _link(
    frame: pd.DataFrame,
    referrals: pd.DataFrame | None,
    date_col: str,
    what: str,
    sheet_number: int,
    la_code: str,
    name: str,
    problems: list[Problem],
) -> pd.DataFrame:
    """Attach each row to the child's latest referral on or before its date (rows with none are problems)."""
    frame = frame.copy()
    frame["referral_id"] = ""
    if referrals is not None and len(frame):
        when, _ = parse_dates(frame[date_col])
        refs = referrals[["child_id", "referral_id", "referral_date"]].copy()
        refs["_when"], _ = parse_dates(refs["referral_date"])
        refs = refs.dropna(subset=["_when"]).sort_values("_when")
        left = frame.assign(_when=when, _i=np.arange(len(frame))).dropna(subset=["_when"]).sort_values("_when")
        joined = pd.merge_asof(
            left,
            refs[["child_id", "referral_id", "_when"]].rename(columns={"referral_id": "_rid"}),
            on="_when",
            by="child_id",
            direction="backward",
        )
        frame.loc[joined["_i"].to_numpy(), "referral_id"] = joined["_rid"].fillna("").to_numpy()
    unlinked = frame["referral_id"] == ""
    for _, row in frame[unlinked].head(50).iterrows():
        problems.append(
            Problem(
                name,
                int(row["_row"]),
                "referral_id",
                "not present",
                f"{location(name, int(row['_row']), row['_sheet'])}: this {what} has no referral for the same "
                f"child on or before its date ({row[date_col] or 'no date'}) in List 3.",
                la_code=la_code,
                table="assessments" if sheet_number == 4 else "plans",
            )
        )
    if unlinked.sum() > 50:
        problems.append(
            Problem(
                name,
                None,
                "referral_id",
                "not present",
                f"{name}: and {int(unlinked.sum()) - 50} more {what}s with no referral in List 3.",
                la_code=la_code,
            )
        )
    return frame[~unlinked]


def _linked_tables(
    lists: dict[int, pd.DataFrame],
    referrals: pd.DataFrame | None,
    la_code: str,
    name: str,
    problems: list[Problem],
    out: dict[str, pd.DataFrame],
) -> None:
    """Assessments (List 4) and child protection plans (List 7) linked to referrals; early help (List 2)."""
    if 4 in lists:
        a = _link(lists[4], referrals, "assessment_start", "assessment", 4, la_code, name, problems)
        a = a.rename(columns={"assessment_start": "start_date", "assessment_authorised": "authorised_date"})
        a.insert(0, "la_code", la_code)
        out["assessments"] = a[
            [c for c in contract.TABLES["assessments"].columns if c in a.columns] + list(META)
        ].copy()
    if 7 in lists:
        p = _link(lists[7], referrals, "cp_start_date", "child protection plan", 7, la_code, name, problems)
        p = p.rename(columns={"cp_start_date": "start_date", "cp_end_date": "end_date"})
        p["plan_type"] = "CP"
        if "category_of_abuse" in p.columns:
            p["category_of_abuse"] = _annex_abuse(p["category_of_abuse"])
        p.insert(0, "la_code", la_code)
        out["plans"] = p[[c for c in contract.TABLES["plans"].columns if c in p.columns] + list(META)].copy()
    if 2 in lists:
        e = lists[2].rename(columns={"eh_start_date": "start_date", "eh_end_date": "end_date"}).copy()
        e["intervention"] = "Early help"
        e.insert(0, "la_code", la_code)
        out["interventions"] = e[
            [c for c in contract.TABLES["interventions"].columns if c in e.columns] + list(META)
        ].copy()
