"""The unit tier runs without a server: ``pytest -m unit`` must not start the embedded PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = '''
import json, os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)  # before the conftest's own clean-up removes the state folder
def pytest_sessionfinish(session, exitstatus):
    from omnifuse.config import load_settings

    pgdata = load_settings().pgdata
    Path(os.environ["PROBE_OUT"]).write_text(json.dumps(
        {"server_started": (pgdata / "postmaster.pid").exists() or (pgdata / "PG_VERSION").exists(),
         "exit": int(exitstatus)}))
'''


def _probe(tmp_path: Path, *args: str) -> dict:
    import json

    (tmp_path / "server_probe.py").write_text(PROBE)
    out = tmp_path / "probe.json"
    env = {**os.environ, "PROBE_OUT": str(out),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "OMNIFUSE_STATE_DIR", "AIRFLOW_HOME"):
        env.pop(name, None)  # the child isolates itself as a fresh session does
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "server_probe", *args], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


def test_the_unit_tier_starts_no_server(tmp_path):
    assert _probe(tmp_path, "-m", "unit", "tests/unit/test_evaluate.py") == {"server_started": False, "exit": 0}
    # the probe sees a server when a selected test needs one
    assert _probe(tmp_path, "--collect-only", "tests/integration/test_isolation.py") == {"server_started": True,
                                                                                       "exit": 0}
