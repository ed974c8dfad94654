"""``core.interactions``: every channel's staged events as one table, customers resolved, revenue in EUR.

``core.interactions`` is the *working build*; readers see the *validated build*, ``core.validated_interactions``,
through ``core.usable_interactions``. A run's core gate promotes what it judged (:func:`promote_validated`, under
the same lock as the build), so a run between its build and its gate, or one whose gate fails, hides nothing.

Each run rebuilds the event-date partitions from ``business_date - lookback`` to ``business_date``, in one
transaction: late events land in their own day's partition, and identities learnt today (a cookie that
logs in) re-attribute the recent anonymous events of that identifier. History older than the window keeps
its rows but follows the current identity map (``sql/interactions/reattribute_history.sql``): merged CRM ids
are re-pointed and identifiers re-attributed, so the result does not depend on the order dates were loaded in.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta

import psycopg2.extensions
from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings

log = logging.getLogger(__name__)


def rebuild_window(business_date: date, reattribution_days: int, late_window_days: int) -> list[date]:
    """Event dates a run for ``business_date`` rebuilds, oldest first: back ``max(reattribution, late window)``
    days, and the next day too (its clock-skewed events arrive in this batch, whichever date loads first)."""
    days = max(reattribution_days, late_window_days)
    return [business_date - timedelta(days=n) for n in range(days, -2, -1)]


def _partition(event_date: date, table: str = "interactions") -> sql.Identifier:
    return sql.Identifier("core", warehouse.partition_name(table, event_date))


def _reattribute_history(cur: psycopg2.extensions.cursor, table: str, window: list[date]) -> int:
    """Make ``core.<table>`` outside ``window`` follow the current identity map; returns the rows changed."""
    text = sql.SQL(warehouse.sql_text("interactions/reattribute_history.sql")).format(
        interactions=sql.Identifier("core", table))
    cur.execute(text, {"before_date": window[0], "after_date": window[-1]})
    return int(cur.fetchone()[0])


def _fresh_partition(cur: psycopg2.extensions.cursor, event_date: date) -> None:
    part = _partition(event_date)
    cur.execute(
        sql.SQL("create table if not exists {} partition of core.interactions for values in ({})").format(
            part, sql.Literal(event_date.isoformat())
        )
    )
    cur.execute(sql.SQL("truncate {}").format(part))
    cur.execute("delete from quarantine.interactions where event_date = %s", (event_date,))


def build_interactions(
    business_date: date,
    *,
    url: str | None = None,
    reattribution_days: int | None = None,
    late_window_days: int | None = None,
    settings: Settings | None = None,
) -> dict:
    """Rebuild the window's partitions of ``core.interactions``; returns a summary (per date counts) for XCom.

    Raises when a partition's staged rows do not reconcile with built + quarantined rows (a bug, rolled back).
    """
    settings = settings or load_settings()
    window = rebuild_window(
        business_date,
        settings.reattribution_days if reattribution_days is None else reattribution_days,
        settings.late_window_days if late_window_days is None else late_window_days,
    )
    late = settings.late_window_days if late_window_days is None else late_window_days
    started = time.perf_counter()
    built = []
    with warehouse.transaction(url) as cur:
        warehouse.lock(cur, "interactions")
        repointed = _reattribute_history(cur, "interactions", window)
        for event_date in window:
            _fresh_partition(cur, event_date)
            cur.execute(warehouse.sql_text("interactions/core_interactions.sql"),
                        {"event_date": event_date, "late_window_days": late})
            staged, rows, quarantined, customers, anonymous = cur.fetchone()
            if staged != rows + quarantined:
                raise RuntimeError(
                    f"core.interactions {event_date}: {staged} staged rows but {rows} built + {quarantined} "
                    "quarantined; this is a bug in interactions/core_interactions.sql, the rebuild was rolled back."
                )
            cur.execute(
                """
                insert into core.interaction_builds as b (event_date, business_date, rows_staged, rows_built,
                                                         rows_quarantined, customers, anonymous_rows, built_at)
                values (%s, %s, %s, %s, %s, %s, %s, now())
                on conflict (event_date) do update set
                    business_date = excluded.business_date, rows_staged = excluded.rows_staged,
                    rows_built = excluded.rows_built, rows_quarantined = excluded.rows_quarantined,
                    customers = excluded.customers, anonymous_rows = excluded.anonymous_rows,
                    built_at = excluded.built_at
                """,
                (event_date, business_date, staged, rows, quarantined, customers, anonymous),
            )
            cur.execute(sql.SQL("analyze {}").format(_partition(event_date)))
            built.append({"event_date": event_date.isoformat(), "rows": rows, "quarantined": quarantined,
                          "anonymous": anonymous})
    summary = {
        "business_date": business_date.isoformat(),
        "event_dates": [b["event_date"] for b in built if b["rows"]],
        "rows": sum(b["rows"] for b in built),
        "quarantined": sum(b["quarantined"] for b in built),
        "anonymous": sum(b["anonymous"] for b in built),
        "repointed_rows": repointed,
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("interactions %s: %s", business_date, summary)
    return summary


def promote_validated(cur: psycopg2.extensions.cursor, business_date: date, settings: Settings) -> list[date]:
    """Promote the working build of the event dates that the run of ``business_date`` rebuilt (and its core gate
    has just passed) to ``core.validated_interactions``, record them in ``core.validated_builds``, and make the
    validated history outside them follow the current identity map. Returns the event dates promoted.

    Call it in the transaction that records the gate's verdict, holding the ``interactions`` lock since before the
    gate read the build (:func:`omnifuse.quality.run_gate` does): what is promoted is what was judged. Rows are
    replaced with DELETE and INSERT, never TRUNCATE, so a reader's open snapshot keeps the rows it saw.
    """
    window = rebuild_window(business_date, settings.reattribution_days, settings.late_window_days)
    cur.execute("select event_date from core.interaction_builds where event_date = any(%s) order by 1", (window,))
    built = [d for (d,) in cur.fetchall()]
    for event_date in built:
        part = _partition(event_date, "validated_interactions")
        cur.execute(
            sql.SQL("create table if not exists {} partition of core.validated_interactions for values in ({})")
            .format(part, sql.Literal(event_date.isoformat())))
        cur.execute(sql.SQL("delete from {}").format(part))
        cur.execute(sql.SQL("insert into {} select * from {}").format(part, _partition(event_date)))
        rows = cur.rowcount
        cur.execute(sql.SQL("analyze {}").format(part))
        cur.execute(
            """
            insert into core.validated_builds as v (event_date, business_date, rows_validated, own_batch,
                                                   own_run_validated, validated_at)
            select %(event_date)s, %(business_date)s, %(rows)s,
                   exists (  -- the build read the date's own arrival batch only if its staging gate passed
                       select 1 from ops.quality_status as q
                       where q.gate = 'staging' and q.business_date = %(event_date)s and q.passed),
                   %(own)s, now()
            on conflict (event_date) do update set
                business_date = excluded.business_date, rows_validated = excluded.rows_validated,
                own_batch = excluded.own_batch,
                own_run_validated = v.own_run_validated or excluded.own_run_validated,
                validated_at = excluded.validated_at
            """,
            {"event_date": event_date, "business_date": business_date, "rows": rows,
             "own": event_date == business_date},
        )
    if built:
        _reattribute_history(cur, "validated_interactions", window)
    log.info("interactions %s: promoted the validated build of %s", business_date, [d.isoformat() for d in built])
    return built
