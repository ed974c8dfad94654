"""Every DAG imports cleanly, touches no database at parse time, and follows the DAG policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg2
import pytest

DAG_FILES = sorted((Path(__file__).resolve().parents[2] / "dags").glob("*.py"))


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"dagcheck_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dags(module):
    from airflow.sdk import DAG

    return [v for v in vars(module).values() if isinstance(v, DAG)]


@pytest.fixture
def no_database(monkeypatch):
    """Airflow itself is imported first (it configures, without connecting, its ORM); then any connection
    a DAG file opens while it is parsed fails the test."""
    import airflow.sdk  # noqa: F401
    from sqlalchemy.engine import Engine

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG file opened a database connection at import time")

    monkeypatch.setattr(psycopg2, "connect", refuse)
    monkeypatch.setattr(Engine, "connect", refuse)


def test_there_are_dag_files():
    assert any(p.name == "omnifuse_ingest.py" for p in DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_database(path, no_database):
    module = _import(path)
    assert _dags(module), f"{path.name} defines no DAG"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_policy(path):
    for dag in _dags(_import(path)):
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag.dag_id}: doc_md must explain the DAG"
        assert dag.tags and "omnifuse" in dag.tags, f"{dag.dag_id}: tag it 'omnifuse'"
        assert dag.dag_id == path.stem, "one DAG per file, named after the file"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag.dag_id}.{t.task_id}: set an owner"
            # gates too: a lost connection is retried; a failed expectation fails at once (the retry policy)
            assert t.retries >= 1, f"{dag.dag_id}.{t.task_id}: set retries"
            assert t.doc_md, f"{dag.dag_id}.{t.task_id}: document the task"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_task_has_the_shared_timeouts_retry_policy_and_alerting(path):
    from omnifuse.airflow_glue import DEFAULT_ARGS, OmnifuseRetryPolicy, alert_on_failure

    for dag in _dags(_import(path)):
        for t in dag.tasks:
            where = f"{dag.dag_id}.{t.task_id}"
            assert t.execution_timeout == DEFAULT_ARGS["execution_timeout"] and t.execution_timeout, where
            assert isinstance(t.retry_policy, OmnifuseRetryPolicy), f"{where}: use omnifuse.airflow_glue.DEFAULT_ARGS"
            callbacks = t.on_failure_callback
            assert alert_on_failure in (callbacks if isinstance(callbacks, list | tuple) else [callbacks]), where


def test_dag_defaults_live_in_the_glue_module_only():
    from omnifuse.airflow_glue import START_DATE

    for path in DAG_FILES:
        text = path.read_text()
        assert "DEFAULT_ARGS = {" not in text, f"{path.name}: use omnifuse.airflow_glue.dag_defaults()"
        assert "start_date=" not in text and "catchup=" not in text, f"{path.name}: use dag_defaults()"
        assert "from omnifuse.airflow_glue import" in text and "dag_defaults" in text, path.name
        for dag in _dags(_import(path)):
            assert dag.start_date == START_DATE and dag.catchup is False, dag.dag_id


def test_ingest_dag_shape():
    dag = _dags(_import(next(p for p in DAG_FILES if p.stem == "omnifuse_ingest")))[0]
    ids = set(dag.task_ids)
    for load in ("load_catalog", "load_crm", "load_web_events", "load_mobile_events", "load_social_interactions",
                 "load_store_sales", "report_load"):
        assert load in ids
    # every event load waits for its files and for the day's catalog
    for load in ("load_web_events", "load_store_sales"):
        upstream = dag.get_task(load).upstream_task_ids
        assert "load_catalog" in upstream and any(u.startswith("wait_for_") for u in upstream)
    sensor = dag.get_task("wait_for_web")
    assert sensor.mode == "reschedule" and sensor.timeout > 0


def test_assets_chain_the_three_dags_and_retrain_trains_every_model():
    from omnifuse.models import BASE_MODELS

    dags = {d.dag_id: d for p in DAG_FILES for d in _dags(_import(p))}
    outlets = {d: {a.name for t in dag.tasks for a in t.outlets} for d, dag in dags.items()}
    assert outlets["omnifuse_ingest"] == {"core.interactions"}
    assert outlets["omnifuse_retrain"] == {"ml.champion"}
    def scheduled_on(dag_id):
        return {a.name for a in dags[dag_id].timetable.asset_condition.objects}

    assert scheduled_on("omnifuse_retrain") == {"core.interactions"}
    assert scheduled_on("omnifuse_publish") == {"ml.champion"}
    trained = {t.task_id.removeprefix("train_") for t in dags["omnifuse_retrain"].tasks
               if t.task_id.startswith("train_")}
    assert trained == set(BASE_MODELS)
