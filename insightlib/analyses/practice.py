"""Practice insight for one council: its extract (and the published data) in, a result object out (no words).

1. **Groupings of need**: latent class analysis of the assessment factors (stats.latent_class),
   the number of classes by BIC, stability by adjusted Rand index, classes named from their most
   distinctive factors and set beside Hood et al. (2023); per grouping, its share of assessments and
   how soon its children come back (Kaplan-Meier and Cox from the survival analysis, clustered by child).
2. **Practice patterns**: changes of allocated worker, weeks from referral to assessment authorised,
   plan (none, child in need, child protection) and its length, the team that held the case at
   closure, each in one Cox model of re-referral clustered by child, adjusted for need, age,
   previous referrals and disability: association, not cause.
3. **Disproportionality**: children referred per 10,000 children by ethnic group (ONS 0-17 times
   the group's Census 2021 share, all ages) and the relative rate index against the council's
   overall rate; what happens after referral (assessed, on a plan, on a child protection plan,
   re-referred within 12 months) by ethnicity, sex, disability and age, against the council's overall share.
4. **Published context**: the council's factor profile against England and its neighbours, workforce,
   and its place on the deprivation-adjusted funnel (analyses.published_practice).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from insightlib import contract, reference
from insightlib.analyses import rereferral
from insightlib.analyses import published_practice as pub
from insightlib.ingest.episodes import DFE_WINDOW_DAYS, at_risk, build_episodes
from insightlib.errors import InputError
from insightlib.ingest import practice as src
from insightlib.stats import cox as cox_model
from insightlib.stats import latent_class as lc
from insightlib.stats import survival as km_model
from insightlib.stats import rates

#: Factors recorded in fewer than this share of assessments are left out of the groupings (too rare to shape one).
MIN_FACTOR_SHARE = 0.01
#: Class numbers tried.
CLASS_RANGE = range(1, 11)
#: A factor names its class where at least this share of the class has it.
NAMING_PROBABILITY = 0.3
#: Hood et al. (2023): the categories their abstract names, with the shares it gives (BJSW 53(8):3704-3724).
HOOD_2023 = {
    "Domestic abuse and violence": 19.7,
    "Complexities around parental mental health": 18.4,
    "Complex domestic abuse": None,
    "Disability": None,
    "Child mental health": None,
    "Risks outside the home": None,
    "Concerns about another person in the family or household": None,
}
_DA, _OTHER_PERSON = {"3A", "3B", "3C"}, {"1C", "2C", "3C", "4C", "5C", "6C"}
_OUTSIDE = {"10A", "11A", "12A", "13A", "14A", "22A"}
_PARENT = {"1B", "2B", "4B"}
AFTER_REFERRAL = {
    "assessed": "assessed",
    "plan": "on a child in need or protection plan",
    "cp_plan": "on a child protection plan",
    "rereferral": "re-referred within 12 months",
}
GROUPS = {"ethnicity": "ethnic group", "sex": "sex", "disability": "disability", "age_band": "age at referral"}
SEX_LABELS = {"M": "Boys", "F": "Girls", "U": "Not known"}


def hood_category(top: list[tuple[str, float, float]], theta: dict[str, float]) -> str:
    """The Hood et al. category a class corresponds to, from its distinctive factors ("" if none)."""
    codes = [c for c, _, _ in top]
    if not codes:
        return ""
    first = codes[0]
    if first in _DA or (_DA & set(codes[:2])):
        return (
            "Complex domestic abuse"
            if sum(theta.get(c, 0) >= NAMING_PROBABILITY for c in _PARENT) >= 2
            else "Domestic abuse and violence"
        )
    if first == "4B":
        return "Complexities around parental mental health"
    if first in {"5A", "6A"}:
        return "Disability"
    if first in {"4A", "15A"}:
        return "Child mental health"
    if first in _OUTSIDE:
        return "Risks outside the home"
    if first in _OTHER_PERSON:
        return "Concerns about another person in the family or household"
    return ""


def class_name(top: list[tuple[str, float, float]]) -> str:
    labels = []
    for code, _, _ in top[:2]:
        label = src.FACTOR_LABELS.get(code, code)
        if label not in labels:
            labels.append(label)
    return " and ".join(labels).capitalize() if labels else "Other needs"


def factor_matrix(assessments: pd.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """0/1 matrix of the factors (codes 1A..24A) of assessments with at least one; the columns; which rows."""
    text = assessments["factors"].fillna("").astype(str).str.upper().str.replace(" ", "", regex=False)
    known = list(contract.ASSESSMENT_FACTORS)
    dummies = text.str.get_dummies(sep=";")
    cols = [c for c in known if c in dummies.columns]
    X = dummies[cols].to_numpy(dtype=np.uint8) if cols else np.zeros((len(text), 0), dtype=np.uint8)
    has = X.sum(axis=1) > 0
    return X[has], cols, has


@dataclass
class Groupings:
    choice: lc.ClassChoice
    classes: pd.DataFrame  # class, name, hood_2023, hood_share, share, assessments, factors (top), entropy
    stability: dict
    columns: list
    used_factors: list
    left_out_factors: list
    n_assessments: int
    n_without_factors: int
    km: object | None = None  # survival.KMResult by grouping
    cox: object | None = None  # survival.CoxResult of the groupings
    episodes: int = 0

    def to_dict(self) -> dict:
        out = {
            "n_classes": self.choice.chosen,
            "bic": {int(r.k): float(r.bic) for r in self.choice.bic.itertuples()},
            "stability": self.stability,
            "assessments": self.n_assessments,
            "assessments_without_factors": self.n_without_factors,
            "factors_used": self.used_factors,
            "classes": {
                r["name"]: {
                    "share": r["share"],
                    "assessments": r["assessments"],
                    "hood_2023": r["hood_2023"],
                    "hood_2023_share": r["hood_share"],
                    "factors": r["factors"],
                }
                for r in self.classes.to_dict("records")
            },
        }
        if self.cox is not None:
            out["cox"] = self.cox.to_dict()
        if self.km is not None:
            out["km"] = self.km.to_dict()
        return out


def groupings(assessments: pd.DataFrame, seed: int = 0, ks=CLASS_RANGE, stability_checks: bool = True) -> Groupings:
    X, cols, has = factor_matrix(assessments)
    if len(X) < 50:
        raise InputError(f"Only {len(X)} assessments have factors recorded: too few to find groupings of need.")
    share = X.mean(axis=0)
    used = [c for c, s in zip(cols, share) if s >= MIN_FACTOR_SHARE]
    left = [c for c, s in zip(cols, share) if s < MIN_FACTOR_SHARE]
    Xu = X[:, [cols.index(c) for c in used]].astype(float)
    choice = lc.choose_classes(Xu, ks, seed=seed, columns=used)
    fit = choice.fit
    labels = fit.predict(Xu)
    top = lc.distinctive(fit, Xu, NAMING_PROBABILITY)
    rows = []
    for k in range(fit.k):
        theta = dict(zip(used, fit.theta[k]))
        hood = hood_category(top[k], theta)
        rows.append(
            {
                "class": k,
                "name": class_name(top[k]),
                "hood_2023": hood,
                "hood_share": HOOD_2023.get(hood) if hood else None,
                "share": float(np.mean(labels == k)),
                "assessments": int(np.sum(labels == k)),
                "factors": [
                    {"factor": c, "label": src.FACTOR_LABELS.get(c, c), "probability": p, "lift": lift}
                    for c, p, lift in top[k]
                ],
            }
        )
    classes = pd.DataFrame(rows)
    # two classes with one name: number them
    dup = classes["name"].duplicated(keep=False)
    classes.loc[dup, "name"] = (
        classes.loc[dup, "name"] + " (" + (classes.loc[dup].groupby("name").cumcount() + 1).astype(str) + ")"
    )
    stab = lc.stability(Xu, fit) if stability_checks and fit.k > 1 else {}
    stab["entropy"] = fit.entropy_r2(Xu)
    g = Groupings(choice, classes, stab, cols, used, left, int(len(assessments)), int((~has).sum()))
    g.labels = pd.Series(classes["name"].to_numpy()[labels], index=assessments.index[has])
    return g


# --- episodes with practice measures ---------------------------------------------------------


def _days(s) -> np.ndarray:
    return pd.to_datetime(s).to_numpy(dtype="datetime64[D]").astype(np.int64)


def episode_practice(tables: dict, episodes: pd.DataFrame) -> pd.DataFrame:
    """Per episode: its assessment, changes of worker, weeks to assessment, plan and plan length, team at closure."""
    ep = episodes.copy()
    asm = tables.get("assessments")
    out = pd.DataFrame(index=ep.index)
    if asm is not None and len(asm):
        a = asm.sort_values("start_date").drop_duplicates("referral_id")
        a = a.set_index("referral_id")
        out["assessed"] = ep["referral_id"].isin(a.index).to_numpy()
        auth = (
            ep["referral_id"].map(a["authorised_date"]) if "authorised_date" in a else pd.Series(pd.NaT, index=ep.index)
        )
        wk = (pd.to_datetime(auth) - pd.to_datetime(ep["referral_date"])).dt.days / 7
        out["weeks_to_assessment"] = wk.where(wk >= 0)
    else:
        out["assessed"] = False
        out["weeks_to_assessment"] = np.nan
    plans = tables.get("plans")
    plan = np.full(len(ep), "No plan", dtype=object)
    plan_months = np.zeros(len(ep))
    if plans is not None and len(plans):
        p = plans[plans["referral_id"].isin(set(ep["referral_id"]))].copy()
        end = pd.to_datetime(p["end_date"]).fillna(
            pd.to_datetime(p["referral_id"].map(ep.set_index("referral_id")["closure_date"]))
        )
        p["months"] = (end - pd.to_datetime(p["start_date"])).dt.days.clip(lower=0) / 30.44
        months = p.groupby("referral_id")["months"].sum()
        cp = set(p.loc[p["plan_type"] == "CP", "referral_id"])
        cin = set(p.loc[p["plan_type"] == "CIN", "referral_id"])
        rid = ep["referral_id"]
        plan = np.where(
            rid.isin(cp).to_numpy(),
            "Child protection plan",
            np.where(rid.isin(cin).to_numpy(), "Child in need plan", "No plan"),
        )
        plan_months = ep["referral_id"].map(months).fillna(0).to_numpy(float)
    out["plan"] = plan
    out["plan_months"] = plan_months
    al = tables.get("allocations")
    changes = np.zeros(len(ep))
    team = np.full(len(ep), "No allocation", dtype=object)
    if al is not None and len(al):
        e = ep[["la_code", "child_id", "referral_date", "closure_date"]].copy()
        e["_row"] = np.arange(len(ep))
        m = al[["la_code", "child_id", "worker_id", "start_date", "team"]].merge(e, on=["la_code", "child_id"])
        s = pd.to_datetime(m["start_date"])
        m = m[(s >= pd.to_datetime(m["referral_date"])) & (s <= pd.to_datetime(m["closure_date"]))]
        m = m.sort_values(["_row", "start_date"])
        n = m.groupby("_row").size()
        changes[n.index.to_numpy()] = n.to_numpy() - 1
        last = m.groupby("_row")["team"].last()
        team[last.index.to_numpy()] = last.fillna("Not recorded").astype(str).to_numpy()
    out["worker_changes"] = changes
    out["team"] = team
    return out


def _previous_band(n) -> np.ndarray:
    return np.array(["0", "1", "2", "3+"], dtype=object)[np.minimum(np.asarray(n, dtype=int), 3)]


@dataclass
class Patterns:
    cox: object  # survival.CoxResult: worker changes, weeks to assessment, plan, plan length (+ adjustment)
    team_cox: object | None  # survival.CoxResult: team at closure (+ adjustment), a model of its own
    summary: pd.DataFrame  # measure, median / share among the episodes modelled
    episodes: int
    adjusted_for: list

    def to_dict(self) -> dict:
        return {
            "cox": self.cox.to_dict(),
            "team_cox": self.team_cox.to_dict() if self.team_cox is not None else None,
            "episodes": self.episodes,
            "adjusted_for": self.adjusted_for,
            "events": self.cox.events,
            "children": self.cox.clusters,
        }


#: In one model; the team is in a model of its own (teams follow plans: a child protection plan is
#: held by a safeguarding team, so the two cannot be told apart in one model).
PATTERN_TERMS = ("worker_changes", "weeks_to_assessment", "plan", "plan_months")
ADJUST_FOR = ("primary_need", "age_band", "previous_referrals_band", "disability")


def practice_patterns(ep: pd.DataFrame, min_group_size: int = 20) -> Patterns:
    """Cox model of re-referral on the practice measures, among assessed episodes, clustered by child."""
    d = ep[ep["assessed"] & ep["weeks_to_assessment"].notna()].copy()
    if len(d) < 50 or (d["event"] == 1).sum() < 10:
        raise InputError("Too few assessed episodes with a re-referral to relate practice patterns to re-referral.")
    cl = rereferral.child_key(d)
    X, refs = rereferral.cox_design(d, list(PATTERN_TERMS) + list(ADJUST_FOR), min_group_size=min_group_size)
    cox = cox_model.cox_ph(d["duration_days"], d["event"], X, clusters=cl)
    cox.references = refs
    team_cox = None
    if d["team"].nunique() > 1:
        Xt, trefs = rereferral.cox_design(d, ["team"] + list(ADJUST_FOR), min_group_size=min_group_size)
        if any(c.startswith("team[") for c in Xt.columns):
            team_cox = cox_model.cox_ph(d["duration_days"], d["event"], Xt, clusters=cl)
            team_cox.references = trefs
    summary = pd.DataFrame(
        [
            {"measure": "changes of allocated worker (median)", "value": float(d["worker_changes"].median())},
            {
                "measure": "changes of allocated worker (share with one or more)",
                "value": float((d["worker_changes"] > 0).mean()),
            },
            {
                "measure": "weeks from referral to assessment authorised (median)",
                "value": float(d["weeks_to_assessment"].median()),
            },
            {
                "measure": "months on a plan (median, among those on one)",
                "value": float(d.loc[d["plan"] != "No plan", "plan_months"].median())
                if (d["plan"] != "No plan").any()
                else np.nan,
            },
        ]
    )
    return Patterns(cox, team_cox, summary, int(len(d)), list(ADJUST_FOR))


# --- disproportionality -----------------------------------------------------------------------


def _child_groups(tables: dict) -> pd.DataFrame:
    ch = tables["children"].copy()
    ch["ethnicity_group"] = ch["ethnicity"].map(contract.ETHNICITY_GROUP).fillna("Not known")
    ch["ethnicity_group"] = ch["ethnicity_group"].replace({"Other": "Any other ethnic group"})
    ch["disability_group"] = np.where(
        ch.get("disability", pd.Series("NONE", index=ch.index))
        .fillna("NONE")
        .astype(str)
        .str.upper()
        .isin(["NONE", "", "NAN"]),
        "No disability",
        "Disability",
    )
    ch["sex_group"] = ch["sex"].map(SEX_LABELS).fillna("Not known")
    return ch


def population_rates(tables: dict, la_code: str, period_days: int = 365, alpha: float = 0.05) -> pd.DataFrame:
    """Children referred in the period per 10,000 children, by ethnic group, with the relative rate index.

    Group populations: ONS 0-17 (latest year not after the extract) times the group's Census 2021 share
    (all ages). Children whose ethnicity is not known are left out of the numerators and the total."""
    ref = tables["referrals"]
    extract = pd.to_datetime(tables["councils"]["extract_date"]).max()
    recent = ref[pd.to_datetime(ref["referral_date"]) > extract - pd.Timedelta(days=period_days)]
    ch = _child_groups(tables).set_index("child_id")
    groups = ch.loc[recent["child_id"].unique(), "ethnicity_group"]
    pop = src.load("population")
    pop = pop[(pop["la_code"] == la_code) & (pop["year"] <= extract.year)].sort_values("year")
    eth = src.load("ethnicity")
    eth = eth[eth["la_code"] == la_code].copy()
    if pop.empty or pop["population"].isna().all() or eth.empty:
        raise InputError(f"No published population for {reference.council_name(la_code)} ({la_code}).")
    children = float(pop["population"].dropna().iloc[-1])
    eth["group"] = eth["ethnicity"].map(contract.ETHNICITY_GROUP).replace({"Other": "Any other ethnic group"})
    shares = eth.groupby("group")["people"].sum() / eth["people"].sum()
    known = groups[groups != "Not known"]
    counts = known.value_counts()
    names = [g for g in ("White", "Mixed", "Asian", "Black", "Any other ethnic group") if g in shares.index]
    a = np.array([counts.get(g, 0) for g in names], dtype=float)
    n = np.array([shares[g] * children for g in names])
    r = rates.rate(a, n)
    rri = rates.relative_rate_index(a, n, a.sum(), children)
    out = pd.DataFrame(
        {
            "group": names,
            "children_referred": a,
            "population": n,
            "census_share": [shares[g] for g in names],
            "referred_share": a / a.sum() if a.sum() else np.nan,
            "rate_per_10000": r["rate"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "rri": rri["rri"],
            "rri_low": rri["ci_low"],
            "rri_high": rri["ci_high"],
        }
    )
    out.attrs.update(
        {
            "children_0_17": children,
            "population_year": int(pop["year"].iloc[-1]),
            "not_known": int((groups == "Not known").sum()),
            "period_days": period_days,
            "overall_rate": a.sum() / children * 10_000,
            "extract": str(extract.date()),
        }
    )
    return out


def after_referral(tables: dict, alpha: float = 0.05) -> pd.DataFrame:
    """Per group (ethnicity, sex, disability, age at referral): the share of referrals assessed, on a plan,
    on a CP plan and re-referred within 12 months, with the relative rate index against the council's share."""
    ref = tables["referrals"].copy()
    ch = _child_groups(tables).set_index("child_id")
    ref["ethnicity"] = ref["child_id"].map(ch["ethnicity_group"]).to_numpy()
    ref["sex"] = ref["child_id"].map(ch["sex_group"]).to_numpy()
    ref["disability"] = ref["child_id"].map(ch["disability_group"]).to_numpy()
    age = (
        pd.to_datetime(ref["referral_date"]) - pd.to_datetime(ref["child_id"].map(ch["date_of_birth"]))
    ).dt.days / 365.25
    ref["age_band"] = contract.age_band(age.to_numpy(dtype=float))
    nfa = (
        ref["referral_nfa"].astype(str).str.lower().isin(["true", "1", "y", "yes"])
        if ref["referral_nfa"].dtype != bool
        else ref["referral_nfa"]
    )
    asm = tables.get("assessments")
    ref["assessed"] = ref["referral_id"].isin(set(asm["referral_id"])) if asm is not None else ~nfa
    plans = tables.get("plans")
    pr = set(plans["referral_id"]) if plans is not None else set()
    cp = set(plans.loc[plans["plan_type"] == "CP", "referral_id"]) if plans is not None else set()
    ref["plan"] = ref["referral_id"].isin(pr)
    ref["cp_plan"] = ref["referral_id"].isin(cp)
    r = ref.sort_values(["child_id", "referral_date"])
    prev = r.groupby("child_id")["referral_date"].shift(1)
    r["rereferral"] = (pd.to_datetime(r["referral_date"]) - pd.to_datetime(prev)).dt.days <= DFE_WINDOW_DAYS
    rows = []
    for by, what in GROUPS.items():
        for outcome in AFTER_REFERRAL:
            total_e, total_n = float(r[outcome].sum()), float(len(r))
            g = r.groupby(by)[outcome].agg(["sum", "size"])
            rri = rates.relative_rate_index(g["sum"], g["size"], total_e, total_n, alpha)
            share = rates.proportion(g["sum"], g["size"], alpha)
            for i, (name, row) in enumerate(g.iterrows()):
                rows.append(
                    {
                        "by": by,
                        "group": str(name),
                        "outcome": outcome,
                        "events": float(row["sum"]),
                        "referrals": float(row["size"]),
                        "share": share["share"].iloc[i],
                        "share_low": share["ci_low"].iloc[i],
                        "share_high": share["ci_high"].iloc[i],
                        "overall_share": total_e / total_n if total_n else np.nan,
                        "rri": rri["rri"].iloc[i],
                        "rri_low": rri["ci_low"].iloc[i],
                        "rri_high": rri["ci_high"].iloc[i],
                    }
                )
    return pd.DataFrame(rows)


# --- the whole analysis -----------------------------------------------------------------------


@dataclass
class PracticeResult:
    la_code: str
    la_name: str
    parameters: dict
    groupings: Groupings | None
    patterns: Patterns | None
    population: pd.DataFrame | None
    after_referral: pd.DataFrame
    profile: pd.DataFrame | None
    trend: pd.DataFrame | None
    workforce: pd.DataFrame | None
    funnel: object  # stats.deprivation_funnel.DeprivationFunnel (all councils)
    turnover: tuple
    notes: list = field(default_factory=list)
    extract_date: object = None
    episodes: int = 0
    rereferral_counts: dict = field(default_factory=dict)  # ingest.episodes' counts and the episodes followed up

    def to_dict(self) -> dict:
        out = {"la_name": self.la_name, "episodes": self.episodes, "notes": self.notes}
        if self.groupings is not None:
            out["groupings"] = self.groupings.to_dict()
        if self.patterns is not None:
            out["practice_patterns"] = self.patterns.to_dict()
        if self.funnel is not None and self.la_code in set(self.funnel.table["la_code"]):
            row = self.funnel.table.set_index("la_code").loc[self.la_code]
            out["deprivation_funnel"] = {
                "year": self.funnel.table.attrs.get("year"),
                "rate_per_10000": row["rate"],
                "expected_rate_per_10000": row["expected_rate"],
                "ratio": row["ratio"],
                "lower_95": row["lower_95"],
                "upper_95": row["upper_95"],
                "verdict": row["verdict"],
                "tau2": self.funnel.tau2,
                "slope_per_idaci_point": self.funnel.coef["slope"],
            }
        d, c = self.turnover
        out["turnover_and_rereferral"] = c
        return out


def analyse(
    tables: dict,
    la_code: str,
    *,
    seed: int = 0,
    period_days: int = 365,
    ks=CLASS_RANGE,
    stability_checks: bool = True,
    min_group_size: int = 20,
    published: bool = True,
) -> PracticeResult:
    """The practice analysis of one council's tables (warehouse.read_council), with the published context."""
    notes = []
    built, counts = build_episodes(tables, with_counts=True)
    # the re-referral report's "what happened" counts (its episodes followed up: those with any follow-up), so
    # that this report publishes the referrals in the extract only where that report does (report.rereferral)
    rereferral_counts = {"counts": counts.to_dict(), "followed_up": int((built["duration_days"] > 0).sum())}
    episodes = rereferral.add_groupings(at_risk(built), None)  # interventions are not used here
    episodes["previous_referrals_band"] = _previous_band(episodes["previous_referrals"])
    episodes = episodes.join(episode_practice(tables, episodes))
    asm = tables.get("assessments")
    g = None
    if asm is not None and len(asm):
        try:
            g = groupings(asm, seed=seed, ks=ks, stability_checks=stability_checks)
        except InputError as exc:
            notes.append(str(exc))
        if g is not None:
            first = asm.loc[g.labels.index].assign(grouping=g.labels.to_numpy())
            first = first.sort_values("start_date").drop_duplicates("referral_id").set_index("referral_id")["grouping"]
            episodes["grouping"] = episodes["referral_id"].map(first)
            e = episodes[episodes["grouping"].notna()]
            if len(e) and (e["event"] == 1).sum() >= 5:
                cl = rereferral.child_key(e)
                g.km = km_model.kaplan_meier(
                    e["duration_days"], e["event"], e["grouping"], group_by="grouping", clusters=cl
                )
                try:
                    X, refs = rereferral.cox_design(e, ["grouping"], min_group_size=min_group_size)
                    g.cox = cox_model.cox_ph(e["duration_days"], e["event"], X, clusters=cl)
                    g.cox.references = refs
                except InputError as exc:
                    notes.append(str(exc))
                g.episodes = int(len(e))
    pat = None
    try:
        pat = practice_patterns(episodes, min_group_size)
    except InputError as exc:
        notes.append(str(exc))
    try:
        pop = population_rates(tables, la_code, period_days)
    except InputError as exc:
        pop = None
        notes.append(str(exc))
    extract = pd.to_datetime(tables["councils"]["extract_date"]).max()
    profile = trend = workforce = None
    if published:
        try:
            profile = pub.factor_profile(la_code)
            trend = pub.factor_trend(la_code, profile["factor"].head(5))
            workforce = pub.workforce_profile(la_code)
        except InputError as exc:
            notes.append(str(exc))
    funnel = pub.children_in_need_funnel()
    return PracticeResult(
        la_code,
        reference.council_name(la_code),
        {
            "seed": seed,
            "period_days": period_days,
            "classes_tried": [min(ks), max(ks)],
            "min_group_size": min_group_size,
            "min_factor_share": MIN_FACTOR_SHARE,
        },
        g,
        pat,
        pop,
        after_referral(tables),
        profile,
        trend,
        workforce,
        funnel,
        pub.turnover_and_rereferral(),
        notes,
        extract,
        int(len(episodes)),
        rereferral_counts,
    )
