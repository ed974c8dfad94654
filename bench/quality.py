"""Quality gates: Great Expectations versus the same expectations as plain SQL, on a day of ≥ 1,000,000 events.

    .venv/bin/python bench/quality.py [--customers 105000]

Generates one day (about 1.05 M events with the defaults), ingests it and builds core.interactions through the
functions the DAG calls, then in the same run:

1. ``run_gate("staging")`` + ``run_gate("core")``: the full suites through GX (SQL data source, in Postgres),
   Data Docs and ``ops.dq_results`` included — what the DAG's gate tasks do;
2. the same expectations hand-translated to SQL: one aggregate query per table (each expectation a
   ``count(*) filter (...)``), the baseline a careful engineer would write without GX.

Prints both times, the ratio (target: GX ≤ 1.5× plain SQL) and the peak RSS of the benchmark process.
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta

from _isolated import empty_warehouse, isolated_url
from _report import scratch_folder
from omnifuse import warehouse
from omnifuse.config import load_settings
from omnifuse.daily import LOAD_ORDER
from omnifuse.generate import WorldConfig, generate
from omnifuse.identity import resolve_identities
from omnifuse.ingest import ingest_source
from omnifuse.interactions import build_interactions
from omnifuse.quality import GATES, _volume_history, batch_table, load_suite, rebuilt_dates, run_gate
from omnifuse.rules import resolve
from psycopg2 import sql

DAY = date(2026, 11, 2)
TARGET = 1.5  # GX gate time / the same checks as plain SQL (issue 15)


def _filter(spec: dict, suite: dict) -> sql.Composable | None:
    """The rows breaking one row-level expectation, as a SQL boolean over ``t`` (None: checked apart)."""
    kind, kw = spec["type"], resolve(dict(spec.get("kwargs", {})))
    col = sql.Identifier(kw["column"]) if "column" in kw else None
    if kind == "expect_column_values_to_not_be_null":
        return sql.SQL("{} is null").format(col)
    if kind == "expect_column_values_to_be_between":
        parts = []
        if kw.get("min_value") is not None:
            parts.append(sql.SQL("{} {} {}").format(col, sql.SQL("<=" if kw.get("strict_min") else "<"),
                                                    sql.Literal(kw["min_value"])))
        if kw.get("max_value") is not None:
            parts.append(sql.SQL("{} > {}").format(col, sql.Literal(kw["max_value"])))
        return sql.SQL(" or ").join(parts)
    if kind == "expect_column_values_to_be_in_set":
        return sql.SQL("{} not in ({})").format(col, sql.SQL(", ").join(map(sql.Literal, kw["value_set"])))
    if kind == "expect_column_value_lengths_to_equal":
        return sql.SQL("length({}) <> {}").format(col, sql.Literal(kw["value"]))
    if kind == "known_products":
        where = sql.SQL("({}) and ").format(sql.SQL(kw["where"])) if kw.get("where") else sql.SQL("")
        return sql.SQL("{}not exists (select 1 from core.products p where p.product_id = t.{})").format(where, col)
    if kind == "known_currencies":
        return sql.SQL("{c} <> 'EUR' and not exists (select 1 from core.fx_rates r where r.currency = t.{c} "
                       "and r.rate_date <= %(day)s)").format(c=col)
    if kind == "unexpected_rows":
        return sql.SQL("({})").format(sql.SQL(kw["where"]))
    if kind == "fresh_events":
        cast = sql.SQL("timestamp" if kw.get("local") else "timestamptz")
        start = "day" if suite["table"] == "core.interactions" else "late_start"
        return sql.SQL("{c} < %({s})s::date::{t} or {c} >= %(next_day)s::date::{t} + interval '1 hour'").format(
            c=col, s=sql.SQL(start), t=cast)
    if kind == "trailing_outliers":
        days = int(kw.get("days", 28))
        return sql.SQL("abs({c}) > {f} * (select percentile_cont({q}) within group (order by abs(h.{c})) "
                       "from {table} h where h._arrival_date between %(day)s::date - {days} and %(day)s::date - 1)"
                       ).format(c=col, f=sql.Literal(float(kw.get("factor", 10))),
                                q=sql.Literal(float(kw.get("quantile", 0.99))),
                                table=sql.Identifier(*suite["table"].split(".")), days=sql.Literal(days))
    return None


def _aggregate(spec: dict) -> sql.Composable | None:
    """The table-wide aggregate of a uniqueness or share expectation (None: not one)."""
    kind, kw = spec["type"], spec.get("kwargs", {})
    if kind == "expect_column_values_to_be_unique":
        return sql.SQL("count({c}) - count(distinct {c})").format(c=sql.Identifier(kw["column"]))
    if kind == "expect_compound_columns_to_be_unique":
        return sql.SQL("count(*) - count(distinct ({}))").format(
            sql.SQL(", ").join(map(sql.Identifier, kw["column_list"])))
    if kind == "expect_column_proportion_of_non_null_values_to_be_between":
        return sql.SQL("count({})::float / greatest(count(*), 1)").format(sql.Identifier(kw["column"]))
    return None


def plain_sql(url: str, gate: str) -> float:
    """Every expectation of the gate's suites by hand: one aggregate pass per batch (each row-level expectation a
    ``count(*) filter (...)``), plus the catalog, audit, volume-history and channel-mix queries the table-level
    ones need. The baseline a careful engineer would write without GX (no Data Docs, no stored results)."""
    settings = load_settings()
    first, last = rebuilt_dates(DAY, settings)
    params = {"day": DAY, "late_start": DAY - timedelta(days=settings.late_window_days),
              "next_day": DAY + timedelta(days=1), "first": first, "last": last}
    started = time.perf_counter()
    with warehouse.transaction(url) as cur:
        for name in GATES[gate]:
            suite = load_suite(name, settings)
            schema, table = batch_table(suite, DAY)
            relation = sql.Identifier(schema, table)
            if suite["batch"] == "rebuilt":
                relation = sql.SQL("(select * from {} where event_date between %(first)s and %(last)s)").format(
                    relation)
            exprs = [sql.SQL("count(*)")]
            for spec in suite["expectations"]:
                cond = _filter(spec, suite)
                if cond is not None:
                    exprs.append(sql.SQL("count(*) filter (where {})").format(cond))
                elif (agg := _aggregate(spec)) is not None:
                    exprs.append(agg)
            cur.execute(sql.SQL("select {} from {} as t").format(sql.SQL(", ").join(exprs), relation), params)
            cur.fetchall()
            kinds = {spec["type"] for spec in suite["expectations"]}
            if kinds & {"expect_table_columns_to_match_set", "expect_column_values_to_be_of_type"}:
                cur.execute("select column_name, data_type from information_schema.columns "
                            "where table_schema = %s and table_name = %s", (schema, table))
                cur.fetchall()
            if "quarantine_share" in kinds:
                cur.execute("select lines_read, rows_quarantined from ops.load_audit "
                            "where channel = %s and business_date = %s", (suite["volume"].removeprefix("staging_"),
                                                                           DAY))
                cur.fetchall()
            if "volume_band" in kinds:
                _volume_history(cur, suite["volume"], DAY)
            if "channel_mix" in kinds:
                cur.execute(sql.SQL("select channel, count(*) from {} group by 1").format(relation))
                cur.fetchall()
                cur.execute("select channel, count(*) from core.interactions where event_date between %s and %s "
                            "group by 1", (DAY - timedelta(days=7), DAY - timedelta(days=1)))
                cur.fetchall()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=105_000)
    args = parser.parse_args()
    url = isolated_url("quality")  # never the user's warehouse
    with scratch_folder("quality") as scratch:
        cfg = WorldConfig(customers=args.customers, products=5000, days=1, start=DAY, sessions_per_customer_day=2.0)
        generate(cfg, scratch)
        empty_warehouse(url)
        for name in LOAD_ORDER:
            ingest_source(name, DAY, landing_dir=scratch, url=url)
        # as the DAG: core.interactions reads only arrival batches whose staging gate passed (also the warm-up)
        run_gate("staging", DAY, url=url, run_id="warm-up", raise_on_error=False)
        resolve_identities(DAY, url=url)
        built = build_interactions(DAY, url=url, reattribution_days=0)
        with warehouse.transaction(url) as cur:
            cur.execute("select (select count(*) from staging.web_events) + (select count(*) from "
                        "staging.mobile_events) + (select count(*) from staging.social_interactions) + "
                        "(select count(*) from staging.store_sales)")
            staged = cur.fetchone()[0]
        print(f"day {DAY}: {staged:,} staged events, {built['rows']:,} interactions")
        for gate in ("staging", "core"):
            plain_sql(url, gate)  # warm the buffer cache the same way for both
            started = time.perf_counter()
            summary = run_gate(gate, DAY, url=url, run_id="bench", raise_on_error=False)
            gx_s = time.perf_counter() - started
            plain_s = plain_sql(url, gate)
            ratio = gx_s / plain_s
            print(f"{gate:8} gate: {summary['checks']} expectations ({summary['failed_error']} blocking and "
                  f"{summary['failed_warn']} warning failures); GX {gx_s:.2f} s, plain SQL {plain_s:.2f} s, "
                  f"GX/SQL = {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
