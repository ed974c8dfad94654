"""Real data through the real DAGs: published recommendations against plain peers, on real retailers' histories.

    .venv/bin/python bench/real_data.py [--dataset online-retail|ta-feng|completejourney] [--src FILE]
                                        [--cutoffs N | --cutoffs YYYY-MM-DD,...] [--days 90] [--test-days 31]
                                        [--valid-days 0] [--peers-only] [--max-items 5000] [--json FILE]
                                        [--empty manifest|header] [--catalog-currency CUR]
                                        [--loader auto|backfill|dag-test]

**Data sets** (``omnifuse.realdata.DATASETS``; each module's docstring says where its file comes from, its
licence and its default path ``DEFAULT_SRC`` on the development machine): ``online-retail`` (UCI Online Retail
II 2009-2010, CC BY 4.0; the same retailer's next year with ``--src
/work/data/second/online_retail_2010_2011.csv.gz``), ``ta-feng`` (Ta-Feng grocery, 2000-11 .. 2001-02) and
``completejourney`` (84.51° Complete Journey 2.0, the R package's 75,000-line sample, 2017).

**Cut-offs.** A cut-off is a business date T, the last day of the training window (``--days`` days ending at
T); the ``--test-days`` days after T are scored. ``--cutoffs N`` takes the last N cut-offs that leave a whole
test period, ``--test-days`` apart (the last one is the data's last day minus ``--test-days``); ``--cutoffs
2010-11-08,2010-10-08`` names them.

**Two protocols**, both top-20 over known customers (a purchase in the training window), non-product lines
(postage, fees, coupons, fuel: ``omnifuse.realdata.non_product``) neither candidates nor hits, a product the
customer returned in the test period never a hit:

- ``new``: new products (issue 12's table): the relevant items are the products the customer bought in the
  test period and had not bought in the training window; the peers' lists exclude what the customer bought in
  the window.
- ``repeat``: the next-period basket, repeats included: every product bought in the test period is relevant;
  the peers' lists exclude nothing.

NDCG@20 (binary gains, log2 discounts, ideal over min(|relevant|, 20)) and Recall@20 (hits / |relevant|),
averaged over the customers with at least one relevant item; a customer without a published list counts 0.

**Peers**, small numpy/scipy functions of their own (independent of omnifuse's models), fitted on the same
training window of the same lines, each tuned per protocol on the same validation split (fit on the window
minus its last ``--valid-days`` days, judged on those days under that protocol), then refitted on the whole
window:

- ``ease`` EASE λ ∈ {50, 100, 250, 500, 1000}; ``item_knn`` cosine item-kNN k ∈ {50, 100, 200};
  ``pure_svd`` PureSVD factors ∈ {20, 50, 100}: the dense item × item models see only the ``--max-items``
  products most bought in the window they are fitted on (real grocery catalogs have 20,000+ products; the
  other products score below every one of them);
- ``popularity``: buyers per product in the window;
- ``pers_freq``: personal frequency, the customer's own purchase occasions (customer × product × day)
  weighted 0.5^(age / half-life), half-life ∈ {7, 14, 30, 60, 120, 365} days (ties, e.g. beyond the products
  the customer bought, broken by popularity);
- ``pers_knn``: personal frequency blended with item-kNN, TIFU-kNN style (Hu et al. 2020 blend a customer's
  decayed frequency vector with its neighbours'; here the neighbours are items): α · f/max(f) + (1-α) ·
  (f S)/max(f S), with f the tuned ``pers_freq`` vector, S the tuned ``item_knn`` similarity, α ∈ {0.5,
  0.7, 0.8, 0.9, 0.95, 0.99}.

**The published side** (without ``--peers-only``; one cut-off per run, the real DAGs as before): the bench runs
on its own embedded warehouse in a temporary state folder (``bench/_isolated.py``), converts the training
window into the landing zone (the test days are never loaded), loads it through the real ``omnifuse_ingest``
DAG one business date at a time (``omnifuse.backfill.backfill`` when it exists, or as ``--loader`` says; else
``omnifuse.airflow_glue.run_dag_days``, and then every date is moved by a multiple of 7 days to fall after the
DAGs' ``start_date``, because ``dag.test()`` runs nothing for earlier dates), then ``omnifuse_retrain`` and
``omnifuse_publish`` for T, and scores ``mart.customer_recommendations`` as published for T on both protocols.
With ``--valid-days 0`` (default) the peers tune on omnifuse's own validation slice of that retrain
(``ml.training_runs``); with ``--peers-only`` on the window's last 14 days unless ``--valid-days`` says.

Prints, per cut-off and protocol, each peer's NDCG@20 and Recall@20, its ratio to the best peer and the ratio
published / best peer; then per protocol the geometric mean over the cut-offs and the worst cut-off; wall
times and peak RSS. ``--json FILE`` writes the same figures.

``dag.test()`` runs the tasks in this process: modules are imported once but SQL files are read when used, so
a checkout edited during the (half-hour) run can mix versions. To measure one commit, run it from a copy::

    git archive HEAD | tar -x -C /tmp/omnifuse-snap && cd /tmp/omnifuse-snap &&
    PYTHONPATH=$PWD/include OMNIFUSE_HOME=$PWD /path/to/.venv/bin/python bench/real_data.py
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

K = 20
PROTOCOLS = ("new", "repeat")
PROTOCOL_TITLES = {
    "new": "new products (bought in the test period, not in the window; peers exclude what was bought)",
    "repeat": "next-period basket, repeats included (every product bought in the test period)",
}
GRID: dict[str, list] = {
    "ease": [50, 100, 250, 500, 1000], "item_knn": [50, 100, 200], "pure_svd": [20, 50, 100],
    "popularity": [None], "pers_freq": [7, 14, 30, 60, 120, 365], "pers_knn": [0.5, 0.7, 0.8, 0.9, 0.95, 0.99],
}
LABELS = {
    "ease": "plain EASE (λ = {})", "item_knn": "plain item-kNN (cosine, {} neighbours)",
    "pure_svd": "plain PureSVD ({} factors)", "popularity": "popularity",
    "pers_freq": "personal frequency (half-life {} days)", "pers_knn": "personal frequency + item-kNN ({})",
}
PUBLISHED = "published"

Scorer = Callable[[np.ndarray], np.ndarray]  # user rows -> dense scores (rows x all items)


# --- the training history --------------------------------------------------------------------------------


@dataclass
class History:
    """Known customers' purchases (quantity > 0, products only) in a window ending on ``end``.

    ``x``: binary customers x products; ``occasions``: one row per (customer row ``u``, product column ``i``,
    day) with ``age`` = days before ``end``; ``dense``: the columns of the ``max_items`` most bought products
    (buyers), the only ones the dense item x item peers see; ``popularity``: buyers per product."""

    users: list[str]
    items: list[str]
    x: sp.csr_matrix
    occasions: pd.DataFrame
    dense: np.ndarray
    popularity: np.ndarray
    _freq: dict[float, sp.csr_matrix] = field(default_factory=dict)

    def freq(self, half_life: float) -> sp.csr_matrix:
        """Customers x products: sum over purchase occasions of 0.5 ** (age / half_life)."""
        if half_life not in self._freq:
            w = np.power(0.5, self.occasions["age"].to_numpy() / float(half_life))
            self._freq[half_life] = sp.csr_matrix((w, (self.occasions["u"], self.occasions["i"])),
                                                  shape=self.x.shape)
        return self._freq[half_life]

    @cached_property
    def x_dense(self) -> sp.csr_matrix:
        return self.x[:, self.dense].tocsr()


def product_lines(lines: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Known customers' product lines with business dates in ``start`` .. ``end``."""
    from omnifuse.realdata import non_product

    sel = lines[(lines["business_date"] >= start) & (lines["business_date"] <= end) & (lines["customer_id"] != "")]
    return sel[~non_product(sel)]


def history(lines: pd.DataFrame, start: date, end: date, max_items: int) -> History:
    """:class:`History` of ``start`` .. ``end``."""
    bought = product_lines(lines, start, end)
    bought = bought[bought["quantity"] > 0][["customer_id", "sku", "business_date"]].drop_duplicates()
    users = sorted(bought["customer_id"].unique())
    items = sorted(bought["sku"].unique())
    u = pd.Index(users).get_indexer(bought["customer_id"])
    i = pd.Index(items).get_indexer(bought["sku"])
    age = (pd.Timestamp(end) - pd.to_datetime(bought["business_date"])).dt.days.to_numpy()
    occasions = pd.DataFrame({"u": u, "i": i, "age": age})
    pairs = occasions[["u", "i"]].drop_duplicates()
    x = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (pairs["u"], pairs["i"])),
                      shape=(len(users), len(items)))
    popularity = np.asarray(x.sum(axis=0)).ravel()
    dense = np.sort(np.argsort(-popularity, kind="stable")[:max_items])
    return History(users, items, x, occasions, dense, popularity)


def history_matrix(lines: pd.DataFrame, start: date, end: date) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """Binary customers x products matrix of purchases (quantity > 0) in the window, with its id lists."""
    h = history(lines, start, end, max_items=0)
    return h.x, h.users, h.items


# --- the peers -------------------------------------------------------------------------------------------


def _embed(h: History, part: np.ndarray) -> np.ndarray:
    """Scores over the dense columns → scores over all products (the others below every dense one)."""
    low = float(part.min()) - 1.0 if part.size else -1.0
    full = np.full((part.shape[0], len(h.items)), low, dtype=np.float64)
    full[:, h.dense] = part
    return full


def _tie_break(h: History) -> np.ndarray:
    """Popularity scaled far below one purchase occasion: orders what a personal score leaves tied."""
    pop = h.popularity.astype(np.float64)
    return 1e-9 * pop / (pop.max() or 1.0)


def knn_similarity(xd: sp.csr_matrix, k: int) -> np.ndarray:
    """Item-item cosine similarity of the columns of ``xd``, each item keeping its ``k`` nearest neighbours."""
    co = (xd.T @ xd).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co)).copy()
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        cut = np.argpartition(-sim, k, axis=0)[k:, :]  # per column (target item): drop all but the k nearest
        np.put_along_axis(sim, cut, 0.0, axis=0)
    return sim


def fit_popularity(h: History, _param: object = None) -> Scorer:
    """Buyers per product in the window."""
    pop = h.popularity.astype(np.float64)
    return lambda rows: np.tile(pop, (len(rows), 1))


def fit_ease(h: History, lam: float) -> Scorer:
    """EASE (Steck 2019): B = I - P / diag(P) with P = (XᵀX + λI)⁻¹, zero diagonal; scores X B."""
    xd = h.x_dense
    gram = (xd.T @ xd).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = (-p / np.diag(p)[None, :]).astype(np.float32)  # scoring in float32: half the time, rankings alike
    np.fill_diagonal(b, 0.0)
    return lambda rows: _embed(h, np.asarray(xd[rows] @ b))


def fit_item_knn(h: History, k: int) -> Scorer:
    """Item-item cosine similarity, each item keeping its ``k`` nearest neighbours; scores X S."""
    xd = h.x_dense
    sim = knn_similarity(xd, k).astype(np.float32)
    return lambda rows: _embed(h, np.asarray(xd[rows] @ sim))


def fit_pure_svd(h: History, factors: int) -> Scorer:
    """PureSVD (Cremonesi 2010): X ≈ U Σ Vᵀ truncated; scores X V Vᵀ."""
    xd = h.x_dense
    f = min(factors, min(xd.shape) - 1)
    _, _, vt = svds(xd.astype(np.float64), k=f, random_state=0)
    v = vt.T
    return lambda rows: _embed(h, np.asarray(xd[rows] @ v) @ v.T)


def fit_pers_freq(h: History, half_life: float) -> Scorer:
    """The customer's own purchase occasions, recency-decayed; popularity orders the rest."""
    f = h.freq(half_life)
    tie = _tie_break(h)
    return lambda rows: f[rows].toarray() + tie[None, :]


def _row_max_normalised(m: np.ndarray) -> np.ndarray:
    top = m.max(axis=1, keepdims=True)
    top[top <= 0] = 1.0
    return m / top


def fit_pers_knn(h: History, param: tuple[float, float, int]) -> Scorer:
    """``(alpha, half_life, k)``: α · f/max(f) + (1-α) · (f S)/max(f S) (see the module docstring)."""
    alpha, half_life, k = param
    f = h.freq(half_life)
    fd = f[:, h.dense].tocsr()
    sim = knn_similarity(h.x_dense, int(k))
    tie = _tie_break(h)

    def score(rows: np.ndarray) -> np.ndarray:
        own = _row_max_normalised(f[rows].toarray())
        neighbours = np.zeros_like(own)
        neighbours[:, h.dense] = _row_max_normalised(np.asarray(fd[rows] @ sim))
        return alpha * own + (1.0 - alpha) * neighbours + tie[None, :]

    return score


PEERS: dict[str, Callable[[History, object], Scorer]] = {
    "ease": fit_ease, "item_knn": fit_item_knn, "pure_svd": fit_pure_svd, "popularity": fit_popularity,
    "pers_freq": fit_pers_freq, "pers_knn": fit_pers_knn,
}


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    idx = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, axis=1)
    idx[np.isneginf(np.take_along_axis(scores, idx, axis=1))] = -1  # excluded items never fill a list
    return idx


def top_k_lists(scorer: Scorer, x: sp.csr_matrix, rows: np.ndarray, exclude: tuple[bool, ...], k: int = K,
                batch: int = 512) -> list[np.ndarray]:
    """Top-``k`` item indices per user row, once per entry of ``exclude`` (True: items the user bought in
    ``x`` excluded; -1 where fewer than ``k`` items are left). The rows are scored once for all entries."""
    k = min(k, x.shape[1] - 1)
    outs = [np.empty((len(rows), k), dtype=np.int64) for _ in exclude]
    for lo in range(0, len(rows), batch):
        part = rows[lo:lo + batch]
        scores = scorer(part).astype(np.float64)
        if not all(exclude):
            for out, ex in zip(outs, exclude, strict=True):
                if not ex:
                    out[lo:lo + batch] = _top(scores, k)
        if any(exclude):
            bought = x[part].nonzero()
            scores[bought[0], bought[1]] = -np.inf
            for out, ex in zip(outs, exclude, strict=True):
                if ex:
                    out[lo:lo + batch] = _top(scores, k)
    return outs


def top_k(scorer: Scorer, x: sp.csr_matrix, rows: np.ndarray, exclude_bought: bool, k: int = K) -> np.ndarray:
    """Top-``k`` item indices per user row; items the user bought in ``x`` excluded when ``exclude_bought``
    (-1 where fewer than ``k`` items are left)."""
    return top_k_lists(scorer, x, rows, (exclude_bought,), k)[0]


# --- the protocols ---------------------------------------------------------------------------------------


def relevant(lines: pd.DataFrame, start: date, end: date, h: History, protocol: str) -> dict[str, set[str]]:
    """Per known customer of ``h``: the products bought in ``start`` .. ``end`` and not returned then; under
    ``new`` only those the customer had not bought in ``h``. Customers with nothing relevant are left out."""
    test = product_lines(lines, start, end)
    bought = test[test["quantity"] > 0].groupby("customer_id")["sku"].agg(set)
    returned = test[test["quantity"] < 0].groupby("customer_id")["sku"].agg(set)
    user_index = {c: r for r, c in enumerate(h.users)}
    item_ids = np.array(h.items, dtype=object)
    out: dict[str, set[str]] = {}
    for cid, skus in bought.items():
        row = user_index.get(cid)
        if row is None:
            continue
        keep = skus - returned.get(cid, set())
        if protocol == "new":
            keep = keep - set(item_ids[h.x[row].indices].tolist())
        if keep:
            out[cid] = keep
    return out


def ranking_metrics(recs: dict[str, list[str]], truth: dict[str, set[str]], k: int = K) -> dict[str, float]:
    """Mean NDCG@k and Recall@k over the customers of ``truth`` (a missing list scores 0)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall = [], []
    for cid, rel in truth.items():
        hits = np.array([p in rel for p in recs.get(cid, [])[:k]], dtype=float)
        dcg = float((hits * discounts[: len(hits)]).sum())
        ndcg.append(dcg / discounts[: min(len(rel), k)].sum())
        recall.append(hits.sum() / len(rel))
    return {"ndcg": float(np.mean(ndcg)) if ndcg else 0.0, "recall": float(np.mean(recall)) if recall else 0.0,
            "customers": len(truth)}


def protocol_recs(scorer: Scorer, h: History, customers: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Per protocol, the top-``K`` lists of its ``customers`` (``new`` excludes what they bought in ``h``); each
    customer is scored once for all protocols."""
    index = {c: r for r, c in enumerate(h.users)}
    union = list(dict.fromkeys(c for cs in customers.values() for c in cs))
    rows = np.array([index[c] for c in union], dtype=np.int64)
    protocols = list(customers)
    tops = top_k_lists(scorer, h.x, rows, tuple(p == "new" for p in protocols))
    item_ids = np.array(h.items, dtype=object)
    out = {}
    for p, top in zip(protocols, tops, strict=True):
        lists = {c: item_ids[t[t >= 0]].tolist() for c, t in zip(union, top, strict=True)}
        out[p] = {c: lists[c] for c in customers[p]}
    return out


def scorer_recs(scorer: Scorer, h: History, customers: list[str], protocol: str) -> dict[str, list[str]]:
    return protocol_recs(scorer, h, {protocol: customers})[protocol]


def _grid(name: str, chosen: dict[str, object]) -> list:
    """``name``'s grid under one protocol; ``pers_knn`` pairs each α with that protocol's tuned half-life and k."""
    if name == "pers_knn":
        return [(alpha, chosen["pers_freq"], chosen["item_knn"]) for alpha in GRID["pers_knn"]]
    return GRID[name]


def _label(name: str, param: object) -> str:
    if name == "pers_knn" and isinstance(param, tuple):
        param = f"α {param[0]}, half-life {param[1]} d, {param[2]} neighbours"
    return LABELS[name].format(param)


def _sort_key(param: object) -> tuple:
    """Among equal validation scores the smaller parameter wins (as before: the least regularised fit)."""
    if isinstance(param, tuple):
        return tuple(-float(p) for p in param)
    return (-(float(param) if param is not None else 0.0),)


def evaluate_peers(fit: History, valid_truth: dict[str, dict[str, set[str]]], full: History,
                   test_truth: dict[str, dict[str, set[str]]], times: dict[str, float],
                   protocols: tuple[str, ...] = PROTOCOLS) -> tuple[dict[str, dict[str, dict]], list[str]]:
    """Tune every peer per protocol on ``valid_truth`` (fitted on ``fit``), refit the chosen parameters on
    ``full`` and score ``test_truth``. Each parameter is fitted once and judged under every protocol."""
    log: list[str] = []
    chosen: dict[str, dict[str, object]] = {p: {} for p in protocols}
    results: dict[str, dict[str, dict]] = {p: {} for p in protocols}
    for name, fitter in PEERS.items():
        started = time.perf_counter()
        grids = {p: _grid(name, chosen[p]) for p in protocols}
        params: list[Hashable] = list(dict.fromkeys(q for p in protocols for q in grids[p]))
        scores: dict[str, dict[Hashable, float]] = {p: {} for p in protocols}
        for param in params:
            scorer = fitter(fit, param)
            wanted = {p: list(valid_truth[p]) for p in protocols if param in grids[p] and valid_truth[p]}
            for p, recs in protocol_recs(scorer, fit, wanted).items():
                scores[p][param] = ranking_metrics(recs, valid_truth[p])["ndcg"]
        best = {p: max(grids[p], key=lambda q, p=p: (scores[p].get(q, 0.0), _sort_key(q))) for p in protocols}
        for param in dict.fromkeys(best.values()):
            scorer = fitter(full, param)
            wanted = {p: list(test_truth[p]) for p in protocols if best[p] == param}
            for p, recs in protocol_recs(scorer, full, wanted).items():
                chosen[p][name] = param
                results[p][name] = {"param": param, "label": _label(name, param), "valid": scores[p],
                                    **ranking_metrics(recs, test_truth[p])}
        times[f"peer {name} (tune + refit + score)"] = times.get(f"peer {name} (tune + refit + score)", 0.0) \
            + time.perf_counter() - started
        for p in protocols:
            if len(grids[p]) > 1:
                shown = ", ".join(f"{_short(q)}: {s:.4f}" for q, s in scores[p].items())
                log.append(f"  {p:<6} {name}: validation NDCG@20 {shown} -> {_short(best[p])}")
    return results, log


def _short(param: object) -> str:
    return f"α {param[0]}" if isinstance(param, tuple) else str(param)


# --- cut-offs and the summary ----------------------------------------------------------------------------


def parse_cutoffs(text: str, last: date, test_days: int) -> list[date]:
    """``N`` → the last N cut-offs ``test_days`` apart, the latest ``last - test_days``; else ISO dates."""
    text = text.strip()
    if text.isdigit():
        latest = last - timedelta(days=test_days)
        return [latest - timedelta(days=test_days * j) for j in range(int(text) - 1, -1, -1)]
    days = sorted(date.fromisoformat(t.strip()) for t in text.split(",") if t.strip())
    late = [d for d in days if d + timedelta(days=test_days) > last]
    if late:
        raise SystemExit(f"cut-offs {', '.join(map(str, late))} leave less than --test-days {test_days} days of "
                         f"data after them (the data end on {last}); choose earlier ones.")
    return days


def geometric_mean(values: list[float]) -> float:
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    if len(positive) < len(values) or not values:
        return 0.0 if values else float("nan")
    return float(math.exp(sum(math.log(v) for v in positive) / len(positive)))


def best_peer(peers: dict[str, dict]) -> str:
    return max(peers, key=lambda n: peers[n]["ndcg"])


def print_cutoff(cutoff: dict) -> None:
    """One cut-off's tables, one per protocol."""
    for p in PROTOCOLS:
        res = cutoff["protocols"][p]
        peers = res["peers"]
        best = best_peer(peers)
        top = peers[best]["ndcg"]
        print(f"\n{cutoff['cutoff']} · {p}: {PROTOCOL_TITLES[p]}; {res['customers']:,} customers")
        print(f"| {'model':<70} | NDCG@20 | Recall@20 | / best |")
        print(f"| {'-' * 70} | ------- | --------- | ------ |")
        for r in peers.values():
            ratio = r["ndcg"] / top if top else float("nan")
            print(f"| {r['label']:<70} | {r['ndcg']:.4f}  | {r['recall']:.4f}    | {ratio:6.3f} |")
        if PUBLISHED in res:
            pub = res[PUBLISHED]
            ratio = pub["ndcg"] / top if top else float("nan")
            print(f"| {'omnifuse, mart.customer_recommendations as published':<70} | {pub['ndcg']:.4f}  | "
                  f"{pub['recall']:.4f}    | {ratio:6.3f} |")
            print(f"published / best peer ({best}) NDCG@20: {ratio:.3f}")


def summarise(cutoffs: list[dict]) -> list[str]:
    """Per protocol: each peer's (and the published lists') ratio to the best peer, geometric mean over the
    cut-offs and the worst cut-off; which peer is best how often."""
    out = []
    for p in PROTOCOLS:
        names = list(cutoffs[0]["protocols"][p]["peers"])
        has_published = all(PUBLISHED in c["protocols"][p] for c in cutoffs)
        rows = names + ([PUBLISHED] if has_published else [])
        out.append(f"\n{p}: {PROTOCOL_TITLES[p]} — NDCG@20 / best peer's, per cut-off")
        header = " | ".join(f"{c['cutoff']}" for c in cutoffs)
        out.append(f"| {'model':<12} | {header} | geo-mean | worst (cut-off) |")
        out.append(f"| {'-' * 12} | " + " | ".join("-" * 10 for _ in cutoffs) + " | -------- | --------------- |")
        for name in rows:
            ratios = []
            for c in cutoffs:
                res = c["protocols"][p]
                top = res["peers"][best_peer(res["peers"])]["ndcg"]
                value = (res[PUBLISHED] if name == PUBLISHED else res["peers"][name])["ndcg"]
                ratios.append(value / top if top else float("nan"))
            worst = int(np.nanargmin(ratios)) if ratios else 0
            out.append(f"| {name:<12} | " + " | ".join(f"{r:10.3f}" for r in ratios)
                       + f" | {geometric_mean(ratios):8.3f} | {ratios[worst]:.3f} ({cutoffs[worst]['cutoff']}) |")
        bests = [(c["cutoff"], best_peer(c["protocols"][p]["peers"]),
                  c["protocols"][p]["peers"][best_peer(c["protocols"][p]["peers"])]["ndcg"]) for c in cutoffs]
        out.append("best peer: " + "; ".join(f"{d} {n} ({v:.4f})" for d, n, v in bests))
    return out


# --- loading through the DAGs ----------------------------------------------------------------------------


def use_backfill(loader: str) -> bool:
    """``omnifuse.backfill.backfill`` when asked to, or (``auto``) when the module exists."""
    return loader == "backfill" or (loader == "auto" and importlib.util.find_spec("omnifuse.backfill") is not None)


def load_through_dags(days: list[date], settings, times: dict[str, float], loader: str) -> list[str]:
    """Ingest every date, then retrain and publish for the last one; returns the lines to print."""
    from omnifuse.airflow_env import prepare_airflow

    settings = prepare_airflow(settings)  # before anything imports Airflow
    from omnifuse.airflow_glue import run_dag_days

    log = []
    started = time.perf_counter()
    if use_backfill(loader):
        from omnifuse import backfill as bf

        params = inspect.signature(bf.backfill).parameters
        wanted = {"settings": settings, "stop_on_failure": False, "retrain": "last"}
        try:  # backfill prints its own per-run table
            outcomes = bf.backfill(days[0], days[-1], **{k: v for k, v in wanted.items() if k in params})
            log.append(f"omnifuse.backfill.backfill({days[0]}, {days[-1]}): {len(outcomes)} runs, all ok")
        except Exception as exc:  # the bench still evaluates what was published (maybe nothing) and the peers
            log.append(f"omnifuse.backfill.backfill({days[0]}, {days[-1]}) failed: {type(exc).__name__}: {exc}")
        times[f"backfill ({len(days)} dates + retrain + publish)"] = time.perf_counter() - started
        return log
    states = run_dag_days("omnifuse_ingest", days, settings)
    times[f"ingest ({len(days)} dates, dag.test)"] = time.perf_counter() - started
    failed = [d for d, s in zip(days, states, strict=True) if "success" not in s]
    log.append(f"omnifuse_ingest: {len(days) - len(failed)} of {len(days)} dates succeeded"
               + (f"; failed: {', '.join(d.isoformat() for d in failed)}" if failed else ""))
    for dag_id in ("omnifuse_retrain", "omnifuse_publish"):
        started = time.perf_counter()
        state = run_dag_days(dag_id, [days[-1]], settings)[0]
        times[f"{dag_id} ({days[-1]})"] = time.perf_counter() - started
        log.append(f"{dag_id} {days[-1]}: {state}")
    return log


def warehouse_summary(url: str, business_date: date) -> list[str]:
    """What the load kept: staged store lines, quarantine by reason, interactions by event type, the mart."""
    from omnifuse import warehouse

    out = []
    with warehouse.transaction(url) as cur:
        cur.execute("select count(*) from staging.store_sales")
        out.append(f"staging.store_sales: {cur.fetchone()[0]:,} lines")
        cur.execute("select reason, count(*) from quarantine.store_sales group by reason order by 2 desc")
        out.append("quarantine.store_sales: " + (", ".join(f"{r}={n:,}" for r, n in cur.fetchall()) or "-"))
        cur.execute("select reason, count(*) from quarantine.products where _arrival_date = %s group by reason",
                    (business_date,))
        out.append(f"quarantine.products ({business_date}): "
                   + (", ".join(f"{r}={n:,}" for r, n in cur.fetchall()) or "-"))
        cur.execute("select event_type, count(*), count(distinct customer_id) from core.interactions "
                    "group by event_type order by 1")
        out.append("core.interactions: " + ", ".join(f"{t}={n:,} ({c:,} customers)" for t, n, c in cur.fetchall()))
        cur.execute("select train_start, valid_date, split_date, eval_customers from ml.training_runs "
                    "where business_date = %s order by started_at desc limit 1", (business_date,))
        run = cur.fetchone()
        if run:
            out.append(f"omnifuse's last retrain: training from {run[0]}, validation {run[1]} .. {run[2]}, holdout "
                       f"{run[2]} .. {business_date} ({run[3]:,} customers)")
        cur.execute("select r.run_id, r.served_model, r.reason from ml.model_registry r "
                    "where r.business_date = %s order by r.created_at desc limit 1", (business_date,))
        served = cur.fetchone()
        if served:
            out.append(f"served: {served[1]}; {served[2]}")
            slices = (("validation", "fusion_selection", "ndcg_%"), ("holdout", "fusion_%", "ndcg"))
            for slice_, name, metric in slices:
                cur.execute("select model_name, metric, value from ml.model_metrics where run_id = %s and slice = %s "
                            "and model_name like %s and metric like %s and k = 10 order by value desc",
                            (served[0], slice_, name, metric))
                out.append(f"  {slice_} NDCG@10: " + ", ".join(
                    f"{n if slice_ == 'holdout' else m[5:]} {v:.4f}" for n, m, v in cur.fetchall()))
            cur.execute("select distinct model_name, params::text from mart.model_performance where run_id = %s "
                        "and params is not null order by 1", (served[0],))
            out.append("  tuned on validation: " + "; ".join(f"{n} {p}" for n, p in cur.fetchall()))
            cur.execute("select feature, weight from ml.fusion_weights where run_id = %s and variant = 'rerank' "
                        "order by abs(weight) desc", (served[0],))
            weights = cur.fetchall()
            linear = [(f, w) for f, w in weights if not f.startswith("trees:")]
            gains = [(f[6:], w) for f, w in weights if f.startswith("trees:")]  # already by share, descending
            if linear:
                out.append("  re-ranker logistic weights (standardised): "
                           + ", ".join(f"{f} {w:+.2f}" for f, w in linear))
            if gains:
                out.append("  re-ranker trees, share of split gain: " + ", ".join(f"{f} {w:.2f}" for f, w in gains))
        cur.execute("select count(distinct customer_id), count(*), max(rank) from mart.customer_recommendations "
                    "where business_date = %s", (business_date,))
        customers, rows, max_rank = cur.fetchone()
        out.append(f"mart.customer_recommendations ({business_date}): {customers:,} customers, {rows:,} rows, "
                   f"ranks up to {max_rank}")
    return out


def validation_window(url: str, business_date: date, valid_days: int, split: date, unshift: int) -> tuple[date, date]:
    """The peers' validation days (first, last; dates of the data set): omnifuse's own slice ``valid_date`` ..
    the day before ``split_date`` of its last retrain when ``valid_days`` is 0 and one exists, else the last
    ``valid_days`` (or 14) days up to ``split``."""
    from omnifuse import warehouse

    if valid_days <= 0:
        try:
            with warehouse.transaction(url) as cur:
                cur.execute("select valid_date, split_date from ml.training_runs where business_date = %s "
                            "order by started_at desc limit 1", (business_date,))
                row = cur.fetchone()
        except Exception:  # no retrain ran: fall back to a fixed slice
            row = None
        if row:
            move = timedelta(days=unshift)
            return row[0] + move, row[1] - timedelta(days=1) + move
        valid_days = 14
    return split - timedelta(days=valid_days - 1), split


def repeat_share(recs: dict[str, list[str]], lines: pd.DataFrame, start: date, end: date,
                 customers: list[str]) -> float:
    """Share of the recommended items (of ``customers``) that the customer had bought in ``start`` .. ``end``:
    they can never be hits under the new-items protocol."""
    x, users, items = history_matrix(lines, start, end)
    index = {c: r for r, c in enumerate(users)}
    item_ids = np.array(items, dtype=object)
    shown = repeats = 0
    for cid in customers:
        listed = recs.get(cid, [])[:K]
        row = index.get(cid)
        bought = set(item_ids[x[row].indices].tolist()) if row is not None else set()
        shown += len(listed)
        repeats += sum(1 for p in listed if p in bought)
    return repeats / shown if shown else 0.0


def published_recs(url: str, business_date: date) -> dict[str, list[str]]:
    from omnifuse import warehouse

    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id, product_id from mart.customer_recommendations where business_date = %s "
                    "order by customer_id, rank", (business_date,))
        rows = cur.fetchall()
    recs: dict[str, list[str]] = {}
    for cid, pid in rows:
        recs.setdefault(cid, []).append(pid)
    return recs


def _peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _jsonable(cutoff: dict) -> dict:
    """The cut-off's figures with tuple parameters and validation keys made JSON-safe."""
    def peer(r: dict) -> dict:
        param = r.get("param")
        return {**r, "param": list(param) if isinstance(param, tuple) else param,
                "valid": {_short(k) if isinstance(k, tuple) else str(k): v for k, v in r.get("valid", {}).items()}}

    protocols = {}
    for p, res in cutoff["protocols"].items():
        protocols[p] = {**res, "peers": {n: peer(r) for n, r in res["peers"].items()}}
    return {**cutoff, "protocols": protocols}


def run_published(args: argparse.Namespace, module, lines: pd.DataFrame, train_start: date, split: date,
                  times: dict[str, float]) -> tuple[dict[str, list[str]], tuple[date, date], list[str]]:
    """Load the training window through the real DAGs on the bench's own warehouse, retrain and publish for its
    last date; returns the published lists, the peers' validation days and the lines to print."""
    from _isolated import isolated_url
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.config import load_settings

    url = isolated_url("real-data")
    settings = load_settings()
    shift = 0
    if not use_backfill(args.loader):
        settings = prepare_airflow(settings)  # before anything imports Airflow
        from omnifuse.airflow_glue import load_dag

        start_date = load_dag(settings, "omnifuse_ingest").start_date.date()
        if train_start < start_date:
            shift = -(-(start_date - train_start).days // 7) * 7
    extra = {"catalog_currency": args.catalog_currency} if args.catalog_currency else {}
    options = module.ConvertOptions(shift_days=shift, empty=args.empty, **extra)
    started = time.perf_counter()
    summary = module.convert(lines, settings.landing_dir, train_start, split, options)
    times["convert"] = time.perf_counter() - started
    days = summary.days
    business_date = days[-1]
    log = [f"training window {train_start} .. {split} ({args.days} days) loaded as {days[0]} .. {business_date}"
           + (f" (shifted +{shift} days: the DAGs run nothing before their start_date without a backfill)"
              if shift else ""),
           f"landing zone: {summary.pos_lines:,} POS lines ({summary.negative_lines:,} negative, "
           f"{summary.anonymous_lines:,} anonymous), {len(summary.empty_store_days)} days without sales, "
           f"{summary.products:,} products, {summary.customers:,} CRM customers; catalog in "
           f"{options.catalog_currency}; empty deliveries as {args.empty}"]
    for line in log:
        print(line, flush=True)
    for line in load_through_dags(days, settings, times, args.loader):
        print(line, flush=True)
    try:
        for line in warehouse_summary(url, business_date):
            print(line)
        published = published_recs(url, business_date)
    except Exception as exc:  # the bench still prints the peers when the pipeline published nothing
        print(f"reading the warehouse failed: {exc}")
        published = {}
    valid = validation_window(url, business_date, args.valid_days, split, -shift)
    return published, valid, log


def main(argv: list[str] | None = None) -> int:
    from omnifuse.realdata import DATASETS, dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="online-retail")
    parser.add_argument("--src", type=Path, default=None, help="the data set's file (default: its DEFAULT_SRC)")
    parser.add_argument("--cutoffs", default="1",
                        help="N (the last N cut-offs, --test-days apart) or comma-separated dates (the last "
                             "training day of each); without --peers-only exactly one")
    parser.add_argument("--days", type=int, default=90, help="training window (days ending at the cut-off)")
    parser.add_argument("--test-days", type=int, default=31, help="days after the cut-off that are scored")
    parser.add_argument("--valid-days", type=int, default=0,
                        help="the peers tune on the window's last N days; 0 (default): on omnifuse's own validation "
                             "slice of that retrain (ml.training_runs), else (and with --peers-only) the last 14")
    parser.add_argument("--peers-only", action="store_true", help="skip the DAGs: the peers only (fast)")
    parser.add_argument("--max-items", type=int, default=5000,
                        help="products the dense item x item peers (EASE, item-kNN, PureSVD) see: the most bought")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--empty", choices=["manifest", "header"], default="manifest",
                        help="shape of an empty delivery (web, mobile, social every day; store without sales)")
    parser.add_argument("--catalog-currency", default=None,
                        help="currency of the catalog prices: the data set's own (default) or EUR")
    parser.add_argument("--loader", choices=["auto", "backfill", "dag-test"], default="auto",
                        help="auto: omnifuse.backfill when it exists, else airflow_glue.run_dag_days (dates shifted)")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    times: dict[str, float] = {}

    module = dataset(args.dataset)
    src = args.src or module.DEFAULT_SRC
    home = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(home), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or f"(not a git checkout: {home})"
    started = time.perf_counter()
    lines = module.read_lines(src)
    times["read data set"] = time.perf_counter() - started
    first, last = lines["business_date"].min(), lines["business_date"].max()
    cutoffs = parse_cutoffs(args.cutoffs, last, args.test_days)
    if not args.peers_only and len(cutoffs) != 1:
        raise SystemExit("the DAG path runs one cut-off per process (a fresh warehouse each): give one --cutoffs "
                         "date, or add --peers-only")
    print(f"omnifuse {commit}; data set {args.dataset} ({src}): {len(lines):,} lines {first} .. {last}, "
          f"{lines['customer_id'].replace('', np.nan).nunique():,} customers, {lines['sku'].nunique():,} products")
    print(f"cut-offs {', '.join(map(str, cutoffs))}; window {args.days} days, test {args.test_days} days, top-{K}; "
          + ("peers only" if args.peers_only else "published lists through the real DAGs"), flush=True)

    records = []
    for split in cutoffs:
        train_start = max(split - timedelta(days=args.days - 1), first)
        test = (split + timedelta(days=1), split + timedelta(days=args.test_days))
        published: dict[str, list[str]] | None = None
        if args.peers_only:
            valid_days = args.valid_days or 14
            valid = (split - timedelta(days=valid_days - 1), split)
        else:
            published, valid, _ = run_published(args, module, lines, train_start, split, times)
        started = time.perf_counter()
        fit = history(lines, train_start, valid[0] - timedelta(days=1), args.max_items)
        full = history(lines, train_start, split, args.max_items)
        valid_truth = {p: relevant(lines, valid[0], valid[1], fit, p) for p in PROTOCOLS}
        test_truth = {p: relevant(lines, test[0], test[1], full, p) for p in PROTOCOLS}
        times["histories and truths"] = times.get("histories and truths", 0.0) + time.perf_counter() - started
        print(f"\n== cut-off {split}: window {train_start} .. {split}, test {test[0]} .. {test[1]}; peers fitted on "
              f"{fit.x.shape[0]:,} customers x {fit.x.shape[1]:,} products ({fit.x.nnz:,} pairs) up to "
              f"{valid[0] - timedelta(days=1)}, validated on {valid[0]} .. {valid[1]} (new {len(valid_truth['new']):,}"
              f", repeat {len(valid_truth['repeat']):,} customers); refitted on {full.x.shape[0]:,} x "
              f"{full.x.shape[1]:,} ({full.x.nnz:,} pairs; dense peers see {len(full.dense):,} products)",
              flush=True)
        peers, log = evaluate_peers(fit, valid_truth, full, test_truth, times)
        for line in log:
            print(line)
        record: dict = {"cutoff": split.isoformat(), "window": [train_start.isoformat(), split.isoformat()],
                        "test": [test[0].isoformat(), test[1].isoformat()],
                        "valid": [valid[0].isoformat(), valid[1].isoformat()], "protocols": {}}
        for p in PROTOCOLS:
            res: dict = {"customers": len(test_truth[p]), "peers": peers[p]}
            if published is not None:
                res[PUBLISHED] = ranking_metrics(published, test_truth[p])
                res[PUBLISHED]["lists_for"] = sum(1 for c in test_truth[p] if published.get(c))
            record["protocols"][p] = res
        print_cutoff(record)
        if published is not None:
            share = repeat_share(published, lines, train_start, split, list(test_truth["new"]))
            print(f"published lists for {record['protocols']['new'][PUBLISHED]['lists_for']:,} of "
                  f"{len(test_truth['new']):,} new-protocol customers; {share:.1%} of their published items were "
                  "bought by them in the window (never hits under the new-products protocol)")
        records.append(record)

    for line in summarise(records):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "src": str(src), "commit": commit,
                                         "days": args.days, "test_days": args.test_days,
                                         "max_items": args.max_items, "peers_only": args.peers_only,
                                         "cutoffs": [_jsonable(r) for r in records]}, indent=1, default=str))
    print("\nwall times:")
    for name, seconds in times.items():
        print(f"  {name:<48} {seconds:8.1f} s")
    print(f"  {'total':<48} {time.perf_counter() - wall:8.1f} s")
    own, children = _peak_rss_mb()
    print(f"peak RSS: this process {own:,.0f} MB, largest child {children:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
