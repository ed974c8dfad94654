"""Loading history through the real DAGs, honestly: ``omnifuse backfill --from DATE --to DATE``.

Each business date is one real ``omnifuse_ingest`` run (``dag.test()``, conf ``business_date``), then
``omnifuse_retrain`` and ``omnifuse_publish`` run for the last date (or for every date). A run's logical date
is never the business date: runs are stamped with the time they really ran (the logical date is the moment the
run starts; with ``logical_date=None`` ``dag.test()`` would delete the DAG's earlier runs without a logical date,
leaving only the last one in the UI), so a business date years before the DAGs' ``start_date`` works, and the
Airflow UI shows every run with its true start time and duration.

A run only counts as done when every task of the DAG has a task instance that succeeded: a run that
executed no task, or skipped or never reached a task that must run, is a failure that says which tasks and
why — never a success. Dates run in ascending order by default; ``--order shuffled`` (tests) runs them in a
seeded random order, which gives the same tables.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

#: Task states that count as done for a run; anything else (skipped, upstream_failed, none) is a failure.
DONE_STATES = frozenset({"success"})


class BackfillError(RuntimeError):
    """A DAG run of the backfill did not run every task to success; the message names them."""


@dataclass
class RunOutcome:
    """What one DAG run for one business date did (``ok`` only when every task succeeded)."""

    dag_id: str
    business_date: date
    run_id: str | None
    state: str
    seconds: float
    tasks: dict[str, str] = field(default_factory=dict)  # task id (map index) -> state
    missing: list[str] = field(default_factory=list)  # tasks of the DAG with no task instance

    @property
    def ok(self) -> bool:
        return (self.state == "success" and bool(self.tasks) and not self.missing
                and all(s in DONE_STATES for s in self.tasks.values()))

    def why(self) -> str:
        """One line saying what went wrong (empty when ``ok``)."""
        if self.ok:
            return ""
        if not self.tasks:
            return (f"{self.dag_id} {self.business_date}: the run executed no task at all (state {self.state}); "
                    "nothing was loaded. Check that the DAG parses (`airflow dags list-import-errors`).")
        bad = {t: s for t, s in sorted(self.tasks.items()) if s not in DONE_STATES}
        parts = []
        if bad:
            parts.append("tasks not successful: " + ", ".join(f"{t}={s}" for t, s in bad.items()))
        if self.missing:
            parts.append("tasks that never ran: " + ", ".join(self.missing))
        return (f"{self.dag_id} {self.business_date}: run {self.run_id} ended {self.state}; " + "; ".join(parts)
                + ". Read the failed task's log (`make airflow`, or under $OMNIFUSE_STATE_DIR/airflow/logs), fix, "
                "then re-run this date: a re-run replaces exactly what the date owns.")


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"backfill range is empty: --from {start} is after --to {end}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def run_outcome(dag: Any, business_date: date, conf: dict | None = None, *,
                logical_date: datetime | None = None) -> RunOutcome:
    """Run ``dag`` once for ``business_date`` with ``dag.test()`` and read back what its tasks did.

    ``logical_date``: the moment the run starts when not given (see the module docstring); tests pass an old one
    to show that a run Airflow creates without task instances is reported as a failure.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    started = time.perf_counter()
    run = dag.test(logical_date=logical_date or datetime.now(UTC),
                   run_conf={"business_date": business_date.isoformat(), **(conf or {})})
    seconds = time.perf_counter() - started
    run_id = getattr(run, "run_id", None)
    state = str(getattr(run, "state", run))
    state = state.split(".")[-1].lower()
    tasks: dict[str, str] = {}
    if run_id is not None:
        with create_session() as session:
            rows = session.execute(
                select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
                .where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id)
            ).all()
        for task_id, map_index, ti_state in rows:
            key = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
            tasks[key] = str(getattr(ti_state, "value", ti_state)).lower()
    ran = {t.split("[")[0] for t in tasks}
    missing = sorted(set(dag.task_ids) - ran)
    return RunOutcome(dag.dag_id, business_date, run_id, state, seconds, tasks, missing)


def order_dates(days: list[date], order: str, seed: int = 7) -> list[date]:
    """``ascending`` (default), ``descending`` or ``shuffled`` (seeded)."""
    if order == "ascending":
        return sorted(days)
    if order == "descending":
        return sorted(days, reverse=True)
    if order == "shuffled":
        out = sorted(days)
        random.Random(seed).shuffle(out)
        return out
    raise ValueError(f"unknown order {order!r}: ascending, descending or shuffled")


class Progress:
    """A one-line progress bar on stderr: dates done, dates left, time remaining."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()

    def step(self, note: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = elapsed / self.done * left
        width = 30
        filled = int(width * self.done / self.total)
        self.stream.write(f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} dates, "
                          f"{left} left, {elapsed:,.0f}s elapsed, ~{eta:,.0f}s remaining — {note}\n")
        self.stream.flush()


def backfill(start: date, end: date, *, retrain: str = "last", order: str = "ascending",
             stop_on_failure: bool = True, settings=None,
             report: Callable[[str], None] | None = print) -> list[RunOutcome]:
    """Load ``start .. end`` through the real DAGs; returns every run's outcome.

    ``retrain``: ``last`` (retrain and publish for the last date), ``every`` (after every ingested date, in
    the order run) or ``none``. Raises :class:`BackfillError` listing the failed dates when any run failed
    (after the remaining dates ran, unless ``stop_on_failure``).
    """
    import os

    from omnifuse.airflow_env import prepare_airflow

    # a year of history renders Data Docs only for the gate runs that need a look (set it to override)
    os.environ.setdefault("OMNIFUSE_DATA_DOCS", "on_failure")
    settings = prepare_airflow(settings)  # before anything imports Airflow
    from omnifuse.airflow_glue import load_dag

    days = order_dates(date_range(start, end), order, settings.seed)
    dags = {dag_id: load_dag(settings, dag_id) for dag_id in ("omnifuse_ingest", "omnifuse_retrain",
                                                             "omnifuse_publish")}
    outcomes: list[RunOutcome] = []
    progress = Progress(len(days), "backfill")

    def run(dag_id: str, day: date) -> RunOutcome:
        outcome = run_outcome(dags[dag_id], day)
        outcomes.append(outcome)
        if not outcome.ok and stop_on_failure:
            raise BackfillError(outcome.why())
        return outcome

    for day in days:
        outcome = run("omnifuse_ingest", day)
        if retrain == "every" and outcome.ok:
            run("omnifuse_retrain", day)
            run("omnifuse_publish", day)
        progress.step(f"{day} {'ok' if outcome.ok else 'FAILED'} in {outcome.seconds:.1f}s")
    if retrain == "last":
        last = max(days)
        if all(o.ok for o in outcomes if o.business_date == last):
            for dag_id in ("omnifuse_retrain", "omnifuse_publish"):
                if not run(dag_id, last).ok:
                    break
    if report is not None:
        report(format_outcomes(outcomes))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        raise BackfillError(f"{len(failed)} of {len(outcomes)} runs failed:\n" + "\n".join(o.why() for o in failed))
    return outcomes


def format_outcomes(outcomes: Iterable[RunOutcome]) -> str:
    """Each run's outcome as a table: DAG, business date, result, tasks succeeded, seconds."""
    lines = [f"{'dag':<18} {'business date':<13} {'result':<8} {'tasks ok':>9} {'seconds':>8}"]
    for o in outcomes:
        good = sum(1 for s in o.tasks.values() if s in DONE_STATES)
        lines.append(f"{o.dag_id:<18} {o.business_date.isoformat():<13} {'ok' if o.ok else 'FAILED':<8} "
                     f"{good:>4}/{len(o.tasks) + len(o.missing):<4} {o.seconds:>8.1f}")
    return "\n".join(lines)
