"""Human-readable summaries of what a load did, read back from ``ops.load_audit``."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import psycopg2.extensions

from omnifuse import warehouse


def audit_rows(business_dates: list[date] | None = None, url: str | None = None) -> list[dict[str, Any]]:
    """``ops.load_audit`` rows (one per channel and date), optionally for some dates only."""
    query = warehouse.sql_text("report/load_audit.sql")
    with warehouse.transaction(url) as cur:
        cur.execute(query, {"dates": [d.isoformat() for d in business_dates] if business_dates else None})
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def format_audit(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table: channel, date, files, lines, staged, quarantined (by reason), duplicates."""
    width = max([len("channel"), *(len(r["channel"]) for r in rows)])
    header = (f"{'date':<10}  {'channel':<{width}} {'files':>5} {'lines':>9} {'staged':>9} {'quarant.':>8} "
              f"{'dups':>8}  reasons")
    out = [header, "-" * len(header)]
    for r in rows:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(dict(r["quarantine_by_reason"]).items())) or "-"
        out.append(
            f"{r['business_date']!s:<10}  {r['channel']:<{width}} {r['files']:>5} {r['lines_read']:>9} "
            f"{r['rows_staged']:>9} {r['rows_quarantined']:>8} {r['duplicates_dropped']:>8}  {reasons}"
        )
    return "\n".join(out)


def load_report(business_date: date, url: str | None = None) -> dict[str, object]:
    """Print the audit of one date and return totals; raises if a channel does not reconcile."""
    rows = audit_rows([business_date], url)
    print(format_audit(rows))
    for r in rows:
        if r["lines_read"] != r["rows_staged"] + r["rows_quarantined"] + r["duplicates_dropped"]:
            raise RuntimeError(
                f"ops.load_audit for {r['channel']} on {business_date} does not reconcile: {json.dumps(r, default=str)}"
            )
    return {
        "business_date": business_date.isoformat(),
        "channels": len(rows),
        "lines_read": sum(int(r["lines_read"]) for r in rows),
        "rows_quarantined": sum(int(r["rows_quarantined"]) for r in rows),
    }


def _table(cur: psycopg2.extensions.cursor, query: str, params: dict | None = None) -> list[tuple]:
    cur.execute(query, params)
    return cur.fetchall()


def pipeline_summary(business_date: date, url: str | None = None) -> str:
    """What the whole pipeline did for a date: identity, quality, models, champion, published tables."""
    with warehouse.transaction(url) as cur:
        cur.execute(warehouse.sql_text("report/pipeline_summary.sql"), {"business_date": business_date})
        facts = dict(cur.fetchall())
        models = _table(cur, warehouse.sql_text("report/model_metrics.sql"), {"business_date": business_date})
        quality = _table(cur, warehouse.sql_text("report/data_quality.sql"), {"business_date": business_date})
        published = _table(cur, warehouse.sql_text("report/published.sql"), {"business_date": business_date})
    out = [f"== {business_date} ==",
           f"identity: {facts.get('identifiers')} identifiers -> {facts.get('customers')} customers "
           f"({facts.get('merged_crm_ids')} duplicate CRM ids merged, {facts.get('shared')} shared devices guarded); "
           f"{facts.get('interactions')} interactions, {facts.get('attributed_share')} attributed",
           "", "data quality (latest gates):"]
    out += [f"  {t:<30} {c:>3} checks  {p:>3} passed  {e} blocking  {w} warnings" for t, c, p, e, w in quality]
    width = max([len(str(m)) for m, *_ in models] + [16])
    out += ["", f"  {'model (holdout)':<{width}} {'NDCG@10':>7} {'90% interval':>15} {'Recall@20':>9} {'cov@20':>7}"]
    out += [f"  {m:<{width}} {n:7.4f} {_interval(lo, hi):>15} {r:9.4f} {c:7.3f}" for m, n, lo, hi, r, c in models]
    out += ["", f"champion: {facts.get('champion')} — {facts.get('champion_reason')}", "", "published:"]
    out += [f"  {t:<36} {n:>9,} rows  replaced in {ms} ms" for t, n, ms in published]
    return "\n".join(out)


def _interval(low: float | None, high: float | None) -> str:
    return f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else "-"
