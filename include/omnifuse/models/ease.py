"""EASE (Steck 2019): a closed-form item-item linear model, B = I − P / diag(P) with P = (XᵀX + λI)⁻¹.

Public benchmarks (RecBole on ML-1M, Amazon-Books) find it the strongest single CPU model. Its cost is an
items × items inverse, so beyond ``max_items`` products it is fitted on the ``max_items`` most popular
products only (the long tail then scores 0 here and is left to the other models): a documented fallback
that keeps the inverse at ≈ max_items³/3 flops and max_items² × 4 bytes.

Input: each (customer, product) cell is log(1 + decayed sum of event weights), divided by the mean of the
training matrix's non-zero cells, so a typical interaction counts about 1 whatever the event weights are: λ
then means what it means on a binary matrix (the published EASE results, and a plain EASE of the same data),
and one grid serves a clickstream world and a till-only shop alike. On the real-data benchmark the unscaled
input made the default λ = 200 act like λ ≈ 40 (NDCG@20 0.155 against 0.162 scaled, ``bench/real_data.py``).
"""

from __future__ import annotations

import numpy as np

from omnifuse.features import Dataset
from omnifuse.models.base import Recommender


class EASE(Recommender):
    name = "ease"

    def __init__(self, seed: int = 7, l2: float = 250.0, max_items: int = 6000, half_life_days: float = 30.0):
        super().__init__(seed, l2=l2, max_items=max_items, half_life_days=half_life_days)

    def fit(self, data: Dataset) -> EASE:
        x = data.matrix(self.params["half_life_days"]).astype(np.float32)
        x.data = np.log1p(x.data)
        unit = float(x.data.mean()) if x.nnz else 1.0
        x.data /= unit
        pop = np.asarray((x > 0).sum(axis=0)).ravel()
        keep = np.sort(np.argsort(-pop, kind="stable")[: self.params["max_items"]])
        xs = x[:, keep]
        g = (xs.T @ xs).toarray().astype(np.float64)
        g[np.diag_indices_from(g)] += self.params["l2"]
        p = np.linalg.inv(g)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0.0
        self.state = {"items": keep.astype(np.int64), "b": b.astype(np.float32), "unit": np.array([unit])}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        x = data.matrix(self.params["half_life_days"])[users].astype(np.float32)
        x.data = np.log1p(x.data) / float(self.state["unit"][0]) if "unit" in self.state else np.log1p(x.data)
        items = self.state["items"]
        out = np.zeros((len(users), data.n_items), dtype=np.float32)
        out[:, items] = np.asarray(x[:, items] @ self.state["b"])
        return out
