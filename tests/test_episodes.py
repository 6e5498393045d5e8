"""Episodes from closure to next referral: the awkward cases (docs/survival.md) and a slow reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insightlib.ingest.episodes import (
    EPISODE_COLUMNS,
    at_risk,
    build_episodes,
    dfe_rereferral_measure,
)
from insightlib.errors import InputError
from insightlib.simulate.survival import simulate_tables

T = pd.Timestamp
EXTRACT = T("2024-03-31")


def tables(refs, children=None, extract=EXTRACT, la_codes=("201",)):
    refs = pd.DataFrame(refs)
    for col, default in (("la_code", "201"), ("referral_source", "6"), ("primary_need", "N1"), ("referral_nfa", False),
                         ("closure_reason", None)):
        if col not in refs:
            refs[col] = default
        elif default is not None:
            refs[col] = refs[col].astype(object).where(refs[col].notna(), default)
    for col in ("referral_date", "closure_date"):
        refs[col] = pd.to_datetime(refs[col])
    if children is None:
        ids = refs[["la_code", "child_id"]].drop_duplicates()
        children = ids.assign(date_of_birth=T("2012-05-05"), sex="F", ethnicity="WBRI", disability="NONE")
    councils = pd.DataFrame({"la_code": list(la_codes), "la_name": "A council", "extract_date": extract})
    return {"councils": councils, "children": pd.DataFrame(children), "referrals": refs}


def one(child_rows, **kw):
    rows = [dict(referral_id=f"r{i}", child_id="a", **r) for i, r in enumerate(child_rows, 1)]
    return build_episodes(tables(rows, **kw), with_counts=True)


def test_columns_are_the_contract():
    ep, _ = one([dict(referral_date="2020-01-01", closure_date="2020-02-01", closure_reason="RC7")])
    assert tuple(ep.columns) == EPISODE_COLUMNS
    row = ep.iloc[0]
    assert row.duration_days == (EXTRACT - T("2020-02-01")).days
    assert row.event == 0 and row.event_type == "censored"
    assert row.end_date == EXTRACT and row.episode_number == 1 and row.previous_referrals == 0
    assert row.disability == "NONE"
    assert ep["duration_days"].dtype == np.int64 and ep["event"].dtype == np.int64
    assert ep["closure_date"].dtype == "datetime64[ns]"
    assert row.age_at_closure == pytest.approx((T("2020-02-01") - T("2012-05-05")).days / 365.25)


def test_rereferral_ends_episode_on_next_referral_date():
    ep, _ = one([
        dict(referral_date="2020-01-01", closure_date="2020-02-01", closure_reason="RC7"),
        dict(referral_date="2020-05-01", closure_date="2020-06-01", closure_reason="RC8"),
    ])
    assert len(ep) == 2
    first = ep.iloc[0]
    assert (first.event, first.event_type, first.duration_days) == (1, "rereferral", 90)
    assert first.next_referral_id == "r2" and first.end_date == T("2020-05-01")
    assert ep.iloc[1].previous_referrals == 1 and ep.iloc[1].episode_number == 2


def test_nfa_without_closure_date_closes_on_referral_date():
    ep, counts = one([dict(referral_date="2021-03-03", closure_date=None, referral_nfa=True)])
    assert counts.nfa_closed_at_referral == 1
    assert ep.iloc[0].closure_date == T("2021-03-03")
    assert ep.iloc[0].closure_reason == "NFA" and bool(ep.iloc[0].referral_nfa)


def test_nfa_yes_no_strings_are_understood():
    ep, _ = one([dict(referral_date="2021-03-03", closure_date=None, referral_nfa="Y")])
    assert len(ep) == 1
    with pytest.raises(InputError, match="referral_nfa"):
        one([dict(referral_date="2021-03-03", closure_date=None, referral_nfa="perhaps")])


def test_overlapping_and_same_day_referrals_are_one_spell():
    ep, counts = one([
        dict(referral_date="2020-01-01", closure_date="2020-03-01", closure_reason="RC7", primary_need="N1"),
        dict(referral_date="2020-02-01", closure_date="2020-04-01", closure_reason="RC8", primary_need="N4"),
        dict(referral_date="2020-02-01", closure_date="2020-02-10", closure_reason="RC9"),
        # opens the day the spell closes: still the same contact, not a re-referral
        dict(referral_date="2020-04-01", closure_date="2020-04-01", referral_nfa=True),
        dict(referral_date="2020-04-02", closure_date="2020-05-01", closure_reason="RC7"),
    ])
    assert counts.merged_overlapping == 3
    assert len(ep) == 2
    spell = ep.iloc[0]
    assert spell.referral_id == "r1" and spell.primary_need == "N1"  # details of the first referral
    assert spell.closure_date == T("2020-04-01")  # closure of the last to close
    assert spell.closure_reason == "NFA"  # the referral closing last (ties: the later one)
    assert not spell.referral_nfa
    assert (spell.event, spell.duration_days, spell.next_referral_id) == (1, 1, "r5")
    assert ep.iloc[1].previous_referrals == 4


def test_open_case_has_no_episode_and_absorbs_later_referrals():
    ep, counts = one([
        dict(referral_date="2020-01-01", closure_date="2020-02-01", closure_reason="RC7"),
        dict(referral_date="2021-01-01", closure_date=None),
        dict(referral_date="2022-01-01", closure_date="2022-02-01", closure_reason="RC7"),
    ])
    assert counts.open_cases == 1 and counts.merged_overlapping == 1
    assert list(ep["referral_id"]) == ["r1"] and ep.iloc[0].event == 1


def test_referrals_after_extract_are_excluded_and_counted():
    ep, counts = one([
        dict(referral_date="2023-01-01", closure_date="2023-02-01", closure_reason="RC7"),
        dict(referral_date="2024-06-01", closure_date="2024-07-01", closure_reason="RC7"),
    ])
    assert counts.referrals_after_extract == 1
    assert len(ep) == 1 and ep.iloc[0].event == 0 and ep.iloc[0].end_date == EXTRACT


def test_closure_after_extract_means_open_at_extract():
    ep, counts = one([dict(referral_date="2024-03-01", closure_date="2024-05-01", closure_reason="RC7")])
    assert counts.closures_after_extract == 1 and counts.open_cases == 1 and ep.empty
    assert tuple(ep.columns) == EPISODE_COLUMNS


@pytest.mark.parametrize("reason, kind", [("RC2", "died"), ("RC5", "transferred")])
def test_death_and_transfer_are_competing_at_closure_and_not_at_risk(reason, kind):
    ep, counts = one([
        dict(referral_date="2020-01-01", closure_date="2020-02-01", closure_reason=reason),
        dict(referral_date="2020-06-01", closure_date="2020-07-01", closure_reason="RC7"),
    ])
    first = ep.iloc[0]
    assert (first.event, first.event_type, first.duration_days) == (2, kind, 0)
    assert first.end_date == T("2020-02-01")
    assert len(at_risk(ep)) == 1 and at_risk(ep).iloc[0].referral_id == "r2"
    assert getattr(counts, "not_at_risk_" + kind) == 1


def test_eighteenth_birthday_is_competing():
    kids = [dict(la_code="201", child_id="a", date_of_birth=T("2004-02-29"), sex="M", ethnicity="WBRI")]
    ep, counts = one([
        dict(referral_date="2021-01-01", closure_date="2021-06-01", closure_reason="RC7"),
        dict(referral_date="2022-03-05", closure_date="2022-04-01", closure_reason="RC7"),  # after 18
    ], children=kids)
    # born 29 February 2004: 18 on 1 March 2022 (2022 has no 29 February)
    first = ep.iloc[0]
    assert (first.event, first.event_type) == (2, "turned_18")
    assert first.end_date == T("2022-03-01")
    second = ep.iloc[1]  # closed when already 18: counted, no time at risk
    assert (second.event_type, second.duration_days) == ("turned_18", 0)
    assert counts.not_at_risk_adult == 1
    assert (ep["disability"] == "NONE").all()  # no disability column: NONE


def test_many_episodes_numbered_within_child_and_children_separate_by_council():
    rows = []
    for k in range(6):
        day = T("2016-01-01") + pd.Timedelta(days=200 * k)
        rows.append(dict(referral_id=f"r{k}", child_id="a", referral_date=day,
                         closure_date=day + pd.Timedelta(days=30), closure_reason="RC7"))
    rows.append(dict(referral_id="x1", child_id="a", la_code="202", referral_date=T("2016-06-01"),
                     closure_date=T("2016-07-01"), closure_reason="RC7"))
    ep = build_episodes(tables(rows, la_codes=("201", "202")))
    a = ep[ep.la_code == "201"]
    assert list(a.episode_number) == [1, 2, 3, 4, 5, 6]
    assert list(a.previous_referrals) == [0, 1, 2, 3, 4, 5]
    assert list(a.event) == [1, 1, 1, 1, 1, 0]
    assert (a.duration_days.iloc[:-1] == 170).all()
    b = ep[ep.la_code == "202"]
    assert len(b) == 1 and b.iloc[0].event == 0  # same pseudonym, other council: another child


def test_input_order_does_not_matter():
    tb = simulate_tables(400, seed=5)
    a = build_episodes(tb)
    shuffled = dict(tb)
    shuffled["referrals"] = tb["referrals"].sample(frac=1, random_state=1).reset_index(drop=True)
    b = build_episodes(shuffled)
    key = ["la_code", "child_id", "episode_number"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t["referrals"].assign(closure_date=T("2019-01-01")), "closes before it opens"),
        (lambda t: t["referrals"].assign(la_code="999"), "not in the councils table"),
        (lambda t: t["referrals"].drop(columns="primary_need"), "no column primary_need"),
    ],
)
def test_bad_input_is_a_plain_error(change, message):
    tb = tables([dict(referral_id="r1", child_id="a", referral_date="2020-01-01", closure_date="2020-02-01")])
    tb["referrals"] = change(tb)
    with pytest.raises(InputError, match=message):
        build_episodes(tb)


def test_unknown_child_is_counted_not_fatal():
    tb = tables([dict(referral_id="r1", child_id="zz", referral_date="2020-01-01", closure_date="2020-02-01")])
    tb["children"] = tb["children"].iloc[0:0]
    ep, counts = build_episodes(tb, with_counts=True)
    assert counts.unknown_child == 1 and np.isnan(ep.iloc[0].age_at_closure)


def _slow_reference(tb):
    """Row-by-row statement of the rules, for comparison with the vectorised build."""
    refs = tb["referrals"].copy()
    extract = T(tb["councils"]["extract_date"].iloc[0])
    dob = tb["children"].set_index("child_id")["date_of_birth"]
    refs = refs[refs.referral_date <= extract]
    out = []
    for child, g in refs.groupby("child_id"):
        g = g.sort_values(["referral_date", "referral_id"])
        spells = []
        for r in g.itertuples():
            close = r.closure_date
            if pd.isna(close) and r.referral_nfa:
                close = r.referral_date
            if pd.notna(close) and close > extract:
                close = pd.NaT
            if spells and (pd.isna(spells[-1]["close"]) or r.referral_date <= spells[-1]["close"]):
                s = spells[-1]
                if pd.isna(close) or pd.isna(s["close"]):
                    s["close"] = pd.NaT
                elif close >= s["close"]:
                    s["close"], s["reason"] = close, r.closure_reason
                continue
            spells.append(dict(start=r.referral_date, close=close, reason=r.closure_reason))
        b18 = dob[child] + pd.DateOffset(years=18)
        for i, s in enumerate(spells):
            if pd.isna(s["close"]):
                continue
            nxt = spells[i + 1]["start"] if i + 1 < len(spells) else None
            if s["reason"] in ("RC2", "RC5") or b18 <= s["close"]:
                end, ev = s["close"], 2
            elif nxt is not None and nxt < b18:
                end, ev = nxt, 1
            elif b18 <= extract:
                end, ev = b18, 2
            else:
                end, ev = extract, 0
            out.append((child, s["close"], end, ev))
    return pd.DataFrame(out, columns=["child_id", "closure_date", "end_date", "event"])


def test_vectorised_build_matches_row_by_row_rules():
    tb = simulate_tables(300, seed=11, start="2019-04-01", extract="2022-03-31", base_rate=1 / 200)
    ep = build_episodes(tb)
    ref = _slow_reference(tb)
    got = ep[["child_id", "closure_date", "end_date", "event"]]
    key = ["child_id", "closure_date"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True), check_dtype=False
    )
    assert (ep.event.isin([0, 1, 2])).all() and (ep.duration_days >= 0).all()
    assert (ep.loc[ep.event == 1, "duration_days"] > 0).all()


# --- DfE measure ---------------------------------------------------------------------------


def test_dfe_measure_counts_referrals_within_365_days_by_year_to_31_march():
    rows = [
        dict(referral_id="a1", child_id="a", referral_date="2021-04-01", closure_date="2021-04-10"),
        dict(referral_id="a2", child_id="a", referral_date="2022-03-31", closure_date="2022-04-05"),  # 364 days: yes
        dict(referral_id="a3", child_id="a", referral_date="2022-04-01", closure_date="2022-05-01"),  # 1 day: yes
        dict(referral_id="b1", child_id="b", referral_date="2021-05-01", closure_date="2021-05-02"),
        dict(referral_id="b2", child_id="b", referral_date="2022-05-01", closure_date="2022-05-02"),  # 365: yes
        dict(referral_id="b3", child_id="b", referral_date="2023-05-02", closure_date="2023-05-03"),  # 366: no
        dict(referral_id="c1", child_id="c", referral_date="2023-01-01", closure_date=None),
        dict(referral_id="c2", child_id="c", referral_date="2023-01-01", closure_date=None),  # same day: no
        dict(referral_id="c3", child_id="c", referral_date="2023-02-01", closure_date=None),  # open case still counts
    ]
    m = dfe_rereferral_measure(tables(rows)).set_index("year")
    assert m.loc[2022, ["referrals", "rereferrals"]].tolist() == [3, 1]  # a1 (no), b1 (no), a2 (yes)
    assert m.loc[2023, ["referrals", "rereferrals"]].tolist() == [5, 3]  # a3, b2, c3 yes; c1, c2 no
    assert m.loc[2024, ["referrals", "rereferrals"]].tolist() == [1, 0]


def test_dfe_measure_year_filter_completeness_and_published_figure():
    rows = [dict(referral_id=f"r{i}", child_id=f"k{i % 7}", referral_date=T("2019-04-01") + pd.Timedelta(days=40 * i),
                 closure_date=None) for i in range(40)]
    m = dfe_rereferral_measure(tables(rows))
    assert not m.set_index("year").loc[2020, "complete"]  # no 12 months to look back on
    assert m.set_index("year").loc[2021, "complete"]
    one_year = dfe_rereferral_measure(tables(rows), year=2021)
    assert list(one_year["year"]) == [2021]
    # the council's own published figure sits beside it (City of London, 201)
    from insightlib.reference import rereferral_rates

    pub = rereferral_rates().query("la_code == '201' and year == 2021")["rereferral_percent"].iloc[0]
    assert one_year["published_rate"].iloc[0] == pytest.approx(pub / 100)


def test_one_packed_sort_orders_referrals_as_the_three_key_lexsort():
    """Issue 17: order_by (one stable argsort of a packed key) is np.lexsort((closure, referral, child)),
    open cases (no closure) last within a day, ties kept in input order; too wide for 63 bits: lexsort."""
    from insightlib.ingest import referrals as ep_mod

    rng = np.random.default_rng(2)
    n = 20000
    key = rng.integers(-1, 3000, n)
    ref = rng.integers(15000, 17500, n)
    clo = np.where(rng.random(n) < 0.1, ep_mod.OPEN, ref + rng.integers(0, 300, n))
    assert np.array_equal(ep_mod.order_by(key, ref, clo), np.lexsort((clo, ref, key)))
    wide = key * (1 << 40)
    assert np.array_equal(ep_mod.order_by(wide, ref, clo), np.lexsort((clo, ref, wide)))


def test_at_risk_is_the_plain_filter_and_groupings_leave_their_input_alone():
    """at_risk filters column by column (no consolidation of the object columns at national size) and
    add_groupings copies shallowly: the same frames as ``.loc[duration > 0]`` and a deep copy gave."""
    from insightlib.analyses import rereferral
    from insightlib.simulate import survival as simulate_survival

    ep = build_episodes(simulate_survival.simulate_tables(800, seed=3))
    ep["flag"] = pd.array(np.arange(len(ep)) % 3 == 0, dtype="boolean")  # an extension dtype survives too
    ep["label"] = pd.Categorical(np.where(np.arange(len(ep)) % 2 == 0, "a", "b"))
    ep.index = ep.index + 7  # the index is kept, as .loc keeps it
    fast = at_risk(ep)
    pd.testing.assert_frame_equal(fast, ep.loc[ep["duration_days"] > 0])
    pd.testing.assert_frame_equal(at_risk(ep, renumber=True), ep.loc[ep["duration_days"] > 0].reset_index(drop=True))
    before = ep.copy()
    grouped = rereferral.add_groupings(ep)
    pd.testing.assert_frame_equal(ep, before)  # the input is untouched
    assert grouped["age_band"].notna().all() and set(grouped["referral_nfa"]) <= {"No further action", "Assessed"}
