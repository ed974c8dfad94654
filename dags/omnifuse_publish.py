"""
# omnifuse_publish

**Publishes the champion's output for BI**, scheduled on the `ml.champion` Asset from `omnifuse_retrain`.
Trigger it by hand for any date with `{"business_date": "YYYY-MM-DD"}`; republishing a date replaces it exactly.
**Out of order**: a date older than the one live in `mart` writes only its history partitions
(`mart.publish_log.live = false`); add `"force": true` to the conf to swap it in anyway (a rollback of the marts).

Every known customer gets a list: personalised by the champion, or a labelled fallback (`source` =
`fallback_segment` / `fallback_channel` / `fallback_store` / `fallback_popular`) for customers without usable
history; `mart.publish_log` records the shares. `mart.recommendation_contributions` gives each base model's
weight × normalised score behind every personalised recommendation.

| step | reads | writes |
| --- | --- | --- |
| `resolve_champion` | champion in `ml.model_registry` (once per run) | date, `model_version`, `force` |
| `plan_batches` | that version's artifacts | batch numbers (XCom) |
| `score_batch` (mapped) | that version's artifacts, `core.products` (today's stock) | `ml.recommendation_batches` |
| `publish_mart` | batches, `core.usable_interactions`, `core.customers` | `mart.*` (one Asset each), history, log |

Every table is built aside as `mart.<table>__next`, checked (at most K rows per customer, no duplicates, ranks
1..n, scores non-increasing, products in the catalog and in stock), then its rows replace the live table's inside
the same relation, in one transaction: BI readers see yesterday's rows or today's, never half of them, at every
isolation level (a REPEATABLE READ extract or `pg_dump` started before keeps yesterday's). The read-only role
(`OMNIFUSE_BI_ROLE`) can `SELECT` on `mart` and nothing else.

**Business date**: a date beyond the usable data (`core.usable_dates`) or without a retrain through it
(`ml.model_registry`) is refused by `resolve_champion` (`BusinessDateError`, no retry): check the conf for a typo.

**When a task fails**: `PublishCheckError` lists which output check failed; yesterday's tables are untouched.
`ModelArtifactError` means the champion's artifact is missing or corrupt: re-run `omnifuse_retrain` for its date
(or roll the registry back), then this DAG. Both fail at once (no retry).
Look at `ml.recommendation_batches` for the date and the champion in `ml.model_registry`, then clear the task.
A publish that keeps timing out on a lock means someone holds a table-level lock on a mart table (`LOCK TABLE`,
`VACUUM FULL`): plain BI reads never block it. Clear the task later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from airflow.sdk import dag, task
from omnifuse.airflow_glue import (
    MART_ASSETS,
    ML_CHAMPION,
    announce,
    asset_run_business_date,
    dag_defaults,
    mart_event_extras,
)

if TYPE_CHECKING:  # the XCom types; importing omnifuse.mart at parse time would load pandas and more
    from omnifuse.mart import Published, PublishRun
    from omnifuse.recommendations import BatchScored, ScoringJob


@dag(
    dag_id="omnifuse_publish",
    schedule=[ML_CHAMPION],
    tags=["omnifuse", "publish", "bi"],
    doc_md=__doc__,
    **dag_defaults(),
)
def omnifuse_publish() -> None:
    @task(doc_md="Resolves the business date and the champion's `model_version` **once**: every later task "
          "serves exactly that version, even if a retrain promotes another one meanwhile.")
    def resolve_champion() -> PublishRun:
        from airflow.sdk import get_current_context
        from omnifuse.business_date import check_publishable_date
        from omnifuse.mart import PublishRun
        from omnifuse.recommendations import champion_version

        conf = get_current_context()["dag_run"].conf or {}
        business_date = asset_run_business_date()
        with _fail_at_once():
            check_publishable_date(business_date)  # a date beyond the data or the champion: nothing is scored
        return PublishRun(business_date=business_date.isoformat(), model_version=champion_version(),
                          force=bool(conf.get("force", False)))

    @task(doc_md="Splits the model version's customers into scoring batches (one mapped task each).")
    def plan_batches(run: PublishRun) -> list[ScoringJob]:
        from datetime import date

        from omnifuse.recommendations import ScoringJob
        from omnifuse.recommendations import plan_batches as plan

        with _fail_at_once():
            batches = plan(date.fromisoformat(run["business_date"]), run["model_version"])
        return [ScoringJob(business_date=run["business_date"], model_version=run["model_version"], batch=b)
                for b in batches]

    @task(doc_md="Scores one batch of customers with the run's model version, applies the business rules, writes "
          "the top-K with reasons, evidence and per-model contributions into `ml.recommendation_batches` "
          "(replacing that batch).")
    def score_batch(job: ScoringJob) -> BatchScored:
        from datetime import date

        from omnifuse.recommendations import score_batch as score

        with _fail_at_once():
            return score(date.fromisoformat(job["business_date"]), job["batch"], job["model_version"])

    @task(outlets=list(MART_ASSETS.values()),
          doc_md="Builds every `mart` table aside (fallbacks for customers without history included), runs the "
          "output checks, records history and swaps them in atomically; writes `mart.publish_log`. A failed "
          "check leaves yesterday's tables in place; an older date than the live one writes history only "
          "unless the run conf has `force`. Emits one Asset event per `mart` table (extra: `business_date`, "
          "`model_version`, `rows`, `live`).")
    def publish_mart(run: PublishRun, scored: list[BatchScored]) -> Published:
        from datetime import date

        from omnifuse.mart import publish_mart as publish

        versions = {s["model_version"] for s in scored}
        if versions != {run["model_version"]}:
            raise RuntimeError(f"scoring batches used {sorted(versions)} but the run resolved "
                               f"{run['model_version']}: clear the whole run.")
        with _fail_at_once():
            published = publish(date.fromisoformat(run["business_date"]), model_version=run["model_version"],
                                force=run["force"])
        for table, extra in mart_event_extras(published).items():
            announce(MART_ASSETS[table], extra)
        return published

    run = resolve_champion()
    publish_mart(run, score_batch.expand(job=plan_batches(run)))


@contextmanager
def _fail_at_once() -> Iterator[None]:
    """Errors no retry can fix (a business date beyond the data or the champion, an unreadable model artifact, a
    failed output check) fail the task at once."""
    from airflow.sdk.exceptions import AirflowFailException
    from omnifuse.business_date import BusinessDateError
    from omnifuse.mart import PublishCheckError
    from omnifuse.recommendations import ModelArtifactError

    try:
        yield
    except (BusinessDateError, ModelArtifactError, PublishCheckError) as exc:
        raise AirflowFailException(str(exc)) from exc


publish_dag = omnifuse_publish()
