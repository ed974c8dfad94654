"""Publishing: atomic swaps under concurrent readers, the BI role, idempotence, output checks, stable segments."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta

import psycopg2
import psycopg2.errors
import pytest
from omnifuse import warehouse
from omnifuse.config import load_settings
from omnifuse.daily import run_day
from omnifuse.mart import PublishCheckError, publish_date, publish_mart
from omnifuse.training_run import retrain

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
MART = ("customer_recommendations", "recommendation_contributions", "similar_products", "bought_together",
        "customer_segments", "channel_daily", "model_performance", "publish_log", "data_quality_daily",
        "customer_recommendations_history")
HISTORY_TABLES = ("customer_recommendations", "customer_segments")


@pytest.fixture(scope="module")
def published(tiny_world, warehouse_url, tmp_path_factory):
    import os

    os.environ["OMNIFUSE_MODEL_STORE"] = str(tmp_path_factory.mktemp("models"))
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    for day in DAYS:
        run_day(day, tiny_world, warehouse_url)
    retrain(D, url=warehouse_url, require_quality=False)
    publish_date(D, url=warehouse_url)
    yield warehouse_url
    del os.environ["OMNIFUSE_MODEL_STORE"]


def _rows(url, query, params=None):
    with warehouse.transaction(url) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def test_recommendations_obey_the_contract(published):
    per_customer = _rows(published, "select customer_id, count(*), max(rank) from mart.customer_recommendations "
                                    "group by 1")
    assert len(per_customer) > 100
    assert all(n == hi and n <= 20 for _, n, hi in per_customer)
    reasons = {r for (r,) in _rows(published, "select distinct reason from mart.customer_recommendations")}
    assert len(reasons) > 3
    assert _rows(published, "select count(*) from mart.customer_recommendations r join core.products p "
                            "using (product_id) where p.stock <= 0") == [(0,)]
    comment = _rows(published, "select obj_description('mart.customer_recommendations'::regclass, 'pg_class')")
    assert comment[0][0] and "Top-K" in comment[0][0]


def test_readers_only_ever_see_a_complete_table_during_publish(published):
    before = _rows(published, "select count(*) from mart.customer_recommendations")[0][0]
    seen, errors, stop = [], [], threading.Event()

    def reader():
        conn = psycopg2.connect(published)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute("select count(*), min(business_date), max(business_date) "
                                "from mart.customer_recommendations")
                    seen.append(cur.fetchone())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    publish_date(D + timedelta(days=1), url=published)  # same champion, next label: new rows are distinguishable
    stop.set()
    for t in threads:
        t.join()
    publish_date(D, url=published, force=True)
    assert not errors, errors
    assert len(seen) > 10
    states = {(n, lo, hi) for n, lo, hi in seen}
    assert all(lo == hi for _, lo, hi in states)
    assert {lo for _, lo, _ in states} <= {D, D + timedelta(days=1)}
    assert all(n == before for n, _, _ in states)  # same customers either way: never a partial table


def test_bi_role_reads_mart_only(published):
    role, password = warehouse.bi_credentials()
    dsn = psycopg2.extensions.parse_dsn(published)
    dsn.update(user=role, password=password)
    conn = psycopg2.connect(**dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in MART:
                cur.execute(f"select count(*) from mart.{table}")  # noqa: S608 - fixed names
                assert cur.fetchone()[0] >= 0
            for statement in ("select * from core.customers limit 1", "select * from ml.model_registry limit 1",
                              "select * from raw.web_events limit 1",
                              "insert into mart.publish_log (business_date, table_name, rows_published, "
                              "swap_lock_ms) values (current_date, 'x', 0, 0)",
                              "delete from mart.customer_recommendations",
                              "create table mart.mine (x int)"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        conn.close()


def test_republishing_a_date_is_idempotent(published):
    recs = "select * from mart.customer_recommendations order by customer_id, rank"
    first = _rows(published, recs)
    publish_mart(D, url=published)
    assert _rows(published, recs) == first
    history = _rows(published, "select count(*) from mart.customer_recommendations_history where business_date = %s",
                    (D,))
    assert history == [(len(first),)]


def test_failing_output_check_leaves_the_previous_table(published):
    recs = "select * from mart.customer_recommendations order by customer_id, rank"
    before = _rows(published, recs)
    with warehouse.transaction(published) as cur:  # a duplicate product for one customer
        cur.execute("insert into ml.recommendation_batches select business_date, batch, customer_id, rank + 100, "
                    "product_id, score - 1, reason, contributing_models, model_version from ml.recommendation_batches "
                    "where business_date = %s and rank = 1 limit 1", (D,))
    try:
        with pytest.raises(PublishCheckError, match="duplicate product"):
            publish_mart(D, url=published)
        assert _rows(published, recs) == before
        assert _rows(published, "select count(*) from pg_tables where tablename like '%%__next'") == [(0,)]
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("delete from ml.recommendation_batches where business_date = %s and rank > 100", (D,))


def test_segments_are_stable_when_the_data_barely_changes(published):
    q = "select customer_id, segment from mart.customer_segments"
    today = dict(_rows(published, q))
    publish_mart(D + timedelta(days=1), url=published)  # one day later: recency shifts by a day, nothing else
    tomorrow = dict(_rows(published, q))
    publish_mart(D, url=published, force=True)
    same = sum(today[c] == tomorrow.get(c) for c in today) / len(today)
    assert len(set(today.values())) >= 3
    assert same >= 0.9, f"only {same:.0%} of customers kept their segment"


# --- every customer, evidence, contributions (issue 12 parts 5-6) -------------------------------------------------

def test_every_known_customer_has_recommendations_with_fallbacks_labelled(published):
    uncovered = _rows(published, "select count(*) from core.customers c where not exists (select 1 from "
                                 "mart.customer_recommendations r where r.customer_id = c.customer_id)")
    assert uncovered == [(0,)]
    sources = dict(_rows(published, "select source, count(distinct customer_id) from mart.customer_recommendations "
                                    "group by 1"))
    assert sources.get("personalised", 0) > 100 and sum(n for s, n in sources.items() if s != "personalised") > 0
    # a customer's list is personalised or a fallback, never both; a fallback says which favourites it is
    assert _rows(published, "select count(*) from (select customer_id from mart.customer_recommendations "
                            "group by 1 having bool_or(source = 'personalised') and bool_or(source <> 'personalised')"
                            ") x") == [(0,)]
    reasons = _rows(published, "select source, reason from mart.customer_recommendations "
                               "where source <> 'personalised'")
    prefix = {"fallback_segment": "popular in your segment (", "fallback_channel": "popular with ",
              "fallback_store": "best seller at your store (", "fallback_popular": "popular right now"}
    assert all(r.startswith(prefix[s]) for s, r in reasons)
    known, personalised, fallback = _rows(
        published, "select customers_known, personalised_share, fallback_share from mart.publish_log "
                   "where table_name = 'mart.customer_recommendations' order by published_at desc limit 1")[0]
    assert known == _rows(published, "select count(*) from core.customers")[0][0]
    assert personalised > 0 and fallback > 0 and abs(personalised + fallback - 1) < 1e-9
    print(f"coverage of {known} known customers: personalised {personalised:.1%}, fallback {fallback:.1%}, "
          f"by source {sources}")


def test_reasons_name_their_evidence(published):
    rows = _rows(published, "select r.reason, p.name, r.customer_id, r.evidence_product_id "
                            "from mart.customer_recommendations r join core.products p "
                            "on p.product_id = r.evidence_product_id")
    assert len(rows) > 100
    assert all(r.endswith(name) and r.startswith(("because you bought", "because you viewed", "often bought with"))
               for r, name, _, _ in rows)
    # the evidence is the customer's own product
    assert _rows(published, "select count(*) from mart.customer_recommendations r where r.evidence_product_id is not "
                            "null and not exists (select 1 from core.interactions i where i.customer_id = "
                            "r.customer_id and i.product_id = r.evidence_product_id)") == [(0,)]
    assert _rows(published, "select count(*) from mart.customer_recommendations where evidence_product_id is null "
                            "and source = 'personalised' and reason like 'because%%'") == [(0,)]


def test_contributions_are_weight_times_score_and_add_up_to_the_fused_score(published):
    import numpy as np
    from omnifuse import fusion, reranker
    from omnifuse.recommendations import champion_version, load_model, model_contributions

    missing = _rows(published, "select count(*) from mart.customer_recommendations r where r.source = 'personalised' "
                               "and not exists (select 1 from mart.recommendation_contributions c "
                               "where c.customer_id = r.customer_id and c.rank = r.rank)")
    assert missing == [(0,)]
    assert _rows(published, "select count(*) from mart.recommendation_contributions "
                            "where abs(contribution - weight * normalised_score) > 1e-9 or method = ''") == [(0,)]
    comment = _rows(published, "select obj_description('mart.recommendation_contributions'::regclass, 'pg_class')")
    assert comment[0][0] and "weight x normalised_score" in comment[0][0]
    # before business rules, the contributions add up to the fused score the champion ranks by
    fused, data = load_model(champion_version(published), published)
    if fused.variant == "stacked":
        pytest.skip("the stacked ranker also scores non-model features")
    users = np.arange(min(200, data.n_users))
    exclude = data.not_recommendable(load_settings().recommend_repeats)
    if fused.variant == "rerank":
        cands = reranker.candidates(data, users, exclude, fused.rerank, fused.use, fused.scorers(data))
    else:
        ranking = {n: fused.models[n] for n in (getattr(fused, "use", None) or fused.models)}
        cands = fusion.candidates(ranking, data, users, exclude, fused.n_candidates)
    score = fusion.variant_scores(fused.variant, cands, fused.learner)
    recs, vals = fusion.rank(cands, score, len(users), 10)
    _, weights, normalised = model_contributions(fused, data, users, recs, exclude)
    learnt = fused.variant in ("linear", "rerank")
    intercept = float(getattr(fused.learner, "intercept", 0.0) if learnt else 0.0)
    total = (normalised * weights[None, None, :]).sum(axis=2) + intercept
    ok = recs >= 0
    assert np.allclose(total[ok], vals[ok], atol=1e-3), fused.variant


# --- trust (issue 16 finding 5; scenarios 13, 24) -----------------------------------------------------------------

SNAPSHOT = ("customer_recommendations", "recommendation_contributions", "similar_products", "bought_together",
            "customer_segments", "channel_daily", "model_performance", "publish_log",
            "customer_recommendations_history", "customer_segments_history")


def _marts(url) -> dict:
    return {t: _rows(url, f"select * from mart.{t} order by 1, 2, 3, 4")  # noqa: S608 - fixed names
            for t in SNAPSHOT}


def test_a_failed_output_check_leaves_every_mart_table_intact(published):
    before = _marts(published)
    with warehouse.transaction(published) as cur:  # an out-of-stock product slips into the scored rows
        cur.execute("select product_id from ml.recommendation_batches where business_date = %s and rank = 1 limit 1",
                    (D,))
        product = cur.fetchone()[0]
        cur.execute("update core.products set stock = 0 where product_id = %s returning stock", (product,))
    try:
        with pytest.raises(PublishCheckError, match="out of stock"):
            publish_mart(D, url=published)
        assert _marts(published) == before
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("update core.products set stock = 5 where product_id = %s", (product,))


@pytest.mark.parametrize("damage", ["corrupt dataset", "missing fused model"])
def test_a_missing_or_corrupt_artifact_fails_clearly_and_keeps_the_marts(published, damage):
    import shutil
    from pathlib import Path

    from omnifuse.recommendations import ModelArtifactError, artifact_folder, champion_version

    folder = artifact_folder(champion_version(published), published)
    target = folder / ("dataset.npz" if damage == "corrupt dataset" else "fused")
    aside = target.with_name(target.name + ".aside")
    shutil.move(target, aside)
    if damage == "corrupt dataset":
        Path(target).write_bytes(b"not a numpy archive")
    before = _marts(published)
    try:
        with pytest.raises(ModelArtifactError, match=str(target.name)) as failed:
            publish_date(D, url=published)
        assert "nothing was published" in str(failed.value) and "omnifuse_retrain" in str(failed.value)
        assert _marts(published) == before
    finally:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(aside, target)


def test_an_older_date_never_replaces_newer_marts_unless_forced(published):
    newer = D + timedelta(days=1)
    live = "select distinct business_date from mart.customer_recommendations"
    try:
        publish_mart(newer, url=published)
        assert _rows(published, live) == [(newer,)]
        summary = publish_mart(D, url=published)  # e.g. a backfill finishing after today's run
        assert not summary["live"] and _rows(published, live) == [(newer,)]
        assert _rows(published, "select live, note like 'history only%%' from mart.publish_log "
                                "where business_date = %s and table_name = 'mart.customer_recommendations' "
                                "order by published_at desc limit 1", (D,)) == [(False, True)]
        assert _rows(published, "select count(*) > 0 from mart.customer_recommendations_history "
                                "where business_date = %s", (D,)) == [(True,)]
        assert _rows(published, "select count(*) from pg_tables where tablename like '%%__next'") == [(0,)]
    finally:
        forced = publish_mart(D, url=published, force=True)
    assert forced["live"] and _rows(published, live) == [(D,)]


def test_one_run_serves_the_model_version_it_resolved_once(published):
    """A retrain promoting another champion during the run changes nothing in what the run publishes."""
    from omnifuse.recommendations import champion_version, plan_batches, score_batch

    version = champion_version(published)
    batches = plan_batches(D, version, published)
    with warehouse.transaction(published) as cur:  # a new champion appears mid-run (artifact path irrelevant)
        cur.execute("update ml.model_registry set status = 'retired' where model_version = %s", (version,))
        cur.execute("insert into ml.model_registry (model_version, run_id, business_date, fusion_variant, base_models, "
                    "data_window, metrics, artifact_path, status, reason) select 'intruder', run_id, business_date, "
                    "fusion_variant, base_models, data_window, metrics, '/nonexistent', 'champion', 'test' "
                    "from ml.model_registry where model_version = %s", (version,))
    try:
        for batch in batches:
            score_batch(D, batch, version, url=published)
        summary = publish_mart(D, model_version=version, url=published)
        assert summary["model_version"] == version
        assert _rows(published, "select distinct model_version from mart.customer_recommendations") == [(version,)]
        assert _rows(published, "select distinct model_version from mart.recommendation_contributions") == [(version,)]
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("update ml.model_registry set status = 'retired' where model_version = 'intruder'")
            cur.execute("delete from ml.model_registry where model_version = 'intruder'")
            cur.execute("update ml.model_registry set status = 'champion' where model_version = %s", (version,))


def test_a_retried_batch_never_duplicates(published):
    from omnifuse.recommendations import champion_version, score_batch

    version = champion_version(published)
    key = "select count(*), count(distinct (customer_id, rank)) from ml.recommendation_batches where business_date = %s"
    before = _rows(published, key, (D,))
    threads = [threading.Thread(target=score_batch, args=(D, 0, version), kwargs={"url": published})
               for _ in range(2)]  # a retry racing its zombie
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _rows(published, key, (D,)) == before and before[0][0] == before[0][1]
    with pytest.raises(psycopg2.errors.UniqueViolation), warehouse.transaction(published) as cur:
        cur.execute("insert into ml.recommendation_batches select * from ml.recommendation_batches "
                    "where business_date = %s limit 1", (D,))


# --- returns and usable dates (issue 11 part 2, issue 16 finding 2) -----------------------------------------------

def test_channel_daily_shows_gross_sales_returns_and_net_revenue(published):
    with warehouse.transaction(published) as cur:  # a purchase returned in full, as the lead's ingest records it
        cur.execute("insert into core.interactions select event_date, channel, event_key || ':return', customer_id, "
                    "identifier_type, identifier, attribution, product_id, 'return', event_ts, -quantity, -revenue, "
                    "session_key, store_id, is_late, source_table, _arrival_date, _source_file, _line_no "
                    "from core.interactions where event_type = 'purchase' and revenue > 0 and event_date = %s "
                    "order by event_key limit 1 returning channel, -revenue", (D,))
        channel, returned = cur.fetchone()
    try:
        publish_mart(D, url=published)
        gross, returns, net, revenue = _rows(
            published, "select gross_sales, returns, net_revenue, revenue from mart.channel_daily "
                       "where event_date = %s and channel = %s", (D, channel))[0]
        assert returns == round(returned, 2) and net == gross - returns and revenue == net
        assert _rows(published, "select count(*) from mart.channel_daily where net_revenue <> gross_sales - returns"
                     ) == [(0,)]
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("delete from core.interactions where event_type = 'return'")
        publish_mart(D, url=published)


def test_segments_and_channel_metrics_skip_unusable_dates(published):
    blocked = DAYS[0]
    with warehouse.transaction(published) as cur:
        cur.execute("select pg_get_viewdef('core.usable_interactions'::regclass)")
        assert "usable_dates" in cur.fetchone()[0]
        cur.execute("alter view core.usable_interactions rename to usable_interactions_real")
        cur.execute("create view core.usable_interactions as select * from core.usable_interactions_real "
                    "where event_date <> %s", (blocked,))
    try:
        publish_mart(D, url=published)
        assert _rows(published, "select count(*) from mart.channel_daily where event_date = %s", (blocked,)) == [(0,)]
        assert _rows(published, "select count(*) > 0 from mart.channel_daily") == [(True,)]
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("drop view core.usable_interactions")
            cur.execute("alter view core.usable_interactions_real rename to usable_interactions")
        publish_mart(D, url=published)


def test_a_customer_the_champion_does_not_know_gets_their_segments_favourites(published):
    """A customer active since the champion was trained (not in its batches) falls back to their segment."""
    customer, segment = _rows(published, "select customer_id, segment from mart.customer_segments s where exists "
                                         "(select 1 from ml.recommendation_batches b where b.business_date = %s "
                                         "and b.customer_id = s.customer_id) order by 1 limit 1", (D,))[0]
    with warehouse.transaction(published) as cur:
        cur.execute("create table public.kept_batch as select * from ml.recommendation_batches "
                    "where business_date = %s and customer_id = %s", (D, customer))
        cur.execute("delete from ml.recommendation_batches where business_date = %s and customer_id = %s",
                    (D, customer))
    try:
        publish_mart(D, url=published)
        rows = _rows(published, "select source, reason, contributing_models from mart.customer_recommendations "
                                "where customer_id = %s order by rank", (customer,))
        assert rows and {s for s, _, _ in rows} == {"fallback_segment"}
        assert all(r == f"popular in your segment ({segment})" and m == [] for _, r, m in rows)
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("insert into ml.recommendation_batches select * from public.kept_batch")
            cur.execute("drop table public.kept_batch")
    publish_mart(D, url=published)


def test_published_lists_hold_new_products_unless_repeats_are_asked_for(published, monkeypatch):
    """OMNIFUSE_RECOMMEND_REPEATS=0 (default): no product the customer bought in the window is recommended;
    =1: products customers buy again may come back."""
    bought = ("select count(*) from mart.customer_recommendations as r where exists ("
              "select 1 from core.usable_interactions as i where i.customer_id = r.customer_id "
              "and i.product_id = r.product_id and i.event_type = 'purchase' and i.event_date <= %s)")
    assert _rows(published, bought, (D,)) == [(0,)]
    monkeypatch.setenv("OMNIFUSE_RECOMMEND_REPEATS", "1")
    try:
        publish_date(D, url=published)
        assert _rows(published, bought, (D,))[0][0] > 0
    finally:
        monkeypatch.delenv("OMNIFUSE_RECOMMEND_REPEATS")
        publish_date(D, url=published)
    assert _rows(published, bought, (D,)) == [(0,)]


# --- history by partition attach (issue 15) -----------------------------------------------------------------------

def _history_partitions(url, table):
    return dict(_rows(url, "select pg_get_expr(c.relpartbound, c.oid), c.relname from pg_inherits i "
                           "join pg_class c on c.oid = i.inhrelid where i.inhparent = %s::regclass",
                      (f"mart.{table}_history",)))


def test_history_is_the_published_table_attached_not_a_copy(published):
    """The live table is the history partition of its date; a newer date retires it, with the same rows, to
    <table>_history_p<date>; re-publishing either date replaces that date's partition, never duplicates it."""
    newer = D + timedelta(days=1)
    recs = "select * from mart.customer_recommendations order by customer_id, rank"
    hist = ("select business_date, customer_id, rank, product_id, score, reason, contributing_models, model_version, "
            "source, evidence_product_id from mart.customer_recommendations_history where business_date = %s "
            "order by customer_id, rank")
    live_cols = ("select business_date, customer_id, rank, product_id, score, reason, contributing_models, "
                 "model_version, source, evidence_product_id from mart.customer_recommendations "
                 "order by customer_id, rank")
    segments = "select * from mart.customer_segments order by customer_id"
    publish_mart(D, url=published)
    live_d, segments_d = _rows(published, live_cols), _rows(published, segments)
    try:
        for table in HISTORY_TABLES:
            assert _history_partitions(published, table)[f"FOR VALUES IN ('{D}')"] == table
        assert _rows(published, hist, (D,)) == live_d

        publish_mart(newer, url=published)
        for table in HISTORY_TABLES:
            parts = _history_partitions(published, table)
            assert parts[f"FOR VALUES IN ('{newer}')"] == table
            assert parts[f"FOR VALUES IN ('{D}')"] == f"{table}_history_p{D:%Y%m%d}"
        assert _rows(published, hist, (D,)) == live_d  # the retired live table, rows untouched
        assert _rows(published, "select * from mart.customer_segments_history where business_date = %s "
                                "order by customer_id", (D,)) == segments_d
        assert _rows(published, "select count(*) from pg_indexes where tablename = %s",
                     (f"customer_recommendations_history_p{D:%Y%m%d}",)) == [(0,)]  # history keeps no index
        newer_rows = _rows(published, recs)

        publish_mart(newer, url=published)  # re-publishing the live date: its partition is replaced
        assert _rows(published, recs) == newer_rows
        assert _rows(published, "select count(*) from mart.customer_recommendations_history "
                                "where business_date = %s", (newer,)) == [(len(newer_rows),)]
        summary = publish_mart(D, url=published)  # history only: the older date's partition is replaced
        assert not summary["live"] and _rows(published, recs) == newer_rows
        assert _rows(published, hist, (D,)) == live_d
        for table in HISTORY_TABLES:
            assert _history_partitions(published, table)[f"FOR VALUES IN ('{D}')"] == f"{table}_history_p{D:%Y%m%d}"
        assert _rows(published, "select count(*) from pg_tables where tablename like '%%\\_\\_next' "
                                "or tablename like '%%\\_\\_old'") == [(0,)]
    finally:
        publish_mart(D, url=published, force=True)
    # forced back: D is live (and its own history partition) again, newer stays in history
    assert _rows(published, live_cols) == live_d
    parts = _history_partitions(published, "customer_recommendations")
    assert parts[f"FOR VALUES IN ('{D}')"] == "customer_recommendations"
    assert parts[f"FOR VALUES IN ('{newer}')"] == f"customer_recommendations_history_p{newer:%Y%m%d}"


def test_history_partitions_past_retention_are_dropped(published, monkeypatch):
    later = D + timedelta(days=3)
    monkeypatch.setenv("OMNIFUSE_MART_RETENTION_DAYS", "1")
    try:
        publish_mart(later, url=published)
        dates = _rows(published, "select distinct business_date from mart.customer_recommendations_history")
        assert {d for (d,) in dates} == {later}  # D and D+1 are older than later - 1
    finally:
        monkeypatch.delenv("OMNIFUSE_MART_RETENTION_DAYS")
        publish_mart(D, url=published, force=True)
    assert _rows(published, "select distinct business_date from mart.customer_recommendations") == [(D,)]


def test_migration_0017_turns_a_copied_history_into_an_attached_one(published):
    """A warehouse published the old way (live table apart, its date copied into history) is converted."""
    from omnifuse.warehouse import migrations

    migration = next(m for m in migrations() if m.version == 17)
    live = _rows(published, "select * from mart.customer_recommendations order by customer_id, rank")
    with warehouse.transaction(published) as cur:  # back to the old layout: the live date's history is a copy
        for table in HISTORY_TABLES:
            part = f"{table}_history_p{D:%Y%m%d}"
            cur.execute(f"alter table mart.{table}_history detach partition mart.{table}")  # noqa: S608 - fixed
            cur.execute(f"alter table mart.{table} drop constraint {table}_one_date")  # noqa: S608
            cur.execute(f"create table mart.{part} partition of mart.{table}_history for values in ('{D}')")  # noqa: S608
            cur.execute(f"insert into mart.{part} select * from mart.{table}")  # noqa: S608
    with warehouse.transaction(published) as cur:
        cur.execute(migration.text)
    for table in HISTORY_TABLES:
        assert _history_partitions(published, table)[f"FOR VALUES IN ('{D}')"] == table
        assert _rows(published, "select count(*) from pg_tables where tablename = %s",
                     (f"{table}_history_p{D:%Y%m%d}",)) == [(0,)]
    assert _rows(published, "select * from mart.customer_recommendations order by customer_id, rank") == live
    publish_mart(D, url=published)  # and publishing goes on from there
    assert _rows(published, "select count(*) from mart.customer_recommendations_history where business_date = %s",
                 (D,)) == [(len(live),)]


@pytest.mark.parametrize(("plant", "check"), [
    ("update ml.recommendation_batches set rank = rank + 30 where business_date = %(d)s and customer_id = "
     "(select min(customer_id) from ml.recommendation_batches where business_date = %(d)s) and rank = "
     "(select max(rank) from ml.recommendation_batches where business_date = %(d)s and customer_id = "
     "(select min(customer_id) from ml.recommendation_batches where business_date = %(d)s))",
     "ranks not 1..n without gaps"),
    ("update ml.recommendation_batches set score = score + 100 where business_date = %(d)s and rank = 2 and "
     "customer_id = (select min(customer_id) from ml.recommendation_batches where business_date = %(d)s)",
     "score increases with rank"),
])
def test_output_checks_catch_rank_gaps_and_increasing_scores(published, plant, check):
    """The one-pass checks (issue 15) still name each broken rule; nothing is published."""
    recs = "select * from mart.customer_recommendations order by customer_id, rank"
    before = _rows(published, recs)
    with warehouse.transaction(published) as cur:
        cur.execute("create table public.kept_batches as select * from ml.recommendation_batches "
                    "where business_date = %s", (D,))
        cur.execute(plant, {"d": D})
        assert cur.rowcount == 1
    try:
        with pytest.raises(PublishCheckError, match=check):
            publish_mart(D, url=published)
        assert _rows(published, recs) == before
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("delete from ml.recommendation_batches where business_date = %s", (D,))
            cur.execute("insert into ml.recommendation_batches select * from public.kept_batches")
            cur.execute("drop table public.kept_batches")


def test_model_performance_shows_each_base_models_tuned_choice(published):
    """The hyper-parameters chosen on the validation slice reach BI with their score and the trials behind them."""
    rows = _rows(published, "select distinct p.model_name, p.params, p.valid_ndcg, p.trials_run, p.trials_skipped "
                            "from mart.model_performance as p where p.params is not null")
    chosen = _rows(published, "select model_name, params, valid_ndcg from ml.tuning_trials where chosen")
    assert sorted((m, json.dumps(p, sort_keys=True), v) for m, p, v, _, _ in rows) == sorted(
        (m, json.dumps(p, sort_keys=True), v) for m, p, v in chosen)
    counts = dict(_rows(published, "select model_name, count(*) from ml.tuning_trials group by model_name"))
    assert counts and all(run >= 1 and run + skipped == counts[m] for m, _, _, run, skipped in rows)
    # fusion variants have no grid: their rows carry no tuning
    assert _rows(published, "select count(*) from mart.model_performance where model_name like 'fusion%%' "
                            "and params is not null") == [(0,)]
