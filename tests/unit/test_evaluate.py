"""Ranking metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from omnifuse.evaluate import coverage, ranking_metrics


def _rel(rows: list[list[int]], n_items: int = 10) -> sp.csr_matrix:
    m = np.zeros((len(rows), n_items))
    for r, items in enumerate(rows):
        m[r, items] = 1
    return sp.csr_matrix(m)


def test_single_user_hand_computed():
    # relevant {1, 4, 7}; recommended [1, 2, 4] -> hits at ranks 1 and 3
    m = ranking_metrics(np.array([[1, 2, 4]]), _rel([[1, 4, 7]]), 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["hitrate"] == 1.0
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx(dcg / idcg)
    assert m["map"] == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_mean_over_users_padding_and_cutoff():
    recs = np.array([[0, 1, 2], [5, -1, -1]])
    rel = _rel([[2], [0, 5]])
    m = ranking_metrics(recs, rel, 2)  # user 0: item 2 is at rank 3 -> outside k=2
    assert m["hitrate"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx((0 + 1 / 2) / 2)
    # user 1: hit at rank 1, ideal has 2 relevant within k=2; padding -1 never hits (item 0 is relevant!)
    assert m["ndcg"] == pytest.approx((0 + 1 / (1 + 1 / math.log2(3))) / 2)
    assert m["map"] == pytest.approx((0 + (1 / 1) / 2) / 2)


def test_coverage_counts_distinct_items_in_top_k():
    assert coverage(np.array([[0, 1, 9], [1, 2, 8]]), 10, 2) == pytest.approx(3 / 10)
