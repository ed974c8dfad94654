"""Offline evaluation on a time split: Recall@K, NDCG@K, MAP@K, HitRate@K and catalog coverage.

The split cannot cheat: models are fitted on days before T; they are scored on the days from T, only for
customers seen before T; products the customer bought before T are excluded from both the
recommendations and the relevant set unless the product is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import scipy.sparse as sp

from omnifuse.features import Dataset

KS = (10, 20)
METRICS = ("recall", "ndcg", "map", "hitrate", "coverage")


@dataclass
class Split:
    """Who is evaluated (``users``: customer indexes), on what (``relevant``: users × products, binary), and
    what may not be recommended to them (``exclude``: all customers × products)."""

    users: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix
    train: Dataset
    end_day: int  # last day (days since epoch) of the relevant events


def make_split(data: Dataset, start: date, end: date) -> Split:
    """Train on events before ``start``; evaluate customers seen before it on their events in [start, end]."""
    train = data.before(start)
    test = data.between(start, end)
    exclude = train.bought().multiply(~data.repeatable[None, :]).tocsr()
    exclude.eliminate_zeros()
    seen = np.zeros(data.n_users, dtype=bool)
    seen[train.user] = True
    rel = sp.csr_matrix((np.ones(len(test.user), dtype=np.float32), (test.user, test.item)),
                        shape=(data.n_users, data.n_items))
    rel.data[:] = 1.0
    rel = rel - rel.multiply(exclude)
    rel.eliminate_zeros()
    has = np.asarray(rel.sum(axis=1)).ravel() > 0
    users = np.flatnonzero(seen & has)
    return Split(users=users, relevant=rel[users].tocsr(), exclude=exclude, train=train,
                 end_day=(end - date(1970, 1, 1)).days)


def ranking_metrics(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """Mean Recall@k, NDCG@k, MAP@k, HitRate@k over rows; ``recs`` are product indexes, best first
    (-1 pads a row with fewer than k recommendations and never counts as a hit).

    recall = hits / |relevant|; ndcg = DCG / ideal DCG (binary gains, log2 discounts); map = mean over rows of
    (1 / min(|relevant|, k)) Σ precision@i at each hit i ≤ k; hitrate = share of rows with a hit.
    """
    recs = recs[:, :k]
    n = recs.shape[0]
    if n == 0:
        return {"recall": 0.0, "ndcg": 0.0, "map": 0.0, "hitrate": 0.0}
    safe = np.maximum(recs, 0)
    hits = (np.asarray(relevant[np.arange(n)[:, None], safe].todense()) > 0) & (recs >= 0)
    n_rel = np.asarray(relevant.sum(axis=1)).ravel()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: recs.shape[1]]).sum(axis=1)
    ideal = np.array([discounts[: int(min(r, k))].sum() for r in n_rel])
    cum_hits = np.cumsum(hits, axis=1)
    precision_at = cum_hits / np.arange(1, recs.shape[1] + 1)
    ap = (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1)
    return {
        "recall": float(np.mean(hits.sum(axis=1) / np.maximum(n_rel, 1))),
        "ndcg": float(np.mean(np.where(ideal > 0, dcg / np.maximum(ideal, 1e-12), 0.0))),
        "map": float(np.mean(ap)),
        "hitrate": float(np.mean(hits.any(axis=1))),
    }


def coverage(recs: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in anyone's top-k."""
    top = recs[:, :k]
    return float(len(np.unique(top[top >= 0])) / max(n_items, 1))


def evaluate(recs: np.ndarray, split: Split, n_items: int) -> list[tuple[str, int, float]]:
    """(metric, k, value) for every metric in METRICS and k in KS."""
    out = []
    for k in KS:
        for name, value in ranking_metrics(recs, split.relevant, k).items():
            out.append((name, k, value))
        out.append(("coverage", k, coverage(recs, n_items, k)))
    return out
