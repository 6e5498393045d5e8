"""The data contract: the canonical tables every reader produces and every analysis reads.

Field names follow the DfE Children in Need census in snake_case (docs/data-contract.md). This module
is the single source of truth for table names, required and optional columns, which
columns are dates or identifiers, and the CIN code lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def council_code(value) -> str:
    """A council's 3-digit code as text, whether given as text ("352", " 352") or as a number (352).

    An analyst setting ``la_code = 352`` in a notebook means Manchester, not the 352nd row of a list.
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):03d}"
    return str(value).strip()


# --- CIN code lists -----------------------------------------------------------------

PRIMARY_NEED = tuple(f"N{i}" for i in range(10))
PRIMARY_NEED_LABELS = {
    "N0": "Not stated",
    "N1": "Abuse or neglect",
    "N2": "Child's disability",
    "N3": "Parental illness or disability",
    "N4": "Family in acute stress",
    "N5": "Family dysfunction",
    "N6": "Socially unacceptable behaviour",
    "N7": "Low income",
    "N8": "Absent parenting",
    "N9": "Cases other than children in need",
}

CLOSURE_REASONS = tuple(f"RC{i}" for i in range(1, 10))
CLOSURE_REASON_LABELS = {
    "RC1": "Adopted",
    "RC2": "Died",
    "RC3": "Child arrangements order",
    "RC4": "Special guardianship order",
    "RC5": "Transferred to another local authority",
    "RC6": "Transferred to residential care funded by adult social services",
    "RC7": "Case closed, other reason",
    "RC8": "Case closed after assessment, no further action",
    "RC9": "Case closed after assessment, referred to early help",
}
#: Closure reasons that end observation for a competing reason (docs/survival.md).
CLOSURE_DIED = "RC2"
CLOSURE_TRANSFERRED = "RC5"

REFERRAL_SOURCES = (
    "1A",
    "1B",
    "1C",
    "1D",
    "2A",
    "2B",
    "3A",
    "3B",
    "3C",
    "3D",
    "3E",
    "3F",
    "4",
    "5A",
    "5B",
    "5C",
    "5D",
    "6",
    "7",
    "8",
    "9",
    "10",
)
REFERRAL_SOURCE_LABELS = {
    "1A": "Individual: family member",
    "1B": "Individual: acquaintance",
    "1C": "Individual: self",
    "1D": "Individual: other",
    "2A": "Schools",
    "2B": "Education services",
    "3A": "Health: GP",
    "3B": "Health: visitor",
    "3C": "Health: school nurse",
    "3D": "Health: other primary",
    "3E": "Health: A&E",
    "3F": "Health: other",
    "4": "Housing",
    "5A": "LA services: social care",
    "5B": "LA services: other internal",
    "5C": "LA services: external",
    "5D": "LA services: early help",
    "6": "Police",
    "7": "Other legal agency",
    "8": "Other",
    "9": "Anonymous",
    "10": "Unknown",
}

ETHNICITY = (
    "WBRI",
    "WIRI",
    "WIRT",
    "WOTH",
    "WROM",
    "MWBC",
    "MWBA",
    "MWAS",
    "MOTH",
    "AIND",
    "APKN",
    "ABAN",
    "AOTH",
    "BCRB",
    "BAFR",
    "BOTH",
    "CHNE",
    "OOTH",
    "REFU",
    "NOBT",
)
#: Broad groups used in reports (small groups are otherwise suppressed everywhere).
ETHNICITY_GROUP = {
    **{c: "White" for c in ("WBRI", "WIRI", "WIRT", "WOTH", "WROM")},
    **{c: "Mixed" for c in ("MWBC", "MWBA", "MWAS", "MOTH")},
    **{c: "Asian" for c in ("AIND", "APKN", "ABAN", "AOTH")},
    **{c: "Black" for c in ("BCRB", "BAFR", "BOTH")},
    "CHNE": "Other",
    "OOTH": "Other",
    "REFU": "Not known",
    "NOBT": "Not known",
}

DISABILITY = (
    "NONE",
    "MOB",
    "HAND",
    "PC",
    "INC",
    "COMM",
    "LD",
    "HEAR",
    "VIS",
    "BEH",
    "CON",
    "AUT",
    "DDA",
)

SEX = ("M", "F", "U")

ASSESSMENT_FACTORS = (
    "1A",
    "1B",
    "1C",
    "2A",
    "2B",
    "2C",
    "3A",
    "3B",
    "3C",
    "4A",
    "4B",
    "4C",
    "5A",
    "5B",
    "5C",
    "6A",
    "6B",
    "6C",
    "7A",
    "8B",
    "8C",
    "8D",
    "8E",
    "8F",
    "9A",
    "10A",
    "11A",
    "12A",
    "13A",
    "14A",
    "15A",
    "16A",
    "17A",
    "18A",
    "18B",
    "18C",
    "19A",
    "19B",
    "19C",
    "20",
    "21",
    "22A",
    "23A",
    "24A",
)

PLAN_TYPES = ("CIN", "CP")
ABUSE_CATEGORIES = ("NEG", "PHY", "SAB", "EMO", "MUL")

#: Values accepted for a yes/no field, mapped to bool.
BOOLEAN_VALUES = {
    "1": True,
    "0": False,
    "true": True,
    "false": False,
    "y": True,
    "n": False,
    "yes": True,
    "no": False,
    "t": True,
    "f": False,
}

# --- Tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """One canonical table: its columns and the kind of each."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()  # pseudonymised on load
    key: tuple[str, ...] = ()  # must be unique
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    booleans: tuple[str, ...] = ()
    multi_codes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # ';'-separated

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "councils",
            required=("la_code", "la_name", "extract_date"),
            optional=("region", "statistical_neighbours"),
            dates=("extract_date",),
            key=("la_code",),
        ),
        Table(
            "children",
            required=("la_code", "child_id", "date_of_birth", "sex", "ethnicity"),
            optional=("disability", "upn"),
            dates=("date_of_birth",),
            identifiers=("child_id", "upn"),
            key=("la_code", "child_id"),
            codes={"sex": SEX, "ethnicity": ETHNICITY},
            multi_codes={"disability": DISABILITY},
        ),
        Table(
            "referrals",
            required=(
                "la_code",
                "referral_id",
                "child_id",
                "referral_date",
                "referral_source",
                "primary_need",
                "referral_nfa",
            ),
            optional=("closure_date", "closure_reason"),
            dates=("referral_date", "closure_date"),
            identifiers=("child_id", "referral_id"),
            key=("la_code", "referral_id"),
            codes={
                "referral_source": REFERRAL_SOURCES,
                "primary_need": PRIMARY_NEED,
                "closure_reason": CLOSURE_REASONS,
            },
            booleans=("referral_nfa",),
        ),
        Table(
            "assessments",
            required=("la_code", "referral_id", "child_id", "start_date"),
            optional=("authorised_date", "factors"),
            dates=("start_date", "authorised_date"),
            identifiers=("child_id", "referral_id"),
            multi_codes={"factors": ASSESSMENT_FACTORS},
        ),
        Table(
            "plans",
            required=("la_code", "referral_id", "child_id", "plan_type", "start_date"),
            optional=("end_date", "category_of_abuse"),
            dates=("start_date", "end_date"),
            identifiers=("child_id", "referral_id"),
            codes={"plan_type": PLAN_TYPES, "category_of_abuse": ABUSE_CATEGORIES},
        ),
        Table(
            "interventions",
            required=("la_code", "child_id", "intervention", "start_date"),
            optional=("end_date", "referral_id"),
            dates=("start_date", "end_date"),
            identifiers=("child_id", "referral_id"),
        ),
        Table(
            "allocations",
            required=("la_code", "child_id", "worker_id", "start_date"),
            optional=("end_date", "team"),
            dates=("start_date", "end_date"),
            identifiers=("child_id", "worker_id"),
        ),
    )
}

#: Tables every data directory must have; the others may be absent.
REQUIRED_TABLES = ("councils", "children", "referrals")

#: Every column that carries an identifier, across tables (pseudonymised on load).
IDENTIFIER_COLUMNS = frozenset(c for t in TABLES.values() for c in t.identifiers)

#: Oldest age at which a child is still a child for the census.
MAX_AGE_YEARS = 25
#: The 18th birthday ends observation as a competing event.
ADULT_AGE_YEARS = 18

#: Age at closure (years = days / 365.25) in bands, as DfE's Children in Need statistics band it
#: (under 5, 5 to 9, 10 to 15, 16 and over): the one definition every report, the intervention
#: model and the simulator use, so "age band" means the same on every page.
AGE_BANDS = ((0, 5, "Under 5"), (5, 10, "5 to 9"), (10, 16, "10 to 15"), (16, ADULT_AGE_YEARS, "16 and 17"))
AGE_BAND_ADULT = "18 or over"
AGE_BAND_UNKNOWN = "Not known"


def age_band(age_years):
    """Each age at closure's band label (AGE_BANDS); 18 or over and missing ages named as such."""
    import numpy as np

    age = np.asarray(age_years, dtype=float)
    band = np.full(age.shape, AGE_BAND_UNKNOWN, dtype=object)
    for lo, hi, label in AGE_BANDS:
        band[(age >= lo) & (age < hi)] = label
    band[age >= ADULT_AGE_YEARS] = AGE_BAND_ADULT
    return band


def as_datetime(values):
    """Dates as a datetime64 Series, converted only when they are not dates already.

    pandas' to_datetime looks at every value of a column that is already datetime64 before returning
    it unchanged (its cache check): a third of reading a council from the warehouse went on that."""
    import pandas as pd

    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s
    return pd.to_datetime(s)


#: Counts from 1 to this minus 1 are suppressed in published figures unless an evaluation sets its own
#: ``disclosure_threshold`` (docs/publishing.md: default 5).
DISCLOSURE_THRESHOLD = 5
#: The publishing rule for estimates: a figure is shown only where its 95% interval is finite and wider than a
#: point at the precision shown, and a hazard ratio only where at least this many re-referrals fall both among
#: the children in the level and among the rest. Otherwise the report says words.TOO_FEW instead of a number
#: ("hazard ratio 0.00 (0.00 to 0.00)" or "100% (100 to 100)" would claim a certainty the data do not have).
MIN_EVENTS_FOR_ESTIMATE = 10
#: Survival curves are cut where fewer than this many remain at risk, and a share is shown only where at
#: least this many are still followed (docs/publishing.md).
MIN_AT_RISK = 10
#: Covariates an evaluation file may name: episode columns (ingest/episodes.EPISODE_COLUMNS) and a few derived
#: from the council's tables, all measured at or before the referral the intervention
#: belongs to. kind: "numeric", "binary" or "category".
INTERVENTION_COVARIATES = {
    "age_at_closure": ("numeric", "age in years when the case closed"),
    "age_group": (
        "category",
        "age band when the case closed (under 5, 5 to 9, 10 to 15, 16 and 17: the re-referral report's bands)",
    ),
    "previous_referrals_group": ("category", "previous referrals banded 0, 1, 2, 3+"),
    "previous_referrals": ("numeric", "number of the child's referrals before this one"),
    "episode_number": ("numeric", "which closed episode of the child this is"),
    "sex": ("category", "sex (M/F/U)"),
    "ethnicity": ("category", "ethnicity (20 CIN codes)"),
    "ethnic_group": ("category", "broad ethnic group (White, Mixed, Asian, Black, Other, Not known)"),
    "disability": ("category", "disability code (NONE if none)"),
    "disabled": ("binary", "has any recorded disability"),
    "primary_need": ("category", "primary need code N0-N9"),
    "referral_source": ("category", "who made the referral"),
    "referral_nfa": ("binary", "referral closed with no further action"),
    "closure_reason": ("category", "why the case closed (may be affected by the intervention: see docs)"),
    "had_assessment": ("binary", "the referral had an assessment"),
    "assessment_factors": ("numeric", "number of factors recorded at assessment"),
    "had_cin_plan": ("binary", "the referral led to a child in need plan"),
    "had_cp_plan": ("binary", "the referral led to a child protection plan"),
    "closure_year": ("numeric", "calendar year of the closure"),
}
#: Weighting has balanced a covariate when its standardised mean difference after weighting is below this
#: (the usual limit, Austin 2009).
BALANCE_CUTOFF = 0.1

# --- the skills gap's classifications (the published skills files use them) ---

#: SOC sub-major groups (2-digit codes; SOC2010 and SOC2020 share them, 63 is new in SOC2020).
SOC_SUBMAJOR = {
    "11": "Corporate managers and directors",
    "12": "Other managers and proprietors",
    "21": "Science, research, engineering and technology professionals",
    "22": "Health professionals",
    "23": "Teaching and educational professionals",
    "24": "Business, media and public service professionals",
    "31": "Science, engineering and technology associate professionals",
    "32": "Health and social care associate professionals",
    "33": "Protective service occupations",
    "34": "Culture, media and sports occupations",
    "35": "Business and public service associate professionals",
    "41": "Administrative occupations",
    "42": "Secretarial and related occupations",
    "51": "Skilled agricultural and related trades",
    "52": "Skilled metal, electrical and electronic trades",
    "53": "Skilled construction and building trades",
    "54": "Textiles, printing and other skilled trades",
    "61": "Caring personal service occupations",
    "62": "Leisure, travel and related personal service occupations",
    "63": "Community and civil enforcement occupations",
    "71": "Sales occupations",
    "72": "Customer service occupations",
    "81": "Process, plant and machine operatives",
    "82": "Transport and mobile machine drivers and operatives",
    "91": "Elementary trades and related occupations",
    "92": "Elementary administration and service occupations",
}

#: FE sector subject areas (tier 1) as the FE file names them.
SSA_T1 = (
    "Agriculture, Horticulture and Animal Care",
    "Arts, Media and Publishing",
    "Business, Administration and Law",
    "Construction, Planning and the Built Environment",
    "Education and Training",
    "Engineering and Manufacturing Technologies",
    "Health, Public Services and Care",
    "History, Philosophy and Theology",
    "Information and Communication Technology",
    "Languages, Literature and Culture",
    "Leisure, Travel and Tourism",
    "Preparation for Life and Work",
    "Retail and Commercial Enterprise",
    "Science and Mathematics",
    "Social Sciences",
)
SSA_NOT_KNOWN = "Not Applicable/ Not Known"
