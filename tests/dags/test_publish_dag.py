"""omnifuse_publish: one champion lookup feeds every task; errors no retry can fix fail at once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "omnifuse_publish.py"


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("dagcheck_publish", DAG_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_champion_is_resolved_once_and_handed_to_every_task(module):
    dag = module.publish_dag
    assert dag.get_task("resolve_champion").upstream_task_ids == set()
    assert dag.get_task("plan_batches").upstream_task_ids == {"resolve_champion"}
    assert dag.get_task("score_batch").upstream_task_ids == {"plan_batches"}
    assert dag.get_task("publish_mart").upstream_task_ids == {"resolve_champion", "score_batch"}
    source = DAG_FILE.read_text()
    assert source.count("champion_version(") == 1  # the only lookup, in resolve_champion


@pytest.mark.parametrize("error", ["recommendations.ModelArtifactError", "mart.PublishCheckError",
                                   "business_date.BusinessDateError"])
def test_errors_no_retry_can_fix_fail_at_once(module, error):
    import importlib

    from airflow.sdk.exceptions import AirflowFailException

    name, cls = error.split(".")
    with pytest.raises(AirflowFailException, match="broken"), module._fail_at_once():
        raise getattr(importlib.import_module(f"omnifuse.{name}"), cls)("broken")
    with pytest.raises(ConnectionError), module._fail_at_once():  # transient errors keep their retries
        raise ConnectionError("warehouse restarting")
