"""The ``mart`` tables BI reads: build every table aside, check it, swap it in atomically, with history.

One publish run serves **one** model version, resolved once (:func:`omnifuse.recommendations.champion_version`)
and handed to every step:

- ``plan_batches`` / ``score_batch`` (:mod:`omnifuse.recommendations`): personalised recommendations with
  evidence and per-model contributions into ``ml.recommendation_batches``;
- :func:`publish_mart`: in one transaction under an advisory lock, builds ``mart.<table>__next`` for every
  table — personalised lists plus a labelled fallback for every other known customer, contributions, segments
  (:mod:`omnifuse.segments`), channel metrics with returns, model performance, similar products, bought
  together — runs the output checks (a failure raises :class:`PublishCheckError` and leaves yesterday's tables
  untouched), attaches the dated history partitions, then swaps each table in by rename under a short
  ``lock_timeout`` (retried), and records ``mart.publish_log`` with the customers' coverage. Readers see the
  old table or the new one, never half of one.

**History by partition attach** (migration 0017): the rows of a table kept in history (``HISTORY``) are written
once. ``mart.<table>__next`` is built with a ``check (business_date = <date>)`` and attached as the date's
partition of ``mart.<table>_history`` (the check spares the attach a scan); the live ``mart.<table>`` is
therefore itself the partition of its date, and when a newer day is swapped in it is renamed to
``mart.<table>_history_p<yyyymmdd>`` (its primary key dropped, as history partitions never had one) instead of
being dropped. Re-publishing a date replaces that date's partition (the live table is detached inside the swap,
under the same ``lock_timeout``); partitions older than ``OMNIFUSE_MART_RETENTION_DAYS`` are dropped.

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
    cur.execute("select string_agg(quote_ident(a.attname), ', ' order by k.ord) from pg_index i "
                "cross join unnest(i.indkey) with ordinality as k(attnum, ord) "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum "
                "where i.indrelid = %s::regclass and i.indisprimary", (f"mart.{table}",))
    columns = cur.fetchone()[0]
    if columns:
        cur.execute(sql.SQL("alter table {} add primary key ({})").format(_next(table), sql.SQL(columns)))


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
    """{business date: table name in mart} of ``mart.<table>_history``'s partitions (the live table among them)."""
    cur.execute("select c.relname, pg_get_expr(c.relpartbound, c.oid) from pg_inherits as i "
                "join pg_class as c on c.oid = i.inhrelid where i.inhparent = %s::regclass",
                (f"mart.{table}_history",))
    return {day: name for name, bound in cur.fetchall() if (day := _partition_date(bound)) is not None}


def _attach(cur, table: str, business_date: date) -> None:
    """Attach ``mart.<table>__next`` as the date's history partition (its check constraint spares the scan)."""
    cur.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(
        _history_parent(table), _next(table), sql.Literal(business_date.isoformat())))


def _drop_primary_key(cur, table: str) -> None:
    """History partitions carry no index (as when history was a copy): drop the key of ``mart.<table>``, a
    retired live table."""
    cur.execute("select conname from pg_constraint where conrelid = %s::regclass and contype = 'p'",
                (f"mart.{table}",))
    for (name,) in cur.fetchall():
        cur.execute(sql.SQL("alter table {} drop constraint {}").format(sql.Identifier("mart", table),
                                                                        sql.Identifier(name)))


def _history(cur, table: str, business_date: date, retention_days: int, live: bool) -> bool:
    """Make ``mart.<table>__next`` the date's partition of ``mart.<table>_history``; drop expired partitions.

    The rows are not copied: the next table itself becomes the partition. A partition the date already has (a
    re-run) is replaced; when that partition is the live table (re-publishing the live date), it is detached
    inside the swap instead (:func:`_swap`, under its ``lock_timeout``) and True is returned. A history-only
    publish (``live`` false) renames the attached table to ``mart.<table>_history_p<yyyymmdd>`` at once.
    """
    partitions = _history_partitions(cur, table)
    current = partitions.get(business_date)
    if current is not None and (current != table or not live):
        # a previous run of this date (or, history only, the live table itself: it stays live, out of history)
        cur.execute(sql.SQL("alter table {} detach partition {}").format(_history_parent(table),
                                                                        sql.Identifier("mart", current)))
        if current != table:
            cur.execute(sql.SQL("drop table {}").format(sql.Identifier("mart", current)))
        current = None
    deferred = current is not None
    if not deferred:
        _attach(cur, table, business_date)
    if not live:
        cur.execute(sql.SQL("alter table {} rename to {}").format(
            _next(table), sql.Identifier(_history_name(table, business_date))))
        _drop_primary_key(cur, _history_name(table, business_date))
    cutoff = business_date - timedelta(days=retention_days)
    for day, name in partitions.items():
        if day < cutoff and name != table:  # the live table leaves history by the swap, when it is retired
            cur.execute(sql.SQL("drop table {}").format(sql.Identifier("mart", name)))
    return deferred


def _swap(cur, table: str, business_date: date, attempts: int = 10, *, attach: bool = False,
          keep_after: date | None = None) -> float:
    """Rename next → live in a savepoint with a short lock_timeout, retrying; returns lock wait+hold ms.

    A table kept in history retires the previous live table to ``mart.<table>_history_p<its date>`` (it is
    that date's history partition) instead of dropping it, unless its date is before ``keep_after`` (past
    retention); ``attach``: the previous live table holds this very date (a re-run), so it is detached and the
    next table attached here, under the same lock_timeout.
    """
    live, old = sql.Identifier("mart", table), sql.Identifier("mart", f"{table}__old")
    cur.execute("select obj_description(%s::regclass, 'pg_class')", (f"mart.{table}",))
    comment = cur.fetchone()[0]
    for attempt in range(attempts):
        cur.execute("savepoint swap")
        started = time.perf_counter()
        try:
            cur.execute("set local lock_timeout = '1s'")
            cur.execute(sql.SQL("alter table {} rename to {}").format(live, sql.Identifier(f"{table}__old")))
            if attach:
                cur.execute(sql.SQL("alter table {} detach partition {}").format(_history_parent(table), old))
                _attach(cur, table, business_date)
            cur.execute(sql.SQL("alter table {} rename to {}").format(_next(table), sql.Identifier(table)))
            cur.execute("select pg_get_expr(relpartbound, oid) from pg_class where oid = %s::regclass "
                        "and relispartition", (f"mart.{table}__old",))
            row = cur.fetchone()
            retired = _partition_date(row[0]) if row else None
            # still the history partition of its own date (and within retention): keep it under its dated name
            if retired is not None and (keep_after is None or retired >= keep_after):
                cur.execute(sql.SQL("alter table {} rename to {}").format(
                    old, sql.Identifier(_history_name(table, retired))))
                _drop_primary_key(cur, _history_name(table, retired))
            else:
                cur.execute(sql.SQL("drop table {}").format(old))
            cur.execute(sql.SQL("comment on table {} is {}").format(live, sql.Literal(comment)))
            cur.execute("release savepoint swap")
            return (time.perf_counter() - started) * 1000
        except psycopg2.errors.LockNotAvailable:
            cur.execute("rollback to savepoint swap")
            log.warning("swap of mart.%s waited past lock_timeout (attempt %d); retrying", table, attempt + 1)
            time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"could not swap mart.{table}: long-running readers held it for {attempts} attempts; "
                       "clear the task to retry (nothing was published).")


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
    """Build, check, record history and swap every mart table in one transaction; write ``mart.publish_log``.

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
            newest = _newest_live(cur)
            live = force or newest is None or business_date >= newest
            note = None if live else (f"history only: {newest} is live and newer; trigger with "
                                      '{"force": true} to swap this date in')
            if force and newest is not None and business_date < newest:
                note = f"forced over {newest}"
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
            deferred = {table: _history(cur, table, business_date, settings.mart_retention_days, live)
                        for table in HISTORY}
            phases["history"] = lap()
            if live:
                keep_after = business_date - timedelta(days=settings.mart_retention_days)
                swap_ms = {table: _swap(cur, table, business_date, attach=deferred.get(table, False),
                                        keep_after=keep_after) for table in SWAPPED}
            else:
                log.warning("publish of %s: %s", business_date, note)
                swap_ms = {table: 0.0 for table in SWAPPED}
                for table in SWAPPED:
                    if table not in HISTORY:  # those became history partitions
                        cur.execute(sql.SQL("drop table {}").format(_next(table)))
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
    version = champion_version(url)
    for batch in plan_batches(business_date, version, url, batch_size, settings=settings):
        score_batch(business_date, batch, version, url=url, batch_size=batch_size, settings=settings)
    return publish_mart(business_date, model_version=version, force=force, url=url, settings=settings)
