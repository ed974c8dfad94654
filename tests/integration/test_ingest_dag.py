"""The real omnifuse_ingest DAG, run with dag.test() on Airflow's metadata DB in the embedded server."""

from __future__ import annotations

import json
from datetime import date

from omnifuse import warehouse
from omnifuse.cli import run_ingest_days
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
    assert set(audit) == {"catalog", "stores", "fx_rates", "crm", "web", "mobile", "social", "store"}
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
    assert {"business_date": "2026-11-02"} in extras
    with warehouse.transaction(clean_warehouse) as cur:
        cur.execute("select rows_staged, rows_built from core.interaction_builds where event_date = '2026-11-02'")
        staged, built = cur.fetchone()
    assert built > 0 and staged >= built
