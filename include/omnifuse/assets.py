"""Airflow glue (the only module of the package importing Airflow): the Assets chaining the DAGs and the
failure callback every task uses."""

from __future__ import annotations

import logging

from airflow.sdk import Asset

log = logging.getLogger(__name__)

#: Emitted by ``omnifuse_ingest`` once a business date's interactions are rebuilt and passed their gates.
CORE_INTERACTIONS = Asset(name="core.interactions", uri="postgres://omnifuse-warehouse:5432/omnifuse/core/interactions")
#: Emitted by ``omnifuse_retrain`` when the model registry has a (new or kept) champion for a business date.
ML_CHAMPION = Asset(name="ml.champion", uri="postgres://omnifuse-warehouse:5432/omnifuse/ml/model_registry")


def asset_run_business_date():
    """The business date an Asset-scheduled run (retrain, publish) processes: its conf, else the latest date
    announced by the triggering Asset events (see ``omnifuse.runs.business_date_for_asset_run``)."""
    from airflow.sdk import get_current_context

    from omnifuse.runs import business_date_for_asset_run

    ctx = get_current_context()
    events = ctx.get("triggering_asset_events") or {}
    extras = [dict(e.extra or {}) for evs in events.values() for e in evs]
    return business_date_for_asset_run(ctx["dag_run"].conf, extras)


def alert_on_failure(context) -> None:
    """``on_failure_callback``: record the failure in ``ops.alerts`` and call the configured notifier, if any.

    Never raises: a broken alert path must not hide the task's own error.
    """
    from datetime import date

    from omnifuse.alerts import configured_notifier, record_alert

    ti = context.get("ti") or context.get("task_instance")
    run = context.get("dag_run")
    conf = getattr(run, "conf", None) or {}
    try:
        day = date.fromisoformat(conf["business_date"]) if conf.get("business_date") else None
    except ValueError:
        day = None
    try:
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
