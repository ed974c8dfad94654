"""The real omnifuse_ingest DAG, run with dag.test() on Airflow's metadata DB in the embedded server."""

from __future__ import annotations

import json
from datetime import date

from omnifuse import warehouse
from omnifuse.airflow_glue import run_ingest_days
from omnifuse.config import load_settings


def test_ingest_dag_runs_one_generated_day(tiny_world, clean_warehouse, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(tiny_world))
    states = run_ingest_days([date(2026, 11, 2)], load_settings())
    assert states == ["success"]
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select channel, lines_read, rows_staged, rows_quarantined, duplicates_dropped, "
                    "quarantine_by_reason from ops.load_audit where business_date = '2026-11-02'")
        audit = {r[0]: r[1:] for r in cur.fetchall()}
    truth = json.loads((tiny_world / "truth" / "mess" / "2026-11-02.json").read_text())
    assert set(audit) == {"catalog", "store_locations", "fx_rates", "crm", "web", "mobile", "social", "store"}
    for channel in ("web", "mobile", "social", "store"):
        lines, staged, quarantined, dups, reasons = audit[channel]
        assert lines == staged + quarantined + dups
        assert staged == truth[channel]["expected"]["rows_staged"]
        assert reasons == truth[channel]["expected"]["rows_quarantined_by_reason"]

    # the run announced core.interactions for the date (what omnifuse_retrain is scheduled on)
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "core.interactions")
        ).all()
    # the event names the date (and, since the operator's view, its volumes)
    assert any((extra or {}).get("business_date") == "2026-11-02" for extra in extras), extras
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select rows_staged, rows_built from core.interaction_builds where event_date = '2026-11-02'")
        staged, built = cur.fetchone()
    assert built > 0 and staged >= built


def test_blocking_quality_failure_stops_the_day_before_the_asset(tiny_world, clean_warehouse, monkeypatch, tmp_path):
    """A day whose store export is broken (most quantities unreadable): every bad line is quarantined with its
    reason, and the staging gate blocks the date because the share of quarantined lines says the export broke."""
    import shutil

    from omnifuse.generate.writers import _manifest_entry, write_manifest

    world = tmp_path / "landing"
    shutil.copytree(tiny_world, world)
    day = date(2026, 11, 3)
    pos = world / "store" / day.isoformat() / "pos.csv"
    lines = pos.read_text().splitlines()
    header = lines[0].split(",")
    q = header.index("qty") if "qty" in header else header.index("quantity")
    for i in range(1, len(lines)):
        if i % 5:  # four lines in five
            cells = lines[i].split(",")
            cells[q] = "many"
            lines[i] = ",".join(cells)
    pos.write_text("\n".join(lines) + "\n")
    write_manifest(pos.parent, [_manifest_entry(pos, len(lines) - 1)])
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(world))

    states = run_ingest_days([day], load_settings())
    assert states[0].startswith("failed") and "validate_staging=failed" in states[0]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == "core.interactions")
        ).all()
        run_id = session.scalars(select(DagRun.run_id).where(DagRun.dag_id == "omnifuse_ingest")
                                 .order_by(DagRun.id.desc()).limit(1)).one()
        tis = dict(session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_id == "omnifuse_ingest",
                                                                   TaskInstance.run_id == run_id)
        ).all())
    assert {"business_date": day.isoformat()} not in extras
    assert tis["load_store_sales"] == "success" and tis["validate_staging"] == "failed"
    assert tis["emit_interactions"] in ("upstream_failed", None)
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select severity, success from ops.dq_results where business_date = %s and table_name = %s "
                    "and expectation = %s",
                    (day, "staging.store_sales", "quarantine_share"))
        assert cur.fetchall() == [("error", False)]
        cur.execute("select passed from ops.quality_status where gate = 'staging' and business_date = %s", (day,))
        assert cur.fetchone() == (False,)
        # the failure callback wrote an alert saying what happened and what to do
        cur.execute("select task_id, business_date, error, hint from ops.alerts where dag_id = 'omnifuse_ingest'")
        alerts = cur.fetchall()
    assert [(t, d) for t, d, _, _ in alerts] == [("validate_staging", day)]
    assert alerts[0][2].startswith("QualityGateError") and "clear the load task" in alerts[0][3]
