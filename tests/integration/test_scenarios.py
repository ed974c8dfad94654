"""Issue 16's failure scenarios that lacked a real test (numbers as in tests/README.md), on real Postgres.

2 a load killed mid-COPY and 9 the warehouse restarted mid-load, then retried · 3 a truncated gzip · 5 a renamed
column nobody maps · 6 a file re-delivered on a later day · 7 late events in their own day's rebuilt partition ·
8 a channel delivery that never arrives (the real DAG) · 11 a date blocked by its gate · 16 SQL and COPY
metacharacters stored verbatim · 19 store-local times across DST changes · 20 future-dated and 21 absurd till lines.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from omnifuse import ingest, warehouse
from omnifuse.manifest import write_manifest
from psycopg2 import sql

DAY1 = date(2026, 11, 2)
REFERENCE = ("fx_rates", "store_locations", "catalog")
CLOCK_COLUMNS = {"landed_at", "loaded_at", "_loaded_at", "_quarantined_at"}


def _query(url, text, params=None):
    with warehouse.transaction(url) as cur:
        cur.execute(text, params)
        return cur.fetchall()


def _copy_world(tiny_world: Path, tmp_path: Path) -> Path:
    world = tmp_path / "landing"
    shutil.copytree(tiny_world, world)
    return world


def _load_reference(world: Path, day: date, url: str) -> None:
    for name in REFERENCE:
        ingest.ingest_source(name, day, landing_dir=world, url=url)


def _digest(url: str, table: str) -> tuple[int, str]:
    """Row count and md5 of a table's rows in a stable order, clock columns (load times) left out."""
    schema, name = table.split(".")
    cols = [c for (c,) in _query(url, "select column_name from information_schema.columns where table_schema = %s "
                                      "and table_name = %s order by ordinal_position", (schema, name))
            if c not in CLOCK_COLUMNS]
    row = sql.SQL("row({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in cols))
    query = sql.SQL("select count(*), coalesce(md5(string_agg(r, E'\\n' order by r)), '') "
                    "from (select {} as r from {}) as t").format(row, sql.Identifier(schema, name))
    return tuple(_query(url, query)[0])


# --- 2: a load killed mid-COPY, then re-run, equals a clean run ----------------------------------------------

STORE_TABLES = ("raw.store_sales", "staging.store_sales", "quarantine.store_sales", "ops.load_audit",
                "ops.landed_files")


def _big_pos(world: Path, lines: int) -> None:
    """Make the day's POS file big enough that its COPY lasts long enough to be killed."""
    pos = world / "store" / DAY1.isoformat() / "pos.csv"
    text = pos.read_text().splitlines()
    with pos.open("a") as fh:
        for i in range(lines):
            cells = text[1 + i % (len(text) - 1)].split(",")
            cells[0], cells[1] = f"r-big-{i:07d}", "1"
            fh.write(",".join(cells) + "\n")
    write_manifest(pos.parent)


def _copy_running(url: str) -> list[int]:
    return [pid for (pid,) in _query(url, "select pid from pg_stat_activity where state = 'active' "
                                          "and query ilike 'copy %%' and pid <> pg_backend_pid()")]


def _restart_warehouse(url: str, pids: list[int]) -> None:
    """Stop and start the session's embedded server (what a warehouse restart does to every client)."""
    from omnifuse.config import load_settings

    settings = load_settings()
    if not warehouse.is_embedded(settings):
        pytest.skip("restarts only the session's embedded server, not an external test database")
    from pgserver._commands import pg_ctl

    # what warehouse._tune_embedded does (pgserver keeps one server object per process, so down() + up() would
    # not start it again)
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=settings.pgdata, user=warehouse._pg_user(), timeout=60)


def _terminate(url: str, pids: list[int]) -> None:
    assert _query(url, "select pg_terminate_backend(pid) from unnest(%s::int[]) as pid", (pids,)) == [(True,)]


@pytest.mark.parametrize("fault", [_terminate, _restart_warehouse], ids=["2-terminate-backend", "9-restart"])
def test_a_load_killed_mid_copy_then_rerun_equals_a_clean_run(fault, tiny_world, clean_warehouse, tmp_path):
    """Scenario 2 (``pg_terminate_backend`` on the load's connection) and 9 (the warehouse restarted during the
    load): the load fails with an error the tasks' retry policy retries, leaves nothing, and its retry gives
    exactly the tables of a clean run (no duplicates)."""
    from airflow.sdk import RetryAction
    from omnifuse.airflow_glue import OmnifuseRetryPolicy

    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    _big_pos(world, 150_000)
    _load_reference(world, DAY1, url)
    clean = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    expected = {t: _digest(url, t) for t in STORE_TABLES}
    assert clean["lines_read"] > 150_000

    # start over on an empty warehouse: the killed load, then its retry
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)
    _load_reference(world, DAY1, url)
    errors: list[BaseException] = []

    def load():
        try:
            ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    pids: list[int] = []
    deadline = time.monotonic() + 60
    while not pids and loader.is_alive() and time.monotonic() < deadline:
        pids = _copy_running(url)
        time.sleep(0.005)
    assert len(pids) == 1, "the COPY was never seen running: make the file bigger"
    fault(url, pids)
    loader.join(120)
    assert len(errors) == 1, "the killed load did not raise"
    assert OmnifuseRetryPolicy().evaluate(errors[0], try_number=1, max_tries=3).action is RetryAction.RETRY
    assert _query(url, "select count(*) from staging.store_sales") == [(0,)]
    assert _query(url, "select count(*) from ops.load_audit where channel = 'store'") == [(0,)]

    retry = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    assert {k: v for k, v in retry.items() if "seconds" not in k} == \
        {k: v for k, v in clean.items() if "seconds" not in k}
    assert {t: _digest(url, t) for t in STORE_TABLES} == expected
    assert _query(url, "select count(*) - count(distinct (receipt_id, line_no)) from staging.store_sales") == [(0,)]


# --- 16: SQL text and COPY metacharacters inside file content are stored verbatim -----------------------------

HOSTILE = [
    ("so-h-1", "\\N", "\\N"),
    ("so-h-2", "@tab\there", "a\ttab, a \\t and a \\\\ backslash"),
    ("so-h-3", "@x'; drop table staging.social_interactions; --", "'); delete from core.products; --"),
    ("so-h-4", "@back\\slash\\", "\\."),
    ("so-h-5", "@quote\"d", "line one\nline two \\n \\r"),
]


def test_sql_text_and_copy_metacharacters_are_stored_verbatim(tiny_world, clean_warehouse, tmp_path):
    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    folder = world / "social" / DAY1.isoformat()
    for old in folder.iterdir():
        old.unlink()
    with (folder / "interactions.csv").open("w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["interaction_id", "platform", "handle", "action", "sku", "occurred_at", "text"])
        for interaction_id, handle, text in HOSTILE:
            out.writerow([interaction_id, "instagram", handle, "comment", "SKU000004", "2026-11-02T12:00:00+00:00",
                          text])
    records = (folder / "interactions.csv").read_text().split("\n")
    write_manifest(folder)
    _load_reference(world, DAY1, url)
    products = _query(url, "select count(*) from core.products")

    summary = ingest.ingest_source("social", DAY1, landing_dir=world, url=url)
    assert (summary["lines_read"], summary["rows_staged"]) == (len(HOSTILE), len(HOSTILE))
    staged = _query(url, "select interaction_id, handle, comment_text from staging.social_interactions "
                         "order by interaction_id")
    assert staged == sorted(HOSTILE)
    raw = _query(url, "select fields ->> 'interaction_id', fields ->> 'handle', fields ->> 'text', line "
                      "from raw.social_interactions order by 1")
    assert [r[:3] for r in raw] == sorted(HOSTILE)
    # the raw line is the file's record byte for byte (the last one spans two physical lines)
    assert [r[3] for r in raw[:4]] == records[1:5]
    assert raw[4][3] == "\n".join(records[5:7])
    assert _query(url, "select count(*) from core.products") == products


# --- 19: store-local times across DST changes give correct UTC, ambiguous ones flagged ------------------------

def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DST_DAYS = {
    # fall back in Europe/Paris: 03:00 CEST -> 02:00 CET, so 02:30 happens twice (00:30 and 01:30 UTC)
    date(2026, 10, 25): [("01:30:00", "2026-10-24 23:30", None), ("02:30:00", "2026-10-25 01:30", "ambiguous"),
                         ("03:30:00", "2026-10-25 02:30", None)],
    # spring forward: 02:00 CET -> 03:00 CEST, so 02:30 never happens (read with the offset before the gap)
    date(2026, 3, 29): [("01:30:00", "2026-03-29 00:30", None), ("02:30:00", "2026-03-29 01:30", "nonexistent"),
                        ("03:30:00", "2026-03-29 01:30", None)],
}


def _land_day(world: Path, day: date, pos_lines: list[str]) -> None:
    """Land the tiny world's catalog (rates dated ``day``) and a POS file for ``day``."""
    catalog = world / "catalog" / day.isoformat()
    shutil.copytree(world / "catalog" / DAY1.isoformat(), catalog)
    rates = (catalog / "fx_rates.csv").read_text().splitlines()
    (catalog / "fx_rates.csv").write_text("\n".join([rates[0]] + [day.isoformat() + r[r.index(","):]
                                                                  for r in rates[1:]]) + "\n")
    write_manifest(catalog)
    store = world / "store" / day.isoformat()
    store.mkdir(parents=True)
    header = "receipt_id,line_no,store_id,loyalty_card,sku,quantity,unit_price,currency,sold_at"
    (store / "pos.csv").write_text("\n".join([header, *pos_lines]) + "\n")
    write_manifest(store)


def test_store_local_times_across_dst_changes_give_utc_and_flag_ambiguous_times(tiny_world, clean_warehouse,
                                                                               tmp_path):
    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    for day, cases in DST_DAYS.items():
        _land_day(world, day, [f"r-dst-{n},1,S01,,SKU000114,1,41.15,EUR,{day} {local}"
                               for n, (local, _, _) in enumerate(cases)])
        _load_reference(world, day, url)
        summary = ingest.ingest_source("store", day, landing_dir=world, url=url)
        assert summary["rows_staged"] == len(cases), summary
        got = _query(url, "select sold_at_local::time::text, event_ts, local_time_note from staging.store_sales "
                          "where _arrival_date = %s order by receipt_id", (day,))
        assert got == [(local, _utc(utc), note) for local, utc, note in cases]
    comment = _query(url, "select col_description('staging.store_sales'::regclass, attnum) from pg_attribute "
                          "where attrelid = 'staging.store_sales'::regclass and attname = 'local_time_note'")
    assert "just after the transition" in comment[0][0] and "just before the transition" in comment[0][0]


# --- 20 and 21: a future-dated and an absurd till line are quarantined with their reason, the rest loads ------

def test_future_dated_and_absurd_quantity_lines_are_quarantined_and_the_rest_loads(tiny_world, clean_warehouse,
                                                                                   tmp_path):
    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    _load_reference(world, DAY1, url)
    before = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    pos = world / "store" / DAY1.isoformat() / "pos.csv"
    with pos.open("a") as fh:
        fh.write(f"r-absurd-1,1,S01,L100000025,SKU000114,80995,41.15,EUR,{DAY1} 10:00:00\n")
        fh.write("r-future-1,1,S01,L100000025,SKU000114,1,41.15,EUR,2026-11-09 10:00:00\n")
    write_manifest(pos.parent)

    after = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    assert after["lines_read"] == before["lines_read"] + 2
    assert after["rows_staged"] == before["rows_staged"] > 0
    for reason in ("invalid_quantity", "clock_skew"):
        assert after["quarantine_by_reason"].get(reason, 0) == before["quarantine_by_reason"].get(reason, 0) + 1
    assert _query(url, "select split_part(line, ',', 1), reason, detail from quarantine.store_sales "
                       "where line like 'r-absurd-1,%%' or line like 'r-future-1,%%' order by 1") == [
        ("r-absurd-1", "invalid_quantity", "quantity=80995"),
        ("r-future-1", "clock_skew", "sold_at=2026-11-09 10:00:00"),
    ]
    assert _query(url, "select count(*) from staging.store_sales where receipt_id in ('r-absurd-1', "
                       "'r-future-1')") == [(0,)]


# --- 7: late events land in their own day's partition, which is rebuilt --------------------------------------

def test_late_events_land_in_their_event_days_partition_which_is_rebuilt(tiny_world, clean_warehouse):
    from omnifuse.daily import run_day

    url = clean_warehouse
    day2 = date(2026, 11, 3)
    run_day(DAY1, tiny_world, url)
    assert _query(url, "select business_date from core.interaction_builds where event_date = %s", (DAY1,)) == \
        [(DAY1,)]
    run_day(day2, tiny_world, url)
    late = _query(url, "select count(*) from staging.web_events where _arrival_date = %s and is_late "
                       "and event_ts < %s::timestamp at time zone 'UTC'", (day2, day2))[0][0]
    assert late > 0
    # day 2's late web events are in day 1's partition of core.interactions, which day 2's run rebuilt
    assert _query(url, "select count(*) from core.interactions where channel = 'web' and _arrival_date = %s "
                       "and event_date = %s", (day2, DAY1)) == [(late,)]
    assert _query(url, "select count(*) from core.interactions "
                       "where event_date <> (event_ts at time zone 'UTC')::date") == [(0,)]
    assert _query(url, "select business_date, rows_staged = rows_built + rows_quarantined "
                       "from core.interaction_builds where event_date = %s", (DAY1,)) == [(day2, True)]


# --- 8: a channel delivery that never arrives (the real DAG) -----------------------------------------------

def test_a_missing_channel_delivery_times_out_loads_the_others_and_builds_nothing(tiny_world, clean_warehouse,
                                                                                  monkeypatch, tmp_path):
    """The day's policy: the other channels are loaded (their audit rows exist); the load report, both gates,
    identity and interactions wait on every load, so the date is not built or announced until the missing
    delivery lands and the sensor and its load are cleared."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.airflow_glue import run_ingest_days
    from omnifuse.config import load_settings
    from sqlalchemy import select

    world = _copy_world(tiny_world, tmp_path)
    (world / "social" / DAY1.isoformat() / "_manifest.json").unlink()
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(world))
    monkeypatch.setenv("OMNIFUSE_SENSOR_TIMEOUT_S", "1")
    monkeypatch.setenv("OMNIFUSE_SENSOR_POKE_S", "1")
    prepare_airflow(load_settings())  # Airflow's metadata DB is read below before any DAG run has migrated it

    def announced() -> int:  # Airflow's metadata DB is shared by the session: count this date's events
        with create_session() as session:
            extras = session.scalars(
                select(AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                .where(AssetModel.name == "core.interactions")
            ).all()
        return sum(1 for e in extras if e == {"business_date": DAY1.isoformat()})

    before = announced()
    states = run_ingest_days([DAY1], load_settings())
    assert states[0].startswith("failed") and "wait_for_social" in states[0], states
    with create_session() as session:
        run_id = session.scalars(select(DagRun.run_id).where(DagRun.dag_id == "omnifuse_ingest")
                                 .order_by(DagRun.id.desc()).limit(1)).one()
        tis = dict(session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_id == "omnifuse_ingest",
                                                                   TaskInstance.run_id == run_id)
        ).all())
    assert tis["wait_for_social"] == "failed"
    assert tis["load_social_interactions"] == "upstream_failed"
    for loaded in ("load_catalog", "load_crm", "load_web_events", "load_mobile_events", "load_store_sales"):
        assert tis[loaded] == "success", (loaded, tis)
    for waiting in ("report_load", "validate_staging", "resolve_identities", "build_interactions",
                    "validate_core", "emit_interactions"):
        assert tis[waiting] in ("upstream_failed", None), (waiting, tis)
    assert announced() == before  # the date was not announced to retraining
    audit = _query(clean_warehouse, "select channel from ops.load_audit where business_date = %s", (DAY1,))
    assert {a for (a,) in audit} == {"catalog", "store_locations", "fx_rates", "crm", "web", "mobile", "store"}
    assert _query(clean_warehouse, "select count(*) from core.interactions") == [(0,)]
    assert _query(clean_warehouse, "select count(*) from ops.quality_status where business_date = %s",
                  (DAY1,)) == [(0,)]
    # the alert says which delivery never came, where its manifest should be, and what to do
    alerts = _query(clean_warehouse, "select task_id, error, hint from ops.alerts where dag_id = 'omnifuse_ingest'")
    assert [a[0] for a in alerts] == ["wait_for_social"], alerts
    assert alerts[0][1].startswith("AirflowSensorTimeout: Sensor has timed out")
    assert f"<landing>/social/{DAY1}/_manifest.json is missing" in alerts[0][2] and "clear this task" in alerts[0][2]


# --- 3 and 5, with manifests that match their files (sha256 included) ----------------------------------------

def test_a_truncated_gzip_fails_naming_the_file_and_leaves_the_previous_load(tiny_world, clean_warehouse,
                                                                              tmp_path):
    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    _load_reference(world, DAY1, url)
    ingest.ingest_source("web", DAY1, landing_dir=world, url=url)
    before = {t: _digest(url, t) for t in ("raw.web_events", "staging.web_events", "quarantine.web_events",
                                           "ops.load_audit", "ops.landed_files")}
    path = world / "web" / DAY1.isoformat() / "events.ndjson.gz"
    path.write_bytes(path.read_bytes()[:-200])
    # the sender's manifest matches the cut file (size and sha256), so only the gzip stream can tell
    manifest = path.parent / "_manifest.json"
    body = json.loads(manifest.read_text())
    body["files"][0].update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    manifest.write_text(json.dumps(body))
    with pytest.raises(ingest.LandingError, match=r"web/2026-11-02/events.ndjson.gz: corrupt or truncated gzip"):
        ingest.ingest_source("web", DAY1, landing_dir=world, url=url)
    assert {t: _digest(url, t) for t in before} == before


def test_a_renamed_column_nobody_maps_is_quarantined_never_null(tiny_world, clean_warehouse, tmp_path):
    url = clean_warehouse
    world = _copy_world(tiny_world, tmp_path)
    pos = world / "store" / DAY1.isoformat() / "pos.csv"
    pos.write_text(pos.read_text().replace("quantity", "amount", 1))
    write_manifest(pos.parent)
    _load_reference(world, DAY1, url)
    summary = ingest.ingest_source("store", DAY1, landing_dir=world, url=url)
    assert summary["rows_staged"] == 0
    assert summary["quarantine_by_reason"] == {"missing_column:quantity": summary["lines_read"]}
    notes = _query(url, "select notes from ops.load_audit where channel = 'store'")[0][0]
    assert any("header lacks ['quantity']" in n for n in notes)


# --- 6: a file re-delivered on a later day is deduplicated ---------------------------------------------------

def test_a_file_redelivered_on_a_later_day_is_deduplicated(tiny_world, clean_warehouse, tmp_path):
    """Day 1's web file arrives again inside day 2's delivery: its events are staged in day 2's batch, and
    core.interactions keeps each event once (the copies go to quarantine.interactions as
    ``duplicate_across_batches``), so it equals a run without the re-delivery."""
    from omnifuse.daily import run_day

    url = clean_warehouse
    day2 = date(2026, 11, 3)
    interactions = "select count(*), md5(string_agg(channel || event_key || coalesce(customer_id, ''), ',' " \
                   "order by channel, event_key)) from core.interactions"
    for day in (DAY1, day2):
        run_day(day, tiny_world, url)
    expected = _query(url, interactions)

    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)
    world = _copy_world(tiny_world, tmp_path)
    resent = world / "web" / day2.isoformat() / "events-resent.ndjson.gz"
    shutil.copy(world / "web" / DAY1.isoformat() / "events.ndjson.gz", resent)
    write_manifest(resent.parent)
    for day in (DAY1, day2):
        run_day(day, world, url)
    assert _query(url, interactions) == expected
    copies = _query(url, "select reason, count(*) from quarantine.interactions where _source_file like %s "
                         "group by reason", ("%/events-resent.ndjson.gz",))
    staged_copies = _query(url, "select count(*) from staging.web_events where _source_file like %s",
                           ("%/events-resent.ndjson.gz",))[0][0]
    assert staged_copies > 0 and copies == [("duplicate_across_batches", staged_copies)]


# --- 11: a blocking quality failure: the date is invisible to every reader of core.interactions ---------------

def test_a_date_blocked_by_its_gate_is_invisible_to_training_and_bi(tiny_world, clean_warehouse):
    """Day 2's staging gate fails for real (absurd quantities planted in its store partition); day 3 is loaded
    after it, which rebuilds day 2's event partition from the batches that passed. Day 2 is then not a usable
    date, core.usable_interactions (what training, segments, channel metrics and the dashboard read) has none
    of its events, no row of the blocked batch reached core, and retraining the date is refused."""
    from omnifuse.daily import LOAD_ORDER, run_day
    from omnifuse.quality import QualityGateError, run_gate
    from omnifuse.training_run import BlockedDateError, retrain

    url = clean_warehouse
    day2, day3 = date(2026, 11, 3), date(2026, 11, 4)
    run_day(DAY1, tiny_world, url)
    for name in LOAD_ORDER:
        ingest.ingest_source(name, day2, landing_dir=tiny_world, url=url)
    with warehouse.transaction(url) as cur:
        cur.execute(sql.SQL("update {} set quantity = 80995 where _line_no < 5").format(
            sql.Identifier("staging", f"store_sales_p{day2:%Y%m%d}")))
    with pytest.raises(QualityGateError, match="store_sales"):
        run_gate("staging", day2, url=url, run_id="blocked")
    run_day(day3, tiny_world, url)

    assert _query(url, "select event_date from core.usable_dates order by 1") == [(DAY1,), (day3,)]
    assert _query(url, "select count(*) > 0 from core.interactions where event_date = %s", (day2,)) == [(True,)]
    assert _query(url, "select count(*) from core.usable_interactions where event_date = %s", (day2,)) == [(0,)]
    assert _query(url, "select count(*) from core.interactions where _arrival_date = %s", (day2,)) == [(0,)]
    # the readers themselves: the training window and the segments' activity hold nothing of day 2
    from omnifuse.dataset import load_dataset

    window = load_dataset(DAY1, day3, url=url)
    assert sorted({date(1970, 1, 1) + timedelta(days=int(d)) for d in window.day}) == [DAY1, day3]
    with warehouse.transaction(url) as cur:
        cur.execute(warehouse.sql_text("segments/customer_activity.sql"), {"business_date": day2})
        recency = [row[1] for row in cur.fetchall()]
    assert recency and min(recency) == 1  # as of day 2, every active customer's last usable day is day 1
    with pytest.raises(BlockedDateError, match="quality gates"):
        retrain(day2, url=url)
