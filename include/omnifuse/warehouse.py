"""The warehouse: connections, the embedded PostgreSQL server, migrations and COPY helpers.

The warehouse is whichever Postgres :func:`warehouse_url` names: ``OMNIFUSE_WAREHOUSE_URL``, else the
Airflow connection ``omnifuse_warehouse`` given as ``AIRFLOW_CONN_OMNIFUSE_WAREHOUSE``, else an embedded
server (the ``pgserver`` package) whose data lives under ``$OMNIFUSE_STATE_DIR/pgdata``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from omnifuse.config import WAREHOUSE_CONN_ID, Settings, Timeouts, load_settings, load_timeouts

log = logging.getLogger(__name__)

#: Databases the embedded server holds besides ``postgres``.
AIRFLOW_DB = "airflow"


class WarehouseError(RuntimeError):
    """A warehouse problem a data engineer has to act on; the message says what to do."""


def _embedded_server(settings: Settings) -> Any:  # pgserver.PostgresServer
    import pgserver  # imported lazily: it starts processes and locks files

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process so Airflow tasks in other processes share it.
    return pgserver.get_server(settings.pgdata, cleanup_mode=None)


def _socket_dir(settings: Settings) -> Path:
    """The unix-socket folder of the running embedded server (line 5 of ``postmaster.pid``)."""
    pid_file = settings.pgdata / "postmaster.pid"
    try:
        return Path(pid_file.read_text().splitlines()[4].strip())
    except (OSError, IndexError):
        return settings.pgdata


def _embedded_url(settings: Settings, database: str = "postgres") -> str:
    return f"postgresql://postgres:@/{database}?host={quote(str(_socket_dir(settings)))}"


#: Server settings for the embedded, single-node warehouse: bulk loads skip WAL where Postgres allows it
#: (tables created or truncated in the loading transaction) and checkpoints stay out of the way.
EMBEDDED_SETTINGS = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "8GB",
    "shared_buffers": "512MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "256MB",
    "max_connections": "200",
}


def _tune_embedded(settings: Settings) -> None:
    """Apply :data:`EMBEDDED_SETTINGS` once; restarts the server when a setting needs it."""
    url = _embedded_url(settings)
    with contextlib.closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            changed = False
            for name, value in EMBEDDED_SETTINGS.items():
                cur.execute("select current_setting(%s)", (name,))
                current = cur.fetchone()[0]
                if current.lower() != value.lower():
                    cur.execute(sql.SQL("alter system set {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                    changed = True
    if changed:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=settings.pgdata, user=_pg_user(), timeout=60)


def _pg_user() -> str | None:
    # pgserver runs the server as the 'pgserver' system user when we are root.
    return "pgserver" if os.geteuid() == 0 else None


def _embedded_running(settings: Settings) -> bool:
    pid_file = settings.pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def warehouse_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The libpq URL of the warehouse; starts the embedded server when it is the one in use."""
    settings = settings or load_settings()
    if settings.warehouse_url:
        return settings.warehouse_url
    conn_env = os.environ.get(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}")
    if conn_env:
        # Airflow writes "postgres://"; libpq accepts both spellings.
        return conn_env
    if start and not _embedded_running(settings):
        up(settings)
    return _embedded_url(settings)


def is_embedded(settings: Settings | None = None) -> bool:
    settings = settings or load_settings()
    return not settings.warehouse_url and not os.environ.get(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}")


def up(settings: Settings | None = None) -> str:
    """Start the embedded server (idempotent), create the Airflow database, apply migrations."""
    settings = settings or load_settings()
    if not is_embedded(settings):
        raise WarehouseError(
            "An external warehouse is configured (OMNIFUSE_WAREHOUSE_URL or AIRFLOW_CONN_OMNIFUSE_WAREHOUSE); "
            "'warehouse up' only manages the embedded server. Unset it to use the embedded one."
        )
    _embedded_server(settings)
    _tune_embedded(settings)
    url = _embedded_url(settings)
    with contextlib.closing(psycopg2.connect(url)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (AIRFLOW_DB,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("create database {}").format(sql.Identifier(AIRFLOW_DB)))
    migrate(url)
    return url


def down(settings: Settings | None = None) -> bool:
    """Stop the embedded server; returns False when it was not running."""
    settings = settings or load_settings()
    if not _embedded_running(settings):
        return False
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=settings.pgdata, user=_pg_user(), timeout=60)
    return True


def airflow_sql_alchemy_conn(settings: Settings | None = None) -> str:
    """SQLAlchemy URL for Airflow's own metadata database in the embedded server."""
    settings = settings or load_settings()
    return f"postgresql+psycopg2://postgres:@/{AIRFLOW_DB}?host={quote(str(_socket_dir(settings)))}"


def session_options(timeouts: Timeouts) -> str:
    """libpq ``options`` giving every warehouse session UTC and its statement and lock timeouts
    (``config.Timeouts``): dates and times mean the same whatever time zone the server or database defaults to."""
    return (f"-c timezone=UTC -c statement_timeout={timeouts.statement_s * 1000} "
            f"-c lock_timeout={timeouts.lock_s * 1000}")


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A new psycopg2 connection to the warehouse (not autocommit), with connect, statement and lock timeouts:
    a dead server or a blocking lock fails the task with an error its retry policy treats as transient."""
    timeouts = load_timeouts()
    return psycopg2.connect(url or warehouse_url(), connect_timeout=timeouts.connect_s,
                            options=session_options(timeouts))


def no_retry_fixes(exc: BaseException) -> str | None:
    """What to do about a server error that asking again cannot fix, or None for any other error.

    A full disk (SQLSTATE 53100), a statement beyond a PostgreSQL limit (class 54: "stack depth limit exceeded",
    too many columns, ...) and a statement cancelled by request (57014 other than a statement timeout, which a
    retry with less contention may pass) fail the same way on every retry. :func:`transaction` raises them as
    :class:`WarehouseError`, which the retry policy fails at once.
    """
    import psycopg2.errors

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg2.errors.DiskFull) or getattr(exc, "pgcode", None) == "53100":
        return (f"the warehouse ran out of disk space ({first}). The transaction was rolled back; free space or "
                "grow the volume (and check what filled it: a landed file far larger than usual?), then clear the "
                "task. Retrying before that fails the same way.")
    over_limit = (psycopg2.errors.ProgramLimitExceeded, psycopg2.errors.StatementTooComplex,
                  psycopg2.errors.TooManyColumns, psycopg2.errors.TooManyArguments)  # SQLSTATE class 54
    if isinstance(exc, over_limit) or str(getattr(exc, "pgcode", None) or "").startswith("54"):
        return (f"a statement exceeded a PostgreSQL limit ({first}). The transaction was rolled back; a retry hits "
                "the same limit. In a load, a landed line is the likely cause (nested or wide beyond what the "
                "server parses): find it, ask for a corrected delivery, then clear the task.")
    if isinstance(exc, psycopg2.errors.QueryCanceled) and "statement timeout" not in str(exc):
        return (f"the statement was cancelled ({first}): someone ran pg_cancel_backend on it, or the server was "
                "asked to stop it. The transaction was rolled back; clear the task when it should run again.")
    return None


@contextlib.contextmanager
def transaction(url: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    """One transaction on a fresh connection: commit on success, roll back on error. A server error no retry can
    fix (:func:`no_retry_fixes`) is raised as :class:`WarehouseError` with what to do, its cause attached."""
    conn = connect(url)
    try:
        with conn:  # commits or rolls back
            with conn.cursor() as cur:
                yield cur
    except psycopg2.Error as exc:
        advice = no_retry_fixes(exc)
        if advice is None:
            raise
        raise WarehouseError(advice) from exc
    finally:
        conn.close()


def describe(url: str) -> str:
    """A URL safe to print: the password is masked (``user:***@``, and a ``password=`` parameter or keyword)."""
    url = re.sub(r"(?i)\b(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


# --- isolation for tests and benchmarks ------------------------------------------------------------------

#: The only variable through which tests and benchmarks use an external server: a *disposable* database.
TEST_WAREHOUSE_ENV = "OMNIFUSE_TEST_WAREHOUSE_URL"
#: Variables that point a process at the user's warehouse, Airflow metadata, state or model store: an isolated
#: process never inherits them.
USER_ENV = ("OMNIFUSE_WAREHOUSE_URL", f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_HOME", "OMNIFUSE_STATE_DIR", "OMNIFUSE_LANDING_DIR",
            "OMNIFUSE_MODEL_STORE", "OMNIFUSE_BI_ROLE", "OMNIFUSE_BI_PASSWORD")
#: A table whose presence says "a test or benchmark claimed this database while it held no pipeline data".
DISPOSABLE_MARKER = "omnifuse_disposable"
#: Tables whose rows mean a database holds a real pipeline's data: a test or benchmark never touches it.
_PIPELINE_DATA = ("mart.publish_log", "ml.model_registry", "core.interactions", "ops.load_audit")


def isolate(prefix: str = "omnifuse-isolated-", state_dir: Path | None = None) -> Path:
    """Point this process at a warehouse of its own; call before anything loads settings or imports Airflow.

    Drops every :data:`USER_ENV` variable and sets ``OMNIFUSE_STATE_DIR`` to ``state_dir`` or a fresh temporary
    folder (short, under the system temp dir: unix sockets are limited to 107 bytes), so the embedded server,
    Airflow home and model store live there. An external server is used only when ``OMNIFUSE_TEST_WAREHOUSE_URL``
    names one, and only if :func:`claim_disposable` accepts it. Returns the state folder.
    """
    external = os.environ.get(TEST_WAREHOUSE_ENV)
    for name in USER_ENV:
        os.environ.pop(name, None)
    if external:
        claim_disposable(external)
    state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix=prefix))
    state.mkdir(parents=True, exist_ok=True)
    os.environ["OMNIFUSE_STATE_DIR"] = str(state)
    os.environ["OMNIFUSE_LANDING_DIR"] = str(state / "landing")
    if external:
        os.environ["OMNIFUSE_WAREHOUSE_URL"] = external
        # roles are cluster-wide: never re-password the user's BI role from a test or benchmark
        import secrets

        os.environ["OMNIFUSE_BI_ROLE"] = os.environ.get("OMNIFUSE_TEST_BI_ROLE", "omnifuse_test_bi")
        os.environ["OMNIFUSE_BI_PASSWORD"] = secrets.token_urlsafe(18)
    return state


def claim_disposable(url: str) -> None:
    """Accept ``url`` for tests or benchmarks, or raise :class:`WarehouseError`.

    A database is disposable when an earlier test or benchmark claimed it (the ``public.omnifuse_disposable``
    marker), or when it holds no pipeline data (no rows in ``mart.publish_log``, ``ml.model_registry``,
    ``core.interactions`` or ``ops.load_audit``, which a load into raw and staging writes); it is then claimed.
    Anything else is somebody's warehouse and is refused untouched.
    """
    with transaction(url) as cur:
        cur.execute("select to_regclass(%s) is not null", (f"public.{DISPOSABLE_MARKER}",))
        if cur.fetchone()[0]:
            return
        for table in _PIPELINE_DATA:
            cur.execute("select to_regclass(%s) is not null", (table,))
            if not cur.fetchone()[0]:
                continue
            schema, name = table.split(".")
            cur.execute(sql.SQL("select exists (select 1 from {})").format(sql.Identifier(schema, name)))
            if cur.fetchone()[0]:
                raise WarehouseError(
                    f"refusing {describe(url)} for tests/benchmarks: it holds pipeline data ({table} has rows), "
                    f"and tests drop every omnifuse schema. Point {TEST_WAREHOUSE_ENV} at an empty, disposable "
                    "database, or unset it to use a private embedded server."
                )
        cur.execute(sql.SQL("create table public.{} (claimed_at timestamptz not null default now(), note text)")
                    .format(sql.Identifier(DISPOSABLE_MARKER)))
        cur.execute(sql.SQL("insert into public.{} (note) values (%s)").format(sql.Identifier(DISPOSABLE_MARKER)),
                    ("claimed by omnifuse tests/benchmarks: its omnifuse schemas may be dropped at any time",))


def isolated_url() -> str:
    """The warehouse of an isolated process (after :func:`isolate`), started and migrated: the disposable external
    database, else the embedded server of the isolated state folder (checked too, in case it was reused)."""
    settings = load_settings()
    if settings.warehouse_url:
        migrate(settings.warehouse_url)
        return settings.warehouse_url
    url = up(settings)
    claim_disposable(url)
    return url


def release(state: Path, *, remove: bool = True) -> None:
    """Stop the isolated embedded server of ``state`` (if it runs) and, with ``remove``, delete the folder."""
    settings = load_settings()
    if settings.state_dir == Path(state).resolve() and is_embedded(settings):
        down(settings)
    if remove:
        shutil.rmtree(state, ignore_errors=True)


# --- SQL files -----------------------------------------------------------------------------------------


def lock_key(*scope: object) -> int:
    """The advisory-lock key of ``scope``: the first 8 bytes of blake2b over ``omnifuse:<part>:<part>…``.

    The one scheme every omnifuse lock follows, so two locks collide only when their scopes are equal:
    ``("migrations",)``, ``("ingest", <source>, <business date>)``, ``("identity",)``, ``("interactions",)``,
    ``("training_runs",)``, ``("registry",)``, ``("recommendation_batches", <batch or "plan">)``, ``("publish",)``.
    """
    text = ":".join(["omnifuse", *map(str, scope)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def lock(cur: psycopg2.extensions.cursor, *scope: object) -> None:
    """Wait for the transaction-level advisory lock of ``scope`` (:func:`lock_key`); the transaction's end frees it."""
    cur.execute("select pg_advisory_xact_lock(%s)", (lock_key(*scope),))


def partition_name(table: str, day: date) -> str:
    """The name of ``table``'s list partition for one date: ``<table>_p<yyyymmdd>`` (raw, staging, quarantine,
    core.interactions and the mart history all follow it)."""
    return f"{table}_p{day:%Y%m%d}"


def sql_text(name: str) -> str:
    """The text of ``include/omnifuse/sql/<name>``."""
    return resources.files("omnifuse").joinpath("sql", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[Migration]:
    """All migrations under ``sql/migrations``, ordered by version."""
    folder = resources.files("omnifuse").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise WarehouseError(f"two migrations share a version number: {[m.name for m in found]}")
    return found


def migrate(url: str | None = None) -> list[str]:
    """Apply pending migrations once each, under a transaction-level advisory lock.

    Returns the names applied by this call. A migration whose file changed after it was applied raises:
    write a new migration instead of editing an applied one.
    """
    applied_now: list[str] = []
    with transaction(url) as cur:
        lock(cur, "migrations")
        cur.execute(
            """
            create schema if not exists ops;
            create table if not exists ops.schema_migrations (
                version integer primary key,
                name text not null,
                checksum text not null,
                applied_at timestamptz not null default now()
            );
            """
        )
        cur.execute("select version, name, checksum from ops.schema_migrations")
        done = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
        for migration in migrations():
            if migration.version in done:
                name, checksum = done[migration.version]
                if checksum != migration.checksum:
                    raise WarehouseError(
                        f"migration {migration.name} was edited after it was applied as {name}; "
                        "add a new migration file instead of changing an applied one"
                    )
                continue
            log.info("applying migration %s", migration.name)
            cur.execute(migration.text)
            cur.execute(
                "insert into ops.schema_migrations (version, name, checksum) values (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied_now.append(migration.name)
        ensure_bi_role(cur)
    return applied_now


#: What a role name from a setting may look like: a plain lowercase Postgres identifier, not a reserved role.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_RESERVED_ROLES = {"public", "none", "current_role", "current_user", "session_user"}


def role_name(value: str, setting: str) -> str:
    """``value`` if it is a safe role name, else :class:`WarehouseError` naming the setting.

    Names are also always composed with ``psycopg2.sql.Identifier``; refusing anything else up front keeps a
    typo or a hostile value (quotes, ``;``, spaces, ``pg_*`` system roles, ``public``) from ever reaching a GRANT.
    """
    if not _ROLE_NAME.fullmatch(value) or value.startswith("pg_") or value in _RESERVED_ROLES:
        raise WarehouseError(f"{setting}={value!r} is not an allowed role name: use lowercase letters, digits "
                             "and underscores (at most 63, not starting with a digit or pg_, not PUBLIC)")
    return value


def bi_url(url: str | None = None, settings: Settings | None = None) -> str:
    """The warehouse as the read-only BI role (what the omnifuse view in the Airflow UI queries through)."""
    settings = settings or load_settings()
    role, password = bi_credentials(settings)
    return psycopg2.extensions.make_dsn(url or warehouse_url(settings), user=role, password=password)


def bi_credentials(settings: Settings | None = None) -> tuple[str, str]:
    """(role, password) of the read-only BI role.

    ``OMNIFUSE_BI_ROLE`` (default ``omnifuse_bi``) and ``OMNIFUSE_BI_PASSWORD``. The password is required for an
    external warehouse; the embedded one generates it once into ``$OMNIFUSE_STATE_DIR/bi_password`` (mode 600).
    """
    settings = settings or load_settings()
    role = role_name(settings.bi_role, "OMNIFUSE_BI_ROLE")
    password = settings.bi_password
    if password:
        return role, password
    if not is_embedded(settings):
        raise WarehouseError("OMNIFUSE_BI_PASSWORD is not set: the read-only BI role needs a password on an "
                             "external warehouse. Set it (from your secret store), then run "
                             "`omnifuse warehouse migrate`.")
    path = settings.state_dir / "bi_password"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return role, path.read_text().strip()


def ensure_bi_role(cur: psycopg2.extensions.cursor) -> None:
    """Create or update the read-only BI role: SELECT on ``mart`` (including tables created later), nothing else."""
    role, password = bi_credentials()
    ident = sql.Identifier(role)
    cur.execute("select 1 from pg_roles where rolname = %s", (role,))
    verb = "alter" if cur.fetchone() else "create"
    # the password is hashed here (a SCRAM-SHA-256 verifier computed by libpq): the plain password never travels
    # in SQL text, which statement logging, pg_stat_statements or a failed statement's error could record
    verifier = psycopg2.extensions.encrypt_password(password, role, cur, "scram-sha-256")
    cur.execute(sql.SQL(verb + " role {} with login nosuperuser nocreatedb nocreaterole noinherit password {}").format(
        ident, sql.Literal(verifier)))
    cur.execute(sql.SQL("grant connect on database {} to {}").format(
        sql.Identifier(cur.connection.info.dbname), ident))
    cur.execute(sql.SQL("grant usage on schema mart to {}").format(ident))
    cur.execute(sql.SQL("grant select on all tables in schema mart to {}").format(ident))
    cur.execute(sql.SQL("alter default privileges in schema mart grant select on tables to {}").format(ident))
    # the view's functions (0012): security definer, revoked from PUBLIC, callable by the BI role only
    cur.execute(sql.SQL("grant execute on all functions in schema mart to {}").format(ident))
    for schema in ("raw", "staging", "quarantine", "core", "ml", "ops", "public"):
        cur.execute(sql.SQL("revoke all on schema {} from {}").format(sql.Identifier(schema), ident))


def status(settings: Settings | None = None) -> dict[str, object]:
    """What the warehouse looks like: which server, whether it runs, applied migrations."""
    settings = settings or load_settings()
    info: dict[str, object] = {"embedded": is_embedded(settings)}
    if is_embedded(settings):
        info["pgdata"] = str(settings.pgdata)
        info["running"] = _embedded_running(settings)
        if not info["running"]:
            return info
    url = warehouse_url(settings, start=False)
    info["url"] = describe(url)
    with contextlib.closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute("show server_version")
        info["server_version"] = cur.fetchone()[0]
        cur.execute("select to_regclass('ops.schema_migrations') is not null")
        if cur.fetchone()[0]:
            cur.execute("select count(*), coalesce(max(version), 0) from ops.schema_migrations")
            count, latest = cur.fetchone()
            info["migrations_applied"] = count
            info["latest_migration"] = latest
    return info


def copy_from(cur: psycopg2.extensions.cursor, statement: sql.Composable, stream: IO[Any]) -> None:
    """Run ``COPY ... FROM STDIN`` with a file-like ``stream``."""
    cur.copy_expert(statement.as_string(cur), stream, size=1 << 20)
