"""The recommender contract, run against every model on a tiny world whose answer is known."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from omnifuse.dataset import Dataset
from omnifuse.evaluate import make_split
from omnifuse.fusion import LeakageError, fit_learners
from omnifuse.models import BASE_MODELS, model_class

START = (date(2026, 11, 1) - date(1970, 1, 1)).days
NOISE_P = np.linspace(2, 1, 20) / np.linspace(2, 1, 20).sum()
PERSONALISED = [m for m in BASE_MODELS if not m.startswith("popularity")]


def planted_world(seed: int = 0) -> Dataset:
    """Two tastes: customers 0-59 like products 0-9, customers 60-119 like 10-19; 20-39 are globally popular
    noise. Each customer views 4 of their taste's products, buys one, and views 2 noise products per day."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 120, 40
    users, items, days, weights, baskets = [], [], [], [], []
    for u in range(n_users):
        taste = np.arange(10) if u < 60 else np.arange(10, 20)
        for d in range(6):
            liked = rng.choice(taste, 4, replace=False)
            noise = rng.choice(np.arange(20, 40), 2, replace=False, p=NOISE_P)
            for i in [*liked, *noise]:
                users.append(u)
                items.append(i)
                days.append(START + d)
                weights.append(1.0)
                baskets.append(u * 10 + d)
            users.append(u)
            items.append(liked[0])
            days.append(START + d)
            weights.append(8.0)
            baskets.append(u * 10 + d)
    return Dataset(
        customers=np.array([f"C{u:03d}" for u in range(n_users)], dtype=object),
        products=np.array([f"P{i:03d}" for i in range(n_items)], dtype=object),
        category=(np.arange(n_items) // 10).astype(np.int32), brand=(np.arange(n_items) % 7).astype(np.int32),
        price_band=(np.arange(n_items) % 3).astype(np.int32), price=np.full(n_items, 20.0),
        in_stock=np.ones(n_items, bool), repeatable=np.ones(n_items, bool), in_store=np.ones(n_items, bool),
        user=np.array(users, np.int32), item=np.array(items, np.int32), weight=np.array(weights, np.float32),
        day=np.array(days, np.int64), channel=(np.array(users) % 4).astype(np.int8),
        purchase=np.array(weights) > 1, basket=np.array(baskets, np.int64),
    )


def _taste_share(model, data: Dataset) -> float:
    users = np.arange(data.n_users)
    recs, _ = model.recommend(data, users, 5)
    taste_lo = np.where(users < 60, 0, 10)
    return float(np.mean((recs >= taste_lo[:, None]) & (recs < taste_lo[:, None] + 10)))


@pytest.mark.parametrize("name", sorted(BASE_MODELS))
def test_model_contract_fit_score_recommend_save_load(name, tmp_path):
    data = planted_world()
    model = model_class(name)(seed=3).fit(data)
    users = np.array([0, 5, 70])
    scores = model.score(data, users)
    assert scores.shape == (3, data.n_items) and np.isfinite(scores).all()
    exclude = data.bought().tocsr()
    recs, vals = model.recommend(data, users, 5, exclude=exclude)
    assert recs.shape == (3, 5) and (np.diff(vals, axis=1) <= 1e-6).all()
    for row, u in enumerate(users):
        assert not set(recs[row]) & set(exclude[u].indices)
    model.save(tmp_path / name)
    again = model_class(name).load(tmp_path / name)
    np.testing.assert_allclose(again.score(data, users), scores, rtol=1e-5)


@pytest.mark.parametrize("name", PERSONALISED)
def test_personalised_model_recovers_the_planted_taste(name):
    data = planted_world()
    share = _taste_share(model_class(name)(seed=3).fit(data), data)
    baseline = _taste_share(model_class("popularity")(seed=3).fit(data), data)
    assert share >= 0.8, f"{name}: only {share:.0%} of top-5 from the customer's taste"
    assert share > baseline + 0.3


def test_fusion_refuses_to_learn_from_the_holdout():
    data = planted_world()
    last = date(1970, 1, 1).fromordinal(date(1970, 1, 1).toordinal() + int(data.day.max()))
    leaky = make_split(data, last, last)  # validation labels on the holdout's first day
    models = {n: model_class(n)(seed=3).fit(leaky.train) for n in ("popularity", "item_knn")}
    with pytest.raises(LeakageError):
        fit_learners(models, data, leaky, holdout_start_day=int(data.day.max()), n_candidates=10, seed=3)
    # the same slice is fine when the holdout starts the day after
    learnt = fit_learners(models, data, leaky, holdout_start_day=int(data.day.max()) + 1, n_candidates=10, seed=3)
    assert set(learnt.ndcg) == {"equal", "rrf", "linear", "stacked"} and "linear" in learnt.learners
    assert learnt.choice in learnt.ndcg and learnt.reason
