"""Scenario 9 (issue 23): the warehouse crashes (``pg_ctl restart -m immediate``) while the real ingest DAG is in
identity resolution, the interactions build and the core gate, and while the real publish DAG replaces the marts;
the DAG's own retry policy retries each task and the result is exactly a clean run's.

The crash is placed, not raced: the first time a task takes the lock of its stage (``warehouse.lock``), the server
is restarted under it, so the task's transaction dies half-way, for real, and the task fails with the server's
own error. Airflow's metadata database lives in the same embedded server: it restarts under Airflow too.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from omnifuse import warehouse

DAY1 = date(2026, 11, 2)
#: the lock scopes of the stages crashed once each, and the task that takes each
CRASH_AT = {("identity",): "resolve_identities", ("interactions",): "build_interactions"}


def _digests(url: str) -> dict[str, tuple[int, str]]:
    from omnifuse.digest import load_digests

    with warehouse.transaction(url) as cur:
        return load_digests(cur)


def _restart_immediately() -> None:
    from omnifuse.config import load_settings
    from pgserver._commands import pg_ctl

    settings = load_settings()
    pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=settings.pgdata, user=warehouse._pg_user(), timeout=120)


def test_restarts_in_identity_build_and_gate_are_retried_by_the_dag_to_a_clean_result(tiny_world, clean_warehouse,
                                                                                      monkeypatch):
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.config import load_settings

    settings = load_settings()
    if not warehouse.is_embedded(settings):
        pytest.skip("restarts only the session's embedded server, not an external test database")
    url = clean_warehouse
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(tiny_world))
    settings = prepare_airflow(load_settings())
    from omnifuse.airflow_glue import load_dag
    from omnifuse.backfill import run_outcome

    dag = load_dag(settings, "omnifuse_ingest")
    for task in dag.tasks:  # the DAG's own retries and policy, without its minutes of back-off
        task.retry_delay = timedelta(0)
        task.retry_exponential_backoff = 0

    # the reference: the same day's work run cleanly (the DAG's functions in its order)
    from omnifuse.daily import run_day

    run_day(DAY1, tiny_world, url)
    reference = _digests(url)
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)

    crashed: list[tuple] = []
    gate_crashed: list[bool] = []
    real_lock = warehouse.lock

    def crashing_lock(cur, *scope):
        real_lock(cur, *scope)
        if scope in CRASH_AT and scope not in crashed:
            crashed.append(scope)
            _restart_immediately()

    monkeypatch.setattr(warehouse, "lock", crashing_lock)
    from omnifuse import quality

    real_record = quality._record

    def crashing_record(cur, gate, *args, **kwargs):
        if gate == "core" and not gate_crashed:  # the core gate's verdict transaction dies before it commits
            gate_crashed.append(True)
            _restart_immediately()
        return real_record(cur, gate, *args, **kwargs)

    monkeypatch.setattr(quality, "_record", crashing_record)
    outcome = run_outcome(dag, DAY1)
    assert crashed == list(CRASH_AT) and gate_crashed == [True]
    assert outcome.ok, outcome.why()
    retried = {"resolve_identities": 2, "build_interactions": 2, "validate_core": 2}
    assert retried.items() <= _tries(dag.dag_id, outcome.run_id)
    assert _digests(url) == reference


def _tries(dag_id: str, run_id: str) -> set:
    """(task id, try number) of a run's task instances, as Airflow recorded them."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return set(session.execute(select(TaskInstance.task_id, TaskInstance.try_number)
                                   .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all())


#: the published tables compared after a crash (their rows; nothing in them records when they were written)
MARTS = ("mart.customer_recommendations", "mart.recommendation_contributions", "mart.channel_daily",
         "mart.customer_segments")


def test_a_restart_while_publish_replaces_the_marts_is_retried_by_the_dag_to_a_clean_result(tiny_world,
                                                                                            clean_warehouse,
                                                                                            monkeypatch,
                                                                                            tmp_path):
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.config import load_settings
    from omnifuse.daily import run_day
    from omnifuse.digest import table_digest
    from omnifuse.mart import publish_date
    from omnifuse.training_run import retrain

    if not warehouse.is_embedded(load_settings()):
        pytest.skip("restarts only the session's embedded server, not an external test database")
    url = clean_warehouse
    monkeypatch.setenv("OMNIFUSE_MODEL_STORE", str(tmp_path / "models"))
    monkeypatch.setenv("OMNIFUSE_TUNING_TRIALS", "1")
    days = [DAY1 + timedelta(days=i) for i in range(3)]
    for day in days:
        run_day(day, tiny_world, url)
    retrain(days[-1], url=url, models=("popularity", "ease"))
    publish_date(days[-1], url=url)  # the reference: a clean publish of the date

    def marts() -> dict[str, tuple[int, str]]:
        with warehouse.transaction(url) as cur:
            return {t: table_digest(cur, t) for t in MARTS}

    reference = marts()
    settings = prepare_airflow(load_settings())
    from omnifuse.airflow_glue import load_dag
    from omnifuse.backfill import run_outcome

    dag = load_dag(settings, "omnifuse_publish")
    for task in dag.tasks:
        task.retry_delay = timedelta(0)
        task.retry_exponential_backoff = 0
    crashed: list[tuple] = []
    real_lock = warehouse.lock

    def crashing_lock(cur, *scope):
        real_lock(cur, *scope)
        if scope == ("publish",) and not crashed:  # publish_mart holds its lock: the replace dies half-way
            crashed.append(scope)
            _restart_immediately()

    monkeypatch.setattr(warehouse, "lock", crashing_lock)
    outcome = run_outcome(dag, days[-1])
    assert crashed == [("publish",)]
    assert outcome.ok, outcome.why()
    assert ("publish_mart", 2) in _tries(dag.dag_id, outcome.run_id)
    assert marts() == reference
