"""Airflow glue, the only module of the package importing Airflow: what every DAG shares and how the DAGs are run.

- **Assets** chaining the DAGs (``core.interactions`` → ``ml.champion`` → one per ``mart`` table) and what their
  events carry (:class:`ChampionEvent`, :class:`MartEvent`), announced with :func:`announce`;
- **business dates**: which date a run owns (:func:`business_date_for`, :func:`business_date_for_asset_run`, pure;
  :func:`run_business_date`, :func:`asset_run_business_date` read the running task's context);
- **DAG defaults**: :func:`dag_defaults` (start date, no catch-up, one run at a time) with :data:`DEFAULT_ARGS`
  (owner, timeouts, retries and which errors are worth retrying: :class:`OmnifuseRetryPolicy`; the failure
  callback :func:`alert_on_failure`, the secrets masker :func:`mask_secrets`);
- **the runner**: :func:`run_dag_days` runs a real DAG with ``dag.test()`` once per business date (``make demo``,
  ``omnifuse backfill``, tests).

Importing Airflow reads its configuration once, so import this module only where Airflow's environment is set:
inside Airflow, or after :func:`omnifuse.airflow_env.prepare_airflow` (the test session sets it first thing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import pendulum
from airflow.sdk import Asset, RetryAction, RetryDecision, RetryPolicy, get_current_context

from omnifuse.config import Settings, load_timeouts

if TYPE_CHECKING:
    from omnifuse.mart import Coverage, Published
    from omnifuse.registry import GateDecision

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


class ChampionEvent(TypedDict):
    """The extra of an ``ml.champion`` Asset event."""

    business_date: str
    champion: str | None  # kept for readers of the first events; the same as model_version
    model_version: str | None
    promoted: bool
    run_id: str


class MartEvent(TypedDict, total=False):
    """The extra of a ``mart.<table>`` Asset event (``coverage`` on ``customer_recommendations`` only)."""

    business_date: str
    model_version: str
    rows: int | None
    live: bool
    coverage: Coverage


def interactions_event_extra(built: dict) -> dict:
    """What an Asset event of ``core.interactions`` says changed: the business date, the event dates rebuilt and
    their rows (``omnifuse.interactions.build_interactions``'s summary)."""
    return {"business_date": built["business_date"], "event_dates": list(built.get("event_dates") or []),
            "rows": int(built.get("rows") or 0), "quarantined": int(built.get("quarantined") or 0)}


def champion_event_extra(decision: GateDecision) -> ChampionEvent:
    """What an Asset event of ``ml.champion`` says: the business date, the champion's model version, whether this
    run's model was promoted and the run that was judged (``omnifuse.training_run.gate_champion``'s decision)."""
    return ChampionEvent(business_date=decision["business_date"], champion=decision["champion"],
                         model_version=decision["champion"], promoted=bool(decision["promoted"]),
                         run_id=decision["run_id"])


def mart_event_extras(published: Published) -> dict[str, MartEvent]:
    """Per ``mart`` table, what its Asset event says (``omnifuse.mart.publish_mart``'s summary): business date,
    model version, rows published, live (swapped in) or history only; coverage for the recommendations."""
    rows = published["rows"]
    extras = {}
    for table in MART_TABLES:
        extra = MartEvent(business_date=published["business_date"], model_version=published["model_version"],
                          rows=int(rows[table]) if table in rows else None, live=bool(published["live"]))
        if table == "customer_recommendations":
            extra["coverage"] = published["coverage"]
        extras[table] = extra
    return extras


def announce(asset: Asset, extra: Mapping[str, Any]) -> None:
    """Attach ``extra`` to the running task's event of ``asset`` (one of its outlets): what the DAGs scheduled on
    the Asset read (:func:`business_date_for_asset_run`) and what the Airflow UI shows."""
    get_current_context()["outlet_events"][asset].extra = dict(extra)


def business_date_for(conf: Mapping[str, object] | None, data_interval_start: datetime | None,
                      logical_date: datetime | None) -> date:
    """``conf["business_date"]`` when a run is triggered by hand (backfill of any date), else the start of
    the run's data interval (the day that just ended), else its logical date."""
    if conf and conf.get("business_date"):
        try:
            return date.fromisoformat(str(conf["business_date"]))
        except ValueError as exc:
            raise ValueError(
                f"run conf business_date={conf['business_date']!r} is not a date; trigger with "
                '{"business_date": "YYYY-MM-DD"}'
            ) from exc
    moment = data_interval_start or logical_date
    if moment is None:
        raise ValueError("the run has neither a data interval nor a logical date; pass conf business_date")
    return moment.date()


def business_date_for_asset_run(conf: Mapping[str, object] | None,
                                event_extras: Sequence[Mapping[str, object]]) -> date:
    """The date an asset-scheduled run (retrain, publish) processes.

    ``conf["business_date"]`` when triggered by hand; else the latest ``business_date`` among the triggering
    Asset events (the scheduler may merge several events into one run; everything they announced is in the
    warehouse, so the latest date covers them).
    """
    if conf and conf.get("business_date"):
        return business_date_for(conf, None, None)
    dates = [date.fromisoformat(str(e["business_date"])) for e in event_extras if e and e.get("business_date")]
    if not dates:
        raise ValueError("this run was neither triggered by an Asset event carrying a business_date nor given "
                         '{"business_date": "YYYY-MM-DD"} in its conf; trigger it with that conf.')
    return max(dates)


def run_business_date() -> date:
    """The business date the running task's (time-scheduled) run owns: :func:`business_date_for` its context."""
    ctx = get_current_context()
    return business_date_for(ctx["dag_run"].conf, ctx.get("data_interval_start"), ctx.get("logical_date"))


def asset_run_business_date() -> date:
    """The business date the running task's Asset-scheduled run (retrain, publish) processes: its conf, else the
    latest date announced by the triggering Asset events (:func:`business_date_for_asset_run`)."""
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
    "omnifuse.landing_csv.MappingError",  # a column mapping that cannot be read: fix _mappings/<source>.toml
    "omnifuse.quality.QualityGateError",  # a failed gate: its verdict will not change by asking again
    "omnifuse.mart.PublishCheckError",  # an output check failed: the scored rows are wrong
    "omnifuse.business_date.BusinessDateError",  # a date beyond the data or the champion: fix the trigger's conf
    "omnifuse.fusion.LeakageError",
    "omnifuse.recommendations.ModelArtifactError",  # a missing or corrupt model artifact
    "omnifuse.artifacts.ArtifactError",
    "omnifuse.registry.NoChampionError",  # no retrain has registered a champion yet: run omnifuse_retrain
    "omnifuse.training_run.RegisteredRunError",  # a gated run's artifacts are never rewritten: start a new run
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
_TASK_TIMEOUT_S = load_timeouts().task_s
DEFAULT_ARGS: dict = {
    "owner": "data-platform",
    "on_failure_callback": alert_on_failure,
    "on_execute_callback": mask_secrets,
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(seconds=_TASK_TIMEOUT_S) if _TASK_TIMEOUT_S else None,
    "retry_policy": OmnifuseRetryPolicy(),
}
#: Retries of a quality gate: a lost connection or lock timeout is retried, a failed expectation is not.
GATE_RETRIES = 2
#: The first date the DAGs' schedules know (``dag.test()`` runs nothing for a logical date before it).
START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")


def dag_defaults(*, owner: str | None = None, max_active_runs: int = 1) -> dict[str, Any]:
    """The ``@dag`` arguments every omnifuse DAG shares (``@dag(dag_id=…, schedule=…, tags=…, doc_md=__doc__,
    **dag_defaults())``): :data:`START_DATE`, no catch-up, ``max_active_runs`` and :data:`DEFAULT_ARGS`, with
    ``owner`` in place of theirs when given."""
    default_args = {**DEFAULT_ARGS, "owner": owner} if owner else DEFAULT_ARGS
    return {"start_date": START_DATE, "catchup": False, "max_active_runs": max_active_runs,
            "default_args": default_args}


def load_dag(settings: Settings, dag_id: str) -> Any:
    """Import a DAG object from ``dags/<dag_id>.py`` (what ``dag.test()`` is called on)."""
    import importlib.util

    from airflow.sdk import DAG

    path = settings.home / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"omnifuse_dag_{dag_id}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path}: no DAG file for {dag_id}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if isinstance(v, DAG) and v.dag_id == dag_id)


def run_dag_days(dag_id: str, days: list[date], settings: Settings | None = None,
                 echo: Callable[[str], object] = print) -> list[str]:
    """Run a real DAG with ``dag.test()`` once per business date (conf ``business_date``); ``echo`` gets one line
    per run (``<dag_id> <date>: <state> (<seconds>s)``).

    Returns ``"success"`` for a run whose every task succeeded, else ``"failed: <why>"``: a run that executed
    no task (or skipped one) is never reported as a success.
    """
    from airflow.configuration import AIRFLOW_HOME

    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.backfill import run_outcome

    settings = prepare_airflow(settings)
    if Path(AIRFLOW_HOME) != settings.state_dir / "airflow":
        raise RuntimeError(f"Airflow was imported with AIRFLOW_HOME={AIRFLOW_HOME}, not this state folder's "
                           f"{settings.state_dir / 'airflow'}: call omnifuse.airflow_env.prepare_airflow() before "
                           "anything imports Airflow (omnifuse.airflow_glue included).")
    dag = load_dag(settings, dag_id)
    states = []
    for day in days:
        outcome = run_outcome(dag, day)  # stamped with the time it starts (see omnifuse.backfill)
        state = "success" if outcome.ok else f"failed: {outcome.why()}"
        states.append(state)
        echo(f"{dag_id} {day}: {state} ({outcome.seconds:.0f}s)")
    return states


def run_ingest_days(days: list[date], settings: Settings | None = None) -> list[str]:
    """Run the real ``omnifuse_ingest`` DAG once per business date; returns run states (:func:`run_dag_days`)."""
    return run_dag_days("omnifuse_ingest", days, settings)
