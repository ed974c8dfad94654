"""The re-ranker (fusion variant ``rerank``) on a tiny purchase world whose answer is known."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from omnifuse import reranker
from omnifuse.config import RerankConfig
from omnifuse.evaluate import make_split
from omnifuse.fusion import FusedModel, Rules
from omnifuse.models import model_class
from worlds import DAYS, EPOCH, START, purchase_world

CONFIG = RerankConfig(candidates=15, max_items=50, fold_customers=100)


def test_training_folds_lie_inside_the_history_they_are_given():
    data = purchase_world()
    history = data.before(EPOCH + timedelta(days=START + 45))
    folds = reranker._folds(history)
    end = int(history.day.max())
    assert len(folds) == 3
    for cut, days in folds:
        assert int(history.day.min()) < cut < end and 1 <= days and cut + days <= end


def test_candidates_are_eases_top_allowed_products_with_every_feature():
    data = purchase_world()
    users = np.arange(data.n_users)
    exclude = data.bought().tocsr()
    sc = reranker.fit_scorers(data, CONFIG)
    cands = reranker.candidates(data, users, exclude, CONFIG, ["popularity", "ease"], sc)
    again = reranker.candidates(data, users, exclude, CONFIG, ["popularity", "ease"])
    np.testing.assert_array_equal(cands.item, again.item)
    np.testing.assert_allclose(cands.z, again.z)
    assert cands.z.shape == (len(cands.row), len(reranker.FEATURES)) and np.isfinite(cands.z).all()
    assert np.bincount(cands.row).max() <= CONFIG.candidates
    assert not np.asarray(exclude[users[cands.row], cands.item]).ravel().any()
    assert cands.in_top[:, 1].all() and not cands.in_top[:, 0].any()  # proposed by EASE
    text = cands.z[:, reranker.FEATURES.index("text_rank")]
    assert text.std() > 0  # the product names are a scorer
    # EASE's first candidate for a customer is of their own taste or the shared noise, never the other taste
    first = cands.item[cands.z[:, reranker.FEATURES.index("ease_rank")] == 0]
    other = np.where(users[cands.row[cands.z[:, reranker.FEATURES.index("ease_rank")] == 0]] < 60, 15, 0)
    assert not ((first >= other) & (first < other + 15)).any()


def test_reranker_learns_on_folds_and_ranks_the_planted_taste_through_a_saved_fused_model(tmp_path):
    data = purchase_world()
    split = make_split(data, EPOCH + timedelta(days=START + 45), EPOCH + timedelta(days=START + DAYS - 1))
    learner = reranker.fit(split.train, seed=3, config=CONFIG)
    assert learner is not None and learner.coef.shape == (len(reranker.FEATURES),)
    again_learnt = reranker.fit(split.train, seed=3, config=CONFIG)
    assert again_learnt is not None and again_learnt.coef.tolist() == learner.coef.tolist()  # seeded
    assert len(learner.trees) == reranker.TREE_SEEDS and again_learnt.trees == learner.trees
    trees = learner.tree_part(np.zeros((3, len(reranker.FEATURES))))
    assert np.isfinite(trees).all() and learner.linear_weight == 1 - reranker.TREE_WEIGHT
    models = {"popularity": model_class("popularity")(seed=3).fit(split.train)}
    fused = FusedModel(models, "rerank", learner, rules=Rules(max_per_category=10), rerank=CONFIG)
    recs, scores, proposed = fused.rank(split.train, split.users, split.exclude, 5)
    taste = np.where(split.users < 60, 0, 15)
    share = np.mean((recs >= taste[:, None]) & (recs < taste[:, None] + 15))
    assert share > 0.8, share
    for row, u in enumerate(split.users):
        assert not set(recs[row]) & set(split.exclude[u].indices)
    fused.save(tmp_path / "fused")
    loaded = FusedModel.load(tmp_path / "fused")
    assert loaded.variant == "rerank" and loaded.rerank == CONFIG
    again, again_scores, _ = loaded.rank(split.train, split.users, split.exclude, 5)
    np.testing.assert_array_equal(again, recs)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-5)


def test_too_little_history_to_learn_from_gives_no_reranker():
    data = purchase_world()
    assert reranker.fit(data.between(EPOCH + timedelta(days=START), EPOCH + timedelta(days=START + 1)),
                        seed=0, config=CONFIG) is None


def test_contributions_per_scorer_add_up_to_the_reranked_score():
    from omnifuse.recommendations import model_contributions

    data = purchase_world()
    split = make_split(data, EPOCH + timedelta(days=START + 45), EPOCH + timedelta(days=START + DAYS - 1))
    learner = reranker.fit(split.train, seed=3, config=CONFIG)
    assert learner is not None
    models = {"ease": model_class("ease")(seed=3).fit(split.train)}
    fused = FusedModel(models, "rerank", learner, rules=Rules(max_per_category=10), rerank=CONFIG)
    recs, _, proposed = fused.rank(split.train, split.users, split.exclude, 5, rules=False)
    assert proposed[recs >= 0].all()  # EASE proposed every candidate
    names, weights, normalised = model_contributions(fused, split.train, split.users, recs, split.exclude)
    assert names == list(reranker.GROUPS) and (weights == 1).all()
    cands = reranker.candidates(split.train, split.users, split.exclude, CONFIG, ["ease"])
    pairs = zip(cands.row.tolist(), cands.item.tolist(), strict=True)
    score = dict(zip(pairs, learner.decision_function(cands.z).tolist(), strict=True))
    for row in range(len(split.users)):
        for pos, item in enumerate(recs[row]):
            if item >= 0:
                total = normalised[row, pos].sum() + learner.linear_weight * learner.intercept
                assert abs(total - score[(row, int(item))]) < 1e-6


def test_max_items_bounds_the_scorers_to_the_most_bought_products():
    data = purchase_world()
    small = RerankConfig(candidates=15, max_items=12, fold_customers=100)
    sc = reranker.fit_scorers(data, small)
    buyers = np.asarray(data.bought().sum(axis=0)).ravel()
    assert len(sc.universe) == 12 and sc.ease[0].shape == (12, 12)
    assert buyers[sc.universe].min() >= np.sort(buyers)[::-1][11]
    cands = reranker.candidates(data, np.arange(data.n_users), data.bought().tocsr(), small, ["ease"], sc)
    assert set(cands.item.tolist()) <= set(sc.universe.tolist())
