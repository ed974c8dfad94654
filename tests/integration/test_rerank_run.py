"""The re-ranker inside a real training run (warehouse rows, model store, fusion and serving choice).

The run's dataset is the 60-day purchase world of ``tests/worlds.py``, saved where ``prepare_training`` would
save it; the rest is the code the ``omnifuse_retrain`` DAG runs.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from omnifuse import fusion, reranker, training_run, warehouse
from omnifuse.config import load_settings
from omnifuse.dataset import Dataset
from omnifuse.evaluate import per_customer
from omnifuse.fusion import FusedModel
from omnifuse.training_run import Plan, fuse_models, train_model
from worlds import DAYS, EPOCH, START, purchase_world

pytestmark = pytest.mark.integration
MODELS = ("ease", "popularity")


def _record_run(url: str, folder, data: Dataset) -> Plan:
    business = EPOCH + timedelta(days=START + DAYS - 1)
    split, valid = business - timedelta(days=9), business - timedelta(days=19)
    plan = Plan("retrain_rerank_world", business, split, valid, EPOCH + timedelta(days=START), folder)
    data.save(folder / "dataset.npz")
    with warehouse.transaction(url) as cur:
        cur.execute(
            "insert into ml.training_runs (run_id, business_date, split_date, valid_date, train_start, customers, "
            "products, train_events, eval_customers, seed, artifact_dir, version, holdout_days, valid_days, "
            "holdout_customers, valid_customers) values (%s, %s, %s, %s, %s, %s, %s, 0, 0, 0, %s, 1, 10, 10, 0, 0)",
            (plan.run_id, business, split, valid, plan.train_start, data.n_users, data.n_items, str(folder)))
    return plan


def _trained_run(url: str, folder) -> tuple[Dataset, Plan]:
    """The purchase world recorded as a run, its base models trained (the ``train_*`` tasks)."""
    data = purchase_world()
    plan = _record_run(url, folder, data)
    for name in MODELS:
        train_model(plan.run_id, name, url=url)
    return data, plan


def test_a_run_scores_the_reranker_trained_on_folds_before_each_slice(clean_warehouse, tmp_path):
    url = clean_warehouse
    data, plan = _trained_run(url, tmp_path / "run")
    summary = fuse_models(plan.run_id, url=url, models=MODELS)
    assert "rerank" in summary["validation_ndcg10"] and "fusion_rerank" in summary["holdout_ndcg10"]
    settings = load_settings()
    _, holdout = plan.splits(data, settings)
    # the holdout's re-ranker learnt only from the days before the holdout: learning it again gives its metric
    learner = reranker.fit(holdout.train, settings.seed, settings.recommend_repeats)
    assert learner is not None
    fused = FusedModel(FusedModel.load(plan.artifact_dir / "evaluated").models, "rerank", learner)
    recs, _, _ = fused.rank(holdout.train, holdout.users, holdout.exclude, 10, rules=False)
    with warehouse.transaction(url) as cur:
        cur.execute("select value from ml.model_metrics where run_id = %s and model_name = 'fusion_rerank' "
                    "and metric = 'ndcg' and k = 10 and slice = 'holdout'", (plan.run_id,))
        stored = cur.fetchone()[0]
    assert stored == pytest.approx(per_customer(recs, holdout.relevant, 10)["ndcg"].mean(), abs=1e-9)


def test_serving_a_reranker_weighs_its_validation_and_its_holdout_customers(clean_warehouse, tmp_path,
                                                                            monkeypatch):
    url = clean_warehouse
    data, plan = _trained_run(url, tmp_path / "run")
    monkeypatch.setattr(fusion, "choose_variant", lambda per_cust, seed: ("rerank", "chosen by the test"))
    seen = {}

    def spy(fused, singles, variant, seed, evidence="holdout"):
        seen.update(fused=fused, singles=singles, evidence=evidence)
        return fusion.choose_served(fused, singles, variant, seed, evidence)

    monkeypatch.setattr(training_run, "choose_served", spy)
    summary = fuse_models(plan.run_id, url=url, models=MODELS)
    settings = load_settings()
    valid, holdout = plan.splits(data, settings)
    assert seen["evidence"] == "validation and holdout"
    assert len(seen["fused"]) == len(valid.users) + len(holdout.users) == len(seen["singles"]["ease"])
    # the validation half: the re-ranker learnt on folds before the validation slice, with the rules
    learner = reranker.fit(valid.train, settings.seed, settings.recommend_repeats)
    assert learner is not None
    models = training_run._load_models(plan.artifact_dir / "valid", MODELS)
    recs, _, _ = FusedModel(models, "rerank", learner).rank(valid.train, valid.users, valid.exclude, 10)
    np.testing.assert_allclose(seen["fused"][:len(valid.users)], per_customer(recs, valid.relevant, 10)["ndcg"])
    assert f"on {len(seen['fused']):,} validation and holdout customers" in summary["reason"]


def test_a_served_reranker_is_relearnt_on_folds_of_the_whole_window(clean_warehouse, tmp_path, monkeypatch):
    url = clean_warehouse
    data, plan = _trained_run(url, tmp_path / "run")
    # whatever this small world's validation and holdout say, take the re-ranker and serve it
    monkeypatch.setattr(fusion, "choose_variant", lambda per_cust, seed: ("rerank", "chosen by the test"))
    monkeypatch.setattr(training_run, "choose_served",
                        lambda fused, singles, variant, seed, evidence: (f"fusion_{variant}", "served by the test"))
    summary = fuse_models(plan.run_id, url=url, models=MODELS)
    assert summary["served_model"] == "fusion_rerank"
    settings = load_settings()
    _, holdout = plan.splits(data, settings)
    evaluated = FusedModel.load(plan.artifact_dir / "evaluated")
    served = FusedModel.load(plan.artifact_dir / "fused")
    assert evaluated.variant == served.variant == "rerank"
    before_holdout = reranker.fit(holdout.train, settings.seed, settings.recommend_repeats)
    whole_window = reranker.fit(data, settings.seed, settings.recommend_repeats)
    assert before_holdout is not None and whole_window is not None
    np.testing.assert_allclose(evaluated.learner.coef, before_holdout.coef)
    np.testing.assert_allclose(served.learner.coef, whole_window.coef)
    assert not np.allclose(served.learner.coef, evaluated.learner.coef)
    with warehouse.transaction(url) as cur:
        cur.execute("select feature, weight from ml.fusion_weights where run_id = %s and variant = 'rerank'",
                    (plan.run_id,))
        weights = dict(cur.fetchall())
    assert weights == pytest.approx(reranker.weights(whole_window))
    assert served.learner.trees == whole_window.trees != evaluated.learner.trees  # the trees are stored too
    gains = [weights[f"trees:{f}"] for f in reranker.FEATURES]
    assert sum(gains) == pytest.approx(1.0) and min(gains) >= 0
