"""Migration 0020 (the ``store_locations`` source, ``_arrival_date``) on a fresh warehouse and on one that already
holds data loaded under the old names by the code of the commit before it."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from omnifuse import warehouse
from omnifuse.daily import LOAD_ORDER, run_day
from omnifuse.ingest import ingest_source

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = "include/omnifuse/sql/migrations/0020_arrival_date_store_locations.sql"
DAY1 = date(2026, 11, 2)  # the tiny world's first day
DAY2 = DAY1 + timedelta(days=1)
SCHEMAS = ("raw", "staging", "quarantine", "core")
#: tables that carry the arrival date (their partitions too, in pg_attribute)
DAY_TABLES = tuple(f"{schema}.{name}" for schema in ("raw", "quarantine") for name in (
    "web_events", "mobile_events", "social_interactions", "store_sales", "products", "customers", "store_locations",
    "fx_rates")) + tuple(f"staging.{name}" for name in ("web_events", "mobile_events", "social_interactions",
                                                       "store_sales"))
LINEAGE_TABLES = ("raw.store_locations", "quarantine.store_locations", "raw.web_events", "quarantine.store_sales",
                  "staging.store_sales", "core.interactions", "quarantine.interactions", "core.usable_interactions")


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def _code_before_0020(tmp_path: Path) -> Path:
    """The repository's ``include/`` as of the commit before migration 0020 (its parent once 0020 is committed)."""
    try:
        added = _git("log", "-1", "--diff-filter=A", "--format=%H", "--", MIGRATION)
        commit = f"{added}^" if added else "HEAD"
        _git("cat-file", "-e", f"{commit}^{{commit}}")
    except (OSError, subprocess.CalledProcessError) as exc:
        # a copy without history (git archive, a shallow clone) cannot rebuild the old code: say so, loudly
        pytest.skip(f"this test reads the code before migration 0020 from git history, which this checkout "
                    f"lacks (a full clone has it): {exc}")
    assert "0020_" not in _git("ls-tree", "--name-only", commit, "include/omnifuse/sql/migrations/")
    archive = tmp_path / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", commit, "include"], check=True, stdout=out)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "before", filter="data")
    return tmp_path / "before"


def _migrate_up_to(url: str, last: int) -> None:
    """Apply migrations 0001..``last`` as :func:`warehouse.migrate` does, ledger included, so that a later
    ``migrate`` applies only the newer ones."""
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
        cur.execute("create schema ops; create table ops.schema_migrations (version integer primary key, "
                    "name text not null, checksum text not null, applied_at timestamptz not null default now())")
        for migration in warehouse.migrations():
            if migration.version <= last:
                cur.execute(migration.text)
                cur.execute("insert into ops.schema_migrations (version, name, checksum) values (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum))


def _shape(url: str, *, partitions: bool = False) -> dict[str, list[str]]:
    """Columns of every table and view of the pipeline schemas (or of every partition), by qualified name."""
    with warehouse.transaction(url) as cur:
        cur.execute("""
            select n.nspname || '.' || c.relname, array_agg(a.attname::text order by a.attnum)
            from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v') and c.relispartition = %s
            group by 1
        """, (list(SCHEMAS), partitions))
        return dict(cur.fetchall())


def _definitions_naming(url: str, text: str) -> list[str]:
    """Functions and views whose stored definition holds ``text`` (a rename does not rewrite a SQL body)."""
    with warehouse.transaction(url) as cur:
        cur.execute("""
            select p.oid::regprocedure::text from pg_proc as p
            join pg_namespace as n on n.oid = p.pronamespace
            where n.nspname in ('raw', 'staging', 'quarantine', 'core', 'ml', 'mart', 'ops') and p.prosrc like %s
            union all
            select c.oid::regclass::text from pg_class as c
            join pg_namespace as n on n.oid = c.relnamespace
            where c.relkind = 'v' and n.nspname in ('raw', 'staging', 'quarantine', 'core', 'ml', 'mart', 'ops')
                and pg_get_viewdef(c.oid) like %s
        """, (f"%{text}%", f"%{text}%"))
        return [r[0] for r in cur.fetchall()]


def _day_rows(url: str, day: date, *, before_0020: bool = False) -> dict[str, tuple[int, int]]:
    """(rows, distinct lineage) of ``day``'s arrival partition of every raw, quarantine and staging table, by its
    name after 0020 (``before_0020``: read under the old names, ``raw.stores`` and ``_batch_date``)."""
    out = {}
    with warehouse.transaction(url) as cur:
        for table in DAY_TABLES:
            name, column = table, "_arrival_date"
            if before_0020:
                name, column = table.replace("store_locations", "stores"), "_batch_date"
            cur.execute(f"select count(*), count(distinct (_source_file, _line_no)) from {name} "  # noqa: S608
                        f"where {column} = %s", (day,))
            out[table] = cur.fetchone()
    return out


def _query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with warehouse.transaction(url) as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def test_0020_migrates_a_loaded_warehouse_to_the_fresh_shape_and_later_loads_replace_the_old_rows(
        clean_warehouse, tiny_world, tmp_path):
    url = clean_warehouse
    fresh = _shape(url)
    assert "raw.stores" not in fresh and "raw.store_locations" in fresh
    for table in LINEAGE_TABLES:
        assert "_arrival_date" in fresh[table] and "_batch_date" not in fresh[table], table
    assert _definitions_naming(url, "_batch_date") == []

    # a warehouse at 0019 holding the first day, loaded by the code of that time (its own process: same package)
    _migrate_up_to(url, 19)
    before = _code_before_0020(tmp_path)
    env = {**os.environ, "OMNIFUSE_HOME": str(before), "PYTHONPATH": str(before / "include")}
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from datetime import date; from pathlib import Path; "
         "import omnifuse; assert omnifuse.__file__.startswith(sys.argv[3]), omnifuse.__file__; "
         "from omnifuse.daily import run_day; run_day(date.fromisoformat(sys.argv[1]), Path(sys.argv[2]), sys.argv[4])",
         DAY1.isoformat(), str(tiny_world), str(before), url],
        env=env, capture_output=True, text=True, timeout=600)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    old_rows = _day_rows(url, DAY1, before_0020=True)
    assert old_rows["raw.store_locations"][0] > 0
    assert _query(url, "select count(*) from ops.load_audit where channel = 'stores'") == [(1,)]
    interactions = _query(url, "select count(*) from core.interactions where _batch_date = %s", (DAY1,))[0][0]
    assert interactions > 0

    assert warehouse.migrate(url)[0] == "0020_arrival_date_store_locations.sql"  # then any later ones

    # the old rows under the new names, in the partitions the scheme names; the audit continues
    assert _shape(url) == fresh
    partitions = _shape(url, partitions=True)
    assert len(partitions) > 20
    assert [p for p, columns in partitions.items() if "_batch_date" in columns] == []
    assert _definitions_naming(url, "_batch_date") == []
    migrated = _day_rows(url, DAY1)
    assert migrated == old_rows
    for schema in ("raw", "quarantine"):
        assert _query(url, "select to_regclass(%s) is not null",
                      (f"{schema}.{warehouse.partition_name('store_locations', DAY1)}",)) == [(True,)]
    assert _query(url, "select source from ops.landed_files where business_date = %s and source_file like %s",
                  (DAY1, "%/stores.csv")) == [("store_locations",)]
    assert _query(url, "select count(*) from ops.load_audit where channel = 'stores'") == [(0,)]
    assert _query(url, "select count(*) from core.interactions where _arrival_date = %s", (DAY1,)) == [(interactions,)]

    # the next day loads beside them, and a re-load of the old day replaces its rows (no duplicates)
    run_day(DAY2, tiny_world, url)
    for name in LOAD_ORDER:
        ingest_source(name, DAY1, landing_dir=tiny_world, url=url)
    assert _day_rows(url, DAY1) == migrated
    for table, (rows, distinct) in _day_rows(url, DAY1).items():
        assert rows == distinct, table
    assert _day_rows(url, DAY2)["raw.store_locations"][0] > 0
    assert _query(url, "select business_date, count(*) from ops.load_audit where channel = 'store_locations' "
                  "group by 1 order by 1") == [(DAY1, 1), (DAY2, 1)]

