"""Offline evaluation on a time split: Recall@K, NDCG@K, MAP@K, HitRate@K and catalog coverage, with noise.

The split cannot cheat: models are fitted on days before T; they are scored on the days from T, only for
customers seen before T. The label is a **purchase** in [T, end] that was not returned in the period (a
returned item is never a hit). Two protocols:

- ``new`` (the default, what the gate judges): products the customer bought before T are excluded from the
  recommendations and from the relevant set: all of them when the published lists hold new products only
  (``repeats=False``, ``OMNIFUSE_RECOMMEND_REPEATS=0``, the default), else those that are not repeatable (learnt
  from the training data's repeat rates, :meth:`Dataset.learned_repeatable`). What is tuned, fused and gated is
  thus what is published;
- ``repeat``: only re-purchases of products bought before T are relevant (reported, not gated).

Every metric carries a bootstrap confidence interval over customers (:func:`bootstrap_ci`); comparisons use
the paired bootstrap of per-customer differences (:func:`paired_lower_bound`). :func:`size_window` picks how
many days a holdout or validation slice needs to reach a number of labelled customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import scipy.sparse as sp

from omnifuse.dataset import Dataset

KS = (10, 20)
METRICS = ("recall", "ndcg", "map", "hitrate", "coverage")
#: bootstrap resamples of customers behind every interval; a fixed seed keeps intervals reproducible
BOOTSTRAP = 500
CONFIDENCE = 0.9


@dataclass
class Split:
    """Who is evaluated (``users``: customer indexes), on what (``relevant``: users × products, binary), and
    what may not be recommended to them (``exclude``: all customers × products)."""

    users: np.ndarray
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix
    train: Dataset
    end_day: int  # last day (days since epoch) of the relevant events


def labels(data: Dataset, start: date, end: date) -> sp.csr_matrix:
    """Customer × product, 1 where the customer purchased the product in [start, end] and did not return it
    in that period (returned purchases are already cancelled in ``data``; this also drops a pair whose
    return falls in the period)."""
    test = data.between(start, end)
    p = test.purchase
    rel = sp.csr_matrix((np.ones(int(p.sum()), dtype=np.float32), (test.user[p], test.item[p])),
                        shape=(data.n_users, data.n_items))
    rel.sum_duplicates()
    rel.data[:] = 1.0
    rel = (rel - rel.multiply(test.returned())).tocsr()
    rel.eliminate_zeros()
    return rel


def make_split(data: Dataset, start: date, end: date, protocol: str = "new", repeats: bool = False) -> Split:
    """Train on events before ``start``; evaluate customers seen before it on their purchases in [start, end].

    ``protocol``: ``new`` (already-bought products excluded: all of them, or with ``repeats`` only the
    non-repeatable ones) or ``repeat`` (only re-purchases).
    """
    train = data.before(start)
    bought = train.bought()
    if protocol == "new":
        exclude = train.not_recommendable(repeats)
    elif protocol == "repeat":
        exclude = train.returned().tocsr()
        exclude.data[:] = 1.0
        exclude.eliminate_zeros()
    else:
        raise ValueError(f"unknown evaluation protocol {protocol!r} (new, repeat)")
    seen = np.zeros(data.n_users, dtype=bool)
    seen[train.user] = True
    rel = labels(data, start, end)
    rel = rel - rel.multiply(exclude)
    if protocol == "repeat":
        rel = rel.multiply(bought)
    rel = sp.csr_matrix(rel)
    rel.eliminate_zeros()
    has = np.asarray(rel.sum(axis=1)).ravel() > 0
    users = np.flatnonzero(seen & has)
    return Split(users=users, relevant=rel[users].tocsr(), exclude=exclude, train=train,
                 end_day=(end - date(1970, 1, 1)).days)


def labelled_customers(data: Dataset, start: date, end: date) -> int:
    """Customers seen before ``start`` with a (kept) purchase in [start, end]."""
    seen = np.zeros(data.n_users, dtype=bool)
    seen[data.before(start).user] = True
    has = np.asarray(labels(data, start, end).sum(axis=1)).ravel() > 0
    return int((seen & has).sum())


def size_window(data: Dataset, end: date, target_customers: int, min_days: int, max_days: int) -> int:
    """Days ``n`` (min_days <= n <= max_days) such that the slice [end - n + 1, end] has at least
    ``target_customers`` labelled customers (the smallest such n; max_days when none reaches it)."""
    from datetime import timedelta

    for n in range(max(1, min_days), max(min_days, max_days) + 1):
        if labelled_customers(data, end - timedelta(days=n - 1), end) >= target_customers:
            return n
    return max(min_days, max_days)


def ranking_metrics(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, float]:
    """Mean Recall@k, NDCG@k, MAP@k, HitRate@k over rows; ``recs`` are product indexes, best first
    (-1 pads a row with fewer than k recommendations and never counts as a hit).

    recall = hits / |relevant|; ndcg = DCG / ideal DCG (binary gains, log2 discounts); map = mean over rows of
    (1 / min(|relevant|, k)) Σ precision@i at each hit i ≤ k; hitrate = share of rows with a hit.
    """
    return {name: float(np.mean(v)) if len(v) else 0.0 for name, v in per_customer(recs, relevant, k).items()}


def per_customer(recs: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """The per-row values whose means :func:`ranking_metrics` reports (for bootstrap intervals)."""
    recs = recs[:, :k]
    n = recs.shape[0]
    if n == 0:
        return {m: np.zeros(0) for m in ("recall", "ndcg", "map", "hitrate")}
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
        "recall": np.asarray(hits.sum(axis=1) / np.maximum(n_rel, 1)),
        "ndcg": np.asarray(np.where(ideal > 0, dcg / np.maximum(ideal, 1e-12), 0.0)),
        "map": np.asarray(ap),
        "hitrate": np.asarray(hits.any(axis=1), dtype=np.float64),
    }


def _resample(n: int, seed: int, rounds: int = BOOTSTRAP) -> np.ndarray:
    """(rounds, n) row indexes drawn with replacement; depends only on n and the seed."""
    return np.random.default_rng(seed).integers(0, n, size=(rounds, n)) if n else np.zeros((rounds, 0), int)


def bootstrap_ci(values: np.ndarray, seed: int = 0, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided percentile interval of the mean of ``values`` over customers resampled with replacement."""
    if len(values) == 0:
        return 0.0, 0.0
    means = values[_resample(len(values), seed)].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_lower_bound(a: np.ndarray, b: np.ndarray, seed: int = 0, confidence: float = CONFIDENCE) -> float:
    """One-sided lower bound of mean(a - b) over the same customers, by the paired bootstrap: a > b beyond
    the noise when it is above 0."""
    if len(a) == 0:
        return 0.0
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    means = diff[_resample(len(diff), seed)].mean(axis=1)
    return float(np.quantile(means, 1 - confidence))


def coverage(recs: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in anyone's top-k."""
    top = recs[:, :k]
    return float(len(np.unique(top[top >= 0])) / max(n_items, 1))


def evaluate(recs: np.ndarray, split: Split, n_items: int, seed: int = 0) -> list[tuple]:
    """(metric, k, value, ci_low, ci_high, customers) for every metric in METRICS and k in KS (coverage has
    no interval)."""
    out: list[tuple] = []
    n = len(split.users)
    for k in KS:
        for name, values in per_customer(recs, split.relevant, k).items():
            lo, hi = bootstrap_ci(values, seed)
            out.append((name, k, float(values.mean()) if n else 0.0, lo, hi, n))
        out.append(("coverage", k, coverage(recs, n_items, k), None, None, n))
    return out
