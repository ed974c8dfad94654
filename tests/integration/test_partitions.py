"""warehouse.ensure_partition: a new day's partition never makes readers of the other days wait for a load."""

from __future__ import annotations

from datetime import date

import psycopg2
import psycopg2.errors
import pytest
from omnifuse import warehouse
from psycopg2 import sql

PARENT = sql.Identifier("ops", "partition_probe")


@pytest.fixture
def parent(clean_warehouse):
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("create table ops.partition_probe (d date not null, x integer not null default 7 check (x > 0)) "
                    "partition by list (d)")
        cur.execute("create index partition_probe_x on ops.partition_probe (x)")
        warehouse.ensure_partition(cur, PARENT, sql.Identifier("ops", "partition_probe_p1"), date(2026, 11, 1))
        cur.execute("insert into ops.partition_probe (d) values ('2026-11-01')")
    return clean_warehouse


def test_a_new_partition_is_created_while_readers_hold_the_parent(parent, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LOCK_TIMEOUT_S", "1")
    reader = psycopg2.connect(parent)  # a BI-style reader in the middle of a transaction
    try:
        with reader.cursor() as cur:
            cur.execute("select count(*) from ops.partition_probe")
        # what the loads did before: ACCESS EXCLUSIVE on the parent, so it waits for the reader (lock timeout)
        with pytest.raises(psycopg2.errors.LockNotAvailable), warehouse.transaction(parent) as cur:
            cur.execute("create table ops.partition_probe_old partition of ops.partition_probe "
                        "for values in ('2026-11-03')")
        child = sql.Identifier("ops", "partition_probe_p2")
        with warehouse.transaction(parent) as cur:  # the load's transaction: not blocked by the reader
            assert warehouse.ensure_partition(cur, PARENT, child, date(2026, 11, 2))
            assert not warehouse.ensure_partition(cur, PARENT, child, date(2026, 11, 2))  # idempotent
            cur.execute("insert into ops.partition_probe (d) values ('2026-11-02')")
    finally:
        reader.rollback()
        reader.close()
    with warehouse.transaction(parent) as cur:
        cur.execute("select d, x from ops.partition_probe order by d")
        assert cur.fetchall() == [(date(2026, 11, 1), 7), (date(2026, 11, 2), 7)]  # defaults came along
        cur.execute("select count(*) from pg_indexes where tablename = 'partition_probe_p2'")
        assert cur.fetchone()[0] == 1  # the parent's index was attached
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("insert into ops.partition_probe (d, x) values ('2026-11-02', -1)")
