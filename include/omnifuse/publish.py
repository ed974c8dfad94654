"""Publishing for BI: score customers with the champion, build every ``mart`` table aside, check, swap.

- ``plan_batches`` / ``score_batch``: the champion (``ml.model_registry``) scores its active customers in
  batches (the DAG maps one task per batch) into ``ml.recommendation_batches``, with a reason and the
  contributing base models per recommendation;
- ``publish_mart``: in one transaction, builds ``mart.<table>__next`` for every table, runs the output checks
  (a failure raises :class:`PublishCheckError` and leaves yesterday's tables untouched), writes the dated
  history partitions, then swaps each table in by rename under a short ``lock_timeout`` (retried), and
  records ``mart.publish_log``. Readers see the old table or the new one, never half of one.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from omnifuse import warehouse
from omnifuse.config import load_settings
from omnifuse.features import CHANNELS, Dataset
from omnifuse.fusion import FusedModel

log = logging.getLogger(__name__)

TOP_K = 20
BATCH_SIZE = 5000
SWAPPED = ("customer_recommendations", "similar_products", "bought_together", "customer_segments",
           "channel_daily", "model_performance")
HISTORY = ("customer_recommendations", "customer_segments")
SEGMENTS = 5


class PublishCheckError(RuntimeError):
    """An output check failed: the previous tables stay in place."""


def champion(url: str | None = None) -> tuple[str, Path]:
    with warehouse.transaction(url) as cur:
        cur.execute("select model_version, artifact_path from ml.model_registry where status = 'champion'")
        row = cur.fetchone()
    if row is None:
        raise LookupError("ml.model_registry has no champion yet: run omnifuse_retrain first.")
    return row[0], Path(row[1])


def plan_batches(business_date: date, url: str | None = None, batch_size: int = BATCH_SIZE) -> list[int]:
    """Batch numbers covering the champion's active customers (one mapped scoring task each); forgets the
    date's batches from an earlier run that had more."""
    _, folder = champion(url)
    with np.load(folder / "dataset.npz", allow_pickle=False) as f:
        n = len(f["customers"])
    batches = list(range(max(1, -(-n // batch_size))))
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.recommendation_batches where business_date = %s and batch >= %s",
                    (business_date, len(batches)))
    return batches


def _reasons(data: Dataset, users: np.ndarray, recs: np.ndarray, contrib: np.ndarray, model_names: list[str],
             names: dict[str, str]) -> list[str]:
    """A readable reason per recommendation, from the models that proposed it and the customer's history."""
    # the customer's most recent product per category, and overall
    order = np.lexsort((data.day, data.user))
    last = pd.DataFrame({"user": data.user[order], "item": data.item[order],
                         "cat": data.category[data.item[order]]})
    last_by_cat = last.drop_duplicates(["user", "cat"], keep="last").set_index(["user", "cat"])["item"]
    store_share = data.user_features()[:, CHANNELS.index("store")]
    idx = {n: i for i, n in enumerate(model_names)}
    similar = [idx[n] for n in ("item_knn", "ease", "pure_svd", "two_tower") if n in idx]
    out = []
    for row, u in enumerate(users):
        for pos, item in enumerate(recs[row]):
            if item < 0:
                continue
            c = contrib[row, pos]
            anchor = last_by_cat.get((u, data.category[item]))
            anchor_name = names.get(data.products[anchor], data.products[anchor]) if anchor is not None else None
            if "assoc_rules" in idx and c[idx["assoc_rules"]] and anchor_name:
                out.append(f"often bought with {anchor_name}")
            elif any(c[i] for i in similar) and anchor_name and anchor != item:
                out.append(f"because you looked at {anchor_name}")
            elif store_share[u] >= 0.5 and data.in_store[item]:
                out.append("trending in stores near you")
            else:
                out.append("popular with customers like you")
    return out


def score_batch(business_date: date, batch: int, *, url: str | None = None, batch_size: int = BATCH_SIZE,
                top_k: int = TOP_K) -> dict:
    """Score one batch of the champion's customers into ``ml.recommendation_batches`` (replacing the batch)."""
    version, folder = champion(url)
    fused = FusedModel.load(folder / "fused")
    data = Dataset.load(folder / "dataset.npz")
    users = np.arange(batch * batch_size, min((batch + 1) * batch_size, data.n_users))
    exclude = data.bought().multiply(~data.repeatable[None, :]).tocsr()
    with warehouse.transaction(url) as cur:
        cur.execute("select product_id, name, stock from core.products")
        catalog = cur.fetchall()
    names = {p: n for p, n, _ in catalog}
    # stock changes daily: judge it against today's catalog, not the one the champion was trained with
    stock = {p: s for p, _, s in catalog}
    data.in_stock = np.array([stock.get(p, 0) > 0 for p in data.products])
    recs, scores, contrib = fused.rank(data, users, exclude, top_k)
    model_names = list(fused.models)
    reasons = iter(_reasons(data, users, recs, contrib, model_names, names))
    rows = []
    for row, u in enumerate(users):
        rank = 0
        for pos, item in enumerate(recs[row]):
            if item < 0:
                continue
            rank += 1
            models = "{" + ",".join(m for m, on in zip(model_names, contrib[row, pos], strict=True) if on) + "}"
            rows.append((business_date.isoformat(), batch, data.customers[u], rank, data.products[item],
                         float(scores[row, pos]), next(reasons), models, version))
    frame = pd.DataFrame(rows)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    buf.seek(0)
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.recommendation_batches where business_date = %s and batch = %s",
                    (business_date, batch))
        cur.copy_expert("copy ml.recommendation_batches (business_date, batch, customer_id, rank, product_id, score, "
                        "reason, contributing_models, model_version) from stdin with (format csv)", buf)
    return {"batch": batch, "customers": len(users), "rows": len(rows)}


def _next(table: str) -> sql.Identifier:
    return sql.Identifier("mart", f"{table}__next")


def _create_next(cur, table: str) -> None:
    """An empty copy of the live table (columns, defaults, comments) without its indexes: they are built in bulk
    after the rows are in (:func:`_index_next`), which is much faster than maintaining them row by row."""
    cur.execute(sql.SQL("drop table if exists {}").format(_next(table)))
    cur.execute(sql.SQL("create table {} (like {} including all excluding indexes)").format(
        _next(table), sql.Identifier("mart", table)))


def _index_next(cur, table: str) -> None:
    """Recreate the live table's primary key on the next table."""
    cur.execute("select string_agg(quote_ident(a.attname), ', ' order by k.ord) from pg_index i "
                "cross join unnest(i.indkey) with ordinality as k(attnum, ord) "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum "
                "where i.indrelid = %s::regclass and i.indisprimary", (f"mart.{table}",))
    columns = cur.fetchone()[0]
    if columns:
        cur.execute(sql.SQL("alter table {} add primary key ({})").format(_next(table), sql.SQL(columns)))


def _copy(cur, table: str, frame: pd.DataFrame) -> None:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, header=False)
    buf.seek(0)
    cur.copy_expert(sql.SQL("copy {} ({}) from stdin with (format csv)").format(
        _next(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))), buf)


def _similar(data: Dataset, fused: FusedModel, business_date: date, version: str, n: int = 10) -> pd.DataFrame:
    sim = fused.models["item_knn"].state["sim"].tocsr() if "item_knn" in fused.models else None
    rows = []
    if sim is not None:
        for i in range(sim.shape[0]):
            s, e = sim.indptr[i], sim.indptr[i + 1]
            order = np.argsort(-sim.data[s:e], kind="stable")[:n]
            for r, j in enumerate(order):
                rows.append((business_date, data.products[i], r + 1, data.products[sim.indices[s + j]],
                             float(sim.data[s + j]), version))
    return pd.DataFrame(rows, columns=["business_date", "product_id", "rank", "similar_product_id", "similarity",
                                       "model_version"])


def _bought_together(data: Dataset, fused: FusedModel, business_date: date, version: str, n: int = 10
                     ) -> pd.DataFrame:
    cols = ["business_date", "product_id", "rank", "other_product_id", "support", "confidence", "lift",
            "model_version"]
    if "assoc_rules" not in fused.models:
        return pd.DataFrame(columns=cols)
    rules = fused.models["assoc_rules"].rules(data).rename(columns={"product_a": "product_id",
                                                                    "product_b": "other_product_id"})
    rules = rules.sort_values(["product_id", "lift", "other_product_id"], ascending=[True, False, True])
    rules["rank"] = rules.groupby("product_id").cumcount() + 1
    rules = rules[rules["rank"] <= n]
    return rules.assign(business_date=business_date, model_version=version)[cols]


def segment_customers(activity: pd.DataFrame, previous: dict[str, np.ndarray], seed: int) -> tuple[pd.Series, dict]:
    """k-means on standardised RFM + channel mix; names matched to yesterday's centroids (Hungarian).

    Returns (segment name per activity row, centroids by name)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    x = np.column_stack([
        np.log1p(activity["recency_days"].astype(float)), np.log1p(activity["frequency"].astype(float)),
        np.log1p(activity["monetary"].astype(float).clip(lower=0)),
        activity[["web_share", "mobile_share", "social_share", "store_share"]].astype(float).to_numpy() * 2.0,
    ])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    k = min(SEGMENTS, len(activity))
    init = np.array(list(previous.values())) if len(previous) == k else "k-means++"
    km = KMeans(n_clusters=k, init=init, n_init=1 if len(previous) == k else 10, random_state=seed).fit(z)
    centroids = km.cluster_centers_
    if len(previous) == k:
        prev_names = list(previous)
        cost = ((centroids[:, None, :] - np.array([previous[n] for n in prev_names])[None]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        names = {r: prev_names[c] for r, c in zip(rows, cols, strict=True)}
    else:
        names = _describe(centroids * std + mean)
    labels = pd.Series([names[c] for c in km.labels_], index=activity.index)
    return labels, {names[i]: centroids[i] for i in range(k)}


def _describe(centroids: np.ndarray) -> dict[int, str]:
    """Human names from raw centroids: value tier + dominant channel (unique by construction of the suffix)."""
    money = centroids[:, 2]
    tiers = {i: t for i, t in zip(np.argsort(-money), ["top spenders", "regulars", "occasional", "occasional",
                                                        "occasional"], strict=False)}
    out, used = {}, set()
    for i, c in enumerate(centroids):
        channel = CHANNELS[int(np.argmax(c[3:7]))]
        name = f"{channel}-first {tiers[i]}" if c[0] < np.log1p(30) else f"lapsing {channel} customers"
        base, n = name, 2
        while name in used:
            name, n = f"{base} {n}", n + 1
        used.add(name)
        out[i] = name
    return out


def _segments(cur, business_date: date, seed: int) -> pd.DataFrame:
    cur.execute(warehouse.sql_text("publish/customer_activity.sql"), {"business_date": business_date})
    activity = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    cur.execute("select segment, centroid from ml.segment_centroids where business_date = "
                "(select max(business_date) from ml.segment_centroids where business_date < %s)", (business_date,))
    previous = {s: np.array(c) for s, c in cur.fetchall()}
    if activity.empty:
        return activity.assign(segment=[], business_date=[])
    labels, centroids = segment_customers(activity, previous, seed)
    cur.execute("delete from ml.segment_centroids where business_date = %s", (business_date,))
    for name, c in centroids.items():
        cur.execute("insert into ml.segment_centroids values (%s, %s, %s)", (business_date, name, c.tolist()))
    activity["segment"] = labels
    activity["business_date"] = business_date
    activity["recency_days"] = activity["recency_days"].astype(int)
    return activity[["business_date", "customer_id", "segment", "recency_days", "frequency", "monetary", "web_share",
                     "mobile_share", "social_share", "store_share"]]


def _check(cur, top_k: int) -> None:
    query = sql.SQL(warehouse.sql_text("publish/check_recommendations.sql")).format(
        next=_next("customer_recommendations"))
    cur.execute(query, {"top_k": top_k})
    failed = [(name, n) for name, n in cur.fetchall() if n]
    if failed:
        raise PublishCheckError(
            "mart.customer_recommendations output checks failed, nothing was published (yesterday's tables stay): "
            + "; ".join(f"{name}: {n}" for name, n in failed)
            + ". Look at ml.recommendation_batches for the date and the champion in ml.model_registry.")


def _history(cur, table: str, business_date: date, retention_days: int) -> None:
    parent = sql.Identifier("mart", f"{table}_history")
    part = sql.Identifier("mart", f"{table}_history_p{business_date:%Y%m%d}")
    cur.execute(sql.SQL("create table if not exists {} partition of {} for values in ({})").format(
        part, parent, sql.Literal(business_date.isoformat())))
    cur.execute(sql.SQL("truncate {}").format(part))
    cur.execute(sql.SQL("insert into {} select * from {}").format(part, _next(table)))
    cur.execute("select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "join pg_class p on p.oid = i.inhparent join pg_namespace n on n.oid = p.relnamespace "
                "where n.nspname = 'mart' and p.relname = %s", (f"{table}_history",))
    cutoff = f"{table}_history_p{business_date - timedelta(days=retention_days):%Y%m%d}"
    for (name,) in cur.fetchall():
        if name < cutoff:
            cur.execute(sql.SQL("drop table {}").format(sql.Identifier("mart", name)))


def _swap(cur, table: str, attempts: int = 10) -> float:
    """Rename next → live in a savepoint with a short lock_timeout, retrying; returns lock wait+hold ms."""
    live, old = sql.Identifier("mart", table), sql.Identifier(f"{table}__old")
    cur.execute("select obj_description(%s::regclass, 'pg_class')", (f"mart.{table}",))
    comment = cur.fetchone()[0]
    for attempt in range(attempts):
        cur.execute("savepoint swap")
        started = time.perf_counter()
        try:
            cur.execute("set local lock_timeout = '1s'")
            cur.execute(sql.SQL("alter table {} rename to {}").format(live, old))
            cur.execute(sql.SQL("alter table {} rename to {}").format(_next(table), sql.Identifier(table)))
            cur.execute(sql.SQL("drop table {}").format(sql.Identifier("mart", f"{table}__old")))
            cur.execute(sql.SQL("comment on table {} is {}").format(live, sql.Literal(comment)))
            cur.execute("release savepoint swap")
            return (time.perf_counter() - started) * 1000
        except psycopg2.errors.LockNotAvailable:
            cur.execute("rollback to savepoint swap")
            log.warning("swap of mart.%s waited past lock_timeout (attempt %d); retrying", table, attempt + 1)
            time.sleep(0.5 * (attempt + 1))
    raise RuntimeError(f"could not swap mart.{table}: long-running readers held it for {attempts} attempts; "
                       "clear the task to retry (nothing was published).")


def publish_mart(business_date: date, *, url: str | None = None, top_k: int = TOP_K) -> dict:
    """Build, check, record history and swap every mart table in one transaction; write ``mart.publish_log``."""
    settings = load_settings()
    version, folder = champion(url)
    fused = FusedModel.load(folder / "fused")
    data = Dataset.load(folder / "dataset.npz")
    started = time.perf_counter()
    conn = warehouse.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext('omnifuse.publish'))")
            for table in SWAPPED:
                _create_next(cur, table)
            params = {"business_date": business_date}
            for table in ("customer_recommendations", "channel_daily", "model_performance"):
                cur.execute(sql.SQL(warehouse.sql_text(f"publish/{table}.sql")).format(next=_next(table)), params)
            _copy(cur, "similar_products", _similar(data, fused, business_date, version))
            _copy(cur, "bought_together", _bought_together(data, fused, business_date, version))
            _copy(cur, "customer_segments", _segments(cur, business_date, settings.seed))
            for table in SWAPPED:
                _index_next(cur, table)
            _check(cur, top_k)
            counts = {}
            for table in SWAPPED:
                cur.execute(sql.SQL("select count(*) from {}").format(_next(table)))
                counts[table] = cur.fetchone()[0]
            for table in HISTORY:
                _history(cur, table, business_date, settings.mart_retention_days)
            swap_ms = {table: _swap(cur, table) for table in SWAPPED}
            for table in SWAPPED:
                cur.execute("insert into mart.publish_log (business_date, table_name, model_version, rows_published, "
                            "swap_lock_ms) values (%s, %s, %s, %s, %s)",
                            (business_date, f"mart.{table}", version, counts[table], swap_ms[table]))
    finally:
        conn.close()
    summary = {"business_date": business_date.isoformat(), "model_version": version, "rows": counts,
               "max_swap_ms": round(max(swap_ms.values()), 2), "seconds": round(time.perf_counter() - started, 2)}
    log.info("published %s", summary)
    return summary


def publish_date(business_date: date, *, url: str | None = None, batch_size: int = BATCH_SIZE) -> dict:
    """The whole ``omnifuse_publish`` DAG's work in one process (benchmarks and tests)."""
    for batch in plan_batches(business_date, url, batch_size):
        score_batch(business_date, batch, url=url, batch_size=batch_size)
    return publish_mart(business_date, url=url)
