"""
# omnifuse_retrain

**Daily retraining**, scheduled on the `core.interactions` Asset that `omnifuse_ingest` emits once a day's
interactions passed their quality gates. Trigger it by hand for any date with `{"business_date": "YYYY-MM-DD"}`
(Asset-scheduled DAGs cannot be backfilled by the scheduler).

| step | reads | writes |
| --- | --- | --- |
| `prepare_training` | `core.interactions` (gated dates), `core.products` | `dataset.npz`, new `ml.training_runs` row |
| `train_<model>` | the dataset | `ml.tuning_trials`, `valid/`, `holdout/`, `served/` fits, `ml.model_metrics` |
| `fuse_models` | the base models | `evaluated/`, `fused/` (served), `ml.model_metrics`, `ml.fusion_weights` |
| `gate_champion` | metrics, current champion | `ml.model_registry` (champion / rejected + reason) |
| `emit_champion` | — | Asset `ml.champion` (extra: `business_date`, `model_version`, ...) for `omnifuse_publish` |

The time split cannot cheat: models are tuned and fused on a validation slice, evaluated on the holdout after
it (both sized to reach `OMNIFUSE_EVAL_CUSTOMERS` customers with purchases), then **refitted on the whole
window up to the business date** before they are served. Fusion is served only if it beats the best single
model beyond the noise. A challenger replaces the champion only if it beats it and popularity by
`OMNIFUSE_GATE_MARGIN` beyond the noise (bootstrap over customers); otherwise the run **succeeds**, keeps the
champion and `ml.model_registry.reason` says why. **Every shop gets a champion**: when there is none yet and the
run is not promoted, its best single model with the business rules (popularity when nothing beats it) is
registered as the baseline champion (`<run_id>_baseline`), with a reason saying so. Re-running a date writes a
new version (`…_v2`); a run of an older date never replaces a newer champion unless triggered with
`{"business_date": "…", "force": true}`.
`omnifuse model rollback` restores the previous champion.

**When a task fails**: `BlockedDateError` means the date did not pass its quality gates — fix and re-run
`omnifuse_ingest` for it first. `ArtifactError` names a missing, corrupt or rewritten model-store file (each
version's manifests are checksummed in `ml.model_registry.artifact_checksums`). A training task that fails can
be cleared on its own; it rewrites only its run's artifacts and metrics — until the run is gated: a task of a
registered run refuses to write (`RegisteredRunError`); clear the whole run from `prepare_training` to train a
new version, and the champion changes only through the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import dag, get_current_context, task
from omnifuse.airflow_glue import (
    CORE_INTERACTIONS,
    ML_CHAMPION,
    announce,
    asset_run_business_date,
    champion_event_extra,
    dag_defaults,
)

if TYPE_CHECKING:  # the XCom types; importing omnifuse.training_run at parse time would load numpy and more
    from omnifuse.registry import GateDecision
    from omnifuse.training_run import FusionSummary, PreparedRun, TrainedModel

MODELS = ("popularity", "popularity_channel", "item_knn", "pure_svd", "ease", "assoc_rules", "two_tower")


def _train(name: str) -> Callable[..., Any]:
    @task(task_id=f"train_{name}", doc_md=f"Tunes `{name}` on the validation slice (its first "
          "`OMNIFUSE_TUNING_TRIALS` settings: a count, never seconds), fits it before the holdout (evaluated) and up "
          "to the business date (served); writes its holdout metrics with bootstrap intervals and its tuning trials.")
    def train(run: PreparedRun) -> TrainedModel:
        from omnifuse.training_run import train_model

        return train_model(run["run_id"], name)

    return train


@dag(
    dag_id="omnifuse_retrain",
    schedule=[CORE_INTERACTIONS],
    tags=["omnifuse", "ml"],
    doc_md=__doc__,
    **dag_defaults(owner="ml-platform"),
)
def omnifuse_retrain() -> None:
    @task(doc_md="Checks the date's quality gates, loads the training window from `core.interactions` into the "
          "model store and records the run. Fails with `BlockedDateError` on a date that did not pass its gates.")
    def prepare_training() -> PreparedRun:
        from omnifuse.training_run import prepare_training as prepare

        return prepare(asset_run_business_date())

    @task(doc_md="Learns the fusion variants (equal, RRF, learned linear, stacked, and the re-ranker trained on "
          "time folds of its own history) on the validation slice, scores "
          "every variant, the fusion and each model with business rules on the holdout, and saves what is served: "
          "the fusion if it beats the best single model beyond the noise, else that model, refitted up to the date.")
    def fuse_models(run: PreparedRun, trained: list[TrainedModel]) -> FusionSummary:
        from omnifuse.training_run import fuse_models as fuse

        return fuse(run["run_id"])

    @task(doc_md="Registers the fused model and promotes it only if it beats the champion and popularity by the "
          "configured margin; otherwise keeps the champion and records why (with no champion yet, registers the "
          "best single model with the rules as the baseline champion). Succeeds either way.")
    def gate_champion(run: PreparedRun, fused: FusionSummary) -> GateDecision:
        from omnifuse.training_run import gate_champion as gate

        conf = get_current_context()["dag_run"].conf or {}
        return gate(run["run_id"], force=bool(conf["force"]) if "force" in conf else None)

    @task(outlets=[ML_CHAMPION], doc_md="Announces the champion for the date (Asset `ml.champion`, extra: "
          "`business_date`, `model_version`, `promoted`, `run_id`); "
          "`omnifuse_publish` is scheduled on it.")
    def emit_champion(decision: GateDecision) -> GateDecision:
        announce(ML_CHAMPION, champion_event_extra(decision))
        return decision

    run = prepare_training()
    trained = [_train(name)(run) for name in MODELS]
    emit_champion(gate_champion(run, fuse_models(run, trained)))


retrain_dag = omnifuse_retrain()
