"""Cost rules of the base models: the two-tower's work stops growing with the data; EASE's in-place inverse."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from omnifuse.models.ease import EASE, _gram, _spd_inverse
from omnifuse.models.two_tower import TwoTower, train_batch, train_steps

sys.path.insert(0, str(Path(__file__).parent))
from test_models import planted_world  # noqa: E402


def test_two_tower_batch_and_steps_follow_the_data_up_to_their_caps_then_stay_there():
    assert train_batch(100_000, 1024, 4, 1200, 2048) == 1024  # a small world: as before
    assert train_steps(100_000, 1024, 4, 1200) == 4 * 97
    sizes = (400_000, 1_000_000, 2_400_000, 50_000_000)
    batches = [train_batch(n, 1024, 4, 1200, 2048) for n in sizes]
    assert batches == [2048] * 4  # the batch doubles once, then stops growing with the data
    assert [train_steps(n, b, 4, 1200) for n, b in zip(sizes, batches, strict=True)] == [780, 1200, 1200, 1200]
    assert train_batch(50_000_000, 2048, 4, 1200, 1024) == 2048  # never below the configured batch
    assert train_steps(10, 1024, 4, 1200) == 4  # fewer pairs than a batch: one (short) batch per epoch


def test_two_tower_fit_runs_the_budgeted_steps_and_is_deterministic_for_a_seed():
    data = planted_world()
    n_pairs = min(1_000_000, 2 * len(data.user))
    a = TwoTower(seed=5, batch_size=64, max_steps=7).fit(data)
    assert a.steps_run == 7 == train_steps(n_pairs, 64, 4, 7)
    b = TwoTower(seed=5, batch_size=64, max_steps=7).fit(data)
    np.testing.assert_array_equal(a.state["user_emb"], b.state["user_emb"])
    np.testing.assert_array_equal(a.state["item_emb"], b.state["item_emb"])


def test_ease_inverse_in_place_matches_numpy():
    x = sp.random(500, 60, density=0.05, random_state=3, format="csr", dtype=np.float32)
    g = _gram(x, block=64)
    np.testing.assert_allclose(g, (x.T @ x).toarray(), rtol=1e-5, atol=1e-6)
    g[np.diag_indices_from(g)] += 10.0
    expected = np.linalg.inv(g)
    p = _spd_inverse(g)
    np.testing.assert_allclose(p, expected, rtol=1e-9, atol=1e-12)
    assert p.flags.c_contiguous


def test_ease_keeps_the_closed_form():
    """B = I - P / diag(P) with a zero diagonal, P = (XᵀX + λI)⁻¹ on the scaled input, as before."""
    data = planted_world()
    model = EASE(l2=50.0).fit(data)
    x = data.matrix(30.0).astype(np.float64)
    x.data = np.log1p(x.data)
    x.data /= x.data.mean()
    g = (x.T @ x).toarray() + 50.0 * np.eye(data.n_items)
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.state["b"], b, rtol=1e-4, atol=1e-6)


def test_recommend_scores_users_in_batches_with_the_same_result():
    data = planted_world()
    model = EASE(seed=3).fit(data)
    users = np.arange(data.n_users)
    exclude = data.bought().tocsr()
    whole, whole_scores = model.recommend(data, users, 5, exclude, batch=len(users))
    parts, part_scores = model.recommend(data, users, 5, exclude, batch=7)
    assert np.array_equal(whole, parts) and np.allclose(whole_scores, part_scores)
