"""Running the real DAGs in-process on the embedded setup: Airflow's environment, its metadata database and
``dag.test()`` per business date (what ``make demo``, ``omnifuse backfill`` and the tests use).

Airflow is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from omnifuse.config import Settings, load_settings


def airflow_env(settings: Settings | None = None, start: bool = True) -> dict[str, str]:
    """Environment that points Airflow at the embedded metadata database and this project's DAGs.

    ``start=False`` names the embedded server's database without starting it (the test session starts it only
    when a selected test needs a server)."""
    from omnifuse import warehouse

    settings = settings or load_settings()
    env = {
        "AIRFLOW_HOME": str(settings.state_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "OMNIFUSE_HOME": str(settings.home),
        "OMNIFUSE_STATE_DIR": str(settings.state_dir),
        "OMNIFUSE_LANDING_DIR": str(settings.landing_dir),
    }
    if "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ and warehouse.is_embedded(settings):
        if start:
            warehouse.up(settings)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = warehouse.airflow_sql_alchemy_conn(settings)
    return env


def ensure_airflow_db(env: dict[str, str]) -> None:
    """Run ``airflow db migrate`` once per state folder (a marker file remembers it)."""
    marker = Path(env["AIRFLOW_HOME"]) / ".db-migrated"
    if marker.exists():
        return
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    print("migrating Airflow's metadata database (once)...", flush=True)
    subprocess.run([str(airflow), "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))


def prepare_airflow(settings: Settings | None = None) -> Settings:
    """Point this process at Airflow's metadata database (migrated once); returns the settings."""
    settings = settings or load_settings()
    env = airflow_env(settings)
    os.environ.update(env)
    ensure_airflow_db(env)
    return settings


def load_dag(settings: Settings, dag_id: str) -> Any:
    """Import a DAG object from ``dags/<dag_id>.py`` (what ``dag.test()`` is called on)."""
    import importlib.util

    path = settings.home / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"omnifuse_dag_{dag_id}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{path}: no DAG file for {dag_id}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from airflow.sdk import DAG

    return next(v for v in vars(module).values() if isinstance(v, DAG) and v.dag_id == dag_id)


def run_dag_days(dag_id: str, days: list[date], settings: Settings | None = None,
                 echo: Callable[[str], object] = print) -> list[str]:
    """Run a real DAG with ``dag.test()`` once per business date (conf ``business_date``); ``echo`` gets one line
    per run (``<dag_id> <date>: <state> (<seconds>s)``).

    Returns ``"success"`` for a run whose every task succeeded, else ``"failed: <why>"``: a run that executed
    no task (or skipped one) is never reported as a success.
    """
    from omnifuse.backfill import run_outcome

    settings = prepare_airflow(settings)
    dag = load_dag(settings, dag_id)
    states = []
    for day in days:
        outcome = run_outcome(dag, day)  # stamped with the time it starts (see omnifuse.backfill)
        state = "success" if outcome.ok else f"failed: {outcome.why()}"
        states.append(state)
        echo(f"{dag_id} {day}: {state} ({outcome.seconds:.0f}s)")
    return states
