"""Publishing: atomic swaps under concurrent readers, the BI role, idempotence, output checks, stable segments."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import psycopg2
import psycopg2.errors
import pytest
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.publish import PublishCheckError, publish_date, publish_mart
from omnifuse.retrain import retrain

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
MART = ("customer_recommendations", "similar_products", "bought_together", "customer_segments", "channel_daily",
        "model_performance", "publish_log", "data_quality_daily", "customer_recommendations_history")


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
