"""Publishing throughput and row-replace time, against a bare COPY of the same rows measured in the same run.

    .venv/bin/python bench/publish.py [--customers 1000000] [--k 20]

A champion is trained on the default world (so every mart table has a real model behind it) and published for
the world's own customers (``publish_date``: scoring, reasons, contributions, fallbacks — timed); then the
scoring output for ``--customers`` customers x top-``--k`` (20 M rows by default) is COPYed into
``ml.recommendation_batches`` as the mapped scoring tasks would leave it, and ``publish_mart`` — the DAG's
last task — builds every mart table aside (bulk primary keys), runs the output checks, attaches the history
partition (not a copy) and replaces each live table's rows in place (delete + insert, so REPEATABLE READ readers
keep their snapshot). Baseline: a bare COPY of the same rows into an unindexed table. Prints rows/s of both,
their ratio (target >= 0.5), the longest row replace (a lock BI reads never wait for) and the peak RSS of the
benchmark process.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
from _isolated import isolated_url, load_world
from _report import scratch_folder
from omnifuse import warehouse
from omnifuse.generate import WorldConfig
from omnifuse.mart import publish_date, publish_mart
from omnifuse.training_run import retrain

TARGET = 0.5  # publish rows/s over bare COPY rows/s (issue 15)


def _rows(customers: int, k: int, products: np.ndarray, day: str, version: str, chunk: int = 100_000):
    """CSV chunks of recommendation_batches rows: batch, customer, rank 1..k, product, decreasing score."""
    rng = np.random.default_rng(5)
    for start in range(0, customers, chunk):
        n = min(chunk, customers - start)
        cust = np.repeat(np.arange(start, start + n), k)
        rank = np.tile(np.arange(1, k + 1), n)
        # k distinct products per customer: a random offset walked with a stride coprime to the catalog
        offset = np.repeat(rng.integers(0, len(products), n), k)
        prod = products[(offset + rank * 7) % len(products)]
        score = np.round(1.0 / rank, 6)
        lines = [f"{day},{c // 5000},C{c:08d},{r},{p},{s},popular with customers like you,{{popularity}},{version}"
                 for c, r, p, s in zip(cust.tolist(), rank.tolist(), prod.tolist(), score.tolist(), strict=True)]
        yield ("\n".join(lines) + "\n").encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    url = isolated_url("publish")  # never the user's warehouse
    with scratch_folder("publish") as scratch:
        cfg = WorldConfig()
        load_world(url, cfg, scratch)
        day = cfg.start + timedelta(days=cfg.days - 1)
        version = retrain(day, url=url, require_quality=False)["gate"]["champion"]
        started = time.perf_counter()
        real = publish_date(day, url=url)  # the DAG's whole work on the world's real customers
        cov = real["coverage"]
        print(f"publish_date on the default world: {time.perf_counter() - started:.1f} s (scoring with reasons and "
              f"contributions, fallbacks, every mart table); {cov['customers_known']:,} known customers: "
              f"personalised {cov['personalised_share']:.1%}, fallback {cov['fallback_share']:.1%}")
        with warehouse.transaction(url) as cur:
            cur.execute("update core.products set stock = greatest(stock, 1)")  # every product publishable
            cur.execute("select product_id from core.products order by 1")
            products = np.array([r[0] for r in cur.fetchall()], dtype=object)
        n_rows = args.customers * args.k
        print(f"{args.customers:,} customers x top-{args.k} = {n_rows:,} rows; champion {version}")

        # the rows are rendered once to a file: both timed paths then start from the same bytes
        rows_file = scratch / "recommendations.csv"
        with open(rows_file, "wb") as fh:
            for block in _rows(args.customers, args.k, products, day.isoformat(), version):
                fh.write(block)
        with warehouse.transaction(url) as cur, open(rows_file, "rb") as fh:
            cur.execute("truncate ml.recommendation_batches")
            cur.copy_expert("copy ml.recommendation_batches (business_date, batch, customer_id, rank, product_id, "
                            "score, reason, contributing_models, model_version) from stdin with (format csv)", fh,
                            size=1 << 20)
        started = time.perf_counter()
        summary = publish_mart(day, url=url, top_k=args.k)
        publish_s = time.perf_counter() - started

        started = time.perf_counter()
        with warehouse.transaction(url) as cur, open(rows_file, "rb") as fh:
            cur.execute("create table public.bench_bare (like ml.recommendation_batches excluding indexes)")
            cur.copy_expert("copy public.bench_bare (business_date, batch, customer_id, rank, product_id, score, "
                            "reason, contributing_models, model_version) from stdin with (format csv)", fh,
                            size=1 << 20)
            cur.execute("drop table public.bench_bare")
        copy_s = time.perf_counter() - started
        print(f"publish_mart: {publish_s:.1f} s = {n_rows / publish_s:,.0f} rows/s "
              f"(all mart tables, checks, history partition, swaps)")
        print(f"bare COPY of the same rows: {copy_s:.1f} s = {n_rows / copy_s:,.0f} rows/s")
        ratio = copy_s / publish_s
        print(f"ratio publish / bare COPY = {ratio:.2f} "
              f"(target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'})")
        print(f"longest row replace: {summary['max_swap_ms']:.1f} ms (BI reads never wait for it; a table-level "
              "lock such as VACUUM FULL would)")
        print(f"publish_mart phases (s): {summary['phase_seconds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
