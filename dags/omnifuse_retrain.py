"""
# omnifuse_retrain

**Daily retraining**, scheduled on the `core.interactions` Asset that `omnifuse_ingest` emits once a day's
interactions passed their quality gates. Trigger it by hand for any date with `{"business_date": "YYYY-MM-DD"}`
(Asset-scheduled DAGs cannot be backfilled by the scheduler).

| step | reads | writes |
| --- | --- | --- |
| `prepare_training` | `core.interactions` (gated dates), `core.products` | `dataset.npz`, `ml.training_runs` |
| `train_<model>` | the dataset | `valid/<model>`, `holdout/<model>` artifacts, `ml.model_metrics` |
| `fuse_models` | the base models | `fused/`, `ml.model_metrics` (every variant), `ml.fusion_weights` |
| `gate_champion` | metrics, current champion | `ml.model_registry` (champion / rejected + reason) |
| `emit_champion` | — | Asset `ml.champion` (extra: `business_date`, `champion`), which `omnifuse_publish` waits for |

The time split cannot cheat: models are fitted on days before the holdout (`OMNIFUSE_HOLDOUT_DAYS`), fusion
learns on the `OMNIFUSE_VALID_DAYS` before that. A challenger replaces the champion only if it beats it and
popularity by `OMNIFUSE_GATE_MARGIN` on the holdout; otherwise the run **succeeds**, keeps the champion and
`ml.model_registry.reason` says why.

**When a task fails**: `BlockedDateError` means the date did not pass its quality gates — fix and re-run
`omnifuse_ingest` for it first. A training task that fails can be cleared on its own; it rewrites only its
artifacts and metrics.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task
from omnifuse.assets import CORE_INTERACTIONS, DEFAULT_ARGS, ML_CHAMPION, asset_run_business_date

MODELS = ("popularity", "popularity_channel", "item_knn", "pure_svd", "ease", "assoc_rules", "two_tower")


def _train(name: str):
    @task(task_id=f"train_{name}", doc_md=f"Fits `{name}` before the validation slice (for fusion) and before the "
          "holdout (evaluated and served); writes its holdout metrics and fit time to `ml.model_metrics`.")
    def train(training_run: str) -> dict:
        from omnifuse.retrain import train_model

        return train_model(training_run, name)

    return train


@dag(
    dag_id="omnifuse_retrain",
    schedule=[CORE_INTERACTIONS],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "owner": "ml-platform"},
    tags=["omnifuse", "ml"],
    doc_md=__doc__,
)
def omnifuse_retrain():
    @task(doc_md="Checks the date's quality gates, loads the training window from `core.interactions` into the "
          "model store and records the run. Fails with `BlockedDateError` on a date that did not pass its gates.")
    def prepare_training() -> str:
        from omnifuse.retrain import prepare_training as prepare

        return prepare(asset_run_business_date())["run_id"]

    @task(doc_md="Learns the fusion variants (equal, RRF, learned linear, stacked) on the validation slice, scores "
          "every variant and the final model with business rules on the holdout, saves the fused model.")
    def fuse_models(training_run: str, trained: list[dict]) -> dict:
        from omnifuse.retrain import fuse_models as fuse

        return fuse(training_run)

    @task(doc_md="Registers the fused model and promotes it only if it beats the champion and popularity by the "
          "configured margin; otherwise keeps the champion and records why. Succeeds either way.")
    def gate_champion(training_run: str, fused: dict) -> dict:
        from omnifuse.retrain import gate_champion as gate

        return gate(training_run)

    @task(outlets=[ML_CHAMPION], doc_md="Announces the champion for the date (Asset `ml.champion`); "
          "`omnifuse_publish` is scheduled on it.")
    def emit_champion(decision: dict) -> dict:
        ctx = get_current_context()
        ctx["outlet_events"][ML_CHAMPION].extra = {"business_date": decision["business_date"],
                                                   "champion": decision["champion"]}
        return decision

    training_run = prepare_training()
    trained = [_train(name)(training_run) for name in MODELS]
    emit_champion(gate_champion(training_run, fuse_models(training_run, trained)))


retrain_dag = omnifuse_retrain()
