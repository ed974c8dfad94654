"""The staging statement is a source's own SQL plus the one accounting tail, composed by ``omnifuse.staging_sql``."""

from __future__ import annotations

import dataclasses
import re

import pytest
from omnifuse import sources, staging_sql
from psycopg2 import sql


def _text(part: sql.Composable) -> str:
    """The statement as psycopg2 would send it, without a connection (identifiers quoted as psycopg2 quotes them)."""
    if isinstance(part, sql.Composed):
        return "".join(_text(p) for p in part.seq)
    if isinstance(part, sql.Identifier):
        return ".".join('"' + s.replace('"', '""') + '"' for s in part.strings)
    assert isinstance(part, sql.SQL), type(part)
    return part.string


@pytest.mark.parametrize("name", sorted(sources.REGISTRY))
def test_every_source_composes_one_statement_with_the_tail(name):
    source = sources.get(name)
    text = _text(staging_sql.statement(source))
    assert text.lstrip().startswith("--") and text.count("\nwith\n") == 1
    assert text.count("select * from final") == 1 and text.rstrip().endswith("select * from final")
    assert f'insert into "quarantine"."{source.table}"' in text
    for cte in ("classified", "repeated", "first_copies", "valid", "quarantined", "staged", "final"):
        assert len(re.findall(rf"^{cte} as (materialized )?\($", text, flags=re.M)) == 1, (name, cte)
    key = ", ".join(f'"{k}"' for k in source.key)
    assert f"select distinct on ({key}) {key}, _source_file, _line_no" in text
    if source.staged_columns:
        columns = ", ".join(f'"{c}"' for c in source.staged_columns)
        schema, table = source.target.split(".")
        assert f'insert into "{schema}"."{table}" ({columns})\n    select {columns}\n' in text
    # the source's own text reaches the statement untouched: its jsonb paths and bound parameters
    assert "%(business_date)s" in text and "{{" not in text


def test_a_file_without_the_marker_or_with_two_staged_definitions_is_refused():
    web = sources.get("web")
    with pytest.raises(ValueError, match="identity/observations.sql must hold the line"):
        staging_sql.statement(dataclasses.replace(web, stage_sql="identity/observations.sql"))
    with pytest.raises(ValueError, match="not both and not neither"):  # declares columns and writes its own staged
        staging_sql.statement(dataclasses.replace(sources.get("catalog"), staged_columns=("product_id",)))
    with pytest.raises(ValueError, match="not both and not neither"):  # neither
        staging_sql.statement(dataclasses.replace(web, staged_columns=()))
    with pytest.raises(ValueError, match="declares no dedup key"):
        staging_sql.statement(dataclasses.replace(web, key=()))
