"""Backfill through the real DAGs: years before the DAGs' start_date, failures never reported as success."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from omnifuse import warehouse
from omnifuse.config import load_settings

START = date(2023, 10, 28)  # three years before the DAGs' start_date (2026-11-01); 2023-10-29 is a Sunday
DAYS = [START + timedelta(days=i) for i in range(3)]


@pytest.fixture(scope="module")
def wholesale_world(tmp_path_factory):
    from omnifuse.generate import WorldConfig, generate

    out = tmp_path_factory.mktemp("wholesale")
    generate(WorldConfig(customers=400, products=120, days=len(DAYS), start=START, seed=5, profile="wholesale"), out)
    return out


def test_backfill_years_before_start_date_loads_every_date(wholesale_world, clean_warehouse, monkeypatch):
    from omnifuse.airflow_glue import load_dag
    from omnifuse.backfill import backfill

    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(wholesale_world))
    before = datetime.now(UTC)
    outcomes = backfill(DAYS[0], DAYS[-1], retrain="none", report=None)
    ingest_tasks = set(load_dag(load_settings(), "omnifuse_ingest").task_ids)
    assert [o.business_date for o in outcomes] == DAYS
    for o in outcomes:
        assert o.ok and set(o.tasks) == ingest_tasks and set(o.tasks.values()) == {"success"}
    # every run stays in Airflow, stamped with the time it ran (earlier runs are not replaced by later ones)
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "omnifuse_ingest", DagRun.run_id.in_(
            [o.run_id for o in outcomes])).all()
        assert len(runs) == len(DAYS)
        assert all(r.logical_date >= before and (r.end_date - r.start_date) < timedelta(hours=1) for r in runs)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select business_date, channel, files, lines_read, rows_staged from ops.load_audit "
                    "where channel in ('web', 'store') order by 1, 2")
        audit = {(d, c): (f, n, s) for d, c, f, n, s in cur.fetchall()}
        # every date loaded; the Sunday's store delivery is empty: a valid, audited zero-row run
        assert {d for d, _ in audit} == set(DAYS)
        assert audit[(DAYS[1], "store")] == (0, 0, 0)
        assert all(audit[(d, "store")][2] > 100 for d in (DAYS[0], DAYS[2]))
        cur.execute("select event_type, count(*), bool_and(revenue < 0), bool_and(quantity < 0) "
                    "from core.interactions where channel = 'store' group by 1")
        by_type = {t: (n, neg_rev, neg_q) for t, n, neg_rev, neg_q in cur.fetchall()}
        # cancellation lines (negative quantities) are returns with signed revenue, never purchases
        assert by_type["return"][0] > 0 and by_type["return"][1:] == (True, True)
        assert by_type["purchase"][0] > by_type["return"][0]
        cur.execute("select count(*) from core.interactions where event_type = 'purchase' and quantity < 0")
        assert cur.fetchone()[0] == 0
        # wholesale quantities pass staging and the gates; postage and fees are staged but are not products
        cur.execute("select max(quantity) from staging.store_sales")
        assert cur.fetchone()[0] >= 128
        cur.execute("select count(*) from staging.store_sales where line_kind = 'non_product'")
        assert cur.fetchone()[0] > 0
        cur.execute("select count(*) from core.interactions where product_id in ('POST', 'M', 'BANK CHARGES')")
        assert cur.fetchone()[0] == 0
        cur.execute("select event_date from core.usable_dates order by 1")
        assert [r[0] for r in cur.fetchall()] == DAYS


def test_a_run_without_task_instances_is_a_failure(wholesale_world, clean_warehouse, monkeypatch):
    """What the old runner did: a logical date before start_date makes a run with no task instance."""
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.airflow_glue import load_dag
    from omnifuse.backfill import run_outcome

    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(wholesale_world))
    settings = prepare_airflow()
    dag = load_dag(settings, "omnifuse_ingest")
    outcome = run_outcome(dag, DAYS[0], logical_date=datetime(2023, 10, 29, 3, tzinfo=UTC))
    assert not outcome.ok
    assert outcome.tasks == {} and "executed no task" in outcome.why()
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select count(*) from ops.load_audit")
        assert cur.fetchone()[0] == 0


def test_a_failed_task_fails_the_backfill_naming_it(wholesale_world, clean_warehouse, monkeypatch, tmp_path):
    import shutil

    from omnifuse.backfill import BackfillError, backfill

    world = tmp_path / "landing"
    shutil.copytree(wholesale_world, world)
    (world / "web" / DAYS[0].isoformat() / "_manifest.json").unlink()  # the web delivery never came
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(world))
    monkeypatch.setenv("OMNIFUSE_SENSOR_TIMEOUT_S", "1")
    monkeypatch.setenv("OMNIFUSE_SENSOR_POKE_S", "1")
    with pytest.raises(BackfillError) as failure:
        backfill(DAYS[0], DAYS[0], retrain="none", report=None)
    assert "wait_for_web" in str(failure.value) and str(DAYS[0]) in str(failure.value)
