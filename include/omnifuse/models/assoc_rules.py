"""Association rules on baskets (web sessions, app sessions, store receipts): support, confidence, lift.

A rule a → b holds when a and b share baskets: support = baskets(a, b) / baskets, confidence =
baskets(a, b) / baskets(a), lift = confidence / (baskets(b) / baskets). Rules below ``min_support_count``
co-occurrences or with lift ≤ 1 are dropped. A customer's score for b sums confidence × log(lift) over the
products a they interacted with recently. The rules table is also the source of "bought together".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from omnifuse.dataset import Dataset
from omnifuse.models.base import Recommender


class AssociationRules(Recommender):
    name = "assoc_rules"

    def __init__(self, seed: int = 7, min_support_count: int = 2, recent_days: int = 30):
        super().__init__(seed, min_support_count=min_support_count, recent_days=recent_days)

    def fit(self, data: Dataset) -> AssociationRules:
        pairs = pd.DataFrame({"basket": data.basket, "item": data.item}).drop_duplicates()
        n_baskets = max(int(pairs["basket"].nunique()), 1)
        basket_codes = pd.factorize(pairs["basket"])[0]
        m = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (basket_codes, pairs["item"].to_numpy())),
                          shape=(basket_codes.max() + 1 if len(pairs) else 0, data.n_items))
        co = (m.T @ m).tocoo()
        count = np.asarray(m.sum(axis=0)).ravel()
        keep = (co.row != co.col) & (co.data >= self.params["min_support_count"])
        a, b, n_ab = co.row[keep], co.col[keep], co.data[keep]
        confidence = n_ab / count[a]
        lift = confidence / (count[b] / n_baskets)
        good = lift > 1.0
        self.state = {"a": a[good].astype(np.int32), "b": b[good].astype(np.int32),
                      "support": (n_ab[good] / n_baskets).astype(np.float32),
                      "confidence": confidence[good].astype(np.float32), "lift": lift[good].astype(np.float32),
                      "n_items": np.array([data.n_items])}
        return self

    def rules(self, data: Dataset) -> pd.DataFrame:
        """The rules as a table: product_a, product_b, support, confidence, lift."""
        s = self.state
        return pd.DataFrame({"product_a": data.products[s["a"]], "product_b": data.products[s["b"]],
                             "support": s["support"], "confidence": s["confidence"], "lift": s["lift"]})

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        s, n = self.state, int(self.state["n_items"][0])
        weight = sp.csr_matrix((s["confidence"] * np.log(s["lift"]), (s["a"], s["b"])), shape=(n, n))
        recent = data.day >= (data.day.max() - self.params["recent_days"] if len(data.day) else 0)
        seen = sp.csr_matrix((np.ones(int(recent.sum()), dtype=np.float32), (data.user[recent], data.item[recent])),
                             shape=(data.n_users, data.n_items))
        seen.data[:] = 1.0
        seen.sum_duplicates()
        seen.data = np.minimum(seen.data, 1.0)
        return np.asarray((seen[users] @ weight).todense(), dtype=np.float32)
