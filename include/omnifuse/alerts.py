"""Failure alerts: a row in ``ops.alerts`` per failed task try, plus any configured Airflow notifier."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
from datetime import date
from typing import Any

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings

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

#: Environment variables whose values are secrets, by a part of their name.
SECRET_NAME_PARTS = ("PASSWORD", "SECRET", "FERNET", "TOKEN", "PRIVATE_KEY", "API_KEY")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?=@)", re.IGNORECASE)


def known_secrets() -> list[str]:
    """Secret values this process knows: environment variables named like secrets (``SECRET_NAME_PARTS``) and
    the passwords inside connection URLs in the environment (``AIRFLOW_CONN_*``, ``OMNIFUSE_*_URL``)."""
    found = set()
    for name, value in os.environ.items():
        if not value:
            continue
        if any(part in name.upper() for part in SECRET_NAME_PARTS) and len(value) >= 4:
            found.add(value)
        for match in _URL_PASSWORD.finditer(value):
            found.add(match.group("password"))
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with URL passwords and every :func:`known_secrets` value replaced by ``***``."""
    text = _URL_PASSWORD.sub(r"\g<head>***", text)
    for secret in known_secrets():
        text = text.replace(secret, "***")
    return text


def record_alert(dag_id: str, task_id: str, run_id: str, try_number: int | None, business_date: date | None,
                 error: BaseException | str | None, log_url: str | None = None, url: str | None = None) -> str:
    """Write one ``ops.alerts`` row; returns the hint it recorded."""
    kind = type(error).__name__ if isinstance(error, BaseException) else ""
    hint = HINTS.get(kind, DEFAULT_HINT)
    if kind == "AirflowSensorTimeout" and task_id.startswith("wait_for_"):
        folder = task_id.removeprefix("wait_for_")
        hint = (f"The {folder} delivery for {business_date or 'this date'} never came: "
                f"<landing>/{folder}/{business_date or '<date>'}/_manifest.json is missing (the sender writes it "
                "last). The other channels of the day were loaded, but the date is not built, validated or "
                "announced until this delivery is loaded: ask the sender, then clear this task.")
    text = redact(f"{kind}: {error}" if kind else str(error or "task failed"))  # ops.alerts is widely read
    with warehouse.transaction(url) as cur:
        cur.execute(
            "insert into ops.alerts (dag_id, task_id, run_id, try_number, business_date, error, hint, log_url) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s)",
            (dag_id, task_id, run_id, try_number, business_date, text[:4000], hint, log_url),
        )
    return hint


def configured_notifier(settings: Settings | None = None) -> Any:
    """``OMNIFUSE_ALERT_NOTIFIER=module:Class`` (an Airflow notifier) with ``OMNIFUSE_ALERT_NOTIFIER_KWARGS`` (JSON)."""
    settings = settings or load_settings()
    spec = settings.alert_notifier
    if not spec:
        return None
    module, cls = spec.split(":")
    kwargs = json.loads(settings.alert_notifier_kwargs)
    return getattr(importlib.import_module(module), cls)(**kwargs)
