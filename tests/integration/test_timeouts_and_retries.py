"""Finding 4: warehouse sessions carry connect, statement and lock timeouts; in a real DAG run an error no retry
can fix fails the task at once, a transient one is retried."""

from __future__ import annotations

import time

import psycopg2
import psycopg2.errors
import pytest
from omnifuse import warehouse


def test_sessions_get_the_configured_timeouts(clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_STATEMENT_TIMEOUT_S", "3")
    monkeypatch.setenv("OMNIFUSE_LOCK_TIMEOUT_S", "1")
    monkeypatch.setenv("OMNIFUSE_CONNECT_TIMEOUT_S", "4")
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select current_setting('statement_timeout'), current_setting('lock_timeout')")
        assert cur.fetchone() == ("3s", "1s")
        assert cur.connection.get_dsn_parameters()["connect_timeout"] == "4"


def test_a_held_lock_fails_fast_with_a_lock_timeout(clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LOCK_TIMEOUT_S", "1")
    holder = psycopg2.connect(clean_warehouse)
    try:
        with holder.cursor() as cur:
            cur.execute("lock table mart.publish_log in access exclusive mode")
        started = time.monotonic()
        with pytest.raises(psycopg2.errors.LockNotAvailable):
            with warehouse.transaction(clean_warehouse) as cur:
                cur.execute("select count(*) from mart.publish_log")
        assert time.monotonic() - started < 10
    finally:
        holder.rollback()
        holder.close()


def test_a_runaway_statement_is_cancelled(clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_STATEMENT_TIMEOUT_S", "1")
    with pytest.raises(psycopg2.errors.QueryCanceled):
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("select pg_sleep(5)")


@pytest.fixture(scope="module")
def airflow_db(warehouse_url):
    """Airflow's metadata database of this session, migrated once (the marker the pipeline's own runner uses)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    home = Path(os.environ["AIRFLOW_HOME"])
    marker = home / ".db-migrated"
    if not marker.exists():
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL)
        marker.write_text("migrated by tests\n")
    return warehouse_url


PROBE_DAG = """
from datetime import timedelta
from pathlib import Path
import os

import psycopg2
from airflow.sdk import dag, task
from omnifuse.airflow_glue import DEFAULT_ARGS

TRIES = Path(os.environ["OMNIFUSE_PROBE_TRIES"])
ARGS = {**DEFAULT_ARGS, "retries": 3, "retry_delay": timedelta(seconds=0), "retry_exponential_backoff": 0,
        "on_failure_callback": None}


@dag(dag_id="omnifuse_retry_probe", schedule=None, default_args=ARGS, catchup=False)
def omnifuse_retry_probe():
    @task
    def blocked() -> None:
        from omnifuse.training_run import BlockedDateError

        (TRIES / f"blocked-{len(list(TRIES.glob('blocked-*')))}").touch()
        raise BlockedDateError("2026-11-03 did not pass its quality gates")

    @task
    def flaky() -> str:
        n = len(list(TRIES.glob("flaky-*")))
        (TRIES / f"flaky-{n}").touch()
        if n == 0:
            raise psycopg2.OperationalError("server closed the connection unexpectedly")
        return "ok"

    blocked()
    flaky()


PROBE = omnifuse_retry_probe()
"""


def test_blocked_dates_fail_at_once_and_lost_connections_are_retried_in_a_real_dag_run(airflow_db, tmp_path,
                                                                                        monkeypatch):
    """A DAG using the shared DEFAULT_ARGS (retries=3), run for real with dag.test() from its own bundle."""
    import importlib.util
    import json

    from airflow.sdk import DAG

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "omnifuse_retry_probe.py").write_text(PROBE_DAG)
    tries = tmp_path / "tries"
    tries.mkdir()
    monkeypatch.setenv("OMNIFUSE_PROBE_TRIES", str(tries))
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "omnifuse-retry-probe", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(folder)}}]))
    spec = importlib.util.spec_from_file_location("omnifuse_retry_probe", folder / "omnifuse_retry_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = next(v for v in vars(module).values() if isinstance(v, DAG))
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["blocked"] == "failed"
    assert len(list(tries.glob("blocked-*"))) == 1  # a blocked date is not retried
    assert states["flaky"] == "success" and len(list(tries.glob("flaky-*"))) == 2  # a lost connection is
