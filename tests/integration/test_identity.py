"""Identity resolution and core.interactions on a real warehouse, scored against the generator's truth."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.generate import WorldConfig, generate
from omnifuse.generate.truth import attribution_accuracy, clustering_accuracy, truth_identifiers
from omnifuse.identity import resolve_identities
from omnifuse.interactions import build_interactions

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]


def _query(url, text, params=None) -> pd.DataFrame:
    with warehouse.transaction(url) as cur:
        cur.execute(text, params)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def _snapshot(url) -> tuple[pd.DataFrame, pd.DataFrame]:
    ident = _query(url, "select identifier_type, identifier, customer_id, rule, status, linked_customers, "
                        "first_seen, last_seen from core.identity_map order by 1, 2")
    inter = _query(url, "select * from core.interactions order by channel, event_key")
    return ident, inter


@pytest.fixture
def loaded(tiny_world, clean_warehouse):
    """The tiny world's three days loaded; returns the identity map and events after day 1 and after day 3."""
    run_day(DAYS[0], tiny_world, clean_warehouse)
    after_day1 = _snapshot(clean_warehouse)
    for day in DAYS[1:]:
        run_day(day, tiny_world, clean_warehouse)
    return after_day1, _snapshot(clean_warehouse)


def test_identity_matches_truth_and_events_reconcile_with_staging(tiny_world, clean_warehouse, loaded):
    _, (ident, inter) = loaded
    truth = truth_identifiers(tiny_world)
    clustering = clustering_accuracy(truth, ident)
    attribution = attribution_accuracy(truth, inter[["identifier_type", "identifier", "customer_id", "attribution"]])
    assert clustering["precision"] >= 0.99
    assert clustering["recall"] >= 0.75  # the evidence ceiling of three days (see bench/identity.py)
    assert attribution["attribution_accuracy"] >= 0.75
    assert ident.loc[ident["identifier_type"] == "customer_id", "rule"].eq("crm_merged").sum() >= 1

    # every staged event with an event date in the rebuilt window is in core.interactions once, or quarantined
    counts = _query(clean_warehouse, """
        with staged as (
            select event_ts from staging.web_events
            union all select event_ts from staging.mobile_events
            union all select event_ts from staging.social_interactions
            union all select event_ts from staging.store_sales
        )
        select
            (select count(*) from staged where event_ts < '2026-11-05'::timestamptz) as staged,
            (select count(*) from core.interactions) as built,
            (select count(*) from quarantine.interactions) as quarantined,
            (select count(*) from (select channel, event_key from core.interactions
                                   group by 1, 2 having count(*) > 1) d) as duplicated
    """).iloc[0]
    assert counts["staged"] > 0
    assert counts["staged"] == counts["built"] + counts["quarantined"]
    assert counts["duplicated"] == 0
    purchases = inter[inter["event_type"] == "purchase"]
    assert (purchases["revenue"] > 0).all() and (inter.loc[inter["event_type"] != "purchase", "revenue"] == 0).all()


def test_login_after_anonymous_browsing_reattributes_earlier_events(loaded):
    (ident1, inter1), (ident3, inter3) = loaded
    day1 = inter1[inter1["identifier_type"].isin(["cookie_id", "device_id"])]
    anonymous = set(day1.loc[day1["customer_id"].isna(), "identifier"])
    learnt = ident3[ident3["identifier"].isin(anonymous) & (ident3["status"] == "resolved")]
    assert len(learnt) > 0, "the tiny world should have identifiers that log in only after day 1"
    owner = dict(zip(learnt["identifier"], learnt["customer_id"], strict=True))
    before = inter1[inter1["identifier"].isin(owner)].set_index(["channel", "event_key"])
    after = inter3.set_index(["channel", "event_key"]).loc[before.index]
    assert before["customer_id"].isna().all()
    assert (after["customer_id"] == after["identifier"].map(owner)).all()
    assert (after["attribution"] == "identity_map").all()


def test_rerunning_a_day_leaves_identity_and_interactions_identical(clean_warehouse, loaded):
    _, (ident, inter) = loaded
    resolve_identities(DAYS[1], url=clean_warehouse)
    build_interactions(DAYS[1], url=clean_warehouse)
    resolve_identities(DAYS[2], url=clean_warehouse)
    build_interactions(DAYS[2], url=clean_warehouse)
    ident2, inter2 = _snapshot(clean_warehouse)
    pd.testing.assert_frame_equal(ident, ident2)
    pd.testing.assert_frame_equal(inter, inter2)


def test_shared_devices_never_merge_two_customers(tmp_path, clean_warehouse):
    cfg = WorldConfig(customers=300, products=80, days=2, start=date(2026, 11, 2), seed=5, shared_device_rate=0.4,
                      login_rate_mobile=0.95, sessions_per_customer_day=1.5)
    generate(cfg, tmp_path)
    for i in range(cfg.days):
        run_day(cfg.start + timedelta(days=i), tmp_path, clean_warehouse)
    ident = _query(clean_warehouse, "select * from core.identity_map")
    shared = ident[ident["status"] == "shared"]
    assert len(shared) > 0 and shared["customer_id"].isna().all()
    truth = truth_identifiers(tmp_path)
    people = truth[truth["identifier_type"] == "customer_id"].set_index("identifier")["person_id"]
    cust = ident[ident["identifier_type"] == "customer_id"]
    # no canonical customer holds two real people
    assert cust.groupby("customer_id")["identifier"].agg(lambda ids: people[ids].nunique()).max() == 1
    assert clustering_accuracy(truth, ident)["precision"] == 1.0
