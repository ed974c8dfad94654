"""Failure alerts: a row in ``ops.alerts`` per failed task try, plus any configured Airflow notifier."""

from __future__ import annotations

import importlib
import json
import logging
import os
from datetime import date

from omnifuse import warehouse

log = logging.getLogger(__name__)

#: What a data engineer should do, by the kind of error (matched on the exception's class name).
HINTS = {
    "QualityGateError": "A blocking data-quality expectation failed: read the task log and ops.dq_results, fix the "
                        "source or the load, then clear the load task and the gate.",
    "LandingError": "A landed file is missing, truncated or corrupt: ask the sender for a re-delivery, then clear "
                    "the task. Nothing was half-loaded.",
    "BlockedDateError": "The date did not pass its quality gates: fix and re-run omnifuse_ingest for it first.",
    "PublishCheckError": "An output check failed; yesterday's mart tables are still in place. See the task log.",
}
DEFAULT_HINT = "Read the task log (link above); the error names the file, table or date. Clear the task to retry."


def record_alert(dag_id: str, task_id: str, run_id: str, try_number: int | None, business_date: date | None,
                 error: BaseException | str | None, log_url: str | None = None, url: str | None = None) -> str:
    """Write one ``ops.alerts`` row; returns the hint it recorded."""
    kind = type(error).__name__ if isinstance(error, BaseException) else ""
    hint = HINTS.get(kind, DEFAULT_HINT)
    text = f"{kind}: {error}" if kind else str(error or "task failed")
    with warehouse.transaction(url) as cur:
        cur.execute(
            "insert into ops.alerts (dag_id, task_id, run_id, try_number, business_date, error, hint, log_url) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (dag_id, task_id, run_id, try_number, business_date, text[:4000], hint, log_url),
        )
    return hint


def configured_notifier():
    """``OMNIFUSE_ALERT_NOTIFIER=module:Class`` (an Airflow notifier) with ``OMNIFUSE_ALERT_NOTIFIER_KWARGS`` (JSON)."""
    spec = os.environ.get("OMNIFUSE_ALERT_NOTIFIER")
    if not spec:
        return None
    module, cls = spec.split(":")
    kwargs = json.loads(os.environ.get("OMNIFUSE_ALERT_NOTIFIER_KWARGS", "{}"))
    return getattr(importlib.import_module(module), cls)(**kwargs)
