"""docker-compose.yaml is checked by parsing it (no Docker engine here): services, images, order, health."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW = ("api-server", "scheduler", "dag-processor", "triggerer")


def test_services_images_and_profiles():
    assert set(AIRFLOW) | {"postgres", "warehouse", "airflow-init"} <= set(SERVICES)
    for name in (*AIRFLOW, "airflow-init", "airflow-worker"):
        assert SERVICES[name]["build"] == ".", f"{name} must run the omnifuse image built from the Dockerfile"
        assert SERVICES[name]["image"].startswith("${OMNIFUSE_IMAGE")
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["warehouse"]["image"].startswith("postgres:")
    assert SERVICES["warehouse"]["environment"]["POSTGRES_DB"] != SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert SERVICES["redis"]["profiles"] == ["celery"] and SERVICES["airflow-worker"]["profiles"] == ["celery"]
    assert "FROM apache/airflow:3." in (ROOT / "Dockerfile").read_text()


def test_every_long_running_service_has_a_healthcheck_and_waits_for_init():
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no healthcheck"
    for name in AIRFLOW:
        deps = SERVICES[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["warehouse"]["condition"] == "service_healthy"
    init = " ".join(SERVICES["airflow-init"]["command"])
    assert "airflow db migrate" in init and "omnifuse warehouse migrate" in init


def test_warehouse_is_a_connection_from_the_environment_and_volumes_are_named():
    env = SERVICES["scheduler"]["environment"]
    assert env["AIRFLOW_CONN_OMNIFUSE_WAREHOUSE"].startswith("postgresql://omnifuse:${WAREHOUSE_PASSWORD")
    mounts = {v.split(":")[1] for v in SERVICES["scheduler"]["volumes"]}
    assert {"/opt/omnifuse/landing", "/opt/omnifuse/models", "/opt/airflow/logs"} <= mounts
    assert {"landing", "models", "logs"} <= set(COMPOSE["volumes"])


def test_every_variable_the_file_reads_is_documented():
    text = (ROOT / "docker-compose.yaml").read_text()
    variables = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    example = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    readme = (ROOT / "README.md").read_text()
    assert variables, "no variables found: the regex is wrong"
    assert variables <= example, f"missing from .env.example: {sorted(variables - example)}"
    assert all(f"`{v}`" in readme for v in variables), [v for v in variables if f"`{v}`" not in readme]
    secrets = {v for v in variables if "PASSWORD" in v or "SECRET" in v or "FERNET" in v}
    for v in secrets:  # secrets must fail loudly, never default
        assert re.search(r"\$\{" + v + r":\?", text), f"{v} must be required (${{{v}:?...}})"


FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def test_the_deployment_logs_in_through_the_fab_auth_manager_pinned_in_requirements():
    from airflow.sdk.module_loading import import_string

    assert COMPOSE["x-airflow-common"]["environment"]["AIRFLOW__CORE__AUTH_MANAGER"] == FAB
    assert import_string(FAB).__name__ == "FabAuthManager"
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().split() if "==" in line)
    assert "apache-airflow-providers-fab" in pins and "flask-appbuilder" in pins


def test_airflow_init_fails_loudly_and_uses_only_commands_the_installed_cli_has(tmp_path):
    """Each `airflow ...` step of airflow-init exists, with every option it passes, in the installed Airflow with
    the compose file's auth manager (Airflow 3.3 without FAB has no `users` command)."""
    import json
    import os
    import shlex
    import subprocess
    import sys

    command = SERVICES["airflow-init"]["command"]
    assert command[:2] == ["bash", "-c"]
    script = command[2]
    assert "|| true" not in script and script.startswith("set -e;"), "a failing init step must fail the service"
    steps = [shlex.split(step.replace("$$", "$")) for step in script.split(";")]
    airflow_steps = [s for s in steps if s and s[0] == "airflow"]
    assert {tuple(s[1:3]) for s in airflow_steps} >= {("db", "migrate"), ("users", "create"),
                                                       ("users", "reset-password")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__AUTH_MANAGER=FAB, AIRFLOW__CORE__LOAD_EXAMPLES="False")
    subs = [[w for w in step[1:] if not w.startswith("-")][:2] for step in airflow_steps]
    # the installed `airflow` entry point's main(), once per step, in one fresh interpreter (not one per step:
    # each of them spent its time importing Airflow)
    done = subprocess.run([sys.executable, "-c", HELP_OF_EACH, json.dumps(subs)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    helps = json.loads(done.stdout.rsplit("\n" + HELP_MARK, 1)[1])
    for step, sub, (code, out, err) in zip(airflow_steps, subs, helps, strict=True):
        assert code == 0, f"`airflow {' '.join(sub)}` does not exist: {err[-500:]}"
        for option in (w for w in step if w.startswith("--")):
            assert option in out, f"`airflow {' '.join(sub)}` has no {option}"


HELP_MARK = "HELP-OF-EACH:"
#: ``airflow <sub> --help`` for each ``<sub>`` of argv[1] (JSON), through the entry point ``bin/airflow`` calls;
#: prints the mark, then [exit code, stdout, stderr] per step as JSON.
HELP_OF_EACH = f"""
import contextlib, io, json, sys
from airflow.__main__ import main

helps = []
for sub in json.loads(sys.argv[1]):
    sys.argv = ["airflow", *sub, "--help"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    helps.append([code, out.getvalue(), err.getvalue()])
print("\\n{HELP_MARK}" + json.dumps(helps))
"""


def test_the_pipeline_connects_as_a_least_privilege_owner_not_the_superuser():
    from urllib.parse import urlsplit

    warehouse = SERVICES["warehouse"]
    env = warehouse["environment"]
    conn = COMPOSE["x-airflow-common"]["environment"]["AIRFLOW_CONN_OMNIFUSE_WAREHOUSE"]
    user = urlsplit(conn.replace("${WAREHOUSE_PASSWORD:?set WAREHOUSE_PASSWORD in .env}", "x")).username
    assert user == env["WAREHOUSE_OWNER"] != env["POSTGRES_USER"]
    assert "WAREHOUSE_ADMIN_PASSWORD" in env["POSTGRES_PASSWORD"]
    assert "WAREHOUSE_ADMIN_PASSWORD" not in str(COMPOSE["x-airflow-common"]), "no Airflow service gets the superuser"
    mount = next(v for v in warehouse["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro"))
    script = (ROOT / mount.split(":")[0] / "10-omnifuse-owner.sh").read_text()
    assert "nosuperuser nocreatedb" in script and ":'password'" in script and ':"owner"' in script
