"""Real data through the real DAGs: published recommendations against plain peers, on a real retailer's history.

    .venv/bin/python bench/real_data.py [--src FILE] [--days 90] [--test-days 31] [--valid-days 14]
                                        [--empty manifest|header] [--catalog-currency GBP|EUR]
                                        [--loader auto|backfill|dag-test]

The data set is UCI "Online Retail II" (CC BY 4.0; see :mod:`omnifuse.realdata.online_retail` for where it
comes from; default file ``/work/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz``; the same
retailer's next year, UCI "Online Retail" 2010-2011, is read too:
``--src /work/data/second/online_retail_2010_2011.csv.gz``). The bench runs on its own embedded warehouse in a
temporary state folder (``bench/_isolated.py``), then:

1. converts the last ``--days`` + ``--test-days`` days available: the first ``--days`` (the training window,
   ending at the business date T) into the landing zone; the last ``--test-days`` are never loaded;
2. loads the training window through the real ``omnifuse_ingest`` DAG, one business date at a time
   (``omnifuse.backfill.backfill`` when it exists, or as ``--loader`` says; else
   ``omnifuse.airflow_glue.run_dag_days``, and then every date is moved by a multiple of 7 days to fall after the
   DAGs' ``start_date``, because ``dag.test()`` runs nothing for earlier dates), then ``omnifuse_retrain`` and
   ``omnifuse_publish`` for T;
3. evaluates on the protocol of issue 12's table: top-20, customers with a purchase in the training window and
   a purchase of a product they had not bought in it during the next ``--test-days`` days; hits are those new
   products, minus any the customer returned in that period (a returned item is never a hit); non-product codes
   (postage, fees, adjustments) are neither candidates nor hits. NDCG@20 (binary gains, log2 discounts, ideal
   over min(|relevant|, 20)) and Recall@20 (hits / |relevant|), averaged over customers; a customer without a
   published list counts 0.
4. compares ``mart.customer_recommendations`` as published for T with plain peers computed here on the same
   training window of the same lines: EASE, item-kNN (cosine), PureSVD and popularity, each tuned on the same
   validation protocol (fit on the window minus its last ``--valid-days`` days, judged on those days; grid:
   EASE λ ∈ {50,100,250,500,1000}, kNN k ∈ {50,100,200}, SVD factors ∈ {20,50,100}) and refitted on the whole
   window. The peers are small numpy/scipy functions of their own, independent of omnifuse's models.

Prints the table, the ratio published / best peer (target ≥ 1.05, issue 12), wall times and peak RSS.

``dag.test()`` runs the tasks in this process: modules are imported once but SQL files are read when used, so
a checkout edited during the (half-hour) run can mix versions. To measure one commit, run it from a copy::

    git archive HEAD | tar -x -C /tmp/omnifuse-snap && cd /tmp/omnifuse-snap &&
    PYTHONPATH=$PWD/include OMNIFUSE_HOME=$PWD /path/to/.venv/bin/python bench/real_data.py
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from _isolated import isolated_url
from scipy.sparse.linalg import svds

DEFAULT_SRC = Path("/work/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz")
K = 20
GRID = {"ease": [50, 100, 250, 500, 1000], "item_knn": [50, 100, 200], "pure_svd": [20, 50, 100]}

Scorer = Callable[[np.ndarray], np.ndarray]  # user rows -> dense scores (rows x items)


# --- the peers -------------------------------------------------------------------------------------------


def fit_popularity(x: sp.csr_matrix, _param: int | None = None) -> Scorer:
    """Buyers per product in the window."""
    pop = np.asarray(x.sum(axis=0)).ravel()
    return lambda rows: np.tile(pop, (len(rows), 1))


def fit_ease(x: sp.csr_matrix, lam: float) -> Scorer:
    """EASE (Steck 2019): B = I - P / diag(P) with P = (XᵀX + λI)⁻¹, zero diagonal; scores X B."""
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return lambda rows: np.asarray(x[rows] @ b)


def fit_item_knn(x: sp.csr_matrix, k: int) -> Scorer:
    """Item-item cosine similarity, each item keeping its ``k`` nearest neighbours; scores X S."""
    co = (x.T @ x).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co)).copy()
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        cut = np.argpartition(-sim, k, axis=0)[k:, :]  # per column (target item): drop all but the k nearest
        np.put_along_axis(sim, cut, 0.0, axis=0)
    return lambda rows: np.asarray(x[rows] @ sim)


def fit_pure_svd(x: sp.csr_matrix, factors: int) -> Scorer:
    """PureSVD (Cremonesi 2010): X ≈ U Σ Vᵀ truncated; scores X V Vᵀ."""
    f = min(factors, min(x.shape) - 1)
    _, _, vt = svds(x.astype(np.float64), k=f, random_state=0)
    v = vt.T
    return lambda rows: np.asarray(x[rows] @ v) @ v.T


PEERS: dict[str, Callable[[sp.csr_matrix, int], Scorer]] = {
    "ease": fit_ease, "item_knn": fit_item_knn, "pure_svd": fit_pure_svd, "popularity": fit_popularity,
}


def top_k(scorer: Scorer, x: sp.csr_matrix, rows: np.ndarray, k: int = K, batch: int = 1024) -> np.ndarray:
    """Top-``k`` item indices per user row, items the user bought in ``x`` excluded."""
    out = np.empty((len(rows), k), dtype=np.int64)
    for lo in range(0, len(rows), batch):
        part = rows[lo:lo + batch]
        scores = scorer(part).astype(np.float64)
        bought = x[part].nonzero()
        scores[bought[0], bought[1]] = -np.inf
        idx = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
        out[lo:lo + batch] = np.take_along_axis(idx, order, axis=1)
    return out


# --- the protocol ----------------------------------------------------------------------------------------


def product_lines(lines: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Known customers' product lines with business dates in ``start`` .. ``end``."""
    from omnifuse.realdata.online_retail import is_non_product

    sel = lines[(lines["business_date"] >= start) & (lines["business_date"] <= end) & (lines["customer_id"] != "")]
    return sel[~is_non_product(sel["sku"])]


def history_matrix(lines: pd.DataFrame, start: date, end: date) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """Binary customers x products matrix of purchases (quantity > 0) in the window, with its id lists."""
    bought = product_lines(lines, start, end)
    bought = bought[bought["quantity"] > 0][["customer_id", "sku"]].drop_duplicates()
    users = sorted(bought["customer_id"].unique())
    items = sorted(bought["sku"].unique())
    u = pd.Index(users).get_indexer(bought["customer_id"])
    i = pd.Index(items).get_indexer(bought["sku"])
    x = sp.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(len(users), len(items)))
    return x, users, items


def relevant(lines: pd.DataFrame, start: date, end: date, x: sp.csr_matrix, users: list[str],
             items: list[str]) -> dict[str, set[str]]:
    """Per known customer: products bought in ``start`` .. ``end``, not bought in ``x``, not returned then."""
    test = product_lines(lines, start, end)
    bought = test[test["quantity"] > 0].groupby("customer_id")["sku"].agg(set)
    returned = test[test["quantity"] < 0].groupby("customer_id")["sku"].agg(set)
    user_index = {c: r for r, c in enumerate(users)}
    item_ids = np.array(items, dtype=object)
    out: dict[str, set[str]] = {}
    for cid, skus in bought.items():
        row = user_index.get(cid)
        if row is None:
            continue
        new = skus - set(item_ids[x[row].indices].tolist()) - returned.get(cid, set())
        if new:
            out[cid] = new
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


def peer_recs(name: str, param: int | None, x: sp.csr_matrix, users: list[str], items: list[str],
              truth: dict[str, set[str]]) -> dict[str, list[str]]:
    scorer = PEERS[name](x, param)
    index = {c: r for r, c in enumerate(users)}
    rows = np.array([index[c] for c in truth], dtype=np.int64)
    top = top_k(scorer, x, rows)
    item_ids = np.array(items, dtype=object)
    return {c: item_ids[t].tolist() for c, t in zip(truth, top, strict=True)}


def tune_and_fit(lines: pd.DataFrame, train_start: date, split: date, valid: tuple[date, date], test_end: date,
                 times: dict[str, float]) -> tuple[dict[str, dict], list[str], dict[str, set[str]]]:
    """Each peer fitted before ``valid`` (first, last day), tuned on it, refitted on the whole window up to
    ``split`` and scored on the days after it up to ``test_end``."""
    log = []
    valid_start, valid_end = valid
    x_fit, u_fit, i_fit = history_matrix(lines, train_start, valid_start - timedelta(days=1))
    valid_truth = relevant(lines, valid_start, valid_end, x_fit, u_fit, i_fit)
    x, users, items = history_matrix(lines, train_start, split)
    test_truth = relevant(lines, split + timedelta(days=1), test_end, x, users, items)
    log.append(f"peers: fit {x_fit.shape[0]:,} customers x {x_fit.shape[1]:,} products ({x_fit.nnz:,} pairs), "
               f"validation {valid_start} .. {valid_end}: {len(valid_truth):,} customers; whole window "
               f"{x.shape[0]:,} x {x.shape[1]:,} ({x.nnz:,} pairs)")
    results: dict[str, dict] = {}
    for name in PEERS:
        started = time.perf_counter()
        grid = GRID.get(name, [None])
        scores = {}
        for param in grid:
            scores[param] = ranking_metrics(peer_recs(name, param, x_fit, u_fit, i_fit, valid_truth),
                                            valid_truth)["ndcg"]
        best = max(grid, key=lambda p: (scores[p], -(p or 0)))
        metrics = ranking_metrics(peer_recs(name, best, x, users, items, test_truth), test_truth)
        times[f"peer {name} (tune + refit + score)"] = time.perf_counter() - started
        results[name] = {"param": best, "valid": scores, **metrics}
        if len(grid) > 1:
            log.append(f"  {name}: validation NDCG@20 " + ", ".join(f"{p}: {s:.4f}" for p, s in scores.items())
                       + f" -> {best}")
    return results, log, test_truth


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--days", type=int, default=90, help="training window loaded through the DAGs")
    parser.add_argument("--test-days", type=int, default=31, help="days after the business date that are scored")
    parser.add_argument("--valid-days", type=int, default=0,
                        help="the peers tune on the window's last N days; 0 (default): on omnifuse's own validation "
                             "slice of that retrain (ml.training_runs), else the last 14 days")
    parser.add_argument("--empty", choices=["manifest", "header"], default="manifest",
                        help="shape of an empty delivery (web, mobile, social every day; store without sales)")
    parser.add_argument("--catalog-currency", choices=["GBP", "EUR"], default="GBP",
                        help="currency of the catalog prices (EUR: converted at the delivered rate)")
    parser.add_argument("--loader", choices=["auto", "backfill", "dag-test"], default="auto",
                        help="auto: omnifuse.backfill when it exists, else airflow_glue.run_dag_days (dates shifted)")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    times: dict[str, float] = {}

    url = isolated_url("real-data")
    from omnifuse.airflow_env import prepare_airflow
    from omnifuse.config import load_settings
    from omnifuse.realdata import online_retail

    settings = load_settings()
    commit = subprocess.run(["git", "-C", str(settings.home), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip() or f"(not a git checkout: {settings.home})"
    started = time.perf_counter()
    lines = online_retail.read_lines(args.src)
    last = lines["business_date"].max()
    test_end = last
    split = last - timedelta(days=args.test_days)
    train_start = split - timedelta(days=args.days - 1)
    times["read data set"] = time.perf_counter() - started

    shift = 0
    if not use_backfill(args.loader):
        settings = prepare_airflow(settings)  # before anything imports Airflow
        from omnifuse.airflow_glue import load_dag

        start_date = load_dag(settings, "omnifuse_ingest").start_date.date()
        if train_start < start_date:
            shift = -(-(start_date - train_start).days // 7) * 7
    currency = args.catalog_currency
    options = online_retail.ConvertOptions(shift_days=shift, empty=args.empty, catalog_currency=currency)
    started = time.perf_counter()
    summary = online_retail.convert(lines, settings.landing_dir, train_start, split, options)
    times["convert"] = time.perf_counter() - started
    days = summary.days
    business_date = days[-1]
    print(f"omnifuse {commit}; data {args.src.name}: {len(lines):,} lines {lines['business_date'].min()} .. {last}")
    print(f"training window {train_start} .. {split} ({args.days} days) loaded as {days[0]} .. {business_date}"
          + (f" (shifted +{shift} days: the DAGs run nothing before their start_date without a backfill)"
             if shift else "") + f"; test {split + timedelta(days=1)} .. {test_end} ({args.test_days} days)")
    print(f"landing zone: {summary.pos_lines:,} POS lines ({summary.negative_lines:,} negative, "
          f"{summary.anonymous_lines:,} anonymous), {len(summary.empty_store_days)} days without sales, "
          f"{summary.products:,} products, {summary.customers:,} CRM customers; catalog in {currency}; "
          f"empty deliveries as {args.empty}", flush=True)

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
    peers, log, truth = tune_and_fit(lines, train_start, split, valid, test_end, times)
    for line in log:
        print(line)
    started = time.perf_counter()
    pub = ranking_metrics(published, truth)
    times["evaluate published"] = time.perf_counter() - started
    covered = sum(1 for c in truth if published.get(c))
    repeats = repeat_share(published, lines, train_start, split, list(truth))
    print()
    print(f"top-{K}, next {args.test_days} days of purchases, items already bought excluded, returns never hits; "
          f"{len(truth):,} customers")
    print(f"| {'model':<58} | NDCG@20 | Recall@20 |")
    print(f"| {'-' * 58} | ------- | --------- |")
    labels = {"ease": "plain EASE (λ = {})", "item_knn": "plain item-kNN (cosine, {} neighbours)",
              "pure_svd": "plain PureSVD ({} factors)", "popularity": "popularity"}
    for name, r in peers.items():
        print(f"| {labels[name].format(r['param']):<58} | {r['ndcg']:.4f}  | {r['recall']:.4f}    |")
    print(f"| {'omnifuse, mart.customer_recommendations as published':<58} | {pub['ndcg']:.4f}  | "
          f"{pub['recall']:.4f}    |")
    best = max((n for n in peers if n != "popularity"), key=lambda n: peers[n]["ndcg"])
    ratio = pub["ndcg"] / peers[best]["ndcg"] if peers[best]["ndcg"] else float("nan")
    print(f"\npublished / best peer ({best}) NDCG@20: {ratio:.3f} (target >= 1.05); published lists for "
          f"{covered:,} of {len(truth):,} evaluated customers; {repeats:.1%} of their published items were "
          "bought by them in the window (never hits under this protocol)")
    print("\nwall times:")
    for name, seconds in times.items():
        print(f"  {name:<48} {seconds:8.1f} s")
    print(f"  {'total':<48} {time.perf_counter() - wall:8.1f} s")
    own, children = _peak_rss_mb()
    print(f"peak RSS: this process {own:,.0f} MB, largest child {children:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
