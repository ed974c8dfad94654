"""Which errors a retry can fix (omnifuse.airflow_glue.OmnifuseRetryPolicy): permanent ones fail at once, transient
ones retry, anything else follows the task's standard retries."""

from __future__ import annotations

import psycopg2
import psycopg2.errors
import pytest
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowFailException
from omnifuse.airflow_glue import OmnifuseRetryPolicy


def _action(exc: BaseException) -> RetryAction:
    return OmnifuseRetryPolicy().evaluate(exc, try_number=1, max_tries=3).action


def _permanent():
    from omnifuse.business_date import BusinessDateError
    from omnifuse.ingest import LandingError
    from omnifuse.landing_csv import MappingError
    from omnifuse.mart import PublishCheckError
    from omnifuse.quality import QualityGateError
    from omnifuse.registry import NO_CHAMPION, NoChampionError
    from omnifuse.training_run import BlockedDateError, RegisteredRunError
    from omnifuse.warehouse import WarehouseError

    return [BlockedDateError("2026-11-03 did not pass its gates"), LandingError("web/part-0001.ndjson.gz truncated"),
            QualityGateError("staging gate failed"), PublishCheckError("duplicates"),
            WarehouseError("OMNIFUSE_BI_PASSWORD is not set"), AirflowFailException("no"),
            # a publish before any retrain registered a champion: waiting will not make one (issue 23, finding 9)
            NoChampionError(NO_CHAMPION),
            # a cleared task of a gated run: its artifacts are never rewritten (issue 23, finding 10)
            RegisteredRunError("train_ease of retrain_20261104: the run is already gated"),
            # a mapping naming a decompressor as its encoding: no retry reads it otherwise (issue 23, finding 5)
            MappingError("_mappings/store.toml: [csv] encoding 'bz2_codec' is not a text encoding"),
            # a publish triggered for a date beyond the data (issue 23, finding 3)
            BusinessDateError("2026-12-05 is beyond the newest usable date 2026-11-04")]


@pytest.mark.parametrize("exc", _permanent(), ids=lambda e: type(e).__name__)
def test_errors_no_retry_can_fix_fail_at_once(exc):
    decision = OmnifuseRetryPolicy().evaluate(exc, try_number=1, max_tries=3)
    assert decision.action is RetryAction.FAIL and "no retry" in decision.reason


@pytest.mark.parametrize("exc", [psycopg2.OperationalError("server closed the connection unexpectedly"),
                                 psycopg2.errors.LockNotAvailable("lock timeout"),
                                 psycopg2.errors.QueryCanceled("statement timeout"),
                                 psycopg2.InterfaceError("connection already closed"),
                                 ConnectionResetError("reset by peer"), TimeoutError()],
                         ids=lambda e: type(e).__name__)
def test_transient_errors_retry(exc):
    assert _action(exc) is RetryAction.RETRY


def test_a_permanent_cause_wins_over_its_wrapper_and_unknown_errors_keep_the_standard_retries():
    from omnifuse.ingest import LandingError

    try:
        try:
            raise LandingError("mobile/part-0002.json.gz: not a gzip file")
        except LandingError as inner:
            raise RuntimeError("load_mobile_events failed") from inner
    except RuntimeError as outer:
        assert _action(outer) is RetryAction.FAIL
    assert _action(ValueError("something new")) is RetryAction.DEFAULT


def test_the_policy_names_only_classes_that_exist():
    """A renamed exception class must not silently turn a permanent error back into a retried one."""
    from airflow.sdk.module_loading import import_string
    from omnifuse.airflow_glue import PERMANENT_ERRORS, TRANSIENT_ERRORS

    optional = {"omnifuse.artifacts.ArtifactError", "omnifuse.recommendations.ModelArtifactError"}
    for name in (PERMANENT_ERRORS | TRANSIENT_ERRORS) - optional:
        assert isinstance(import_string(name), type), name


def test_no_champion_fails_at_once_and_says_what_to_run():
    """The publish DAG's first task, on a registry with no champion, used to raise a bare LookupError that the
    policy left to the standard retries: ten minutes of waiting for a state no retry changes."""
    from omnifuse.registry import NO_CHAMPION, NoChampionError

    decision = OmnifuseRetryPolicy().evaluate(NoChampionError(NO_CHAMPION), try_number=1, max_tries=3)
    assert decision.action is RetryAction.FAIL and "NoChampionError" in decision.reason
    assert "omnifuse_retrain" in NO_CHAMPION and "business_date" in NO_CHAMPION
