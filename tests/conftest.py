"""Shared fixtures: a real PostgreSQL warehouse of the session's own and tiny worlds.

Tests never touch the user's warehouse: the session runs its own embedded server in a temporary state folder and
ignores ``OMNIFUSE_WAREHOUSE_URL`` (and Airflow's metadata database, model store, ...); an external server is used
only through ``OMNIFUSE_TEST_WAREHOUSE_URL``, naming a disposable database (see ``omnifuse.warehouse.isolate``).

Every test must carry one tier marker (dags, unit, integration); tests in tests/<tier>/ get it from their
folder, and a test outside those folders without one fails collection.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

TIERS = ("dags", "unit", "integration")
#: The first day of the ``tiny_world`` fixture.
TINY_WORLD_START = date(2026, 11, 2)
ROOT = Path(__file__).resolve().parents[1]

os.environ["OMNIFUSE_HOME"] = str(ROOT)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def _isolate() -> Path:
    """A private state folder (embedded server, Airflow home, models) for the whole session, before settings load."""
    from omnifuse import warehouse

    return warehouse.isolate("omnifuse-test-")


_STATE = _isolate()
# Quality gates render Great Expectations Data Docs (HTML) only for a gate that fails, as ``omnifuse backfill``
# does: rendering them for every passing gate was about a quarter of each gate's time, and gates are most of a
# loaded day's. test_pipeline_dags.py keeps the default (``always``) for its real DAG runs and checks the pages.
os.environ.setdefault("OMNIFUSE_DATA_DOCS", "on_failure")


def _configure_airflow() -> None:
    """Point Airflow at its metadata database in the test warehouse before anything imports Airflow; the server
    itself starts in :func:`pytest_collection_finish`, and only when a selected test is not a unit test."""
    from omnifuse.airflow_env import airflow_env

    os.environ.update(airflow_env(start=False))


_configure_airflow()


def pytest_collection_finish(session):
    """Start the session's embedded server unless every selected test is a unit test (``pytest -m unit`` needs
    no server)."""
    if all(item.get_closest_marker("unit") for item in session.items):
        return
    from omnifuse import warehouse
    from omnifuse.config import load_settings

    settings = load_settings()
    if warehouse.is_embedded(settings):
        warehouse.up(settings)
        if warehouse.airflow_sql_alchemy_conn(settings) != os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:
            raise pytest.UsageError("the embedded server listens on another socket folder than the one Airflow was "
                                    f"given ({os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']}); shorten TMPDIR")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if not any(item.get_closest_marker(t) for t in TIERS):
            raise pytest.UsageError(f"{item.nodeid} has no tier marker ({', '.join(TIERS)})")


def pytest_sessionfinish(session, exitstatus):
    """Stop the session's server if it still runs (no test may have asked for the warehouse) and remove its state
    folder: nothing is left behind, server or not."""
    import sys

    from omnifuse import warehouse

    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server stops
        sys.modules["airflow.settings"].dispose_orm()
    warehouse.release(_STATE)


@pytest.fixture(scope="session")
def warehouse_url():
    from omnifuse import warehouse

    url = warehouse.isolated_url()
    yield url
    import sys

    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server stops
        sys.modules["airflow.settings"].dispose_orm()
    warehouse.release(_STATE)


@pytest.fixture
def clean_warehouse(warehouse_url):
    """An empty, migrated warehouse for this test (the session's own: see :func:`warehouse_url`)."""
    from omnifuse import warehouse

    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    return warehouse_url


@pytest.fixture
def landing(tiny_world, clean_warehouse, tmp_path):
    """A landing zone holding the tiny world's catalog for its first day (fx rates, stores, catalog), loaded."""
    import shutil

    from omnifuse.ingest import ingest_source

    first = TINY_WORLD_START
    root = tmp_path / "landing"
    shutil.copytree(tiny_world / "catalog" / first.isoformat(), root / "catalog" / first.isoformat())
    for name in ("fx_rates", "store_locations", "catalog"):
        ingest_source(name, first, landing_dir=root, url=clean_warehouse)
    return root


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small messy world: 3 days from 2026-11-02 (store column renamed on day 2)."""
    from omnifuse.generate import WorldConfig, generate

    out = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(customers=600, products=150, days=3, start=TINY_WORLD_START, seed=11)
    generate(cfg, out)
    return out
