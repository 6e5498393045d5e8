"""Groups, factors and model terms in the users' words, and the natural order of ordered groupings."""

from __future__ import annotations

from insightlib import contract
from insightlib.report.text import md as _md

#: The name every report gives the small groups shown together.
OTHER = "Other"


#: Groupings the notebook offers, in the users' words; the values are episode columns.
GROUPINGS = {
    "primary_need": "primary need",
    "age_band": "age at closure",
    "referral_source": "referral source",
    "closure_reason": "closure reason",
    "disability": "disability",
    "ethnicity": "ethnicity",
    "intervention": "intervention received",
    "sex": "sex",
    "referral_nfa": "outcome of the referral",
}
_LABELS = {
    "primary_need": contract.PRIMARY_NEED_LABELS,
    "closure_reason": {
        **contract.CLOSURE_REASON_LABELS,
        "NFA": "No further action at referral",
        "UNKNOWN": "Reason not recorded",
    },
    "referral_source": contract.REFERRAL_SOURCE_LABELS,
}
_WORDS_ONLY = {"sex": {"F": "Girls", "M": "Boys", "U": "Sex not recorded"}}


def group_label(group_by: str, value: str) -> str:
    """A group in words: "N1 Abuse or neglect" rather than "N1"."""
    if value == OTHER:
        return "Other groups"
    if value in _WORDS_ONLY.get(group_by, {}):
        return _WORDS_ONLY[group_by][value]
    words = _LABELS.get(group_by, {}).get(value)
    return f"{value} {words}" if words else str(value)


def term_label(term: str) -> str:
    """A Cox term in words: "primary_need[N2]" -> "primary need: N2 Child's disability"."""
    if term.endswith("]") and "[" in term:
        cov, level = term[:-1].split("[", 1)
        return f"{GROUPINGS.get(cov, cov.replace('_', ' '))}: {group_label(cov, level)}"
    return {"previous_referrals": "each earlier referral", "age_at_closure": "each year of age at closure"}.get(
        term, term.replace("_", " ")
    )


def _term_words(term: str) -> str:
    """A Cox term inside a sentence: "primary_need[N7]" -> "N7 Low income (primary need)",
    "age_band[under 5]" -> "under 5 (age at closure)"."""
    label = term_label(term)
    if ": " in label:
        factor, level = label.split(": ", 1)
        if not level[1:2].isdigit():  # a code such as N7 keeps its capital
            level = level[:1].lower() + level[1:]
        return f"{level} ({factor})"
    return label


def _ph_words(term: str) -> str:
    """A term of the PH check in a sentence: a factor by its name ("primary need"), a column as _term_words."""
    return GROUPINGS[term] if term in GROUPINGS else _term_words(term)


def _who(group_by: str | None, value: str, markdown: bool = False) -> str:
    """The children in a group, in a phrase that fits a sentence ("children whose primary need was ...").
    ``markdown``: for a Markdown sentence, the label (text from data) escaped so that it shows as written."""
    label = group_label(group_by, value)
    if markdown:
        label = _md(label)
    if value == OTHER:
        return "children in the smaller groups together"
    special = {
        "referral_nfa": {
            "No further action": "children whose referral ended in no further action",
            "Assessed": "children whose referral was assessed",
        },
        "disability": {"Disability": "disabled children", "No disability": "children with no disability recorded"},
        "sex": {"M": "boys", "F": "girls", "U": "children whose sex was not recorded"},
        "ethnicity": {
            "Any other ethnic group": "children of any other ethnic group",
            "Not known": "children whose ethnicity was not recorded",
        },
        "intervention": {
            "None": "children who received none of the recorded interventions",
            "Several": "children who received several interventions",
        },
    }
    if value in special.get(group_by, {}):
        return special[group_by][value]
    phrase = {
        "primary_need": "children whose primary need was {}",
        "age_band": "children aged {} when their case closed",
        "referral_source": "children referred by {}",
        "closure_reason": "children whose closure reason was {}",
        "intervention": "children who received {}",
        "ethnicity": "children in the {} ethnic group",
    }.get(group_by, "children in the group {}")
    return phrase.format(label.lower() if group_by == "age_band" else label)


_ORDER = {
    "age_band": [b[2] for b in contract.AGE_BANDS] + [contract.AGE_BAND_ADULT, contract.AGE_BAND_UNKNOWN],
    "referral_source": list(contract.REFERRAL_SOURCES),
    "closure_reason": list(contract.CLOSURE_REASONS) + ["NFA", "UNKNOWN"],
    "sex": ["F", "M", "U"],
    "ethnicity": ["White", "Mixed", "Asian", "Black", "Any other ethnic group", "Not known"],
    "referral_nfa": ["Assessed", "No further action"],
    "disability": ["No disability", "Disability"],
}


def _level_key(group_by: str | None, name) -> tuple:
    """Natural order for ordered groupings (age bands), otherwise by name; "Other" last."""
    order = _ORDER.get(group_by, [])
    name = str(name)
    if name == OTHER:
        return (2, 0, name)
    return (0, order.index(name), name) if name in order else (1, 0, name)
