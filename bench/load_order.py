"""Scenario 23 at full size: 30 days loaded in shuffled order through the real ingest DAG equal the same days
loaded in order, table by table.

    .venv/bin/python bench/load_order.py [--days 30] [--customers 800] [--products 200]

1. Generates a messy world of ``--days`` days (late events, clock skew, re-delivered files, shared tablets,
   duplicate CRM records).
2. Reference, in the same run: every day in order as plain calls (``omnifuse.daily.run_day``: the DAG's
   functions in its order, gates included).
3. The same days in a seeded shuffled order through the real ``omnifuse_ingest`` DAG (``omnifuse backfill
   --order shuffled --retrain none``: ``dag.test()`` per date, every task instance checked).
Prints each table's row count and whether its digest (``omnifuse.digest``: every column but those recording
when or by which run) equals the reference's, the wall times, and exits 1 if any table differs.
The suite's ``tests/integration/test_load_order.py`` runs 6 days both ways with ``run_day``; this is the 30-day,
real-DAG version, too long for the suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta

from _isolated import empty_warehouse, isolated_url

START = date(2026, 10, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--customers", type=int, default=800)
    parser.add_argument("--products", type=int, default=200)
    args = parser.parse_args(argv)

    url = isolated_url("load-order")
    from omnifuse import warehouse
    from omnifuse.backfill import backfill, order_dates
    from omnifuse.config import load_settings
    from omnifuse.daily import run_day
    from omnifuse.digest import load_digests
    from omnifuse.generate import WorldConfig, generate

    settings = load_settings()
    end = START + timedelta(days=args.days - 1)
    generate(WorldConfig(customers=args.customers, products=args.products, days=args.days, start=START, seed=23),
             settings.landing_dir)
    started = time.perf_counter()
    for i in range(args.days):
        run_day(START + timedelta(days=i), settings.landing_dir, url)
    in_order_s = time.perf_counter() - started
    with warehouse.transaction(url) as cur:
        reference = load_digests(cur)
    empty_warehouse(url)

    started = time.perf_counter()
    backfill(START, end, retrain="none", order="shuffled", report=None)
    shuffled_s = time.perf_counter() - started
    with warehouse.transaction(url) as cur:
        shuffled = load_digests(cur)

    order = order_dates([START + timedelta(days=i) for i in range(args.days)], "shuffled", settings.seed)
    print(f"\nshuffled order: {', '.join(d.strftime('%d') for d in order)}")
    print(f"{'table':32s} {'rows':>10s}  same as in order")
    for table, (rows, _) in reference.items():
        print(f"{table:32s} {rows:>10,d}  {'yes' if shuffled[table] == reference[table] else 'NO'}")
    print(f"in order, plain calls:        {in_order_s:7.1f}s")
    print(f"shuffled, real ingest DAG:    {shuffled_s:7.1f}s")
    differ = [t for t in reference if shuffled[t] != reference[t]]
    print("every table equal" if not differ else f"DIFFERENT: {', '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
