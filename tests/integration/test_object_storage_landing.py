"""A landing zone in object storage (``OMNIFUSE_LANDING_DIR=s3://…``), on an S3-compatible server the test starts on
localhost (moto's standalone server), reached through an Airflow connection given as ``AIRFLOW_CONN_<ID>``: it loads
the same tables as the same files on disk (native and GA4 formats, mappings read from the bucket), a missing or
corrupt object fails its load naming the object, and the real ``omnifuse_ingest`` DAG waits for and loads it."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from omnifuse import warehouse
from omnifuse.daily import LOAD_ORDER
from omnifuse.generate import WorldConfig, generate
from omnifuse.ingest import LandingError, folder_ready, ingest_source
from psycopg2 import sql

DAY1 = date(2026, 11, 2)
CONN_ID = "omnifuse_landing_s3"
BUCKET = "omnifuse-landing"
#: Columns that hold the time of the load (they differ between two loads of the same files).
CLOCK_COLUMNS = {"landed_at", "loaded_at", "_loaded_at", "_quarantined_at"}
#: What a load of one business date writes (parent tables: their partitions' rows included).
LOADED_SCHEMAS = ("raw", "staging", "quarantine", "core")
OPS_TABLES = ("ops.load_audit", "ops.landed_files")


class S3:
    """The test's S3-compatible server: a boto3 client on it and the bucket's name."""

    def __init__(self, endpoint: str):
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                                   aws_secret_access_key="testing", region_name="us-east-1")

    def upload_tree(self, local: Path, prefix: str, day: date) -> int:
        """Upload ``local``'s folders of ``day`` (and ``_mappings/``) under ``s3://bucket/prefix/``; returns files."""
        count = 0
        for path in sorted(local.rglob("*")):
            rel = path.relative_to(local)
            if path.is_file() and (day.isoformat() in rel.parts[1:2] or rel.parts[0] == "_mappings"):
                self.client.upload_file(str(path), BUCKET, f"{prefix}/{rel.as_posix()}")
                count += 1
        return count

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto's standalone S3 server on a free localhost port, a bucket, and the Airflow connection ``CONN_ID``."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = f"AIRFLOW_CONN_{CONN_ID.upper()}"
    os.environ[env] = json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
    })
    try:
        store = S3(f"http://127.0.0.1:{port}")
        store.client.create_bucket(Bucket=BUCKET)
        yield store
    finally:
        os.environ.pop(env, None)
        server.stop()


@pytest.fixture(scope="module")
def ga4_world(tmp_path_factory) -> Path:
    """One day whose web and app events are a GA4 export, read through ``_mappings/web.toml`` / ``mobile.toml``."""
    out = tmp_path_factory.mktemp("ga4world")
    generate(WorldConfig(customers=300, products=80, days=1, start=DAY1, seed=11, web_format="ga4"), out)
    return out


def _reset(url: str) -> None:
    """An empty, migrated warehouse again (what the ``clean_warehouse`` fixture does)."""
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)


def _digests(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the rows, in a stable order, of every table a load writes (load times left out)."""
    with warehouse.transaction(url) as cur:
        cur.execute("""
            select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition order by 1
        """, (list(LOADED_SCHEMAS),))
        tables = [t for (t,) in cur.fetchall()] + list(OPS_TABLES)
        found = {}
        for table in tables:
            schema, name = table.split(".")
            cur.execute("select column_name from information_schema.columns where table_schema = %s and "
                        "table_name = %s order by ordinal_position", (schema, name))
            cols = [c for (c,) in cur.fetchall() if c not in CLOCK_COLUMNS]
            row = sql.SQL("row({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in cols))
            cur.execute(sql.SQL("select count(*), coalesce(md5(string_agg(r, E'\\n' order by r)), '') "
                                "from (select {} as r from {}) as t").format(row, sql.Identifier(schema, name)))
            found[table] = tuple(cur.fetchone())
    return found


def _load_day(landing: str | Path, url: str) -> dict[str, tuple]:
    summaries = {}
    for name in LOAD_ORDER:
        s = ingest_source(name, DAY1, landing_dir=landing, url=url)
        summaries[name] = (s["files"], s["lines_read"], s["rows_staged"], s["rows_quarantined"],
                           s["duplicates_dropped"], s["quarantine_by_reason"])
    return summaries


@pytest.mark.parametrize("world_name", ["native", "ga4"])
def test_a_landing_zone_on_s3_loads_the_same_tables_as_the_same_files_on_disk(
        world_name, tiny_world, ga4_world, s3, clean_warehouse, monkeypatch):
    """Every source of a day (gzip NDJSON, CSV with a renamed column, or GA4 exports read through mappings that
    live in the bucket), from ``s3://bucket/prefix`` with ``OMNIFUSE_LANDING_CONN_ID``: the same raw, staging,
    quarantine and core rows, load audit and landed-file records as from the folder on disk."""
    world = tiny_world if world_name == "native" else ga4_world
    prefix = f"{world_name}-{uuid.uuid4().hex[:8]}/landing"
    assert s3.upload_tree(world, prefix, DAY1) >= 8
    monkeypatch.setenv("OMNIFUSE_LANDING_CONN_ID", CONN_ID)
    monkeypatch.setenv("OMNIFUSE_INGEST_BLOCK_MB", "0.0625")  # 64 KiB: several ranged reads per object

    on_disk = _load_day(world, clean_warehouse)
    disk_tables = _digests(clean_warehouse)
    _reset(clean_warehouse)
    on_s3 = _load_day(f"s3://{BUCKET}/{prefix}/", clean_warehouse)  # a trailing "/" names the same root
    s3_tables = _digests(clean_warehouse)

    assert on_s3 == on_disk
    assert s3_tables == disk_tables
    loaded = {t: n for t, (n, _) in s3_tables.items() if n}
    # the comparison is not vacuous: every layer holds the day's rows, the mess included
    for table in ("raw.web_events", "staging.web_events", "staging.store_sales", "quarantine.web_events",
                  "core.product_snapshots", "core.customers", "ops.load_audit", "ops.landed_files"):
        assert loaded.get(table, 0) > 0, (table, loaded)
    assert sum(q for (_, _, _, q, _, _) in on_s3.values()) > 0
    if world_name == "ga4":  # read through the bucket's _mappings/web.toml, as a GA4 export
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("select notes::text from ops.load_audit where channel = 'web' and business_date = %s",
                        (DAY1,))
            assert "read as a GA4 export" in cur.fetchone()[0]
    # lineage names the object by its key under the landing root, the same wherever the zone lives
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select distinct _source_file from raw.web_events order by 1")
        assert [f for (f,) in cur.fetchall()] == sorted(
            f"web/{DAY1}/{p.name}" for p in (world / "web" / DAY1.isoformat()).iterdir() if p.name.endswith(".gz"))


def test_missing_or_corrupt_objects_fail_their_load_naming_the_object(tiny_world, landing, s3, clean_warehouse):
    """The sensor's check and the load on S3: no manifest yet (not ready; a load says so), then a good delivery
    loads; an object listed in the manifest but missing, and a truncated gzip whose manifest matches it, fail
    with a message naming the object's URL and what to do, and leave the previous load of the date as it was."""
    prefix = f"errors-{uuid.uuid4().hex[:8]}"
    root = f"s3://{CONN_ID}@{BUCKET}/{prefix}"  # the connection named in the URL itself
    folder = tiny_world / "web" / DAY1.isoformat()
    key = f"{prefix}/web/{DAY1}"

    assert not folder_ready(root, "web", DAY1)
    with pytest.raises(LandingError, match=rf"s3://{CONN_ID}@{BUCKET}/{key}/_manifest.json: no manifest"):
        ingest_source("web", DAY1, landing_dir=root, url=clean_warehouse)

    data = sorted(p for p in folder.iterdir() if p.name != "_manifest.json")
    for p in data:
        s3.put(f"{key}/{p.name}", p.read_bytes())
    s3.put(f"{key}/_manifest.json", (folder / "_manifest.json").read_bytes())
    assert folder_ready(root, "web", DAY1)
    good = ingest_source("web", DAY1, landing_dir=root, url=clean_warehouse)
    assert good["lines_read"] > 0

    def state() -> tuple:
        with warehouse.transaction(clean_warehouse) as cur:
            cur.execute("select count(*), md5(string_agg(line, '' order by _source_file, _line_no)) "
                        "from raw.web_events")
            raw = cur.fetchone()
            cur.execute("select lines_read, rows_staged from ops.load_audit where channel = 'web'")
            return raw, cur.fetchall()

    before = state()
    s3.client.delete_object(Bucket=BUCKET, Key=f"{key}/{data[0].name}")
    with pytest.raises(LandingError, match=rf"s3://{CONN_ID}@{BUCKET}/{key}/{data[0].name}: listed in "
                                           r"_manifest.json but missing\. Nothing was loaded .*re-deliver"):
        ingest_source("web", DAY1, landing_dir=root, url=clean_warehouse)
    assert state() == before

    # a truncated gzip whose manifest was written for it (bytes and sha256 match): only reading it finds out
    whole = gzip.compress(b"".join(gzip.decompress(p.read_bytes()) for p in data))
    cut = whole[: len(whole) // 2]
    s3.put(f"{key}/{data[0].name}", cut)
    for p in data[1:]:
        s3.client.delete_object(Bucket=BUCKET, Key=f"{key}/{p.name}")
    s3.put(f"{key}/_manifest.json", json.dumps({"files": [{
        "name": data[0].name, "bytes": len(cut), "sha256": hashlib.sha256(cut).hexdigest(), "data_lines": 10,
    }]}).encode())
    with pytest.raises(LandingError, match=rf"s3://{CONN_ID}@{BUCKET}/{key}/{data[0].name}: corrupt or truncated "
                                           r"gzip after \d+ lines .*re-deliver"):
        ingest_source("web", DAY1, landing_dir=root, url=clean_warehouse)
    assert state() == before


def test_the_ingest_dag_waits_for_and_loads_a_landing_zone_on_s3(tiny_world, s3, clean_warehouse, monkeypatch):
    """The real ``omnifuse_ingest`` DAG with ``OMNIFUSE_LANDING_DIR=s3://<conn>@bucket/prefix``: its sensors find the
    manifests in the bucket, its loads read the objects (the connection is looked up inside the tasks), and the
    day reconciles with the generator's planted mess as it does from disk."""
    from omnifuse.airflow_glue import run_ingest_days
    from omnifuse.config import load_settings

    prefix = f"dag-{uuid.uuid4().hex[:8]}"
    s3.upload_tree(tiny_world, prefix, DAY1)
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", f"s3://{CONN_ID}@{BUCKET}/{prefix}")
    monkeypatch.delenv("OMNIFUSE_LANDING_CONN_ID", raising=False)
    settings = load_settings()
    assert settings.landing_dir == f"s3://{CONN_ID}@{BUCKET}/{prefix}"

    assert run_ingest_days([DAY1], settings) == ["success"]
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select channel, lines_read, rows_staged, rows_quarantined, duplicates_dropped, "
                    "quarantine_by_reason from ops.load_audit where business_date = %s", (DAY1,))
        audit = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute("select count(*) from core.interactions where event_ts::date = %s", (DAY1,))
        built = cur.fetchone()[0]
    truth = json.loads((tiny_world / "truth" / "mess" / f"{DAY1}.json").read_text())
    assert set(audit) == set(LOAD_ORDER)
    for channel in ("web", "mobile", "social", "store"):
        lines, staged, quarantined, dups, reasons = audit[channel]
        assert lines == staged + quarantined + dups
        assert staged == truth[channel]["expected"]["rows_staged"]
        assert reasons == truth[channel]["expected"]["rows_quarantined_by_reason"]
    assert built > 0


def test_the_manifest_command_writes_a_manifest_into_a_bucket_folder(tiny_world, s3, capsys, tmp_path):
    """A folder assembled by hand in the bucket gets its manifest from ``omnifuse manifest s3://…``: the same
    body as the same files in a local folder get."""
    import shutil

    from omnifuse.cli import main
    from omnifuse.manifest import write_manifest

    local = tmp_path / "store" / DAY1.isoformat()
    local.mkdir(parents=True)
    for p in sorted((tiny_world / "store" / DAY1.isoformat()).iterdir()):
        if p.name != "_manifest.json":
            shutil.copy(p, local / p.name)
            s3.client.upload_file(str(p), BUCKET, f"by-hand/store/{DAY1.isoformat()}/{p.name}")
    url = f"s3://{CONN_ID}@{BUCKET}/by-hand/store/{DAY1.isoformat()}"
    assert main(["manifest", url]) == 0
    files = len(list(local.iterdir()))
    assert f"{url}/_manifest.json: {files} files" in capsys.readouterr().out
    key = f"by-hand/store/{DAY1.isoformat()}/_manifest.json"
    written = json.loads(s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert files >= 1 and written == write_manifest(local)
