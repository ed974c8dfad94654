"""Finding 0: tests and benchmarks never touch the user's warehouse.

A "user" warehouse with a published mart is a second database of this session's server. The benchmark and test
setups are run in fresh processes with the user's variables set, as a user would run them, and must either use
their own server or refuse: the user's published mart is still there afterwards.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg2
import pytest
from omnifuse import warehouse
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[2]
USER_DB = "user_warehouse"


@pytest.fixture(scope="module")
def user_warehouse(warehouse_url):
    """A migrated database holding one published mart row, standing for somebody's real warehouse."""
    admin = psycopg2.connect(warehouse_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(USER_DB)))
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(USER_DB)))
    dsn = admin.get_dsn_parameters()
    admin.close()
    url = f"postgresql://{dsn['user']}:@/{USER_DB}?host={dsn['host']}&port={dsn['port']}"
    warehouse.migrate(url)
    with warehouse.transaction(url) as cur:
        cur.execute("insert into mart.publish_log (business_date, table_name, model_version, rows_published, "
                    "swap_lock_ms) values (%s, 'mart.customer_recommendations', 'retrain_20261102', 42, 1.0)",
                    (date(2026, 11, 2),))
    yield url
    admin = psycopg2.connect(warehouse_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(USER_DB)))
    admin.close()


def _published(url: str) -> int:
    with warehouse.transaction(url) as cur:
        cur.execute("select coalesce(sum(rows_published), 0) from mart.publish_log")
        return int(cur.fetchone()[0])


def _run(code: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in warehouse.USER_ENV and k != warehouse.TEST_WAREHOUSE_ENV}
    return subprocess.run([sys.executable, "-c", code], env={**base, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


WIPE_LIKE_A_BENCHMARK = """
import sys
sys.path.insert(0, "bench")
from _isolated import isolated_warehouse
from omnifuse import warehouse
with isolated_warehouse("probe") as url:
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    print("WIPED", url)
"""


def test_a_benchmark_ignores_the_users_warehouse_url_and_wipes_only_its_own(user_warehouse, tmp_path):
    user_state = tmp_path / "user-state"
    done = _run(WIPE_LIKE_A_BENCHMARK, {"OMNIFUSE_WAREHOUSE_URL": user_warehouse,
                                        "AIRFLOW_CONN_OMNIFUSE_WAREHOUSE": user_warehouse,
                                        "OMNIFUSE_STATE_DIR": str(user_state)})
    assert done.returncode == 0, done.stderr
    wiped = done.stdout.split("WIPED", 1)[1].strip()
    assert USER_DB not in wiped and str(user_state) not in wiped
    assert _published(user_warehouse) == 42
    assert not user_state.exists()  # the user's state folder (their embedded server) was not even created


def test_a_test_or_benchmark_refuses_an_external_warehouse_holding_published_marts(user_warehouse):
    done = _run(WIPE_LIKE_A_BENCHMARK, {"OMNIFUSE_TEST_WAREHOUSE_URL": user_warehouse})
    assert done.returncode != 0 and "WIPED" not in done.stdout
    assert "refusing" in done.stderr and "mart.publish_log has rows" in done.stderr
    assert _published(user_warehouse) == 42
    with pytest.raises(warehouse.WarehouseError, match="holds pipeline data"):
        warehouse.claim_disposable(user_warehouse)


@contextlib.contextmanager
def _scratch_database(warehouse_url: str, name: str) -> Iterator[str]:
    """A new, empty database of the session's server (dropped afterwards); yields its URL."""
    admin = psycopg2.connect(warehouse_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        cur.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    dsn = admin.get_dsn_parameters()
    try:
        yield f"postgresql://{dsn['user']}:@/{name}?host={dsn['host']}&port={dsn['port']}"
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        admin.close()


def test_a_database_holding_only_loaded_raw_and_staging_data_is_refused(warehouse_url):
    """Issue 23 (10): somebody's warehouse that has loaded days but not built, trained or published anything yet
    (rows only in raw, staging and ops.load_audit) is not disposable."""
    with _scratch_database(warehouse_url, "loaded_only") as url:
        warehouse.migrate(url)
        with warehouse.transaction(url) as cur:
            cur.execute("insert into ops.load_audit (channel, business_date, files, lines_read, rows_staged, "
                        "rows_quarantined, duplicates_dropped) values ('store', '2026-11-02', 1, 10, 10, 0, 0)")
        with pytest.raises(warehouse.WarehouseError, match="ops.load_audit has rows"):
            warehouse.claim_disposable(url)


def test_an_empty_external_database_is_claimed_once_and_then_accepted(warehouse_url):
    with _scratch_database(warehouse_url, "scratch_test") as url:
        warehouse.claim_disposable(url)
        warehouse.migrate(url)
        with warehouse.transaction(url) as cur:  # a test published something into it
            cur.execute("insert into mart.publish_log (business_date, table_name, rows_published, swap_lock_ms) "
                        "values ('2026-11-02', 'mart.channel_daily', 1, 1.0)")
        warehouse.claim_disposable(url)  # still ours: claimed while empty


def test_pytest_sessions_use_their_own_server_even_when_the_user_names_a_warehouse(user_warehouse):
    """A real pytest session started with the user's OMNIFUSE_WAREHOUSE_URL: clean_warehouse drops schemas on the
    session's own server; the user's published mart is untouched."""
    env = {"OMNIFUSE_WAREHOUSE_URL": user_warehouse, "OMNIFUSE_ISOLATION_PROBE": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{Path(__file__).relative_to(ROOT)}::test_probe_clean_warehouse_is_not_the_users"],
                          env={**{k: v for k, v in os.environ.items() if k not in warehouse.USER_ENV}, **env},
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr
    assert _published(user_warehouse) == 42


@pytest.mark.skipif(not os.environ.get("OMNIFUSE_ISOLATION_PROBE"), reason="run by the test above, in its session")
def test_probe_clean_warehouse_is_not_the_users(clean_warehouse):
    assert "OMNIFUSE_WAREHOUSE_URL" not in os.environ or USER_DB not in os.environ["OMNIFUSE_WAREHOUSE_URL"]
    assert USER_DB not in clean_warehouse
    assert os.environ["OMNIFUSE_STATE_DIR"] in clean_warehouse  # the session's own embedded server
