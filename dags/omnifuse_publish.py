"""
# omnifuse_publish

**Publishes the champion's output for BI**, scheduled on the `ml.champion` Asset from `omnifuse_retrain`.
Trigger it by hand for any date with `{"business_date": "YYYY-MM-DD"}`; republishing a date replaces it exactly.

| step | reads | writes |
| --- | --- | --- |
| `plan_batches` | champion in `ml.model_registry` | batch numbers (XCom) |
| `score_batch` (mapped) | champion artifacts, `core.products` (today's stock) | `ml.recommendation_batches` |
| `publish_mart` | batches, `core.interactions`, `ml.*` | every `mart.*` table, `*_history`, `mart.publish_log` |

Every table is built aside as `mart.<table>__next`, checked (at most K rows per customer, no duplicates, ranks
1..n, scores non-increasing, products in the catalog and in stock), then swapped in by rename inside one
transaction: BI readers see yesterday's table or today's, never half of one. The read-only role
(`OMNIFUSE_BI_ROLE`) can `SELECT` on `mart` and nothing else.

**When a task fails**: `PublishCheckError` lists which output check failed; yesterday's tables are untouched.
Look at `ml.recommendation_batches` for the date and the champion in `ml.model_registry`, then clear the task.
A swap that keeps timing out means long BI queries hold the table: clear the task later.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from omnifuse.assets import ML_CHAMPION, alert_on_failure, asset_run_business_date

DEFAULT_ARGS = {
    "on_failure_callback": alert_on_failure,
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
}


@dag(
    dag_id="omnifuse_publish",
    schedule=[ML_CHAMPION],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["omnifuse", "publish", "bi"],
    doc_md=__doc__,
)
def omnifuse_publish():
    @task(doc_md="Splits the champion's active customers into scoring batches (one mapped task each).")
    def plan_batches() -> list[dict]:
        from omnifuse.publish import plan_batches as plan

        day = asset_run_business_date()
        return [{"business_date": day.isoformat(), "batch": b} for b in plan(day)]

    @task(doc_md="Scores one batch of customers with the champion, applies the business rules, writes the top-K "
          "with reasons into `ml.recommendation_batches` (replacing that batch).")
    def score_batch(job: dict) -> dict:
        from datetime import date

        from omnifuse.publish import score_batch as score

        return score(date.fromisoformat(job["business_date"]), job["batch"])

    @task(doc_md="Builds every `mart` table aside, runs the output checks, records history and swaps them in "
          "atomically; writes `mart.publish_log`. A failed check leaves yesterday's tables in place.")
    def publish_mart(scored: list[dict]) -> dict:
        from omnifuse.publish import publish_mart as publish

        return publish(asset_run_business_date())

    publish_mart(score_batch.expand(job=plan_batches()))


publish_dag = omnifuse_publish()
