"""The ``mart`` tables BI reads: build every table aside, check it, publish it in place, with history.

One publish run serves **one** model version, resolved once (:func:`omnifuse.recommendations.champion_version`)
and handed to every step:

- ``plan_batches`` / ``score_batch`` (:mod:`omnifuse.recommendations`): personalised recommendations with
  evidence and per-model contributions into ``ml.recommendation_batches``;
- :func:`publish_mart`: in one transaction under an advisory lock, checks the business date
  (:mod:`omnifuse.business_date`: within the usable data, a retrain through it), builds ``mart.<table>__next``
  for every table — personalised lists plus a labelled fallback for every other known customer, contributions,
  segments (:mod:`omnifuse.segments`), channel metrics with returns, model performance, similar products,
  bought together — runs the output checks (a failure raises :class:`PublishCheckError` and leaves yesterday's
  tables untouched), replaces the live tables' rows, writes the dated history, and records
  ``mart.publish_log`` with the customers' coverage.

**In place, for every isolation level** (migration 0030): the live ``mart.<table>`` is always the same relation;
a publish deletes its rows and inserts the checked ones from ``mart.<table>__next`` in the publish transaction.
A reader sees the old rows or the new ones, never half, whatever its isolation level: a REPEATABLE READ or
SERIALIZABLE transaction whose snapshot predates the publish (an extractor, ``pg_dump``) keeps reading the old
rows after the publish commits. Renaming a new table into place (or attaching one) was not safe for it: the
catalog is read with the latest snapshot, the rows with the reader's, so the new table looked empty. TRUNCATE is
not MVCC-safe either. Delete and insert take ROW EXCLUSIVE locks, which BI reads neither wait for nor hold up;
a table-level lock someone holds (``LOCK TABLE``, ``VACUUM FULL``) is waited for under a short ``lock_timeout``,
retried, then the task fails with a message (never a wait without end). Grants and ``COMMENT ON`` docs stay
those of the same tables. The price: the rows are written twice (the checked table, then the live one), and the
replaced rows are dead tuples until autovacuum reclaims them (``bench/publish.py`` measures it).

**History** (``HISTORY``): ``mart.<table>_history`` is list-partitioned by business date. A date's first publish
makes its checked ``mart.<table>__next`` the partition ``mart.<table>_history_p<yyyymmdd>`` (key dropped,
attached without a scan thanks to its ``check (business_date = <date>)``; written once); a re-run replaces the
rows inside that partition (delete + insert: same reasoning). Partitions older than
``OMNIFUSE_MART_RETENTION_DAYS`` before the newest date published are dropped, never the live date's, and only when
no reader holds the history table (otherwise the next publish tries again). A publish for a date beyond the data
is refused before anything is touched, so it can no longer push real dates out of history.

**Monotonic guard**: a business date older than the one live in ``mart`` only writes its history partitions
(``publish_log.live = false``); ``force=True`` swaps it in anyway.
"""

from __future__ import annotations

import io
import logging
import re
import time
from datetime import date, timedelta
from typing import TypedDict

import numpy as np
import pandas as pd
import psycopg2.errors
import scipy.sparse as sp
from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.business_date import check_publishable, check_publishable_date, newest_usable_date
from omnifuse.config import Settings, load_settings
from omnifuse.dataset import Dataset
from omnifuse.fusion import FusedModel
from omnifuse.models.assoc_rules import AssociationRules
from omnifuse.recommendations import champion_version, load_model, plan_batches, score_batch
from omnifuse.segments import build_segments

log = logging.getLogger(__name__)

SWAPPED = ("customer_recommendations", "recommendation_contributions", "similar_products", "bought_together",
           "customer_segments", "channel_daily", "model_performance")
HISTORY = ("customer_recommendations", "customer_segments")
#: tables built from one SQL file each (``sql/mart/<table>.sql``), after the segments
FROM_SQL = ("customer_recommendations", "recommendation_contributions", "channel_daily", "model_performance")


class PublishCheckError(RuntimeError):
    """An output check failed: the previous tables stay in place."""


class PublishRun(TypedDict):
    """What one publish run serves, resolved once (the DAG's ``resolve_champion``) and handed to every task."""

    business_date: str  # ISO date
    model_version: str
    force: bool  # swap an older date in over a newer live one


class Coverage(TypedDict):
    """Known customers and the shares of them with a personalised list or a fallback (``mart.publish_log``)."""

    customers_known: int
    personalised_share: float | None
    fallback_share: float | None


class Published(TypedDict):
    """:func:`publish_mart`'s summary: what was published, live or history only, and how long each phase took."""

    business_date: str  # ISO date
    model_version: str
    live: bool
    note: str | None
    rows: dict[str, int]  # per mart table
    coverage: Coverage
    max_swap_ms: float
    seconds: float
    phase_seconds: dict[str, float]


def _next(table: str) -> sql.Identifier:
    return sql.Identifier("mart", f"{table}__next")


def _create_next(cur, table: str, business_date: date) -> None:
    """An empty copy of the live table (columns, defaults, comments) without its indexes: they are built in bulk
    after the rows are in (:func:`_index_next`), which is much faster than maintaining them row by row. A table
    kept in history also gets ``check (business_date = <date>)``, which lets it be attached as the date's history
    partition without a scan (and makes it refuse a row of another date)."""
    cur.execute(sql.SQL("drop table if exists {}").format(_next(table)))
    cur.execute(sql.SQL("create table {} (like {} including all excluding indexes)").format(
        _next(table), sql.Identifier("mart", table)))
    if table in HISTORY:
        one_date = sql.Identifier(f"{table}_one_date")  # copied from the live table by "including all"
        cur.execute(sql.SQL("alter table {} drop constraint if exists {}").format(_next(table), one_date))
        cur.execute(sql.SQL("alter table {} add constraint {} check (business_date = {})").format(
            _next(table), one_date, sql.Literal(business_date.isoformat())))


def _index_next(cur, table: str) -> None:
    """Recreate the live table's primary key on the next table."""
    columns = _primary_key(cur, table)
    if columns:
        cur.execute(sql.SQL("alter table {} add primary key ({})").format(_next(table), columns))


def _copy(cur, table: str, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    buf.seek(0)
    cur.copy_expert(sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        _next(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))), buf)


def _similar(data: Dataset, fused: FusedModel, business_date: date, version: str, n: int = 10) -> pd.DataFrame:
    sim = sp.csr_matrix(fused.models["item_knn"].state["sim"]) if "item_knn" in fused.models else None
    rows = []
    if sim is not None:
        for i in range(sim.shape[0]):
            s, e = sim.indptr[i], sim.indptr[i + 1]
            order = np.argsort(-sim.data[s:e], kind="stable")[:n]
            for r, j in enumerate(order):
                rows.append((business_date, data.products[i], r + 1, data.products[sim.indices[s + j]],
                             float(sim.data[s + j]), version))
    return pd.DataFrame(rows, columns=["business_date", "product_id", "rank", "similar_product_id", "similarity",
                                       "model_version"])


def _bought_together(data: Dataset, fused: FusedModel, business_date: date, version: str, n: int = 10
                     ) -> pd.DataFrame:
    cols = ["business_date", "product_id", "rank", "other_product_id", "support", "confidence", "lift",
            "model_version"]
    if "assoc_rules" not in fused.models:
        return pd.DataFrame(columns=cols)
    assoc: AssociationRules = fused.models["assoc_rules"]  # type: ignore[assignment]  # registered under that name
    rules = assoc.rules(data).rename(columns={"product_a": "product_id", "product_b": "other_product_id"})
    rules = rules.sort_values(["product_id", "lift", "other_product_id"], ascending=[True, False, True])
    rules["rank"] = rules.groupby("product_id").cumcount() + 1
    rules = rules[rules["rank"] <= n]
    return rules.assign(business_date=business_date, model_version=version)[cols]


def _check(cur, top_k: int) -> None:
    query = sql.SQL(warehouse.sql_text("mart/check_recommendations.sql")).format(
        next=_next("customer_recommendations"))
    cur.execute(query, {"top_k": top_k})
    failed = [(name, n) for name, n in cur.fetchall() if n]
    if failed:
        raise PublishCheckError(
            "mart.customer_recommendations output checks failed, nothing was published (yesterday's tables stay): "
            + "; ".join(f"{name}: {n}" for name, n in failed)
            + ". Look at ml.recommendation_batches for the date and the champion in ml.model_registry.")


def _history_parent(table: str) -> sql.Identifier:
    return sql.Identifier("mart", f"{table}_history")


def _history_name(table: str, day: date) -> str:
    return warehouse.partition_name(f"{table}_history", day)


def _partition_date(bound: str | None) -> date | None:
    """The date of a list partition bound as Postgres prints it: ``FOR VALUES IN ('2026-11-02')``."""
    found = re.search(r"'(\d{4}-\d{2}-\d{2})'", bound or "")
    return date.fromisoformat(found.group(1)) if found else None


def _history_partitions(cur, table: str) -> dict[date, str]:
    """{business date: table name in mart} of ``mart.<table>_history``'s partitions."""
    cur.execute("select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits as i "
                "join pg_class as c on c.oid = i.inhrelid where i.inhparent = %s::regclass",
                (f"mart.{table}_history",))
    return {day: name for name, bound in cur.fetchall() if (day := _partition_date(bound)) is not None}


def _primary_key(cur, table: str) -> sql.Composable | None:
    """The primary-key columns of ``mart.<table>`` (quoted, in key order), or None."""
    cur.execute("select string_agg(quote_ident(a.attname), ', ' order by k.ord) from pg_index i "
                "cross join unnest(i.indkey) with ordinality as k(attnum, ord) "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum "
                "where i.indrelid = %s::regclass and i.indisprimary", (f"mart.{table}",))
    columns = cur.fetchone()[0]
    return sql.SQL(columns) if columns else None


def _drop_primary_key(cur, name: str) -> None:
    """History partitions carry no index: drop the key of ``mart.<name>``."""
    cur.execute("select conname from pg_constraint where conrelid = %s::regclass and contype = 'p'",
                (f"mart.{name}",))
    for (constraint,) in cur.fetchall():
        cur.execute(sql.SQL("alter table {} drop constraint {}").format(sql.Identifier("mart", name),
                                                                        sql.Identifier(constraint)))


def _history(cur, table: str, business_date: date) -> None:
    """Write ``mart.<table>__next`` as the date's history in ``mart.<table>_history``.

    A date without history yet: the next table itself becomes the partition (renamed
    ``mart.<table>_history_p<yyyymmdd>``, its key dropped, attached without a scan thanks to its check
    constraint) — the rows are written once. A date that has one (a re-run, or a history-only publish of a date
    published before): its rows are replaced inside that same partition (delete + insert), so a reader whose
    snapshot predates this publish keeps reading the date's old rows; dropping and re-attaching a partition
    would show it an empty date.
    """
    current = _history_partitions(cur, table).get(business_date)
    if current is not None:
        part = sql.Identifier("mart", current)
        cur.execute(sql.SQL("delete from {}").format(part))
        cur.execute(sql.SQL("insert into {} select * from {}").format(part, _next(table)))
        cur.execute(sql.SQL("drop table {}").format(_next(table)))
        return
    name = _history_name(table, business_date)
    _drop_primary_key(cur, f"{table}__next")
    cur.execute(sql.SQL("alter table {} rename to {}").format(_next(table), sql.Identifier(name)))
    cur.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(
        _history_parent(table), sql.Identifier("mart", name), sql.Literal(business_date.isoformat())))


def _with_short_lock_timeout(cur, *statements: sql.Composable) -> bool:
    """Run ``statements`` in a savepoint under a 1 s ``lock_timeout``: True when they ran, False (rolled back to
    the savepoint) when a lock was not granted in time. The session's ``lock_timeout`` holds afterwards either way.
    """
    cur.execute("show lock_timeout")
    session_timeout = cur.fetchone()[0]
    cur.execute("savepoint short_lock")
    try:
        cur.execute("set local lock_timeout = '1s'")
        for statement in statements:
            cur.execute(statement)
    except psycopg2.errors.LockNotAvailable:
        cur.execute("rollback to savepoint short_lock")  # undoes the set local too
        return False
    cur.execute("release savepoint short_lock")
    cur.execute("set local lock_timeout = %s", (session_timeout,))
    return True


def _expire_history(cur, table: str, cutoff: date, keep: set[date]) -> list[date]:
    """Drop ``mart.<table>_history``'s partitions older than ``cutoff`` (never those of ``keep``: the live date).

    Dropping a partition takes an ACCESS EXCLUSIVE lock on the history table, which waits behind BI reads of it:
    each drop tries under a short ``lock_timeout`` in a savepoint and is left to the next publish when readers
    hold the table (history past retention is no reason to fail or to hold up a publish). Returns what it dropped.
    """
    dropped = []
    for day, name in sorted(_history_partitions(cur, table).items()):
        if day >= cutoff or day in keep:
            continue
        drop = sql.SQL("drop table {}").format(sql.Identifier("mart", name))
        if _with_short_lock_timeout(cur, drop):
            dropped.append(day)
        else:
            log.warning("mart.%s (history of %s, past retention) is being read: left for the next publish",
                        name, day)
    return dropped


def _replace(cur, table: str, attempts: int = 10) -> float:
    """Replace the rows of the live ``mart.<table>`` by those of ``mart.<table>__next``; returns the ms it took.

    The rows are replaced inside the same relation (delete + insert, not TRUNCATE and not a rename), so every
    reader sees the old rows or the new ones at every isolation level: a REPEATABLE READ or SERIALIZABLE
    transaction (an extractor, ``pg_dump``) whose snapshot predates the publish keeps reading the old rows,
    because rows are filtered by its snapshot while a renamed-in table would be found through the latest catalog
    and look empty to it. Delete and insert take a ROW EXCLUSIVE lock, which BI reads never wait for nor hold up;
    only a DDL-level lock on the table (someone's ``LOCK TABLE``, ``VACUUM FULL``) makes it wait: then a short
    ``lock_timeout`` in a savepoint, retried, and the task fails with a clear message rather than wait forever.
    """
    live = sql.Identifier("mart", table)
    key = _primary_key(cur, table)
    insert = (sql.SQL("insert into {} select * from {} order by {}").format(live, _next(table), key) if key
              else sql.SQL("insert into {} select * from {}").format(live, _next(table)))
    for attempt in range(attempts):
        started = time.perf_counter()
        if _with_short_lock_timeout(cur, sql.SQL("delete from {}").format(live), insert):
            return (time.perf_counter() - started) * 1000
        log.warning("replacing the rows of mart.%s waited past lock_timeout (attempt %d); retrying", table,
                    attempt + 1)
        time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"could not publish mart.{table}: a lock on it (LOCK TABLE, VACUUM FULL, ALTER) was held "
                       f"for {attempts} attempts; clear the task to retry (nothing was published).")


def _newest_live(cur) -> date | None:
    """The business date whose tables are live in ``mart``: that of the latest publish that swapped (a forced
    older date is what is live after it)."""
    cur.execute("select business_date from mart.publish_log where live and table_name = "
                "'mart.customer_recommendations' order by published_at desc limit 1")
    row = cur.fetchone()
    return row[0] if row else None


def _coverage(cur) -> Coverage:
    cur.execute(sql.SQL(warehouse.sql_text("mart/coverage.sql")).format(next=_next("customer_recommendations")))
    known, personalised, fallback = cur.fetchone()
    return Coverage(customers_known=known, personalised_share=personalised / known if known else None,
                    fallback_share=fallback / known if known else None)


def publish_mart(business_date: date, *, model_version: str | None = None, force: bool = False,
                 url: str | None = None, top_k: int | None = None, settings: Settings | None = None) -> Published:
    """Check the date, build, check, replace every mart table's rows and record history in one transaction; write
    ``mart.publish_log``. Raises :class:`omnifuse.business_date.BusinessDateError` for a date beyond the data or
    the champion (nothing touched).

    ``model_version``: the version the run scored with (resolved once by the DAG; the current champion when
    omitted). ``force``: swap an older business date in over a newer live one (otherwise history only).
    ``top_k``: the list length the scoring batches used (default ``OMNIFUSE_TOP_K``).
    """
    settings = settings or load_settings()
    top_k = top_k or settings.top_k
    version = model_version or champion_version(url)
    fused, data = load_model(version, url)  # an unreadable artifact fails here, before anything is touched
    started = time.perf_counter()
    phases: dict[str, float] = {}
    mark = [started]

    def lap() -> float:
        now = time.perf_counter()
        seconds, mark[0] = round(now - mark[0], 2), now
        return seconds

    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            warehouse.lock(cur, "publish")
            check_publishable(cur, business_date)  # a date beyond the data or the champion never goes live
            newest = _newest_live(cur)
            stray = None  # a live date beyond the data (published before dates were checked): it guards nothing
            if newest is not None and newest > business_date and newest > (newest_usable_date(cur) or newest):
                stray, newest = newest, None
            live = force or newest is None or business_date >= newest
            note = None if live else (f"history only: {newest} is live and newer; trigger with "
                                      '{"force": true} to swap this date in')
            if force and newest is not None and business_date < newest:
                note = f"forced over {newest}"
            if stray is not None:
                note = f"replaced {stray}, a date beyond the usable data"
                log.warning("publish of %s: %s", business_date, note)
            for table in SWAPPED:
                _create_next(cur, table, business_date)
            params = {"business_date": business_date, "model_version": version, "top_k": top_k,
                      "max_per_category": fused.rules.max_per_category,
                      "recommend_repeats": settings.recommend_repeats}
            _copy(cur, "customer_segments", build_segments(cur, business_date, settings))
            phases["segments"] = lap()
            for table in FROM_SQL:
                cur.execute(sql.SQL(warehouse.sql_text(f"mart/{table}.sql")).format(next=_next(table)), params)
                phases[table] = lap()
            _copy(cur, "similar_products", _similar(data, fused, business_date, version))
            _copy(cur, "bought_together", _bought_together(data, fused, business_date, version))
            phases["similar_and_bought_together"] = lap()
            for table in SWAPPED:
                _index_next(cur, table)
                cur.execute(sql.SQL("analyze {}").format(_next(table)))  # fresh statistics for the checks' plans
            phases["indexes"] = lap()
            # fallbacks last: few rows, and "has a personalised list?" probes the primary key built above. Its CTEs
            # over views are estimated at one row, and nested loops over them were quadratic (45 s at 2,000
            # customers without history): hash joins only, for this statement
            cur.execute("set local enable_nestloop = off")
            cur.execute(sql.SQL(warehouse.sql_text("mart/fallback_recommendations.sql")).format(
                next=_next("customer_recommendations"), segments=_next("customer_segments")), params)
            cur.execute("set local enable_nestloop = on")
            phases["fallbacks"] = lap()
            _check(cur, top_k)
            phases["checks"] = lap()
            coverage = _coverage(cur)
            phases["coverage"] = lap()
            counts = {}
            for table in SWAPPED:
                cur.execute(sql.SQL("select count(*) from {}").format(_next(table)))
                counts[table] = cur.fetchone()[0]
            if live:
                swap_ms = {table: _replace(cur, table) for table in SWAPPED}
            else:
                log.warning("publish of %s: %s", business_date, note)
                swap_ms = {table: 0.0 for table in SWAPPED}
            for table in HISTORY:
                _history(cur, table, business_date)
            for table in SWAPPED:
                if table not in HISTORY:
                    cur.execute(sql.SQL("drop table {}").format(_next(table)))
            live_date = business_date if live else newest
            cutoff = max(business_date, newest or business_date) - timedelta(days=settings.mart_retention_days)
            for table in HISTORY:
                _expire_history(cur, table, cutoff, keep={live_date} if live_date else set())
            phases["swap_and_history"] = lap()
            for table in SWAPPED:
                share = ((coverage["customers_known"], coverage["personalised_share"], coverage["fallback_share"])
                         if table == "customer_recommendations" else (None, None, None))
                cur.execute("insert into mart.publish_log (business_date, table_name, model_version, rows_published, "
                            "swap_lock_ms, live, note, customers_known, personalised_share, fallback_share) "
                            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                            (business_date, f"mart.{table}", version, counts[table], swap_ms[table], live, note,
                             *share))
    finally:
        conn.close()
    summary = Published(business_date=business_date.isoformat(), model_version=version, live=live, note=note,
                        rows=counts, coverage=coverage, max_swap_ms=round(max(swap_ms.values()), 2),
                        seconds=round(time.perf_counter() - started, 2), phase_seconds=phases)
    log.info("published %s", summary)
    return summary


def publish_date(business_date: date, *, url: str | None = None, batch_size: int | None = None,
                 force: bool = False, settings: Settings | None = None) -> Published:
    """The whole ``omnifuse_publish`` DAG's work in one process (benchmarks and tests): one champion lookup."""
    settings = settings or load_settings()
    check_publishable_date(business_date, url)  # before scoring a date that may not be published
    version = champion_version(url)
    for batch in plan_batches(business_date, version, url, batch_size, settings=settings):
        score_batch(business_date, batch, version, url=url, batch_size=batch_size, settings=settings)
    return publish_mart(business_date, model_version=version, force=force, url=url, settings=settings)
