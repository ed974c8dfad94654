"""The staging statement of one source: its own SQL file followed by the accounting tail every source shares.

A source's file (``sql/<Source.stage_sql>``) types and classifies the day's raw lines into a ``classified`` CTE,
then holds the line :data:`TAIL_MARKER`. The accounting tail (``sql/ingest/tail/accounting.sql``) follows:
duplicates by the source's key (first copy by file, line wins), the quarantine insert into
``quarantine.<table>``, the source's ``staged`` CTE, and the one-row result ``rows_staged, duplicates_dropped,
quarantine_by_reason``. ``staged`` is either composed from the columns the source declares
(``Source.staged_columns``, inserted into ``Source.target`` as ``classified`` names them) or, for sources that
write more than one table or upsert (the catalog and CRM snapshots), taken from the lines of the source's file
after the marker. The result is one statement, executed with the ingest's bound parameters.

The source text is never passed through ``str.format`` or ``sql.SQL.format`` (it holds ``{...}`` jsonb paths and
``%(name)s`` parameters): it is wrapped whole in :class:`psycopg2.sql.SQL` and joined to the formatted tail.
"""

from __future__ import annotations

from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.sources import Source

TAIL = "ingest/tail/accounting.sql"
STAGED_INSERT = "ingest/tail/staged_insert.sql"
TAIL_MARKER = "-- accounting tail: sql/ingest/tail/accounting.sql\n"


def _identifiers(names: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _split(source: Source) -> tuple[str, str]:
    """(the classification, the source's own ``staged`` CTEs) of the source's file, cut at the marker line."""
    text = warehouse.sql_text(source.stage_sql)
    if text.count(TAIL_MARKER) != 1:
        raise ValueError(f"sql/{source.stage_sql} must hold the line {TAIL_MARKER.strip()!r} exactly once, after "
                         "its classified CTE: the accounting tail is composed there")
    head, _, writes = text.partition(TAIL_MARKER)
    if bool(writes.strip()) == bool(source.staged_columns):
        raise ValueError(f"sql/{source.stage_sql}: a source declares staged_columns or writes its own `staged` "
                         f"CTE after the marker, not both and not neither (source {source.name!r})")
    return head, writes


def statement(source: Source) -> sql.Composed:
    """The whole staging statement of ``source`` (parameters: those of its file; result: the accounting row)."""
    if not source.key:
        raise ValueError(f"source {source.name!r} declares no dedup key")
    head, writes = _split(source)
    if source.staged_columns:
        staged: sql.Composable = sql.SQL(warehouse.sql_text(STAGED_INSERT)).format(
            target=sql.Identifier(*source.target.split(".")), columns=_identifiers(source.staged_columns))
    else:
        staged = sql.SQL(writes)
    tail = sql.SQL(warehouse.sql_text(TAIL)).format(
        key=_identifiers(source.key),
        first_key=sql.Identifier(source.key[0]),
        same_key=sql.SQL(" and ").join(
            sql.SQL("first_copies.{0} = classified.{0}").format(sql.Identifier(k)) for k in source.key),
        quarantine=sql.Identifier("quarantine", source.table),
        staged=staged,
    )
    return sql.Composed([sql.SQL(head), tail])
