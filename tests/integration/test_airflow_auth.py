"""Findings 3 and 8 over real HTTP: the deployed shape of docker-compose.yaml, minus Docker.

Airflow's metadata database and a compose-like warehouse are databases of this session's server. The warehouse
is initialised by the compose file's own init script (least-privilege owner role), Airflow by the compose file's
own ``airflow-init`` command with the compose file's auth manager (FAB); then a real ``airflow api-server`` serves
the omnifuse plugin. The documented admin account logs in; strangers get 401/403 from the dashboard and its API,
which read the warehouse as the BI role.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import yaml
from api_server import api_server, http
from omnifuse import warehouse
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
BIN = Path(sys.executable).parent
PG_BIN = Path(__import__("pgserver").__file__).parent / "pginstall" / "bin"
AIRFLOW_DB, WAREHOUSE_DB = "airflow_compose", "omnifuse_compose"
ADMIN, ADMIN_PASSWORD = "admin", secrets.token_urlsafe(12)
BI_ROLE = "compose_bi"


def _admin(url: str, *statements: sql.Composable) -> None:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
    finally:
        conn.close()


_request = http


@pytest.fixture(scope="module")
def deployed(warehouse_url, tmp_path_factory):
    """(base url, owner url of the compose warehouse): a real api-server with the FAB auth manager."""
    dsn = psycopg2.extensions.parse_dsn(warehouse_url)
    host = dsn["host"]
    for db in (AIRFLOW_DB, WAREHOUSE_DB):
        _admin(warehouse_url, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)),
               sql.SQL("create database {}").format(sql.Identifier(db)))
    _admin(warehouse_url, sql.SQL("drop role if exists {}").format(sql.Identifier(BI_ROLE)),
           sql.SQL("drop role if exists omnifuse"))
    owner_password = secrets.token_urlsafe(12)
    # the warehouse service's init script, as the postgres image runs it on a fresh volume
    init = ROOT / COMPOSE["services"]["warehouse"]["volumes"][1].split(":")[0] / "10-omnifuse-owner.sh"
    wh_env = COMPOSE["services"]["warehouse"]["environment"]
    subprocess.run(["bash", str(init)], check=True, capture_output=True, env={
        **os.environ, "PATH": f"{PG_BIN}:{os.environ['PATH']}", "PGHOST": host, "PGPORT": str(dsn.get("port", 5432)),
        "POSTGRES_USER": dsn.get("user", "postgres"), "POSTGRES_DB": WAREHOUSE_DB,
        "WAREHOUSE_OWNER": wh_env["WAREHOUSE_OWNER"], "WAREHOUSE_PASSWORD": owner_password})
    owner_url = f"postgresql://{wh_env['WAREHOUSE_OWNER']}:{owner_password}@/{WAREHOUSE_DB}?host={host}"

    home = tmp_path_factory.mktemp("airflow-compose")
    common = COMPOSE["x-airflow-common"]["environment"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OMNIFUSE_"))}
    env.update({
        "PATH": f"{BIN}:{env['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__AUTH_MANAGER": common["AIRFLOW__CORE__AUTH_MANAGER"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres:@/{AIRFLOW_DB}?host={host}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": "",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_OMNIFUSE_WAREHOUSE": owner_url,
        "OMNIFUSE_HOME": str(ROOT),
        "OMNIFUSE_STATE_DIR": str(home / "state"),
        "OMNIFUSE_BI_ROLE": BI_ROLE,
        "OMNIFUSE_BI_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_ADMIN_USER": ADMIN,
        "AIRFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AIRFLOW_ADMIN_EMAIL": "admin@example.com",
    })
    # the compose file's own airflow-init command ($$ is compose's escape for a literal $)
    command = COMPOSE["services"]["airflow-init"]["command"]
    assert command[:2] == ["bash", "-c"]
    done = subprocess.run(["bash", "-c", command[2].replace("$$", "$")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    try:
        with api_server(BIN / "airflow", env, home) as base:
            yield base, owner_url, env
    finally:
        for db in (AIRFLOW_DB, WAREHOUSE_DB):
            _admin(warehouse_url, sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(db)))
        shutil.rmtree(home, ignore_errors=True)


def _login(base: str, password: str = ADMIN_PASSWORD) -> tuple[int, str]:
    status, body = _request(f"{base}/auth/token", data={"username": ADMIN, "password": password})
    return status, (json.loads(body).get("access_token", "") if status == 201 else body)


def test_the_documented_admin_account_logs_in_and_a_wrong_password_does_not(deployed):
    base, _, _ = deployed
    status, token = _login(base)
    assert status == 201 and token.count(".") == 2  # a JWT
    assert _login(base, "wrong-" + ADMIN_PASSWORD)[0] == 401
    status, body = _request(f"{base}/api/v2/dags", token=token)
    assert status == 200 and "total_entries" in body  # the REST API accepts the token (no DAG parsed here)


def test_the_dashboard_and_its_api_refuse_strangers(deployed):
    base, _, _ = deployed
    for path in ("/omnifuse/", "/omnifuse/api/freshness", "/omnifuse/api/model-performance",
                 "/omnifuse/api/data-quality", "/omnifuse/api/load-volumes", "/omnifuse/api/publish-coverage",
                 "/omnifuse/api/recommendations/C0000001", "/omnifuse/openapi.json", "/omnifuse/docs"):
        assert _request(base + path)[0] in (401, 403), path
        assert _request(base + path, token="not-a-token")[0] in (401, 403), path


def test_a_logged_in_user_sees_the_dashboard_read_as_the_bi_role(deployed):
    base, owner_url, _ = deployed
    _, token = _login(base)
    status, body = _request(f"{base}/omnifuse/api/freshness", token=token)
    assert status == 200, body
    assert {r["stage"] for r in json.loads(body)} == {"staging (loads)", "core.interactions", "ml.model_registry",
                                                      "mart.customer_recommendations"}
    for path in ("model-performance", "data-quality", "load-volumes", "publish-coverage"):  # empty warehouse
        status, body = _request(f"{base}/omnifuse/api/{path}", token=token)
        assert status == 200 and json.loads(body) == [], (path, body)
    status, page = _request(f"{base}/omnifuse/", cookie=token)  # the browser's session cookie
    assert status == 200 and "omnifuse — models and data health" in page
    assert _request(f"{base}/omnifuse/api/recommendations/NOBODY", token=token)[0] == 404
    status, schema = _request(f"{base}/omnifuse/openapi.json", token=token)  # the API's schema, behind the login
    assert status == 200 and "/api/freshness" in json.loads(schema)["paths"]
    assert _request(f"{base}/omnifuse/redoc")[0] in (401, 403, 404)  # not served
    with warehouse.transaction(owner_url) as cur:  # the dashboard's sessions were the BI role's
        cur.execute("select has_table_privilege(%s, 'core.interactions', 'select'), "
                    "has_function_privilege(%s, 'mart.pipeline_freshness()', 'execute')", (BI_ROLE, BI_ROLE))
        assert cur.fetchone() == (False, True)


def test_the_pipeline_owns_the_warehouse_without_being_a_superuser(deployed):
    _, owner_url, _ = deployed
    with warehouse.transaction(owner_url) as cur:
        cur.execute("select rolsuper, rolcreatedb, rolbypassrls, rolreplication from pg_roles "
                    "where rolname = current_user")
        assert cur.fetchone() == (False, False, False, False)
        cur.execute("select count(*), count(*) filter (where tableowner = current_user) from pg_tables "
                    "where schemaname in ('raw', 'staging', 'core', 'ml', 'mart', 'ops')")
        tables, owned = cur.fetchone()
        assert tables > 20 and owned == tables  # `omnifuse warehouse migrate` ran as this role
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("alter role postgres password 'taken'")
