"""Matrix factorisation for implicit feedback: PureSVD (Cremonesi et al. 2010) with scikit-learn.

The customer × product matrix of log-scaled, recency-decayed event weights is factorised with a truncated
(randomised) SVD; a customer's scores are their row projected onto the item factors and back (x V Vᵀ),
so customers need no factors of their own and new history is used at scoring time.
"""

from __future__ import annotations

import numpy as np

from omnifuse.dataset import Dataset
from omnifuse.models.base import Recommender, log_weights


class PureSVD(Recommender):
    name = "pure_svd"

    def __init__(self, seed: int = 7, factors: int = 64, half_life_days: float = 30.0):
        super().__init__(seed, factors=factors, half_life_days=half_life_days)

    def fit(self, data: Dataset) -> PureSVD:
        from sklearn.decomposition import TruncatedSVD

        x = log_weights(data, self.params["half_life_days"])
        k = max(1, min(self.params["factors"], min(x.shape) - 1))
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=self.seed)
        svd.fit(x)
        self.state = {"item_factors": svd.components_.T.astype(np.float32)}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        x = log_weights(data, self.params["half_life_days"], users)
        v = self.state["item_factors"]
        return np.asarray((x @ v) @ v.T, dtype=np.float32)
