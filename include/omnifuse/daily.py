"""The ``omnifuse_ingest`` DAG's work for one business date as plain calls, in the DAG's order.

For benchmarks and tests that need many loaded days fast; the DAG itself stays the way production runs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from omnifuse.config import Settings, load_settings
from omnifuse.identity import resolve_identities
from omnifuse.ingest import ingest_source
from omnifuse.interactions import build_interactions

LOAD_ORDER = ("fx_rates", "store_locations", "catalog", "crm", "web", "mobile", "social", "store")


def run_day(business_date: date, landing_dir: Path, url: str | None = None, *,
            settings: Settings | None = None) -> dict[str, dict]:
    """Load every source, run the staging gate, resolve identities, rebuild interactions and run the core gate
    for one date; returns each step's summary (a gate that blocks the date raises, as in the DAG)."""
    from omnifuse.quality import run_gate

    settings = settings or load_settings()
    out: dict[str, dict] = {}
    for name in LOAD_ORDER:
        out[name] = ingest_source(name, business_date, landing_dir=landing_dir, url=url, settings=settings)
    out["staging_gate"] = run_gate("staging", business_date, url=url, run_id="daily", settings=settings)
    out["identity"] = resolve_identities(business_date, url=url, settings=settings)
    out["interactions"] = build_interactions(business_date, url=url, settings=settings)
    out["core_gate"] = run_gate("core", business_date, url=url, run_id="daily", settings=settings)
    return out
