"""Re-referral after case closure: episodes in, every estimate the re-referral notebook reports out.

Builds episodes (ingest/episodes.py), adds the grouping columns, folds small groups, and runs
the estimators of stats/survival.py, stats/competing_risks.py and stats/cox.py clustered by
child; report/rereferral.py turns the result into sentences, tables and figures.

In the Kaplan-Meier, log-rank and Cox analyses the competing events are treated as
censoring (cause-specific hazard); the cumulative incidence is the share actually
re-referred by a given day, allowing for children who can no longer be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from insightlib import contract
from insightlib.contract import DISCLOSURE_THRESHOLD
from insightlib.errors import InputError
from insightlib.report.labels import GROUPINGS, OTHER, _level_key, group_label
from insightlib.report.rereferral import ReReferralReport
from insightlib.stats.competing_risks import cumulative_incidence
from insightlib.stats.cox import cox_ph
from insightlib.stats.logrank import logrank_test
from insightlib.stats.survival import DEFAULT_HORIZONS, _factorize_labels, kaplan_meier, rmst
from insightlib.stats.threads import one_thread

DEFAULT_COVARIATES = ("primary_need", "age_band", "referral_nfa", "previous_referrals")


def add_groupings(episodes: pd.DataFrame, interventions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Episodes with the report's grouping columns in words (age band, broad ethnicity ...).

    ``intervention`` is the intervention the child received during the referral (by
    referral_id where recorded, else starting between referral and closure); "None" if
    none, "Several" if more than one kind.
    """
    out = episodes.copy(deep=False)  # the columns below are replaced whole, never written into: the input is untouched
    out["age_band"] = contract.age_band(out["age_at_closure"].to_numpy(dtype=float))
    # recoded once per distinct value, not per row (3.4 million rows nationally)
    # the broad group "Other" is DfE's "Any other ethnic group", not the report's "Other" (small groups together)
    out["ethnicity"] = _recode(
        out["ethnicity"],
        lambda v: {"Other": "Any other ethnic group"}.get(
            contract.ETHNICITY_GROUP.get(v, "Not known"), contract.ETHNICITY_GROUP.get(v, "Not known")
        ),
        "Not known",
    )
    out["disability"] = _recode(
        out["disability"],
        lambda v: "No disability" if str(v).strip().upper() in ("NONE", "", "NAN") else "Disability",
        "No disability",
    )
    out["referral_nfa"] = np.where(out["referral_nfa"].astype(bool), "No further action", "Assessed")
    out["primary_need"] = _recode(out["primary_need"], str, "nan")
    out["intervention"] = _intervention_received(episodes, interventions)
    return out


def _recode(values: pd.Series, fn, missing: str) -> np.ndarray:
    """``fn`` applied to each distinct value (missing values become ``missing``)."""
    codes, uniq = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniq] + [missing], dtype=object)
    return mapped[codes]  # code -1 (missing) takes the last entry


def child_key(episodes: pd.DataFrame) -> np.ndarray:
    """One integer per child (council and pseudonym together), for clustering: cheaper than joined strings."""
    la = pd.factorize(episodes["la_code"].to_numpy(dtype=object))[0].astype(np.int64)
    ch, uniq = pd.factorize(episodes["child_id"].to_numpy(dtype=object))
    return la * (len(uniq) + 1) + ch


def _intervention_received(episodes: pd.DataFrame, interventions: pd.DataFrame | None) -> np.ndarray:
    result = np.full(len(episodes), "None", dtype=object)
    if interventions is None or len(interventions) == 0 or len(episodes) == 0:
        return result
    ep = episodes[["la_code", "child_id", "referral_id", "referral_date", "closure_date"]].copy()
    ep["_row"] = np.arange(len(ep))
    iv = interventions.copy()
    iv["la_code"] = iv["la_code"].astype(str)
    iv["child_id"] = iv["child_id"].astype(str)
    m = ep.merge(
        iv[["la_code", "child_id", "intervention", "start_date"] + (["referral_id"] if "referral_id" in iv else [])],
        on=["la_code", "child_id"],
        suffixes=("", "_iv"),
    )
    start = pd.to_datetime(m["start_date"])
    during = (start >= m["referral_date"]) & (start <= m["closure_date"])
    if "referral_id_iv" in m:
        linked = m["referral_id_iv"].notna()
        match = np.where(linked, m["referral_id_iv"].astype(str) == m["referral_id"].astype(str), during)
    else:
        match = during.to_numpy()
    m = m.loc[match]
    if len(m):
        # each episode's first matching intervention, or "Several" when they differ (vectorised: a Python
        # function per episode took seconds on a large council)
        rows, first = np.unique(m["_row"].to_numpy(), return_index=True)
        distinct = m.groupby("_row")["intervention"].nunique().reindex(rows).to_numpy()
        result[rows] = np.where(distinct == 1, m["intervention"].to_numpy(dtype=object)[first], "Several")
    return result


def fold_small_groups(labels, min_group_size: int = 20, other: str = OTHER, min_other: int = 0) -> pd.Series:
    """Groups with fewer than ``min_group_size`` episodes are shown together as "Other".

    With ``min_other`` (the disclosure threshold), an "Other" smaller than that takes in the
    next smallest group too, until it is big enough or holds everything: a small "Other"
    would be a small count that the total minus the groups shown gives back.
    """
    codes, names = _factorize_labels(labels)
    sizes = np.bincount(codes, minlength=len(names))
    folded = (sizes < min_group_size) | (names.astype(object) == other)
    while True:
        n_other = int(sizes[folded].sum())
        rest = [j for j in np.argsort(sizes, kind="stable") if not folded[j] and sizes[j] > 0]
        if not (0 < n_other < min_other) or not rest:
            break
        folded[rest[0]] = True
    names = np.where(folded, other, names).astype(object)
    index = labels.index if isinstance(labels, pd.Series) else None
    return pd.Series(names[codes], index=index, dtype=object)


def fold_to_largest(labels, max_groups: int = 6, other: str = OTHER) -> pd.Series:
    """At most ``max_groups`` groups: the largest ``max_groups - 1`` kept, the rest shown together as "Other".

    Ten curves on one chart cannot be told apart (and the palette has six colours), so
    charts show the largest groups and say which were folded (``folded_groups``).
    """
    codes, names = _factorize_labels(labels)
    sizes = np.bincount(codes, minlength=len(names))
    present = [j for j in np.argsort(-sizes, kind="stable") if sizes[j] > 0]
    real = [j for j in present if names[j] != other]
    if len(present) <= max_groups:
        keep = set(present)
    else:
        keep = set(real[: max_groups - 1])
    out = np.array([names[j] if j in keep else other for j in range(len(names))], dtype=object)
    index = labels.index if isinstance(labels, pd.Series) else None
    return pd.Series(out[codes], index=index, dtype=object)


def cox_design(episodes: pd.DataFrame, covariates, min_group_size: int = 20, event_col: str = "event"):
    """Numeric columns as they are; categories as indicators against the largest category.

    Categories with fewer than ``min_group_size`` episodes or no re-referral are folded
    into "Other" (a category with no event has no finite hazard ratio). An "Other" that is
    itself event-free (small groups none of whose children came back) would make the fit
    diverge the same way, so it is counted with the reference (the largest group) instead;
    ``X.attrs["with_reference"]`` names, per covariate, the categories counted there.
    """
    cols, refs, with_ref = [], {}, {}
    for cov in covariates:
        if cov not in episodes.columns:
            raise InputError(f"Covariate {cov!r} is not an episode column (choose from {', '.join(episodes.columns)}).")
        v = episodes[cov]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            if v.isna().any():
                raise InputError(f"Covariate {cov!r} has missing values: fill or drop them before the Cox model.")
            cols.append(pd.Series(v.to_numpy(dtype=float), name=cov, index=episodes.index))
            continue
        lab = fold_small_groups(v, min_group_size)
        codes, names = _factorize_labels(lab)
        ev = episodes[event_col].to_numpy() == 1
        events = np.bincount(codes, weights=ev, minlength=len(names))
        if (events == 0).any():  # a category with no re-referral has no finite hazard ratio
            names = np.where(events == 0, OTHER, names).astype(object)
            codes, names = _factorize_labels(names[codes])
        sizes = np.bincount(codes, minlength=len(names))
        present = np.flatnonzero(sizes)
        other = [j for j in present if names[j] == OTHER]
        real = [j for j in present if names[j] != OTHER]
        if other and real and np.bincount(codes, weights=ev, minlength=len(names))[other[0]] == 0:
            # an event-free "Other" has no finite hazard ratio either: count it with the largest group
            largest = real[int(np.argmax(sizes[real]))]
            with_ref[cov] = sorted({str(x) for x in v[codes == other[0]]}, key=lambda g: _level_key(cov, g))
            codes = np.where(codes == other[0], largest, codes)
            sizes = np.bincount(codes, minlength=len(names))
            present = np.flatnonzero(sizes)
        if len(present) < 2:
            continue
        ref_code = present[np.argmax(sizes[present])]
        refs[cov] = str(names[ref_code])
        for j in sorted(present, key=lambda j: _level_key(cov, names[j])):
            if j != ref_code:
                cols.append(pd.Series((codes == j).astype(float), name=f"{cov}[{names[j]}]", index=episodes.index))
    if not cols:
        raise InputError("No covariate varies in these episodes, so there is nothing for the Cox model to compare.")
    X = pd.concat(cols, axis=1)
    X.attrs["with_reference"] = {c: g for c, g in with_ref.items() if c in refs}
    return X, refs


def _reordered(result, group_by):
    """A KM or cumulative-incidence result with its groups in natural order."""
    if result is None:
        return None
    keys = sorted(result.curves, key=lambda g: _level_key(group_by, g))
    result.curves = {g: result.curves[g] for g in keys}
    if getattr(result, "competing", None):
        result.competing = {g: result.competing[g] for g in keys}
    return result


@one_thread()  # a council's matrices are small (stats.threads)
def rereferral_report(
    tables: dict[str, pd.DataFrame],
    group_by: str = "primary_need",
    horizons=DEFAULT_HORIZONS,
    covariates=None,
    competing_risks: bool = True,
    min_group_size: int = 20,
    rmst_horizon: int | None = None,
    closure_year: int | None = None,
    max_chart_groups: int = 6,
    disclosure_threshold: int = DISCLOSURE_THRESHOLD,
    rounding: int | None = None,
) -> ReReferralReport:
    """Build episodes and every estimate the re-referral notebook reports.

    Groups smaller than ``min_group_size`` or the disclosure threshold are shown together as
    "Other" (which is kept at the threshold or above); every figure the report publishes is
    controlled by ``disclosure_threshold`` and ``rounding``. The estimates one after another, each
    helper returning the report fields it fills: curves and the group test, the charts' curves,
    RMST, Cox, the headline."""
    from insightlib.ingest.episodes import at_risk, build_episodes, dfe_rereferral_measure

    if group_by not in GROUPINGS:
        raise InputError(f"group_by must be one of {', '.join(GROUPINGS)}; got {group_by!r}.")
    horizons = tuple(int(h) for h in horizons)
    episodes, counts = build_episodes(tables, with_counts=True)
    ep = at_risk(add_groupings(episodes, tables.get("interventions")), renumber=True)
    if ep.empty:
        raise InputError("No closed case has any follow-up before the extract date, so there is nothing to analyse.")
    min_size = max(min_group_size, disclosure_threshold)
    groups = fold_small_groups(ep[group_by], min_size, min_other=disclosure_threshold).to_numpy()
    t, e = ep["duration_days"].to_numpy(), ep["event"].to_numpy()
    child = child_key(ep)  # bands, tests and intervals clustered by child (one child's episodes are not independent)
    curves = _curves(t, e, groups, horizons, group_by, child, competing_risks)
    chart_groups = fold_to_largest(groups, max_chart_groups).to_numpy()
    extract = pd.to_datetime(tables["councils"]["extract_date"]).min()
    return ReReferralReport(
        group_by=group_by,
        horizons=horizons,
        counts=counts.to_dict(),
        **curves,
        rmst=_rmst(t, e, groups, rmst_horizon or max(horizons), child, group_by),
        **_cox(ep, t, e, covariates, min_group_size, child),
        dfe_measure=dfe_rereferral_measure(tables),
        **_headline(ep, extract, max(horizons), closure_year, min_size, disclosure_threshold, competing_risks),
        episodes_at_risk=len(ep),
        children=int(len(np.unique(child))),
        **_chart_curves(t, e, ep[group_by], groups, chart_groups, curves, horizons, group_by, child),
        data_start=pd.to_datetime(tables["referrals"]["referral_date"]).min(),
        extract_date=extract,
        threshold=int(disclosure_threshold),
        rounding=rounding,
    )


def _labelled(result, group_by):
    """A KM or cumulative-incidence result in natural group order, its groups named in words."""
    result = _reordered(result, group_by)
    result.labels = {g: group_label(group_by, g) for g in result.curves}
    return result


def _curves(t, e, groups, horizons, group_by, child, competing_risks: bool) -> dict:
    """Kaplan-Meier by group, the test that the groups differ and (``competing_risks``) the cumulative
    incidence, each clustered by child: the report's km, logrank and cumulative_incidence."""
    km = _labelled(kaplan_meier(t, e, groups, horizons, group_by=group_by, clusters=child), group_by)
    cif = _labelled(cumulative_incidence(t, e, groups, horizons, clusters=child), group_by) if competing_risks else None
    return {"km": km, "logrank": logrank_test(t, e, groups, clusters=child), "cumulative_incidence": cif}


def _chart_curves(t, e, raw_groups, groups, chart_groups, curves, horizons, group_by, child) -> dict:
    """The charts' curves (km_chart, cif_chart): the largest groups, the rest folded into "Other" (said
    under the chart), and ``folded``, every group the charts' "Other" holds (small groups folded for
    size, and groups beyond the largest)."""
    km_chart, cif_chart = curves["km"], curves["cumulative_incidence"]
    if (chart_groups != groups).any():
        km_chart = _labelled(kaplan_meier(t, e, chart_groups, horizons, group_by=group_by, clusters=child), group_by)
        if cif_chart is not None:
            cif_chart = _labelled(cumulative_incidence(t, e, chart_groups, horizons, clusters=child), group_by)
    raw = _factorize_labels(raw_groups.to_numpy())
    in_other = np.unique(raw[0][chart_groups == OTHER])
    folded = sorted((str(raw[1][k]) for k in in_other), key=lambda g: _level_key(group_by, g))
    return {"km_chart": km_chart, "cif_chart": cif_chart, "folded": folded}


def _rmst(t, e, groups, horizon: int, child, group_by: str):
    """RMST by group clustered by child, its groups in natural order."""
    rm = rmst(t, e, groups, horizon=horizon, clusters=child)
    rm.groups = rm.groups.iloc[
        sorted(range(len(rm.groups)), key=lambda i: _level_key(group_by, rm.groups["group"].iloc[i]))
    ]
    return rm


def _cox(ep: pd.DataFrame, t, e, covariates, min_group_size: int, child) -> dict:
    """The Cox model on ``covariates`` (DEFAULT_COVARIATES if none), clustered by child: the report's
    cox, or None with cox_note saying why not."""
    covariates = list(covariates) if covariates else list(DEFAULT_COVARIATES)
    try:
        X, refs = cox_design(ep, covariates, min_group_size)
        cox = cox_ph(t, e, X, clusters=child)
    except InputError as err:
        return {"cox": None, "cox_note": f"No Cox model: {err}"}
    cox.references = refs
    cox.with_reference = dict(X.attrs.get("with_reference", {}))
    return {"cox": cox, "cox_note": ""}


def _headline(ep, extract, h: int, closure_year, min_size: int, threshold: int, competing_risks: bool) -> dict:
    """The share re-referred within ``h`` days of the episodes closed in ``closure_year`` (default: the
    latest calendar year with a full ``h`` days of follow-up): headline_year and headline_rate.

    The share is published only where at least ``min_size`` closed and neither the children re-referred
    within the horizon nor those not are a small count ("1 in 4" of 4 closures is one child)."""
    closed_year = ep["closure_date"].dt.year
    full = closed_year[(pd.to_datetime(closed_year.astype(str) + "-12-31") + pd.Timedelta(days=h)) <= extract]
    year = closure_year if closure_year is not None else (int(full.max()) if len(full) else None)
    if year is None:
        return {"headline_year": None, "headline_rate": None}
    m = (closed_year == year).to_numpy()
    t, e = ep["duration_days"].to_numpy(), ep["event"].to_numpy()
    back = int(((e[m] == 1) & (t[m] <= h)).sum())
    small = lambda n: 1 <= n < threshold  # noqa: E731
    rate = None
    if m.sum() >= min_size and not small(back) and not small(int(m.sum()) - back):
        if competing_risks:
            rate = cumulative_incidence(t[m], e[m], None, (h,)).at("All", h)["rereferral"]
        else:
            rate = 1 - kaplan_meier(t[m], e[m], None, (h,)).at("All", h)["survival"]
    return {"headline_year": year, "headline_rate": rate}
