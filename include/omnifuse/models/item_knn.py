"""Item-item kNN: cosine similarity of products' co-occurrence across customers (event-type weighted).

A customer's score for a product is the similarity-weighted sum of their own (decayed) interactions; each
product keeps only its ``neighbours`` most similar products (sparse, scipy).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from omnifuse.dataset import Dataset
from omnifuse.models.base import Recommender, log_weights


class ItemKNN(Recommender):
    name = "item_knn"

    def __init__(self, seed: int = 7, neighbours: int = 100, half_life_days: float = 14.0, shrink: float = 10.0):
        super().__init__(seed, neighbours=neighbours, half_life_days=half_life_days, shrink=shrink)

    def fit(self, data: Dataset) -> ItemKNN:
        x = log_weights(data, self.params["half_life_days"])
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        rows, cols = co.nonzero()
        co.data = co.data / (norms[rows] * norms[cols] + self.params["shrink"])
        self.state = {"sim": _keep_top(co, self.params["neighbours"])}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        x = log_weights(data, self.params["half_life_days"], users)
        return np.asarray((x @ self.state["sim"]).todense(), dtype=np.float32)


def _keep_top(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries of each row."""
    m = m.tocsr()
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        start, end = m.indptr[r], m.indptr[r + 1]
        if end == start:
            continue
        d, c = m.data[start:end], m.indices[start:end]
        if len(d) > n:
            keep = np.argpartition(-d, n - 1)[:n]
            d, c = d[keep], c[keep]
        rows.append(np.full(len(d), r))
        cols.append(c)
        vals.append(d)
    if not rows:
        return sp.csr_matrix(m.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                         shape=m.shape)
