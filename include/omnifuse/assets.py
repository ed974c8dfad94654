"""Airflow glue (the only module of the package importing Airflow): the Assets chaining the DAGs, the default
arguments every DAG uses (owner, timeouts, retries and which errors are worth retrying) and the failure callback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from airflow.sdk import Asset, RetryAction, RetryDecision, RetryPolicy

from omnifuse.config import load_timeouts

log = logging.getLogger(__name__)

#: Emitted by ``omnifuse_ingest`` once a business date's interactions are rebuilt and passed their gates.
CORE_INTERACTIONS = Asset(name="core.interactions", uri="postgres://omnifuse-warehouse:5432/omnifuse/core/interactions")
#: Emitted by ``omnifuse_retrain`` when the model registry has a (new or kept) champion for a business date.
ML_CHAMPION = Asset(name="ml.champion", uri="postgres://omnifuse-warehouse:5432/omnifuse/ml/model_registry")
#: The tables ``omnifuse_publish`` swaps into ``mart`` (the same list as ``omnifuse.mart.SWAPPED``, named here so
#: parsing a DAG imports nothing heavy; a test keeps the two equal).
MART_TABLES: tuple[str, ...] = ("customer_recommendations", "recommendation_contributions", "similar_products",
                                "bought_together", "customer_segments", "channel_daily", "model_performance")
#: One Asset per published ``mart`` table, emitted by ``omnifuse_publish``: the asset graph ends at what BI reads.
MART_ASSETS: dict[str, Asset] = {
    table: Asset(name=f"mart.{table}", uri=f"postgres://omnifuse-warehouse:5432/omnifuse/mart/{table}",
                 group="mart")
    for table in MART_TABLES
}


def interactions_event_extra(built: dict) -> dict:
    """What an Asset event of ``core.interactions`` says changed: the business date, the event dates rebuilt and
    their rows (``omnifuse.interactions.build_interactions``'s summary)."""
    return {"business_date": built["business_date"], "event_dates": list(built.get("event_dates") or []),
            "rows": int(built.get("rows") or 0), "quarantined": int(built.get("quarantined") or 0)}


def champion_event_extra(decision: dict) -> dict:
    """What an Asset event of ``ml.champion`` says: the business date, the champion's model version (``champion``
    is kept for readers of the first events), whether this run's model was promoted and the run that was judged
    (``omnifuse.training_run.gate_champion``'s summary)."""
    return {"business_date": decision["business_date"], "champion": decision["champion"],
            "model_version": decision["champion"], "promoted": bool(decision.get("promoted")),
            "run_id": decision.get("run_id")}


def mart_event_extras(published: dict) -> dict[str, dict]:
    """Per ``mart`` table, what its Asset event says (``omnifuse.mart.publish_mart``'s summary): business date,
    model version, rows published, live (swapped in) or history only; coverage for the recommendations."""
    rows = published.get("rows") or {}
    extras = {}
    for table in MART_TABLES:
        extra = {"business_date": published["business_date"], "model_version": published.get("model_version"),
                 "rows": int(rows[table]) if table in rows else None, "live": bool(published.get("live", True))}
        if table == "customer_recommendations" and published.get("coverage"):
            extra["coverage"] = {k: v for k, v in dict(published["coverage"]).items()
                                 if isinstance(v, (int, float, str, bool)) or v is None}
        extras[table] = extra
    return extras


def asset_run_business_date() -> date:
    """The business date an Asset-scheduled run (retrain, publish) processes: its conf, else the latest date
    announced by the triggering Asset events (see ``omnifuse.runs.business_date_for_asset_run``)."""
    from airflow.sdk import get_current_context

    from omnifuse.runs import business_date_for_asset_run

    ctx = get_current_context()
    events = ctx.get("triggering_asset_events") or {}
    extras = [dict(e.extra or {}) for evs in events.values() for e in evs]
    return business_date_for_asset_run(ctx["dag_run"].conf, extras)


def alert_on_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback``: record the failure in ``ops.alerts`` and call the configured notifier, if any.

    Never raises: a broken alert path must not hide the task's own error.
    """
    from omnifuse.alerts import configured_notifier, record_alert

    ti = context.get("ti") or context.get("task_instance")
    run = context.get("dag_run")
    conf = getattr(run, "conf", None) or {}
    try:
        day = date.fromisoformat(conf["business_date"]) if conf.get("business_date") else None
    except ValueError:
        day = None
    try:
        if ti is None:
            raise LookupError("the failure context names no task instance")
        record_alert(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "try_number", None), day,
                     context.get("exception"), getattr(ti, "log_url", None))
    except Exception:  # noqa: BLE001 - the alert store may be the thing that is down
        log.exception("could not write ops.alerts")
    try:
        notifier = configured_notifier()
        if notifier is not None:
            notifier(context)
    except Exception:  # noqa: BLE001
        log.exception("the configured alert notifier failed")


#: Errors no retry can fix: the task fails at once (named, not imported: parsing a DAG stays cheap).
PERMANENT_ERRORS: frozenset[str] = frozenset({
    "omnifuse.training_run.BlockedDateError",  # the date did not pass its gates: fix the data, then re-run
    "omnifuse.ingest.LandingError",  # a corrupt, truncated or missing landed file
    "omnifuse.quality.QualityGateError",  # a failed gate: its verdict will not change by asking again
    "omnifuse.mart.PublishCheckError",  # an output check failed: the scored rows are wrong
    "omnifuse.fusion.LeakageError",
    "omnifuse.recommendations.ModelArtifactError",  # a missing or corrupt model artifact
    "omnifuse.artifacts.ArtifactError",
    "omnifuse.warehouse.WarehouseError",  # configuration a data engineer has to fix
    "airflow.sdk.exceptions.AirflowFailException",
})
#: Errors a retry usually fixes: a lost connection, a server restart, a lock or statement timeout.
TRANSIENT_ERRORS: frozenset[str] = frozenset({
    "psycopg2.OperationalError",  # connection refused/lost, LockNotAvailable, QueryCanceled (timeouts)
    "psycopg2.InterfaceError",  # connection already closed
    "psycopg2.errors.SerializationFailure",
    "psycopg2.errors.DeadlockDetected",
    "builtins.ConnectionError",
    "builtins.TimeoutError",
})


def _names(exc: BaseException) -> set[str]:
    names = set()
    for cls in type(exc).__mro__:
        module = cls.__module__
        names.add(f"{module}.{cls.__qualname__}")
        if module.startswith("psycopg2."):  # psycopg2's C classes report psycopg2.errors / psycopg2.extensions
            names.add(f"psycopg2.{cls.__qualname__}")
    return names


class OmnifuseRetryPolicy(RetryPolicy):
    """Fail at once on :data:`PERMANENT_ERRORS` (also when raised from, or wrapped by, another error), retry
    :data:`TRANSIENT_ERRORS` within the task's ``retries``, and leave anything else to the standard retries."""

    def evaluate(self, exception: BaseException, try_number: int, max_tries: int,
                 context: Mapping[str, Any] | None = None) -> RetryDecision:
        seen: list[BaseException] = []
        exc: BaseException | None = exception
        while exc is not None and exc not in seen and len(seen) < 10:
            seen.append(exc)
            exc = exc.__cause__ or exc.__context__
        for exc in seen:
            permanent = _names(exc) & PERMANENT_ERRORS
            if permanent:
                return RetryDecision.fail(f"{min(permanent)}: no retry can fix this; fix the cause, then clear it")
        if any(_names(exc) & TRANSIENT_ERRORS for exc in seen):
            return RetryDecision.retry(reason=f"transient {type(exception).__name__}: retrying")
        return RetryDecision(action=RetryAction.DEFAULT)

    def serialize(self) -> dict:
        return {"__type": "OmnifuseRetryPolicy", "permanent": sorted(PERMANENT_ERRORS),
                "transient": sorted(TRANSIENT_ERRORS)}

    @classmethod
    def deserialize(cls, data: dict) -> OmnifuseRetryPolicy:
        return cls()


def mask_secrets(context: Mapping[str, Any]) -> None:
    """``on_execute_callback``: register every secret this process knows (``omnifuse.alerts.known_secrets``) with
    Airflow's secrets masker, so a password or URL that reaches a task log is printed as ``***``."""
    from airflow.sdk.log import mask_secret

    from omnifuse.alerts import known_secrets

    for secret in known_secrets():
        mask_secret(secret)


#: Default arguments of every omnifuse DAG. Retries are for transient errors (see :class:`OmnifuseRetryPolicy`);
#: ``execution_timeout`` is ``OMNIFUSE_TASK_TIMEOUT_S`` (a sensor in reschedule mode times out on its own
#: ``timeout``, each poke on this one).
DEFAULT_ARGS: dict = {
    "owner": "data-platform",
    "on_failure_callback": alert_on_failure,
    "on_execute_callback": mask_secrets,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(seconds=load_timeouts().task_s) if load_timeouts().task_s else None,
    "retry_policy": OmnifuseRetryPolicy(),
}
#: Retries of a quality gate: a lost connection or lock timeout is retried, a failed expectation is not.
GATE_RETRIES = 2
