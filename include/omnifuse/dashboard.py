"""Data behind the omnifuse view in the Airflow UI (``plugins/omnifuse_dashboard.py``): plain functions
returning JSON-able rows, and the HTML page (server-rendered, an inline SVG chart: no scripts, no CDN).

Everything is read as the read-only BI role (``OMNIFUSE_BI_ROLE``): ``mart`` tables and the two ``mart``
functions of migration 0012, nothing else."""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal

from omnifuse import warehouse

PALETTE = ["#1b6ca8", "#e07b39", "#3a9d5d", "#c0392b", "#8e44ad", "#7f8c8d", "#16a085", "#d4ac0d", "#2c3e50",
           "#e84393", "#6c5ce7", "#00b894"]


def _rows(name: str, params: dict | None = None, url: str | None = None) -> list[dict]:
    """Rows of ``sql/dashboard/<name>.sql``, read as the read-only BI role (``mart`` only), never as the owner."""
    with warehouse.transaction(warehouse.bi_url(url)) as cur:
        cur.execute(warehouse.sql_text(f"dashboard/{name}.sql"), params or {})
        cols = [c.name for c in cur.description]
        return [{k: _plain(v) for k, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


def _plain(v):
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


def model_ndcg(days: int = 14, url: str | None = None) -> list[dict]:
    return _rows("model_ndcg", {"days": days}, url)


def data_quality(days: int = 7, url: str | None = None) -> list[dict]:
    return _rows("data_quality", {"days": days}, url)


def freshness(url: str | None = None) -> list[dict]:
    return _rows("freshness", url=url)


def recommendations(customer_id: str, url: str | None = None) -> list[dict]:
    return _rows("customer_recommendations", {"customer_id": customer_id}, url)


def _chart(points: list[dict]) -> str:
    """An SVG line chart of NDCG@10 per model over days (one dot per day when there is a single day)."""
    if not points:
        return "<p>No retraining has been published yet.</p>"
    days = sorted({p["business_date"] for p in points})
    models = sorted({p["model_name"] for p in points})
    top = max(p["ndcg10"] for p in points) * 1.1 or 1.0
    w, h, pad = 720, 260, 40

    def x(d):
        return pad + (days.index(d) + 0.5) * (w - 2 * pad) / len(days)

    def y(v):
        return h - pad - v / top * (h - 2 * pad)

    parts = [f'<svg role="img" aria-label="NDCG@10 per model" width="{w + 220}" height="{h}" '
             f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">',
             f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#999"/>']
    for tick in range(5):
        v = top * tick / 4
        parts.append(f'<text x="4" y="{y(v) + 4:.0f}">{v:.2f}</text>')
    for d in days:
        parts.append(f'<text x="{x(d) - 30:.0f}" y="{h - pad + 16}">{d}</text>')
    for i, m in enumerate(models):
        color = PALETTE[i % len(PALETTE)]
        series = sorted((p for p in points if p["model_name"] == m), key=lambda p: p["business_date"])
        width = 3 if m == "fused_with_rules" else 1.5
        coords = " ".join(f"{x(p['business_date']):.1f},{y(p['ndcg10']):.1f}" for p in series)
        if len(series) > 1:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{coords}"/>')
        for p in series:
            parts.append(f'<circle cx="{x(p["business_date"]):.1f}" cy="{y(p["ndcg10"]):.1f}" r="{width + 1}" '
                         f'fill="{color}"><title>{html.escape(m)} {p["ndcg10"]:.4f}</title></circle>')
        parts.append(f'<rect x="{w - 10}" y="{pad + i * 16}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{w + 5}" y="{pad + i * 16 + 9}">{html.escape(m)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "<p>Nothing yet.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(customer_id: str | None = None, days: int = 14, url: str | None = None) -> str:
    """The whole view as one HTML document."""
    quality = data_quality(days, url)
    for r in quality:
        r["status"] = "PASS" if r["usable"] else "FAIL"
    recs = recommendations(customer_id, url) if customer_id else []
    lookup = (f"<h2>Recommendations for {html.escape(customer_id)}</h2>"
              + (_table(recs, ["rank", "product_id", "name", "category", "price", "score", "reason", "model_version"])
                 if recs else "<p>No published recommendations for this customer id.</p>")) if customer_id else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omnifuse — models and data health</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
th {{ background: #f4f6f8; }}
td:first-child {{ white-space: nowrap; }}
form input {{ padding: 4px; }}
</style></head><body>
<h1>omnifuse — models and data health</h1>
<h2>NDCG@10 on the holdout, last {days} days (thick: the fused model with business rules)</h2>
{_chart(model_ndcg(days, url))}
<h2>Data quality per table</h2>
{_table(quality, ["business_date", "table_name", "status", "checks", "passed", "failed_error", "failed_warn"])}
<h2>Freshness</h2>
{_table(freshness(url), ["stage", "latest_date", "updated_at", "row_count"])}
<h2>Look up a customer</h2>
<form method="get" action=""><input name="customer_id" placeholder="customer id, e.g. C0000001"
 value="{html.escape(customer_id or '')}"> <button type="submit">Show recommendations</button></form>
{lookup}
</body></html>"""
