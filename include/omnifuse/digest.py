"""Table digests: what "the same tables" means when two ways of loading are compared (dates in order or shuffled,
a crashed run retried or a clean one, a range run or daily runs).

A digest is a table's row count and the md5 of its rows as text in a stable order, leaving out the columns that
record *when* or *by which run* a row was written rather than *what* it holds.
"""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql

#: Every table a day's ingest writes, and its columns that record when or by which run (left out of digests).
LOAD_TABLES: dict[str, tuple[str, ...]] = {
    "core.interactions": (), "quarantine.interactions": (), "core.identity_map": ("resolved_for",),
    # customers and anonymous_rows of a build are counted as of that build (history is re-attributed later)
    "core.interaction_builds": ("business_date", "built_at", "customers", "anonymous_rows"),
    "core.validated_interactions": (), "core.validated_builds": ("business_date", "validated_at"),
    "core.customers": (), "core.products": (),
    "staging.web_events": (), "staging.mobile_events": (), "staging.social_interactions": (),
    "staging.store_sales": (), "quarantine.web_events": ("_quarantined_at",),
    "quarantine.store_sales": ("_quarantined_at",),
    "ops.load_audit": ("loaded_at",), "core.usable_dates": (),
}


def table_digest(cur: psycopg2.extensions.cursor, table: str, skip: tuple[str, ...] = ()) -> tuple[int, str]:
    """(row count, md5 of the rows in a stable order) of ``schema.table`` without the ``skip`` columns."""
    schema, name = table.split(".")
    cur.execute("select column_name from information_schema.columns where table_schema = %s and table_name = %s "
                "order by ordinal_position", (schema, name))
    columns = [c for (c,) in cur.fetchall() if c not in skip]
    cur.execute(sql.SQL("select count(*), md5(coalesce(string_agg(r, '|' order by r), '')) "
                        "from (select row({})::text as r from {}) as rows").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(schema, name)))
    count, md5 = cur.fetchone()
    return int(count), str(md5)


def load_digests(cur: psycopg2.extensions.cursor) -> dict[str, tuple[int, str]]:
    """:func:`table_digest` of every table in :data:`LOAD_TABLES`."""
    return {table: table_digest(cur, table, skip) for table, skip in LOAD_TABLES.items()}
