"""Scenarios 15, 17 and 18 of issue 16: who can read and write what, hostile identifiers in settings, secrets.

15 the BI role reads ``mart`` only and writes nowhere, also for tables created after it was granted;
17 a hostile role name in a setting is refused before it reaches SQL, and names that need quoting are quoted;
18 no secret in code or in what the platform writes (alerts, CLI output, task logs); a missing secret raises.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from omnifuse import warehouse
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ("raw", "staging", "quarantine", "core", "ml", "ops")


def _as_bi(url: str):
    conn = psycopg2.connect(warehouse.bi_url(url))
    conn.autocommit = True
    return conn


def _refused(cur, statement: str) -> bool:
    try:
        cur.execute(statement)
    except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ReadOnlySqlTransaction):
        return True
    return False


# --- 15 ------------------------------------------------------------------------------------------------------


def test_bi_role_reads_nothing_outside_mart_and_writes_nowhere_including_tables_created_later(clean_warehouse):
    url = clean_warehouse
    with warehouse.transaction(url) as cur:
        cur.execute("select table_schema || '.' || table_name from information_schema.tables "
                    "where table_schema = any(%s) and table_type = 'BASE TABLE'", (list(SCHEMAS),))
        private = [r[0] for r in cur.fetchall()]
        cur.execute("select 'mart.' || c.relname, a.attname from pg_class as c "
                    "join pg_namespace as n on n.oid = c.relnamespace and n.nspname = 'mart' "
                    "join pg_attribute as a on a.attrelid = c.oid and a.attnum = 1 where c.relkind in ('r', 'p')")
        published = dict(cur.fetchall())
    assert len(private) > 20 and len(published) >= 5
    conn = _as_bi(url)
    try:
        with conn.cursor() as cur:
            for table in private:
                assert _refused(cur, f"select 1 from {table} limit 1"), f"BI can read {table}"  # noqa: S608
            for table, column in published.items():
                cur.execute(f"select count(*) from {table}")  # noqa: S608 - names from the catalog
                for write in (f"insert into {table} default values", f"delete from {table}",  # noqa: S608
                              f"update {table} set {column} = {column}",  # noqa: S608
                              f"truncate {table}", f"alter table {table} add column x int",
                              f"drop table {table}"):
                    assert _refused(cur, write), write
            for schema in (*SCHEMAS, "mart", "public"):
                assert _refused(cur, f"create table {schema}.bi_was_here (x int)"), schema
            assert _refused(cur, "create schema bi_schema")
    finally:
        conn.close()

    # tables created after the grants: readable in mart, invisible everywhere else
    with warehouse.transaction(url) as cur:
        for schema in (*SCHEMAS, "mart"):
            cur.execute(sql.SQL("create table {}.created_later (x int)").format(sql.Identifier(schema)))
            cur.execute(sql.SQL("insert into {}.created_later values (1)").format(sql.Identifier(schema)))
    conn = _as_bi(url)
    try:
        with conn.cursor() as cur:
            cur.execute("select x from mart.created_later")
            assert cur.fetchall() == [(1,)]
            assert _refused(cur, "insert into mart.created_later values (2)")
            for schema in SCHEMAS:
                assert _refused(cur, f"select * from {schema}.created_later"), schema
    finally:
        conn.close()
    warehouse.migrate(url)  # re-running migrations does not widen anything
    conn = _as_bi(url)
    try:
        with conn.cursor() as cur:
            assert _refused(cur, "select * from core.created_later")
            assert _refused(cur, "select 1 from core.interactions limit 1")
    finally:
        conn.close()


def test_bi_role_gets_only_the_dashboard_functions_not_the_tables_behind_them(clean_warehouse):
    conn = _as_bi(clean_warehouse)
    try:
        with conn.cursor() as cur:
            cur.execute("select stage from mart.pipeline_freshness()")
            assert len(cur.fetchall()) == 4
            cur.execute("select * from mart.customer_recommendation_details('C0000001')")
            assert cur.fetchall() == []
            cur.execute("select * from mart.model_metric_intervals('ndcg', 10)")  # the operator's view (0016)
            assert cur.fetchall() == []
            cur.execute("select * from mart.load_volume_daily(7)")
            assert cur.fetchall() == []
            assert _refused(cur, "select * from core.products")
            assert _refused(cur, "select * from ml.model_metrics")
            assert _refused(cur, "select * from ops.load_audit")
    finally:
        conn.close()
    with warehouse.transaction(clean_warehouse) as cur:  # nobody else may call them
        for function in ("mart.pipeline_freshness()", "mart.customer_recommendation_details(text)",
                         "mart.model_metric_intervals(text, integer)", "mart.load_volume_daily(integer)"):
            cur.execute("select has_function_privilege('public', %s, 'execute')", (function,))
            assert cur.fetchone()[0] is False, function
        # a mart function that runs with its owner's rights pins search_path (a caller cannot shadow a table)
        cur.execute("select p.proname, p.proconfig from pg_proc as p join pg_namespace as n "
                    "on n.oid = p.pronamespace where n.nspname = 'mart' and p.prosecdef")
        definers = cur.fetchall()
        assert len(definers) >= 4
        for name, config in definers:
            assert any(c.startswith("search_path=") for c in config or []), name


# --- 17 ------------------------------------------------------------------------------------------------------

HOSTILE = ['bi"; drop schema core cascade; --', "bi'; drop schema core cascade; --", "public", "pg_read_all_data",
           "pg_monitor", "BI Role", "x" * 64, "", "1bi", "bi;", "current_user", "omnifuse bi", "bi\nx", "bi\n"]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_role_names_in_settings_are_refused_before_any_sql(clean_warehouse, monkeypatch, name):
    monkeypatch.setenv("OMNIFUSE_BI_ROLE", name)
    with pytest.raises(warehouse.WarehouseError, match="OMNIFUSE_BI_ROLE"):
        warehouse.migrate(clean_warehouse)
    with pytest.raises(warehouse.WarehouseError):
        warehouse.bi_credentials()
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select to_regclass('core.interactions') is not null, "
                    "(select count(*) from pg_roles where rolname = %s)", (name,))
        core_exists, created = cur.fetchone()
    assert core_exists and (created == 0 or name in ("public", "pg_read_all_data", "pg_monitor", "current_user"))


def test_a_role_name_that_is_an_sql_keyword_is_quoted_not_interpreted(clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_BI_ROLE", "user")  # a reserved word: works only when quoted
    warehouse.migrate(clean_warehouse)
    conn = _as_bi(clean_warehouse)
    try:
        with conn.cursor() as cur:
            cur.execute("select current_user, (select count(*) from mart.publish_log)")
            assert cur.fetchone() == ("user", 0)
            assert _refused(cur, "select 1 from core.customers")
    finally:
        conn.close()


def test_the_compose_init_script_quotes_a_hostile_owner_name(warehouse_url, tmp_path):
    """docker/warehouse-init passes names and passwords to psql as variables (:"name", :'literal')."""
    import pgserver

    dsn = psycopg2.extensions.parse_dsn(warehouse_url)
    admin = psycopg2.connect(warehouse_url)
    admin.autocommit = True
    hostile = 'evil"; create role pwned superuser login; --'
    with admin.cursor() as cur:
        cur.execute("drop database if exists init_probe with (force)")
        cur.execute("create database init_probe")
        cur.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(hostile)))
    try:
        subprocess.run(["bash", str(ROOT / "docker" / "warehouse-init" / "10-omnifuse-owner.sh")], check=True,
                       capture_output=True, env={
                           **os.environ, "PGHOST": dsn["host"], "POSTGRES_USER": dsn.get("user", "postgres"),
                           "POSTGRES_DB": "init_probe", "WAREHOUSE_OWNER": hostile,
                           "WAREHOUSE_PASSWORD": "pw'; alter role postgres password 'x'; --",
                           "PATH": f"{Path(pgserver.__file__).parent / 'pginstall' / 'bin'}:{os.environ['PATH']}"})
        with admin.cursor() as cur:
            cur.execute("select rolname, rolsuper from pg_roles where rolname in (%s, 'pwned')", (hostile,))
            assert cur.fetchall() == [(hostile, False)]
            cur.execute("select pg_get_userbyid(datdba) from pg_database where datname = 'init_probe'")
            assert cur.fetchone()[0] == hostile
    finally:
        with admin.cursor() as cur:
            cur.execute("drop database if exists init_probe with (force)")
            cur.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(hostile)))
        admin.close()


# --- 18 ------------------------------------------------------------------------------------------------------

SECRET_ASSIGNMENT = re.compile(
    r"""(?ix)(password|passwd|secret|token|fernet_key|api_key)["']?\s*[:=]\s*["']([^"'\s$<>{}()]{6,})["']""")
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s'\"]+:([^@\s'\"$]{3,})@", re.IGNORECASE)


def test_no_secret_is_committed_in_code_or_configuration():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert ".env" not in files, ".env holds secrets: never commit it"
    scanned = [f for f in files if not f.startswith("tests/") and Path(ROOT / f).suffix in
               (".py", ".sql", ".sh", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".json", ".md", "")
               and (ROOT / f).is_file()]
    assert len(scanned) > 30
    found = []
    for name in scanned:
        text = (ROOT / name).read_text(errors="replace")
        for m in SECRET_ASSIGNMENT.finditer(text):
            if m.group(2).lower() not in ("password", "secret", "token"):  # psql :'password' and the like
                found.append(f"{name}: {m.group(0)}")
        for m in URL_WITH_PASSWORD.finditer(text):
            if m.group(1) not in ("***", "pass", "password"):
                found.append(f"{name}: {m.group(0)}")
        if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text):
            found.append(f"{name}: a private key")
    assert not found, found
    example = (ROOT / ".env.example").read_text()
    for line in example.splitlines():
        key, _, value = line.partition("=")
        if any(p in key for p in ("PASSWORD", "SECRET", "FERNET")):
            assert "change-me" in value or "generate" in value, f".env.example must not hold a real {key}"


def test_a_missing_required_secret_raises_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("OMNIFUSE_WAREHOUSE_URL", "postgresql://omnifuse:owner-secret-1@warehouse.invalid/omnifuse")
    monkeypatch.delenv("OMNIFUSE_BI_PASSWORD", raising=False)
    with pytest.raises(warehouse.WarehouseError, match="OMNIFUSE_BI_PASSWORD is not set") as err:
        warehouse.bi_credentials()
    assert "owner-secret-1" not in str(err.value)
    monkeypatch.setenv("OMNIFUSE_BI_PASSWORD", "")  # empty is missing, never a password
    with pytest.raises(warehouse.WarehouseError):
        warehouse.bi_credentials()


def test_secrets_never_reach_alerts_cli_output_or_task_logs(clean_warehouse, monkeypatch, capsys):
    from omnifuse.alerts import record_alert

    owner_secret, bi_secret = "Own3r-s3cret-xyz", "B1-s3cret-xyz"
    dsn = psycopg2.extensions.parse_dsn(clean_warehouse)
    with_password = f"postgresql://postgres:{owner_secret}@/postgres?host={dsn['host']}"
    monkeypatch.setenv("OMNIFUSE_BI_PASSWORD", bi_secret)
    monkeypatch.setenv("AIRFLOW_CONN_OMNIFUSE_WAREHOUSE", with_password)

    # an alert whose error message quotes both (e.g. a driver error echoing its DSN)
    error = RuntimeError(f"could not connect with {with_password} as omnifuse_bi/{bi_secret}")
    record_alert("omnifuse_ingest", "load_web_events", "manual__x", 1, None, error, url=clean_warehouse)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select error from ops.alerts order by alert_id desc limit 1")
        stored = cur.fetchone()[0]
    assert owner_secret not in stored and bi_secret not in stored and "***" in stored

    # the CLI prints where the warehouse is, never its password
    env = {**os.environ, "AIRFLOW_CONN_OMNIFUSE_WAREHOUSE": with_password, "OMNIFUSE_BI_PASSWORD": bi_secret}
    env.pop("OMNIFUSE_WAREHOUSE_URL", None)
    done = subprocess.run([sys.executable, "-m", "omnifuse.cli", "warehouse", "status"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert owner_secret not in out and bi_secret not in out
    # `warehouse url` masks the password too (issue 23, finding 10), unless asked for it explicitly
    url = [sys.executable, "-m", "omnifuse.cli", "warehouse", "url"]
    done = subprocess.run(url, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and owner_secret not in done.stdout + done.stderr, done.stdout + done.stderr
    assert done.stdout.strip() == with_password.replace(owner_secret, "***")
    done = subprocess.run([*url, "--show-password"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == with_password

    # in a task, Airflow's own secrets masker knows them (DEFAULT_ARGS on_execute_callback)
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact
    from omnifuse.airflow_glue import mask_secrets

    mask_secrets({})
    line = redact(f"connecting to {with_password} with {bi_secret}")
    assert owner_secret not in line and bi_secret not in line


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, RFC 5802
    as PostgreSQL stores it) was computed from ``password``."""
    import base64
    import hashlib
    import hmac

    method, iterations_salt, keys = verifier.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def test_the_bi_password_never_travels_as_sql_text(clean_warehouse, monkeypatch):
    """Finding 10: migrations set the BI role's password as a SCRAM verifier computed client side, so no SQL text
    the server receives (what statement logging, pg_stat_statements or an error report would record) holds the
    password itself; the role's stored verifier is still that of the configured password."""
    import secrets

    class Recording(psycopg2.extensions.cursor):
        """A real cursor that keeps the text of every statement it sent to the server."""

        sent: list[str] = []

        def execute(self, query, vars=None):  # noqa: A002 - psycopg2's own name
            try:
                return super().execute(query, vars)
            finally:
                Recording.sent.append((self.query or b"").decode())

    secret = f"Bi-s3cret-{secrets.token_hex(6)}"
    monkeypatch.setenv("OMNIFUSE_BI_PASSWORD", secret)
    conn = warehouse.connect(clean_warehouse)
    try:
        with conn, conn.cursor(cursor_factory=Recording) as cur:
            warehouse.ensure_bi_role(cur)  # what every `warehouse migrate` runs
            cur.execute("select rolpassword from pg_authid where rolname = %s", (warehouse.bi_credentials()[0],))
            verifier = cur.fetchone()[0]
    finally:
        conn.close()
    role = warehouse.bi_credentials()[0]
    assert any(f'role "{role}" with login' in q for q in Recording.sent)  # the statement setting the password
    assert not [q for q in Recording.sent if secret in q]
    assert _scram_matches(verifier, secret)  # the role's password is the configured one
    assert not _scram_matches(verifier, secret + "x")
