"""The skills gap for one area: published demand and supply in, a result object out (no words).

An area is a council (3-digit code; one whose area is a single district: metropolitan,
unitary or London borough), a Local Skills Improvement Plan area or a mayoral combined
authority (by name). District-level sources are summed over the area's districts; council-
level sources (Employer Skills Survey, NEET) over its councils.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from insightlib import reference
from insightlib.errors import InputError
from insightlib.ingest import skills as src
from insightlib.stats import forecast as fc
from insightlib.stats import gap_index as gi

#: Subjects that feed no particular occupation (basic skills, ESOL, not known): left out of supply.
NON_OCCUPATIONAL_SUBJECTS = ("Preparation for Life and Work",)
#: The APS year used for current employment (the file's latest).
EMPLOYMENT_YEAR = 2021
#: A published '~' (fewer than 5) counts as this in point estimates (drawn from 0 to 5 in the simulation).
SMALL_CELL_MIDPOINT = 2.5
#: SOC2020's new group 63 (community and civil enforcement) is folded into 33 (protective service),
#: where SOC2010, the APS file's classification, had most of those jobs.
SOC2020_FOLD = {"63": "33"}
#: Simulation draws for the intervals.
DRAWS = 2000
#: Interval level for the index and ranks; projections use PROJECTION_LEVEL.
LEVEL = 0.95
PROJECTION_LEVEL = 0.8
#: Projections run this many years ahead; the back-test holds out as many years.
HORIZON = HOLDOUT = 2
#: Skills Imperative 2035: the publisher's advice on the smallest cell to publish (people).
SKILLS_IMPERATIVE_MIN_CELL = 10_000


@dataclass(frozen=True)
class Area:
    key: str  # folder name: a council's 3-digit code, else "lsip-..." / "ca-..."
    name: str
    kind: str  # "council", "lsip", "combined_authority"
    districts: tuple[str, ...]
    councils: tuple[str, ...]  # 3-digit codes of the councils that make up the area, where it is whole councils
    region: str = ""
    lsip: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def area_options(tables: dict | None = None) -> dict[str, str]:
    """Every area one may ask for: spec -> description (for messages and docs)."""
    geo = (tables or src.load_tables())["geography"]
    la = reference.local_authorities()
    single = {src.name_key(n) for n in geo["lad_name"]}
    options = {r.la_code: f"{r.la_name} (council)" for r in la.itertuples() if src.name_key(r.la_name) in single}
    options.update({n: f"{n} (LSIP area)" for n in sorted(geo["lsip"].unique())})
    options.update({n: f"{n} (combined authority)" for n in sorted(set(geo["combined_authority"]) - {""})})
    return options


def _councils_of(districts, la: pd.DataFrame) -> tuple[str, ...]:
    keys = {src.name_key(d) for d in districts}
    return tuple(sorted(r.la_code for r in la.itertuples() if src.name_key(r.la_name) in keys))


def resolve_area(spec, tables: dict | None = None) -> Area:
    """A council code, LSIP or combined authority name -> an Area (a clear message when unknown)."""
    tables = tables or src.load_tables()
    geo = tables["geography"]
    la = reference.local_authorities()
    text = str(spec).strip()
    if re.fullmatch(r"\d{1,3}", text):
        code = text.zfill(3)
        row = la[la["la_code"] == code]
        if row.empty:
            raise InputError(f"area {spec!r}: no council has the code {code}.")
        name = row["la_name"].iloc[0]
        hit = geo[geo["lad_name"].map(src.name_key) == src.name_key(name)]
        if hit.empty:
            raise InputError(
                f"area {code} ({name}): its area is several districts, and the shipped lookups do not say which;"
                " choose its LSIP area by name instead (see docs/skills.md for the list)."
            )
        return Area(code, name, "council", tuple(hit["lad_name"]), (code,), row["region"].iloc[0], hit["lsip"].iloc[0])
    for kind, column, prefix in (("lsip", "lsip", "lsip"), ("combined_authority", "combined_authority", "ca")):
        hit = geo[geo[column].map(src.name_key) == src.name_key(text)]
        if not hit.empty:
            name = hit[column].iloc[0]
            councils = _councils_of(hit["lad_name"], la)
            whole = len(councils) == len(hit)  # every district is a council of its own
            regions = la[la["la_code"].isin(councils)]["region"].unique()
            return Area(
                f"{prefix}-{_slug(name)}",
                name,
                kind,
                tuple(hit["lad_name"]),
                councils if whole else (),
                regions[0] if len(regions) == 1 else "",
                hit["lsip"].iloc[0],
            )
    import difflib

    described = {d.rsplit(" (", 1)[0]: d for d in area_options(tables).values()}
    close = difflib.get_close_matches(text, list(described), n=3)
    hint = f" Did you mean: {'; '.join(described[c] for c in close)}?" if close else ""
    raise InputError(f"area {spec!r} is not a council code, LSIP area or combined authority in the skills data.{hint}")


# --- the result --------------------------------------------------------------------------------


@dataclass
class SkillsGap:
    """Everything the skills report says, as numbers."""

    area: Area
    occupations: pd.DataFrame  # per SOC sub-major group: inputs, shares, gap with interval and rank interval
    subjects: pd.DataFrame  # per sector subject area: the same
    employment_trend: pd.DataFrame  # area, soc, year, employed
    industries: pd.DataFrame  # per industry: employment, share against England's, change since the first year
    fe: pd.DataFrame  # per subject: achievements in the area and in England (published, rounded)
    apprenticeships: pd.DataFrame  # year, starts, achievements (area) and England
    adverts: pd.DataFrame  # year, area index and England's region's
    adverts_forecast: pd.DataFrame
    adverts_backtest: dict
    adverts_by_profession: pd.DataFrame
    neet: pd.DataFrame  # comparison table 2022-2023 (area, region, England, neighbours)
    neet_trend: pd.DataFrame
    neet_forecast: pd.DataFrame
    neet_backtest: dict
    ess: pd.DataFrame  # comparison table (area, region, England, neighbours)
    projection: pd.DataFrame | None = None
    projection_area: str = ""
    notes: list[str] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        rec = lambda df: None if df is None else df.replace({np.nan: None}).to_dict(orient="records")  # noqa: E731
        return {
            "area": self.area.to_dict(),
            "gap_index": {
                "occupations": rec(self.occupations),
                "subjects": rec(self.subjects),
                "definition": "ln(demand share / supply share); shares with 0.5 added per cell; see docs/skills.md",
                "level": LEVEL,
                "draws": self.parameters.get("draws"),
            },
            "demand": {
                "employment_trend": rec(self.employment_trend),
                "industries": rec(self.industries),
                "adverts": rec(self.adverts),
                "adverts_by_profession": rec(self.adverts_by_profession),
                "projection": rec(self.projection),
                "projection_area": self.projection_area,
            },
            "supply": {
                "fe_achievements": rec(self.fe),
                "apprenticeships": rec(self.apprenticeships),
                "neet": rec(self.neet),
                "neet_trend": rec(self.neet_trend),
            },
            "employers": {"ess_2019": rec(self.ess)},
            "projections": {
                "adverts": {"forecast": rec(self.adverts_forecast), "backtest": self.adverts_backtest},
                "neet": {"forecast": rec(self.neet_forecast), "backtest": self.neet_backtest},
                "level": PROJECTION_LEVEL,
            },
            "notes": list(self.notes),
        }


# --- building blocks ---------------------------------------------------------------------------


def _in(series: pd.Series, names) -> pd.Series:
    keys = {src.name_key(n) for n in names}
    return series.map(src.name_key).isin(keys)


def occupation_employment(occ: pd.DataFrame, districts, year: int = EMPLOYMENT_YEAR) -> pd.DataFrame:
    """APS employment per SOC group summed over districts: estimate, 95% half-width, unpublished cap.

    Half-widths combine as the root of the sum of squares (districts' samples are independent).
    An estimate whose interval is not published ('u') is given a half-width equal to itself
    (a coefficient of variation of about 50%). A cell not published ('c', 'u', 'low') adds between 0 and the smallest estimate published
    for that district and year (the cap).
    """
    d = occ[(occ["year"] == year) & _in(occ["area"], districts)].copy()
    smallest = d.groupby("area")["employed"].transform("min")
    d["cap"] = np.where(d["employed"].isna(), smallest, 0.0)
    # an estimate published without its interval ('u': unreliable) gets a half-width as large as itself
    d["ci95"] = d["ci95"].where(d["ci95"].notna() | d["employed"].isna(), d["employed"])
    d["var"] = d["ci95"].fillna(0) ** 2
    g = d.groupby("soc")[["employed", "var", "cap"]].sum().rename(columns={"cap": "unpublished"})
    g["ci95"] = np.sqrt(g.pop("var"))
    socs = [c for c in src.SOC_SUBMAJOR if c not in SOC2020_FOLD]
    return g.reindex(socs).fillna({"employed": 0.0, "ci95": 0.0, "unpublished": 0.0})


def fe_by_subject(fe: pd.DataFrame, districts=None) -> pd.DataFrame:
    """FE achievements per subject, summed over districts (England's own row when districts is None).

    ``achievements`` sums the published figures ('~' as 0, for display); ``achievements_mid``
    counts each '~' (fewer than 5) as 2.5, the middle of what it can be, for the index.
    """
    rows = (
        fe[fe["level"] == "country"]
        if districts is None
        else fe[(fe["level"] == "localAuthorityDistrict") & _in(fe["area"], districts)]
    )
    rows = rows[rows["ssa"].isin(src.SSA_T1)].assign(
        midpoint=lambda d: d["achievements"].where(d["symbol"] != "~", SMALL_CELL_MIDPOINT)
    )
    g = rows.groupby("ssa").agg(
        achievements=("achievements", "sum"),
        achievements_mid=("midpoint", "sum"),
        suppressed_cells=("symbol", lambda s: int((s == "~").sum())),
    )
    return g.reindex(list(src.SSA_T1)).astype(float).fillna(0.0)


def _fe_draws(fe: pd.DataFrame, districts, subjects, draws: int, rng) -> np.ndarray:
    rows = fe[(fe["level"] == "localAuthorityDistrict") & _in(fe["area"], districts) & fe["ssa"].isin(subjects)]
    cells = gi.draw_rounded_counts(rows["achievements"].to_numpy(), draws, rng)
    idx = {s: j for j, s in enumerate(subjects)}
    m = np.zeros((len(rows), len(subjects)))
    m[np.arange(len(rows)), rows["ssa"].map(idx).to_numpy()] = 1
    return cells @ m


def _council_rows(table: pd.DataFrame, codes) -> pd.DataFrame:
    return table[table["la_code"].isin(codes)]


def neet_comparison(neet: pd.DataFrame, area: Area) -> pd.DataFrame:
    """NEET, not known and participation (%), 2022 and 2023: the area, its region, England, neighbours' median."""
    rows = []
    measures = ["neet_pct", "not_known_pct", "neet_or_not_known_pct", "participation_pct", "apprenticeship_pct"]
    for year in sorted(neet["year"].unique()):
        y = neet[neet["year"] == year]
        councils = _council_rows(y, area.councils)
        if len(councils) and councils["cohort"].notna().all():
            w = councils["cohort"]
            rows.append(
                {
                    "year": int(year),
                    "comparator": area.name,
                    "cohort": float(w.sum()),
                    **{m: float((councils[m] * w).sum() / w.sum()) for m in measures},
                }
            )
        if area.region:
            r = y[(y["level"] == "Regional") & (y["region"] == area.region)]
            if len(r):
                rows.append(
                    {
                        "year": int(year),
                        "comparator": area.region,
                        "cohort": float(r["cohort"].iloc[0]),
                        **{m: float(r[m].iloc[0]) for m in measures},
                    }
                )
        e = y[y["level"] == "National"]
        rows.append(
            {
                "year": int(year),
                "comparator": "England",
                "cohort": float(e["cohort"].iloc[0]),
                **{m: float(e[m].iloc[0]) for m in measures},
            }
        )
        if area.kind == "council":
            sn = neighbours(area.councils[0])
            n = _council_rows(y, sn)
            if len(n):
                rows.append(
                    {
                        "year": int(year),
                        "comparator": "Statistical neighbours (median)",
                        "cohort": None,
                        **{m: float(n[m].median()) for m in measures},
                    }
                )
    return pd.DataFrame(rows)


def neighbours(la_code: str) -> list[str]:
    """The council's ten statistical neighbours (DfE 2025), closest first."""
    return reference.neighbours_of(la_code)


def neighbour_gaps(tables: dict, area: Area, cw: pd.DataFrame, socs: list[str], subjects: list[str]) -> dict:
    """The gap index (point values, employment and FE only) of each statistical neighbour that is a single district.

    Returns the median over neighbours per occupation and per subject, and the neighbours used;
    for an area that is not one council, nothing.
    """
    if area.kind != "council":
        return {}
    occ_gaps, sub_gaps, used = [], [], []
    for code in neighbours(area.councils[0]):
        try:
            other = resolve_area(code, tables)
        except InputError:  # a county: its districts are not in the lookups
            continue
        emp = occupation_employment(tables["occupation"], other.districts)["employed"].to_numpy()
        fe = fe_by_subject(tables["fe"], other.districts).reindex(subjects)["achievements_mid"].to_numpy()
        if emp.sum() == 0 or fe.sum() == 0:
            continue
        occ_gaps.append(
            gi.gap_index({"employment": emp}, {"fe": gi.apportion_to_occupations(fe, cw, socs, subjects)})["gap"]
        )
        sub_gaps.append(
            gi.gap_index({"employment": gi.allocate_to_subjects(emp, cw, socs, subjects)}, {"fe": fe})["gap"]
        )
        used.append(code)
    if not used:
        return {}
    return {
        "councils": used,
        "occupations": dict(zip(socs, np.median(occ_gaps, axis=0))),
        "subjects": dict(zip(subjects, np.median(sub_gaps, axis=0))),
    }


def ess_comparison(ess: pd.DataFrame, area: Area) -> pd.DataFrame:
    """Employer Skills Survey 2019: vacancies, skill-shortage vacancies (SSVs) and their density.

    Shares are recomputed from the summed counts (for one council they equal the published
    ones); the interval is for the share of establishments with an SSV (binomial on the
    establishments interviewed, no design effect: the survey's weighting widens it somewhat).
    """
    la = reference.local_authorities()
    keyed = ess.assign(key=ess["area"].map(src.name_key))
    code_of = dict(zip(la["la_name"].map(src.name_key), la["la_code"]))
    keyed["la_code"] = keyed["key"].map(code_of)

    def row(label, part: pd.DataFrame) -> dict:
        n = part["sampled"].sum()
        p = float((part["share_establishments_with_ssv"] * part["establishments"]).sum() / part["establishments"].sum())
        half = 1.96 * np.sqrt(p * (1 - p) / n) if n else np.nan
        return {
            "comparator": label,
            "establishments_interviewed": float(n),
            "establishments": float(part["establishments"].sum()),
            "staff": float(part["staff"].sum()),
            "vacancies": float(part["vacancies"].sum()),
            "ssv": float(part["ssv"].sum()),
            "ssv_share_of_vacancies": float(part["ssv"].sum() / part["vacancies"].sum()),
            "ssv_per_1000_staff": float(1000 * part["ssv"].sum() / part["staff"].sum()),
            "vacancies_per_1000_staff": float(1000 * part["vacancies"].sum() / part["staff"].sum()),
            "share_establishments_with_ssv": p,
            "ssv_establishments_ci_low": max(0.0, p - half),
            "ssv_establishments_ci_high": min(1.0, p + half),
        }

    rows = []
    mine = keyed[keyed["la_code"].isin(area.councils)]
    if len(mine) and len(mine) == len(area.councils):
        rows.append(row(area.name, mine))
    if area.region:
        in_region = set(la[la["region"] == area.region]["la_code"])
        rows.append(row(area.region, keyed[keyed["la_code"].isin(in_region)]))
    rows.append(row("England", keyed[keyed["area"] == "England"]))
    if area.kind == "council":
        sn = keyed[keyed["la_code"].isin(neighbours(area.councils[0]))]
        if len(sn):
            each = pd.DataFrame([row(r.area, keyed[keyed["area"] == r.area]) for r in sn.itertuples()])
            med = each.drop(columns="comparator").median().to_dict()
            rows.append({"comparator": "Statistical neighbours (median)", **med})
    return pd.DataFrame(rows)


def industry_comparison(industry: pd.DataFrame, districts, england_districts) -> pd.DataFrame:
    """APS employment by industry group: the area's latest year, its share beside England's, and its change.

    England is the sum of England's districts. Shares use the summed group counts, so they add to 1.
    """

    def summed(names):
        d = industry[_in(industry["area"], names)]
        return d.groupby(["year", "industry"])["employed"].sum().unstack("year")

    own, eng = summed(districts), summed(england_districts)
    first, last = int(own.columns.min()), int(own.columns.max())
    out = pd.DataFrame(
        {"industry": own.index, f"employed_{first}": own[first].to_numpy(), f"employed_{last}": own[last].to_numpy()}
    )
    out["share"] = out[f"employed_{last}"] / out[f"employed_{last}"].sum()
    out["england_share"] = (eng[last] / eng[last].sum()).reindex(own.index).to_numpy()
    out["relative_to_england"] = out["share"] / out["england_share"]
    out["change"] = out[f"employed_{last}"] - out[f"employed_{first}"]
    out["england_change_pct"] = ((eng[last] - eng[first]) / eng[first]).reindex(own.index).to_numpy()
    out.attrs["years"] = (first, last)
    return out.sort_values(f"employed_{last}", ascending=False).reset_index(drop=True)


def _series_row(table: pd.DataFrame, area: Area) -> pd.DataFrame:
    """The published series for the area itself: LADU for a council, LSIP/MCA rows for those."""
    level = {"council": "LADU", "lsip": "LSIP", "combined_authority": "MCA"}[area.kind]
    return table[(table["level"] == level) & (table["area"].map(src.name_key) == src.name_key(area.name))]


def adverts_trend(adverts: pd.DataFrame, area: Area) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Online job adverts per year (the file's unit), indexed 2019 = 100 beside England's regions' total."""
    own = _series_row(adverts, area)[["year", "adverts"]].sort_values("year")
    england = adverts[adverts["level"] == "GOR"].groupby("year", as_index=False)["adverts"].sum()
    england = england[england["year"].isin(own["year"])]
    base = lambda df: df.set_index("year")["adverts"] / df.set_index("year")["adverts"].get(2019, np.nan) * 100  # noqa: E731
    trend = pd.DataFrame(
        {
            "adverts": own.set_index("year")["adverts"],
            "index_2019": base(own),
            "england_index_2019": base(england) if len(england) else np.nan,
        }
    ).reset_index()
    panel = adverts[adverts["level"] == "LADU"].rename(columns={"adverts": "value"})
    forecast, back = project(own["year"], own["adverts"], panel)
    return trend, forecast, back


def neet_trend(lait: pd.DataFrame, area: Area) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """LAIT 16-17 NEET (%) by year for the area (cohort weights unknown here: councils' mean), England."""
    mine = lait[lait["la_code"].isin(area.councils)].groupby("year", as_index=False)["neet_pct"].mean()
    eng = lait[lait["area"] == "England"][["year", "neet_pct"]].rename(columns={"neet_pct": "england_neet_pct"})
    trend = mine.merge(eng, on="year", how="outer").sort_values("year")
    panel = lait[lait["la_code"].str.fullmatch(r"\d{3}")][["la_code", "year", "neet_pct"]]
    panel = panel.rename(columns={"la_code": "area", "neet_pct": "value"})
    forecast, back = project(mine["year"], mine["neet_pct"], panel)
    return trend, forecast, back


_BACKTESTS: dict = {}


def project(years, values, panel: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """A two-year projection by the model with the smaller back-test error on every area's series.

    Each model is refitted on every area's series (``panel``: area, year, value) without its last
    HOLDOUT years, and scored on them. The chosen model's interval is called reliable when the
    back-test's coverage is within 15 points of its nominal level.
    """
    key = (len(panel), float(panel["value"].sum()), float((panel["value"] * panel["year"]).sum()))
    if key not in _BACKTESTS:  # the same for every area of a run: computed once per process
        _BACKTESTS[key] = {
            m: fc.backtest_summary(fc.backtest(panel, holdout=HOLDOUT, model=m, level=PROJECTION_LEVEL))
            for m in fc.MODELS
        }
    back = _BACKTESTS[key]
    scored = {m: b for m, b in back.items() if b["mae"] is not None}
    model = min(scored, key=lambda m: scored[m]["mae"]) if scored else "trend"
    reliable = bool(scored) and scored[model]["coverage"] >= PROJECTION_LEVEL - 0.15
    back = {"holdout_years": HOLDOUT, "level": PROJECTION_LEVEL, "chosen": model, "reliable": reliable, "models": back}
    ok = pd.Series(values).notna().sum() >= 3
    out = fc.forecast(years, values, horizon=HORIZON, model=model, level=PROJECTION_LEVEL) if ok else pd.DataFrame()
    return out, back


def adverts_by_profession(table: pd.DataFrame, area: Area) -> pd.DataFrame:
    """October 2022 adverts by profession for the area's LSIP (or itself), share against England's."""
    name = area.name if area.kind != "council" else area.lsip
    level = "MCA" if area.kind == "combined_authority" else "LSIP"
    own = table[(table["level"] == level) & (table["area"].map(src.name_key) == src.name_key(name))]
    eng = table[table["area"] == "England"]
    out = own[["profession", "adverts"]].merge(
        eng[["profession", "adverts"]].rename(columns={"adverts": "england"}), on="profession"
    )
    out["share"] = out["adverts"] / out["adverts"].sum()
    out["england_share"] = out["england"] / out["england"].sum()
    out["relative_to_england"] = out["share"] / out["england_share"]
    out.insert(0, "area", name)
    return out.sort_values("adverts", ascending=False).reset_index(drop=True)


# --- the analysis ------------------------------------------------------------------------------


def gap_tables(
    tables: dict,
    area: Area,
    cw: pd.DataFrame,
    socs: list[str],
    subjects: list[str],
    projection,
    demand_weights: dict | None,
    draws: int,
    rng: np.random.Generator,
    notes: list[str],
):
    """The gap index by occupation and by subject, with simulated intervals, ranks and England's index beside.

    One block on purpose: the point values, the draws and the England comparison must use the same
    inputs in the same order, so they are built together. Returns (occupations, subjects, projection, its area).
    """
    occ = tables["occupation"]
    england_districts = tables["geography"]["lad_name"]
    emp = occupation_employment(occ, area.districts)
    emp_e = occupation_employment(occ, england_districts)
    fe_area = fe_by_subject(tables["fe"], area.districts).reindex(subjects)
    fe_eng = fe_by_subject(tables["fe"]).reindex(subjects)
    if fe_area["achievements"].sum() == 0:
        raise InputError(f"area {area.name}: no FE achievements found for its districts ({', '.join(area.districts)}).")

    demand = {"employment": emp["employed"].to_numpy()}
    demand_e = {"employment": emp_e["employed"].to_numpy()}
    proj = None
    proj_area = ""
    if projection:
        raw = src.read_skills_imperative(projection, min_published=SKILLS_IMPERATIVE_MIN_CELL)
        raw["soc"] = raw["soc"].replace(SOC2020_FOLD)
        numeric = ["employment_2020", "employment_2035", "net_change", "replacement_demand", "total_requirement"]
        proj = raw.groupby("soc").agg({**{c: "sum" for c in numeric}, "area": "first"}).reindex(socs)
        proj["publishable"] = proj["total_requirement"].abs() >= SKILLS_IMPERATIVE_MIN_CELL
        proj_area = str(proj["area"].dropna().iloc[0]) if proj["area"].notna().any() else ""
        if proj_area and src.name_key(proj_area) not in {src.name_key(area.name), src.name_key(area.lsip)}:
            notes.append(
                f"The projection supplied is for {proj_area}, not {area.name}; it is used as the wider area's outlook."
            )
        demand["requirement"] = proj["total_requirement"].fillna(0).clip(lower=0).to_numpy()
        proj = proj.reset_index()
    # England has no Skills Imperative projection here: England's index uses employment alone,
    # so "relative to England" compares like with like only where no projection is supplied.
    if projection:
        notes.append("With a projection, England's index (employment only) is a looser comparison for the area's.")

    def supply_occ(fe_counts):
        return gi.apportion_to_occupations(fe_counts, cw, socs, subjects)

    point = gi.gap_index(demand, {"fe": supply_occ(fe_area["achievements_mid"].to_numpy())}, demand_weights)
    point_e = gi.gap_index(demand_e, {"fe": supply_occ(fe_eng["achievements_mid"].to_numpy())})
    d_draws = {"employment": gi.draw_survey_estimates(emp["employed"], emp["ci95"], draws, rng, emp["unpublished"])}
    de_draws = {
        "employment": gi.draw_survey_estimates(emp_e["employed"], emp_e["ci95"], draws, rng, emp_e["unpublished"])
    }
    if "requirement" in demand:
        d_draws["requirement"] = np.broadcast_to(demand["requirement"], (draws, len(socs)))
    fe_draws = _fe_draws(tables["fe"], area.districts, subjects, draws, rng)
    fe_e_draws = gi.draw_rounded_counts(fe_eng["achievements_mid"].to_numpy(), draws, rng)
    sim = gi.gap_index(d_draws, {"fe": supply_occ(fe_draws)}, demand_weights)
    sim_e = gi.gap_index(de_draws, {"fe": supply_occ(fe_e_draws)})

    occupations = pd.DataFrame(
        {
            "soc": socs,
            "occupation": [src.SOC_SUBMAJOR[s] for s in socs],
            "employment": emp["employed"].to_numpy(),
            "employment_ci95": emp["ci95"].to_numpy(),
            "employment_unpublished_up_to": emp["unpublished"].to_numpy(),
            "requirement_2020_2035": demand.get("requirement", np.full(len(socs), np.nan)),
            "fe_learners_apportioned": supply_occ(fe_area["achievements_mid"].to_numpy()),
            "demand_share": point["demand_share"],
            "supply_share": point["supply_share"],
            "england_demand_share": point_e["demand_share"],
            "england_supply_share": point_e["supply_share"],
        }
    )
    summary = gi.summarise_draws(point["gap"], sim["gap"], LEVEL)
    occupations["gap"] = summary["value"].to_numpy()
    occupations[["gap_ci_low", "gap_ci_high", "rank", "rank_low", "rank_high", "prob_positive"]] = summary[
        ["ci_low", "ci_high", "rank", "rank_low", "rank_high", "prob_positive"]
    ].to_numpy()
    rel = gi.summarise_draws(point["gap"] - point_e["gap"], sim["gap"] - sim_e["gap"], LEVEL)
    occupations["gap_vs_england"] = rel["value"].to_numpy()
    occupations["gap_vs_england_ci_low"] = rel["ci_low"].to_numpy()
    occupations["gap_vs_england_ci_high"] = rel["ci_high"].to_numpy()
    occupations = occupations.sort_values("gap", ascending=False).reset_index(drop=True)
    for c in ("rank", "rank_low", "rank_high"):
        occupations[c] = occupations[c].astype(int)

    # by subject: demand allocated to subjects, supply the subject's own learners
    def subj(d_occ, fe_counts):
        return gi.gap_index(
            {k: gi.allocate_to_subjects(v, cw, socs, subjects) for k, v in d_occ.items()},
            {"fe": fe_counts},
            demand_weights,
        )

    sp = subj(demand, fe_area["achievements_mid"].to_numpy())
    spe = subj(demand_e, fe_eng["achievements_mid"].to_numpy())
    ss = subj(d_draws, fe_draws)
    sse = subj(de_draws, fe_e_draws)
    ssum = gi.summarise_draws(sp["gap"], ss["gap"], LEVEL)
    srel = gi.summarise_draws(sp["gap"] - spe["gap"], ss["gap"] - sse["gap"], LEVEL)
    subjects_df = (
        pd.DataFrame(
            {
                "subject": subjects,
                "fe_achievements": fe_area["achievements"].to_numpy(),
                "fe_achievements_used": fe_area["achievements_mid"].to_numpy(),
                "fe_cells_fewer_than_5": fe_area["suppressed_cells"].astype(int).to_numpy(),
                "jobs_allocated": gi.allocate_to_subjects(emp["employed"].to_numpy(), cw, socs, subjects),
                "demand_share": sp["demand_share"],
                "supply_share": sp["supply_share"],
                "gap": ssum["value"],
                "gap_ci_low": ssum["ci_low"],
                "gap_ci_high": ssum["ci_high"],
                "rank": ssum["rank"],
                "rank_low": ssum["rank_low"],
                "rank_high": ssum["rank_high"],
                "prob_positive": ssum["prob_positive"],
                "gap_vs_england": srel["value"],
                "gap_vs_england_ci_low": srel["ci_low"],
                "gap_vs_england_ci_high": srel["ci_high"],
            }
        )
        .sort_values("gap")
        .reset_index(drop=True)
    )
    return occupations, subjects_df, proj, proj_area


def analyse(
    area_spec,
    *,
    data: str | Path = src.REFERENCE,
    projection: str | Path | None = None,
    demand_weights: dict | None = None,
    draws: int = DRAWS,
    seed: int = 2035,
) -> SkillsGap:
    """The skills gap for an area, from the shipped published data (or a folder of the same files)."""
    tables = src.load_tables(data)
    area = resolve_area(area_spec, tables)
    cw = src.crosswalk()
    bad = src.check_crosswalk(cw)
    if bad:
        raise InputError("The occupation-to-subject crosswalk is not valid: " + "; ".join(bad))
    socs = [c for c in src.SOC_SUBMAJOR if c not in SOC2020_FOLD]
    subjects = [s for s in src.SSA_T1 if s not in NON_OCCUPATIONAL_SUBJECTS]
    rng = np.random.default_rng(seed)
    notes: list[str] = []

    occ = tables["occupation"]
    england_districts = tables["geography"]["lad_name"]
    occupations, subjects_df, proj, proj_area = gap_tables(
        tables, area, cw, socs, subjects, projection, demand_weights, draws, rng, notes
    )

    near = neighbour_gaps(tables, area, cw, socs, subjects)
    occupations["neighbours_median_gap"] = occupations["soc"].map(near.get("occupations", {}))
    subjects_df["neighbours_median_gap"] = subjects_df["subject"].map(near.get("subjects", {}))
    if near:
        notes.append(
            f"Statistical neighbours' index: the median over {len(near['councils'])} of the ten neighbours "
            "(those that are single districts), from employment and FE alone."
        )

    trend = occ[_in(occ["area"], area.districts)].groupby(["year", "soc"], as_index=False)["employed"].sum()

    fe_table = pd.DataFrame({"subject": list(src.SSA_T1)})
    fe_table = fe_table.merge(
        fe_by_subject(tables["fe"], area.districts).reset_index().rename(columns={"ssa": "subject"}), on="subject"
    )
    fe_table = fe_table.merge(
        fe_by_subject(tables["fe"])
        .reset_index()[["ssa", "achievements"]]
        .rename(columns={"ssa": "subject", "achievements": "england_achievements"}),
        on="subject",
    )

    app = tables["apprenticeships"]
    app_area = app[_in(app["area"], area.districts)].groupby("year", as_index=False)[["starts", "achievements"]].sum()
    app_eng = (
        app.groupby("year", as_index=False)[["starts", "achievements"]]
        .sum()
        .rename(columns={"starts": "england_starts", "achievements": "england_achievements"})
    )
    app_table = app_area.merge(app_eng, on="year")

    adv, adv_fc, adv_back = adverts_trend(tables["adverts"], area)
    nt, nt_fc, nt_back = (
        neet_trend(tables["neet_trend"], area) if area.councils else (pd.DataFrame(), pd.DataFrame(), {})
    )
    if not area.councils:
        notes.append(
            f"{area.name} includes districts of county councils, so council-level figures (NEET, the Employer "
            "Skills Survey) are not summed for it."
        )
    neet = neet_comparison(tables["neet"], area) if area.councils else pd.DataFrame()
    ess = ess_comparison(tables["ess"], area)

    return SkillsGap(
        area=area,
        occupations=occupations,
        subjects=subjects_df,
        employment_trend=trend,
        industries=industry_comparison(tables["industry"], area.districts, england_districts),
        fe=fe_table,
        apprenticeships=app_table,
        adverts=adv,
        adverts_forecast=adv_fc,
        adverts_backtest=adv_back,
        adverts_by_profession=adverts_by_profession(tables["adverts_profession"], area),
        neet=neet,
        neet_trend=nt,
        neet_forecast=nt_fc,
        neet_backtest=nt_back,
        ess=ess,
        projection=proj,
        projection_area=proj_area,
        notes=notes,
        parameters={
            "area": str(area_spec),
            "data": str(data),
            "projection": str(projection) if projection else None,
            "demand_weights": demand_weights,
            "draws": draws,
            "seed": seed,
            "employment_year": EMPLOYMENT_YEAR,
            "neighbours_in_index": near.get("councils", []),
        },
    )


def area_keys(specs, data: str | Path = src.REFERENCE) -> list[tuple[str, str]]:
    """(folder key, name) for each area asked for; every unknown area reported at once."""
    tables = src.load_tables(data)
    out, problems = [], []
    for spec in specs:
        try:
            area = resolve_area(spec, tables)
            out.append((area.key, area.name))
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(" ".join(problems))
    return out


def data_fingerprint(data: str | Path = src.REFERENCE) -> str:
    """What data made the figures: a hash of the contract tables used (shipped or read)."""
    from insightlib.ingest import fingerprint

    return fingerprint.frames_fingerprint(src.load_tables(data))
