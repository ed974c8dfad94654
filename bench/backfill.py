"""A year of history through the real DAGs with ``omnifuse backfill``, against one day's plain work.

    .venv/bin/python bench/backfill.py [--days 365] [--customers 2000] [--retrain last|none]

1. Generates ``--days`` of the ``wholesale`` profile (wholesale quantities, returns, fees, closed Sundays and
   holidays, customers who come and go) from 2011-01-01, years before the DAGs' start_date.
2. Baseline, in the same run: one business date's work as plain function calls (``omnifuse.daily.run_day``:
   the same loads, gates, identity and interactions, no Airflow), on a throw-away copy of the warehouse.
3. ``omnifuse.backfill.backfill`` over every date (``omnifuse_ingest`` per date through ``dag.test()``, every
   task instance checked), then retrain and publish for the last date.
Prints dates per minute, seconds per date, the per-date Airflow overhead against the plain day, the time a
year takes at that pace (target ≤ 10 min), and peak RSS. Every date passes the same gates and reconciliation.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date, timedelta

from _isolated import empty_warehouse, isolated_url

START = date(2011, 1, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--retrain", choices=["last", "none"], default="last")
    args = parser.parse_args(argv)

    url = isolated_url("backfill")
    from omnifuse import warehouse
    from omnifuse.backfill import backfill
    from omnifuse.config import load_settings
    from omnifuse.daily import run_day
    from omnifuse.generate import WorldConfig, generate

    settings = load_settings()
    landing = settings.landing_dir
    end = START + timedelta(days=args.days - 1)
    started = time.perf_counter()
    generate(WorldConfig(customers=args.customers, products=args.products, days=args.days, start=START, seed=11,
                         profile="wholesale"), landing)
    print(f"generated {args.days} days of the wholesale profile in {time.perf_counter() - started:.0f}s", flush=True)

    # baseline: the first two dates as plain calls (the second one timed: warm imports, a day of history)
    plain = []
    for day in (START, START + timedelta(days=1)):
        t = time.perf_counter()
        run_day(day, landing, url)
        plain.append(time.perf_counter() - t)
    empty_warehouse(url)  # the backfill starts from an empty warehouse

    t = time.perf_counter()
    outcomes = backfill(START, end, retrain=args.retrain, report=None)
    total = time.perf_counter() - t
    ingest = [o for o in outcomes if o.dag_id == "omnifuse_ingest"]
    ingest_s = sum(o.seconds for o in ingest)
    others = {o.dag_id: o.seconds for o in outcomes if o.dag_id != "omnifuse_ingest"}
    with warehouse.transaction(url) as cur:
        cur.execute("select count(*) filter (where lines_read > 0), sum(lines_read), sum(rows_staged), "
                    "sum(rows_quarantined) from ops.load_audit where channel = 'store'")
        trading_days, lines, staged, quarantined = (int(v or 0) for v in cur.fetchone())
        cur.execute("select count(*) from core.usable_dates")
        usable = cur.fetchone()[0]
        cur.execute("select count(*) from core.interactions where event_type = 'return'")
        returns = cur.fetchone()[0]
    per_day = ingest_s / len(ingest)
    print()
    print(f"{'':34s} {'value':>12s}")
    print(f"{'business dates ingested':34s} {len(ingest):>12,d}")
    print(f"{'store lines read / staged':34s} {lines:>6,d} / {staged:,d} ({quarantined:,d} quarantined)")
    print(f"{'store lines per trading day':34s} {lines / max(1, trading_days):>12,.0f}")
    print(f"{'usable dates (both gates passed)':34s} {usable:>12,d}")
    print(f"{'return events':34s} {returns:>12,d}")
    print(f"{'plain day (run_day, no Airflow)':34s} {plain[1]:>11.2f}s")
    print(f"{'ingest DAG run per date':34s} {per_day:>11.2f}s")
    print(f"{'Airflow overhead per date':34s} {per_day - plain[1]:>11.2f}s ({per_day / plain[1]:.2f}x the plain day)")
    print(f"{'dates per minute':34s} {len(ingest) / ingest_s * 60:>12.1f}")
    for dag_id, seconds in others.items():
        print(f"{dag_id + ' (last date)':34s} {seconds:>11.1f}s")
    print(f"{'backfill wall time':34s} {total:>11.1f}s")
    print(f"{'a year at this pace':34s} {365 * per_day / 60 + sum(others.values()) / 60:>10.1f} min (target <= 10)")
    print(f"{'peak RSS of this process':34s} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:>10.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
