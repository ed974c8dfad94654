"""What each landing source looks like: its folder, files, format, columns and staging SQL.

One module per source (``web``, ``mobile``, ``social``, ``store``, ``catalog``, ``crm``); each exports
``SOURCES``, a tuple of :class:`Source`. :data:`REGISTRY` maps source names to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Source:
    """One kind of landed file and the tables it feeds.

    ``table`` names ``raw.<table>`` and ``quarantine.<table>``; ``target`` is the typed table the staging
    SQL (``sql/<stage_sql>``, completed by the accounting tail: :mod:`omnifuse.staging_sql`) writes.
    ``key`` is the grain of ``target`` (as ``classified`` names it): of the valid lines sharing it, the first by
    file and line is staged and the others are counted as duplicates. ``staged_columns`` are the ``target``
    columns the tail inserts, read by the same names from the SQL's ``classified`` CTE; without them the SQL file
    writes its own ``staged`` CTE. ``former_names`` are names the source had before (its column mapping is
    looked up under ``name`` only; a mapping left under a former name fails the load with the fix).
    """

    name: str
    folder: str
    patterns: tuple[str, ...]
    fmt: Literal["ndjson", "csv"]
    table: str
    target: str
    stage_sql: str
    key: tuple[str, ...]
    staged_columns: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    aliases: dict[str, str] = field(default_factory=dict)
    former_names: tuple[str, ...] = ()
    channel: str | None = None  # the interaction channel its rows become (event sources only)
    #: NDJSON: the top-level keys the staging SQL reads (others are noted in ops.load_audit) and the optional ones
    #: among them (a line without one loads with NULL: a renamed optional key is noted, never silent)
    keys: frozenset[str] = frozenset()
    optional_keys: tuple[str, ...] = ()
    #: the event loads judge their lines against this source's rows of the day (catalog, store list, rates): they
    #: wait for it, and its failure message says so
    judges_events: bool = False

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.columns


def _registry() -> dict[str, Source]:
    from omnifuse.sources import catalog, crm, mobile, social, store, web

    found: dict[str, Source] = {}
    for module in (catalog, crm, web, mobile, social, store):
        for source in module.SOURCES:
            found[source.name] = source
    return found


REGISTRY: dict[str, Source] = _registry()
#: The interaction channels, in the order of ``Dataset.channel`` codes: derived from the event sources (one home).
EVENT_CHANNELS: tuple[str, ...] = tuple(dict.fromkeys(s.channel for s in REGISTRY.values() if s.channel))


def get(name: str) -> Source:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known sources: {sorted(REGISTRY)}") from None
