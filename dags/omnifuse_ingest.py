"""
# omnifuse_ingest

**One run owns one business date** (the day that just ended, or `{"business_date": "YYYY-MM-DD"}` in the
run conf to load any date by hand). Re-running a run, a task or a day replaces exactly what it owns.

| step | reads | writes |
| --- | --- | --- |
| `wait_for_<folder>` | `<landing>/<folder>/<date>/_manifest.json` (a local folder or object storage) | — |
| `load_catalog` | `catalog/<date>/*.csv` | `core.products`, `core.store_snapshots`, `core.stores`, `core.fx_rates` |
| `load_crm` | `crm/<date>/customers.csv` | `core.customer_snapshots`, `core.customers` |
| `load_<channel>` | the channel's files | `raw.*`, `staging.*`, `quarantine.*` |
| `report_load` | `ops.load_audit` | task log |
| `validate_staging` | the date's `staging.*` partitions | `ops.dq_results`, Data Docs |
| `resolve_identities` | `staging.*`, `core.customers` | `core.identity_map`, `core.identity_runs` |
| `build_interactions` | `staging.*`, `core.identity_map` | `core.interactions`, `quarantine.interactions` |
| `validate_core` | `core.interactions`, `core.identity_map`, `core.products`, `core.customers` | `ops.dq_results`|
| `emit_interactions` | — | Asset `core.interactions` (extra: `business_date`, `rows`, ...) for `omnifuse_retrain` |

Every load writes `ops.load_audit` (lines read = staged + quarantined + duplicates dropped) and
`ops.landed_files`. Malformed or rule-breaking lines go to `quarantine.<table>` with a `reason`.

**Quality gates** (`validate_staging`, `validate_core`) run the Great Expectations suites in `include/gx/suites/`
inside Postgres. An `error` expectation that fails fails the gate: nothing after it runs, the Asset is not
emitted, and retraining never sees the date. `warn` failures are recorded in `ops.dq_results` and shown in
`mart.data_quality_daily`; the run goes on. The log lists each failed expectation with the observed value, a
sample of offending rows and the Data Docs link (`$OMNIFUSE_STATE_DIR/data_docs/<gate>/<date>/index.html`).

**The landing zone** (`<landing>`, `OMNIFUSE_LANDING_DIR`) is a local folder or a URL of object storage
(`s3://aws_landing@bucket/prefix`, `gs://…`: Airflow's `ObjectStoragePath` with an Airflow connection); sensors,
manifests and loads read both the same way.

**When a task fails**: the log names the file, the date and what to do. A sensor that times out means the
sender did not deliver that folder: check the landing zone, then clear the task. A `LandingError` means a
file is missing, truncated or corrupt: ask for a re-delivery, then clear the task; nothing was half-loaded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import CronTriggerTimetable, PokeReturnValue, dag, get_current_context, task
from omnifuse.airflow_glue import (
    CORE_INTERACTIONS,
    GATE_RETRIES,
    announce,
    dag_defaults,
    interactions_event_extra,
    run_business_date,
)
from omnifuse.config import load_settings

SETTINGS = load_settings()
EVENT_LOADS = {
    "web": "load_web_events",
    "mobile": "load_mobile_events",
    "social": "load_social_interactions",
    "store": "load_store_sales",
}


def _wait_for(folder: str) -> Any:
    @task.sensor(
        task_id=f"wait_for_{folder}",
        mode="reschedule",
        poke_interval=SETTINGS.sensor_poke_s,
        timeout=SETTINGS.sensor_timeout_s,
        doc_md=f"Waits for `<landing>/{folder}/<date>/_manifest.json`, which the sender writes last. "
        "On timeout the delivery never came: check with the sender, then clear this task.",
    )
    def wait() -> PokeReturnValue:
        from omnifuse.ingest import manifest_file

        manifest = manifest_file(SETTINGS.landing_dir, folder, run_business_date())
        ready = manifest.is_file()
        if not ready:
            print(f"waiting for {manifest}")
        return PokeReturnValue(is_done=ready)

    return wait()


def _load(task_id: str, source_names: tuple[str, ...], doc: str) -> Any:
    @task(task_id=task_id, doc_md=doc)
    def load() -> list[dict]:
        from omnifuse.ingest import ingest_source

        day = run_business_date()
        summaries = []
        for name in source_names:
            summary = ingest_source(name, day, landing_dir=SETTINGS.landing_dir)
            summary.pop("notes", None)
            summaries.append(summary)
        return summaries

    return load()


@dag(
    dag_id="omnifuse_ingest",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC", interval=timedelta(days=1)),
    tags=["omnifuse", "ingest"],
    doc_md=__doc__,
    **dag_defaults(max_active_runs=3),
)
def omnifuse_ingest() -> None:
    catalog = _load(
        "load_catalog", ("fx_rates", "store_locations", "catalog"),
        "Loads the day's catalog delivery into `core.fx_rates`, `core.stores` and `core.product_snapshots`/"
        "`core.products` (rates first: the catalog may be priced in any currency they know). Event loads wait "
        "for it: unknown SKUs and prices are judged against this snapshot.",
    )
    crm = _load("load_crm", ("crm",), "Loads the CRM snapshot into `core.customer_snapshots` and `core.customers`.")
    _wait_for("catalog") >> catalog
    _wait_for("crm") >> crm
    loads = [crm]
    for folder, task_id in EVENT_LOADS.items():
        load = _load(
            task_id, (folder,),
            f"COPYs `{folder}` files into `raw`, types them into `staging`, quarantines the rest with a reason, "
            "and writes `ops.load_audit`. One transaction: a failure leaves the previous load of the date intact.",
        )
        [_wait_for(folder), catalog] >> load
        loads.append(load)

    @task(doc_md="Logs the day's `ops.load_audit` rows as a table; fails if any channel does not reconcile.")
    def report_load() -> dict:
        from omnifuse.report import load_report

        return load_report(run_business_date())

    @task(doc_md="Records the day's identifiers (`core.identity_observations`) and recomputes "
          "`core.identity_map` from all evidence: CRM statements and logins, with guards against shared devices "
          "and over-linked CRM identifiers. Summary in `core.identity_runs`. Safe to re-run.")
    def resolve_identities() -> dict:
        from omnifuse.identity import resolve_identities as resolve

        return resolve(run_business_date())

    @task(doc_md="Rebuilds the event-date partitions of `core.interactions` from the business date back "
          "`OMNIFUSE_REATTRIBUTION_DAYS` days (late events, re-attribution of anonymous events after a login). "
          "Fails, rolling back, if staged rows do not reconcile with built + quarantined rows.")
    def build_interactions() -> dict:
        from omnifuse.interactions import build_interactions as build

        return build(run_business_date())

    @task(outlets=[CORE_INTERACTIONS],
          doc_md="Announces the fresh `core.interactions` as an Asset event (extra: `business_date`, the "
          "`event_dates` rebuilt, their `rows` and `quarantined`); "
          "`omnifuse_retrain` is scheduled on it. Runs only when every upstream task and gate succeeded.")
    def emit_interactions(built: dict) -> dict:
        announce(CORE_INTERACTIONS, interactions_event_extra(built))
        return built

    def _gate(gate: str, doc: str) -> Any:
        @task(task_id=f"validate_{gate}", doc_md=doc, retries=GATE_RETRIES)
        def validate() -> dict:
            from omnifuse.quality import run_gate

            return run_gate(gate, run_business_date(), run_id=get_current_context()["run_id"])

        return validate()

    report = report_load()
    staging_gate = _gate(
        "staging", "Great Expectations gate on the date's staging partitions (columns, types, keys, ranges, "
        "allowed values, known products, freshness, volume band). Fails on any `error` expectation: fix the "
        "source or the load, then clear the load task and this one.")
    core_gate = _gate(
        "core", "Great Expectations gate on `core.interactions` for the date, `core.identity_map`, "
        "`core.products` and `core.customers` (keys, allowed values, known products, volume band, channel mix "
        "drift). Fails on any `error` expectation, so the Asset is not emitted.")
    loads >> report >> staging_gate
    identities = resolve_identities()
    interactions = build_interactions()
    staging_gate >> identities >> interactions >> core_gate
    core_gate >> emit_interactions(interactions)


ingest_dag = omnifuse_ingest()
