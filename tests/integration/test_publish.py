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
from psycopg2 import sql

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
OLDER = DAYS[1]  # a date with data and a champion trained through it, older than the live D
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
    publish_date(D, url=published)  # a re-publish of the live date: the same customers, rows replaced
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(seen) > 10
    states = {(n, lo, hi) for n, lo, hi in seen}
    assert {(lo, hi) for _, lo, hi in states} == {(D, D)}
    assert all(n == before for n, _, _ in states)  # never a partial or an empty table


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
    """Tomorrow's segments (recency shifts by a day, nothing else) keep today's names: built for D + 1 in a
    transaction that is rolled back (D + 1 has no data to publish)."""
    from omnifuse.segments import build_segments

    q = "select customer_id, segment from mart.customer_segments"
    today = dict(_rows(published, q))
    conn = warehouse.connect(published)
    try:
        with conn.cursor() as cur:
            frame = build_segments(cur, D + timedelta(days=1), load_settings())
        conn.rollback()
    finally:
        conn.close()
    tomorrow = dict(zip(frame["customer_id"], frame["segment"], strict=True))
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
    live = "select distinct business_date from mart.customer_recommendations"
    try:
        assert _rows(published, live) == [(D,)]
        summary = publish_mart(OLDER, url=published)  # e.g. a backfill finishing after today's run
        assert not summary["live"] and _rows(published, live) == [(D,)]
        assert _rows(published, "select live, note like 'history only%%' from mart.publish_log "
                                "where business_date = %s and table_name = 'mart.customer_recommendations' "
                                "order by published_at desc limit 1", (OLDER,)) == [(False, True)]
        assert _rows(published, "select count(*) > 0 from mart.customer_recommendations_history "
                                "where business_date = %s", (OLDER,)) == [(True,)]
        assert _rows(published, "select count(*) from pg_tables where tablename like '%%__next'") == [(0,)]
        forced = publish_mart(OLDER, url=published, force=True)
        assert forced["live"] and _rows(published, live) == [(OLDER,)]
    finally:
        again = publish_mart(D, url=published)  # the newer date is live again, without force
    assert again["live"] and _rows(published, live) == [(D,)]


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
    # a purchase returned in full, as the ingest records it, in the validated build that every reader reads
    with warehouse.transaction(published) as cur:
        cur.execute("insert into core.validated_interactions select event_date, channel, event_key || ':return', "
                    "customer_id, identifier_type, identifier, attribution, product_id, 'return', event_ts, "
                    "-quantity, -revenue, session_key, store_id, is_late, source_table, _arrival_date, _source_file, "
                    "_line_no from core.validated_interactions where event_type = 'purchase' and revenue > 0 "
                    "and event_date = %s order by event_key limit 1 returning channel, -revenue", (D,))
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
            cur.execute("delete from core.validated_interactions where event_type = 'return'")
        publish_mart(D, url=published)


def test_segments_and_channel_metrics_skip_unusable_dates(published):
    """A real failed gate (absurd quantities planted in the first day's staging partition, re-gated): the date
    keeps its validated build (verdicts per build) until the next day's run rebuilds it without that batch; then
    it is unusable in the real core.usable_dates, and the published segments and channel metrics leave it out."""
    from omnifuse.interactions import build_interactions
    from omnifuse.quality import QualityGateError, run_gate

    def rebuild_next_day() -> None:
        build_interactions(DAYS[1], url=published)
        run_gate("core", DAYS[1], url=published, run_id="rebuilt")

    blocked = DAYS[0]
    partition = sql.Identifier("staging", f"store_sales_p{blocked:%Y%m%d}")
    only_then = ("select count(*) from (select customer_id from core.interactions where customer_id is not null "
                 "group by 1 having bool_and(event_date = %s)) as c where c.customer_id in "
                 "(select customer_id from mart.customer_segments)")
    assert _rows(published, only_then, (blocked,))[0][0] > 0  # customers seen on the blocked date only
    assert _rows(published, "select count(*) from mart.channel_daily where event_date = %s", (blocked,))[0][0] > 0
    with warehouse.transaction(published) as cur:
        cur.execute(sql.SQL("create table public.kept_quantities as select _source_file, _line_no, quantity from {} "
                            "where _line_no < 5").format(partition))
        cur.execute(sql.SQL("update {} set quantity = 80995 where _line_no < 5").format(partition))
    try:
        with pytest.raises(QualityGateError, match="store_sales"):
            run_gate("staging", blocked, url=published, run_id="blocked")
        assert blocked in {d for (d,) in _rows(published, "select event_date from core.usable_dates")}
        rebuild_next_day()  # its build now lacks the blocked batch
        assert blocked not in {d for (d,) in _rows(published, "select event_date from core.usable_dates")}
        publish_mart(D, url=published)
        assert _rows(published, "select count(*) from mart.channel_daily where event_date = %s", (blocked,)) == [(0,)]
        assert _rows(published, "select count(*) > 0 from mart.channel_daily") == [(True,)]
        assert _rows(published, only_then, (blocked,)) == [(0,)]
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute(sql.SQL("update {} as s set quantity = k.quantity from public.kept_quantities as k "
                                "where (s._source_file, s._line_no) = (k._source_file, k._line_no)").format(partition))
            cur.execute("drop table public.kept_quantities")
        run_gate("staging", blocked, url=published, run_id="unblocked")
        rebuild_next_day()
        publish_mart(D, url=published)
    assert blocked in {d for (d,) in _rows(published, "select event_date from core.usable_dates")}


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


# --- history by partition, live rows replaced in place (issues 15, 23) ---------------------------------------------

def _history_partitions(url, table):
    return dict(_rows(url, "select pg_get_expr(c.relpartbound, c.oid), c.relname from pg_inherits i "
                           "join pg_class c on c.oid = i.inhrelid where i.inhparent = %s::regclass",
                      (f"mart.{table}_history",)))


def _relation(url, name):
    return _rows(url, "select to_regclass(%s)::oid", (f"mart.{name}",))[0][0]


def test_history_keeps_each_dates_rows_and_the_live_table_stays_one_relation(published):
    """Each date's rows are in its own history partition (<table>_history_p<date>, no index); the live table is
    one relation, never a partition, whose rows a publish replaces; re-publishing a date replaces its history
    rows inside the same partition, never duplicates them."""
    recs = "select * from mart.customer_recommendations order by customer_id, rank"
    hist = "select * from mart.customer_recommendations_history where business_date = %s order by customer_id, rank"
    segments = "select * from mart.customer_segments order by customer_id"
    publish_mart(D, url=published)
    live_d, segments_d = _rows(published, recs), _rows(published, segments)
    relations = {t: _relation(published, t) for t in (*HISTORY_TABLES, "channel_daily")}
    try:
        for table in HISTORY_TABLES:
            assert _history_partitions(published, table)[f"FOR VALUES IN ('{D}')"] == f"{table}_history_p{D:%Y%m%d}"
            assert table not in _history_partitions(published, table).values()
        assert _rows(published, hist, (D,)) == live_d
        assert _rows(published, "select * from mart.customer_segments_history where business_date = %s "
                                "order by customer_id", (D,)) == segments_d
        assert _rows(published, "select count(*) from pg_indexes where tablename = %s",
                     (f"customer_recommendations_history_p{D:%Y%m%d}",)) == [(0,)]  # history keeps no index
        partition_d = _relation(published, f"customer_recommendations_history_p{D:%Y%m%d}")

        summary = publish_mart(OLDER, url=published, force=True)
        assert summary["live"]
        older_rows = _rows(published, recs)
        assert older_rows != live_d and {r[0] for r in older_rows} == {OLDER}
        assert _rows(published, hist, (OLDER,)) == older_rows and _rows(published, hist, (D,)) == live_d
        publish_mart(OLDER, url=published, force=True)  # re-publishing the live date
        assert _rows(published, recs) == older_rows
        assert _rows(published, "select count(*) from mart.customer_recommendations_history "
                                "where business_date = %s", (OLDER,)) == [(len(older_rows),)]
        summary = publish_mart(D, url=published)  # the newer date again: live, its history rows replaced in place
        assert summary["live"] and _rows(published, recs) == live_d and _rows(published, hist, (D,)) == live_d
        assert _relation(published, f"customer_recommendations_history_p{D:%Y%m%d}") == partition_d
        assert {t: _relation(published, t) for t in relations} == relations  # live tables: same relations
        assert _rows(published, "select count(*) from pg_tables where tablename like '%%\\_\\_next' "
                                "or tablename like '%%\\_\\_old'") == [(0,)]
        # comments and the BI role's access are those of the same tables
        comment = _rows(published, "select obj_description('mart.customer_recommendations'::regclass, 'pg_class')")
        assert comment[0][0] and "Top-K" in comment[0][0]
    finally:
        publish_mart(D, url=published)


def test_history_partitions_past_retention_are_dropped(published, monkeypatch):
    for day in DAYS[:2]:
        publish_mart(day, url=published, force=True)
    monkeypatch.setenv("OMNIFUSE_MART_RETENTION_DAYS", "1")
    try:
        publish_mart(D, url=published)
        dates = _rows(published, "select distinct business_date from mart.customer_recommendations_history")
        assert {d for (d,) in dates} == {DAYS[1], D}  # DAYS[0] is older than D - 1
        # a forced older date goes live and keeps its history, whatever the retention
        publish_mart(DAYS[0], url=published, force=True)
        dates = _rows(published, "select distinct business_date from mart.customer_recommendations_history")
        assert {d for (d,) in dates} == {DAYS[0], DAYS[1], D}
    finally:
        monkeypatch.delenv("OMNIFUSE_MART_RETENTION_DAYS")
        publish_mart(D, url=published)
    assert _rows(published, "select distinct business_date from mart.customer_recommendations") == [(D,)]


def test_migration_0030_takes_the_live_table_out_of_its_history(published):
    """A warehouse published the 0017 way (the live table attached as its date's history partition) is
    converted: the live table stands apart with the same rows, its date's history is a partition of its own."""
    from omnifuse.warehouse import migrations

    migration = next(m for m in migrations() if m.version == 30)
    live = _rows(published, "select * from mart.customer_recommendations order by customer_id, rank")
    with warehouse.transaction(published) as cur:  # back to the 0017 layout
        for table in HISTORY_TABLES:
            part = f"{table}_history_p{D:%Y%m%d}"
            cur.execute(f"alter table mart.{table}_history detach partition mart.{part}")  # noqa: S608 - fixed
            cur.execute(f"drop table mart.{part}")  # noqa: S608
            cur.execute(f"alter table mart.{table} add constraint {table}_one_date check (business_date = '{D}')")  # noqa: S608
            cur.execute(f"alter table mart.{table}_history attach partition mart.{table} for values in ('{D}')")  # noqa: S608
    with warehouse.transaction(published) as cur:
        cur.execute(migration.text)
    for table in HISTORY_TABLES:
        assert _history_partitions(published, table)[f"FOR VALUES IN ('{D}')"] == f"{table}_history_p{D:%Y%m%d}"
        assert _rows(published, "select relispartition from pg_class where oid = %s::regclass",
                     (f"mart.{table}",)) == [(False,)]
        assert _rows(published, "select count(*) from pg_constraint where conname = %s and conrelid = %s::regclass",
                     (f"{table}_one_date", f"mart.{table}")) == [(0,)]  # the live table takes any date
    assert _rows(published, "select * from mart.customer_recommendations order by customer_id, rank") == live
    assert _rows(published, "select * from mart.customer_recommendations_history where business_date = %s "
                            "order by customer_id, rank", (D,)) == live
    publish_mart(OLDER, url=published, force=True)  # and publishing goes on from there
    publish_mart(D, url=published)
    assert _rows(published, "select * from mart.customer_recommendations order by customer_id, rank") == live


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


# --- trust, round two (issue 23: findings 2 and 3, scenarios 10 and 14) ------------------------------------------

#: every table a publish writes that BI reads: the swapped ones and the history
PUBLISHED = ("customer_recommendations", "recommendation_contributions", "similar_products", "bought_together",
             "customer_segments", "channel_daily", "model_performance", "customer_recommendations_history",
             "customer_segments_history")
DIGESTS = "select " + ", ".join(
    f"(select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from mart.{t} as t)"  # noqa: S608
    for t in PUBLISHED)


def _digests(url) -> tuple:
    return tuple(_rows(url, DIGESTS)[0])


def test_readers_at_every_isolation_level_see_the_old_marts_or_the_new_never_half_or_empty(published):
    """Scenario 14 and finding 2: during a publish, READ COMMITTED readers see every mart table's old rows or new
    rows (one statement reads them all: never a mix), and REPEATABLE READ / SERIALIZABLE transactions whose
    snapshot predates the publish (extractors, pg_dump) keep reading the old rows after it commits."""
    old = _digests(published)
    counts = "select " + ", ".join(f"(select count(*) from mart.{t})" for t in PUBLISHED)  # noqa: S608
    old_counts = tuple(_rows(published, counts)[0])
    snapshots = []
    for level in ("repeatable read", "serializable"):
        conn = psycopg2.connect(published)
        conn.set_session(isolation_level=level, readonly=True)
        with conn.cursor() as cur:
            cur.execute("select count(*) from mart.publish_log")  # the snapshot is taken: before the publish
        snapshots.append(conn)
    seen, errors, stop = [], [], threading.Event()

    def poll():
        conn = psycopg2.connect(published)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute(DIGESTS)
                    seen.append(tuple(cur.fetchone()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            conn.close()

    pollers = [threading.Thread(target=poll) for _ in range(2)]
    try:
        for t in pollers:
            t.start()
        publish_mart(OLDER, url=published, force=True)  # other rows in every table but model_performance
        stop.set()
        for t in pollers:
            t.join()
        new = _digests(published)
        for conn in snapshots:
            with conn.cursor() as cur:
                cur.execute(counts)
                assert tuple(cur.fetchone()) == old_counts, conn.isolation_level
                cur.execute(DIGESTS)
                assert tuple(cur.fetchone()) == old, conn.isolation_level
    finally:
        stop.set()
        for conn in snapshots:
            conn.rollback()
            conn.close()
        publish_mart(D, url=published)
    assert not errors, errors
    assert len(seen) >= 2
    changed = [t for t, a, b in zip(PUBLISHED, old, new, strict=True) if a != b]
    assert set(changed) >= {"customer_recommendations", "customer_segments", "channel_daily"}, changed
    assert set(seen) <= {old, new}, "a reader saw a mix of old and new tables"
    assert _digests(published)[0] == old[0]  # publishing D again restores its recommendations


def test_two_publishes_of_one_date_at_once_equal_one(published):
    """Scenario 10 (publish part): two publishes of the live date started at once in two threads both succeed
    (serialized by the publish lock, no deadlock, nothing retried away) and leave the marts as one publish does."""
    old = _digests(published)
    logged = "select count(*) from mart.publish_log where business_date = %s"
    logged_before = _rows(published, logged, (D,))[0][0]
    start, results, errors = threading.Barrier(2), [], []

    def run():
        start.wait()
        try:
            results.append(publish_mart(D, url=published))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 2 and all(r["live"] for r in results)
    assert _digests(published) == old
    assert _rows(published, logged, (D,))[0][0] == logged_before + 2 * len(results[0]["rows"])
    assert _rows(published, "select count(*) from pg_tables where tablename like '%%\\_\\_next'") == [(0,)]


def test_a_publish_for_a_date_beyond_the_data_or_the_champion_is_refused_and_keeps_history(published):
    """Finding 3: a date a month ahead (a typo in the conf), or a day beyond the data, is refused before anything is
    built: the marts and their history stay, and the real date still publishes live afterwards. A date with data
    but no retrain through it is refused too."""
    before = _marts(published)
    for wrong in (D + timedelta(days=31), D + timedelta(days=1)):
        with pytest.raises(RuntimeError, match=f"business date {wrong} refused.*core.usable_dates") as refused:
            publish_mart(wrong, url=published)
        assert type(refused.value).__name__ == "BusinessDateError"  # the DAG fails it at once
        with pytest.raises(RuntimeError, match=f"business date {wrong} refused"):
            publish_date(wrong, url=published)
        assert _marts(published) == before
    assert publish_mart(D, url=published)["live"]  # not frozen: the real date goes live
    with warehouse.transaction(published) as cur:  # as if D's retrain never ran: the newest judged is D - 1
        cur.execute("update ml.model_registry set business_date = business_date - 1 where business_date = %s "
                    "returning model_version", (D,))
        moved = [v for (v,) in cur.fetchall()]
    try:
        assert moved
        with pytest.raises(RuntimeError, match=f"business date {D} refused.*no champion was trained"):
            publish_mart(D, url=published)
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("update ml.model_registry set business_date = %s where model_version = any(%s)", (D, moved))
    assert _rows(published, "select count(*) from mart.customer_recommendations_history where business_date = %s",
                 (D,))[0][0] > 0


def test_a_long_bi_transaction_neither_blocks_a_publish_nor_is_blocked_by_it(published):
    """A BI session that read a mart table and keeps its transaction open (a slow dashboard, an extract) holds an
    ACCESS SHARE lock on it: a publish replacing the rows does not wait for it (renaming did, up to its retries)."""
    import time

    reader = psycopg2.connect(warehouse.bi_url(published))
    try:
        with reader.cursor() as cur:
            cur.execute("select count(*) from mart.customer_recommendations")
            count = cur.fetchone()[0]
            started = time.perf_counter()
            summary = publish_mart(D, url=published)
            assert summary["live"] and time.perf_counter() - started < 60
            cur.execute("select count(*) from mart.customer_recommendations")  # and it reads on
            assert cur.fetchone()[0] == count
    finally:
        reader.rollback()
        reader.close()


def test_a_live_date_beyond_the_data_does_not_freeze_publishing(published):
    """A warehouse where a wrong date went live before dates were checked (finding 3): the real date is not
    demoted to history only by the monotonic guard; it goes live and says what it replaced."""
    stray = D + timedelta(days=31)
    with warehouse.transaction(published) as cur:
        cur.execute("insert into mart.publish_log (business_date, table_name, model_version, rows_published, "
                    "swap_lock_ms, live) values (%s, 'mart.customer_recommendations', 'typo', 0, 0, true)", (stray,))
    try:
        summary = publish_mart(D, url=published)
        assert summary["live"] and summary["note"] == f"replaced {stray}, a date beyond the usable data"
        assert _rows(published, "select distinct business_date from mart.customer_recommendations") == [(D,)]
        assert publish_mart(OLDER, url=published)["live"] is False  # the guard works on from the real date
    finally:
        with warehouse.transaction(published) as cur:
            cur.execute("delete from mart.publish_log where business_date = %s", (stray,))


def test_expired_history_that_a_reader_holds_is_left_for_the_next_publish(published, monkeypatch):
    """Dropping an expired history partition needs an ACCESS EXCLUSIVE lock on the history table: while a BI
    transaction holds it, the publish goes on without waiting (the drop is retried by the next publish)."""
    history = "select distinct business_date from mart.customer_recommendations_history"
    publish_mart(DAYS[0], url=published, force=True)
    publish_mart(D, url=published)
    monkeypatch.setenv("OMNIFUSE_MART_RETENTION_DAYS", "1")
    reader = psycopg2.connect(warehouse.bi_url(published))
    try:
        with reader.cursor() as cur:
            cur.execute("select count(*) from mart.customer_recommendations_history")
            assert publish_mart(D, url=published)["live"]
            assert DAYS[0] in {d for (d,) in _rows(published, history)}  # not dropped under the reader
    finally:
        reader.rollback()
        reader.close()
    publish_mart(D, url=published)
    assert DAYS[0] not in {d for (d,) in _rows(published, history)}  # dropped once nobody reads
