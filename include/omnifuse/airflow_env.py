"""Airflow's environment on the embedded setup: its home, DAG and plugin folders and metadata database
(:func:`airflow_env`), migrated once (:func:`ensure_airflow_db`).

Airflow reads its configuration when it is first imported, so this module imports none of it: call
:func:`prepare_airflow` before anything imports Airflow (:mod:`omnifuse.airflow_glue` runs the DAGs after that).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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
