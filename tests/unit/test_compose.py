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
