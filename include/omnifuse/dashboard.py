"""Data behind the omnifuse view in the Airflow UI (``plugins/omnifuse_dashboard.py``): plain functions returning
JSON-able rows, and the HTML page, server-rendered with inline SVG charts (no script, no CDN, nothing to vendor).

The charts, all over business dates:

- NDCG@10 on the holdout of the fused model (with business rules) and of every base model, with the 90 % bootstrap
  interval over customers as a band (a whisker when there is a single day);
- data quality per table and day: pass / warn (only warnings failed) / block (a blocking expectation failed);
- load volumes (rows staged) per channel and day, and the quarantine rate per channel and day;
- publish coverage: the share of known customers with a personalised list and with a fallback, per day;

and a customer lookup showing each recommendation's reason and the base models' contributions behind it
(``mart.recommendation_contributions``).

Everything is read as the read-only BI role (``OMNIFUSE_BI_ROLE``): ``mart`` tables and the ``mart`` functions of
migrations 0012 and 0016, nothing else."""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from omnifuse import warehouse

PALETTE = ["#1b6ca8", "#e07b39", "#3a9d5d", "#c0392b", "#8e44ad", "#7f8c8d", "#16a085", "#d4ac0d", "#2c3e50",
           "#e84393", "#6c5ce7", "#00b894"]
#: The model the champion gate judges: the fusion with business rules.
FUSED = "fused_with_rules"
STATUS_COLOURS = {"pass": "#3a9d5d", "warn": "#e0a800", "block": "#c0392b"}


def _rows(name: str, params: dict | None = None, url: str | None = None) -> list[dict]:
    """Rows of ``sql/dashboard/<name>.sql``, read as the read-only BI role (``mart`` only), never as the owner."""
    with warehouse.transaction(warehouse.bi_url(url)) as cur:
        cur.execute(warehouse.sql_text(f"dashboard/{name}.sql"), params or {})
        cols = [c.name for c in cur.description]
        return [{k: _plain(v) for k, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


def _plain(v: object) -> object:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


def model_ndcg(days: int = 14, url: str | None = None) -> list[dict]:
    """Per business date and model (latest daily run): ``ndcg10``, ``ci_low``, ``ci_high``, ``is_champion``."""
    return _rows("model_ndcg", {"days": days}, url)


def data_quality(days: int = 7, url: str | None = None) -> list[dict]:
    """Per business date and table: checks, passed, failed_error, failed_warn, usable, status (pass/warn/block)."""
    return _rows("data_quality", {"days": days}, url)


def freshness(url: str | None = None) -> list[dict]:
    return _rows("freshness", url=url)


def load_volumes(days: int = 14, url: str | None = None) -> list[dict]:
    """Per business date and channel: files, lines_read, rows_staged, rows_quarantined, duplicates_dropped,
    quarantine_rate."""
    return _rows("load_volumes", {"days": days}, url)


def publish_coverage(days: int = 14, url: str | None = None) -> list[dict]:
    """Per business date (latest publish): model_version, rows_published, customers_known, personalised_share,
    fallback_share, live."""
    return _rows("publish_coverage", {"days": days}, url)


def recommendations(customer_id: str, url: str | None = None) -> list[dict]:
    """One customer's published list, best first, each with its ``contributions`` (model, weight, normalised score,
    contribution; empty for fallback rows)."""
    recs = _rows("customer_recommendations", {"customer_id": customer_id}, url)
    if not recs:
        return recs
    by_rank: dict[int, list[dict]] = {}
    for c in _rows("recommendation_contributions", {"customer_id": customer_id}, url):
        by_rank.setdefault(c["rank"], []).append(
            {k: c[k] for k in ("model_name", "weight", "normalised_score", "contribution", "method")})
    for r in recs:
        r["contributions"] = by_rank.get(r["rank"], [])
    return recs


# --- charts (inline SVG) -------------------------------------------------------------------------------------

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 620, 240, 48, 12, 14, 34
LEGEND_W = 190


def _svg_open(label: str, height: int = H) -> list[str]:
    return [f'<svg role="img" aria-label="{html.escape(label)}" viewBox="0 0 {W + LEGEND_W} {height}" '
            f'width="{W + LEGEND_W}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
            'font-family="system-ui, sans-serif" font-size="11">']


def _axes(days: list[str], top: float, fmt: Callable[[float], str]) -> tuple[list[str], Callable, Callable]:
    """Axes, gridlines and labels of a chart over ``days`` from 0 to ``top``; returns (parts, x, y)."""
    plot_w, plot_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(d: str) -> float:
        return PAD_L + (days.index(d) + 0.5) * plot_w / len(days)

    def y(v: float) -> float:
        return PAD_T + plot_h - max(0.0, min(v, top)) / top * plot_h

    parts = []
    for tick in range(5):
        v = top * tick / 4
        parts.append(f'<line x1="{PAD_L}" y1="{y(v):.1f}" x2="{W - PAD_R}" y2="{y(v):.1f}" stroke="#e3e6ea"/>'
                     f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{fmt(v)}</text>')
    step = max(1, len(days) // 8)
    for i, d in enumerate(days):
        if i % step == 0 or i == len(days) - 1:
            parts.append(f'<text x="{x(d):.1f}" y="{H - PAD_B + 16}" text-anchor="middle" fill="#555">{d}</text>')
    parts.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#888"/>')
    return parts, x, y


def _legend(items: list[tuple[str, str, bool]]) -> list[str]:
    """Legend entries (name, colour, emphasised) to the right of the plot."""
    out = []
    for i, (name, colour, strong) in enumerate(items):
        top = PAD_T + i * 16
        weight = ' font-weight="bold"' if strong else ""
        out.append(f'<rect x="{W + 8}" y="{top}" width="12" height="10" fill="{colour}"/>'
                   f'<text x="{W + 26}" y="{top + 9}"{weight}>{html.escape(name)}</text>')
    return out


def _nice_top(values: list[float]) -> float:
    top = max([v for v in values if v is not None] or [0.0])
    return top * 1.1 if top > 0 else 1.0


def line_chart(series: dict[str, list[dict]], *, label: str, value: str = "value", low: str | None = None,
               high: str | None = None, banded: set[str] | frozenset[str] = frozenset(), strong: str | None = None,
               fmt: Callable[[float], str] = lambda v: f"{v:.2f}", top: float | None = None) -> str:
    """Lines over business dates, one per series (rows with ``business_date`` and ``value``), with an interval band
    (``low``..``high``) for the series in ``banded``: a shaded polygon over several days, a whisker on one."""
    points = [p for rows in series.values() for p in rows]
    if not points:
        return "<p class=empty>Nothing yet.</p>"
    days = sorted({p["business_date"] for p in points})
    top = top or _nice_top([p[value] for p in points] + [p.get(high) for p in points if high and p.get(high)])
    parts = _svg_open(label)
    axes, x, y = _axes(days, top, fmt)
    parts += axes
    legend = []
    for i, (name, rows) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        rows = sorted(rows, key=lambda p: p["business_date"])
        width = 3.0 if name == strong else 1.5
        if name in banded and low and high:
            ok = [p for p in rows if p.get(low) is not None and p.get(high) is not None]
            if len(ok) > 1:
                upper = " ".join(f"{x(p['business_date']):.1f},{y(p[high]):.1f}" for p in ok)
                lower = " ".join(f"{x(p['business_date']):.1f},{y(p[low]):.1f}" for p in reversed(ok))
                parts.append(f'<polygon class="band" points="{upper} {lower}" fill="{colour}" fill-opacity="0.15"/>')
            for p in ok:
                cx = x(p["business_date"])
                parts.append(f'<path class="whisker" d="M{cx - 5:.1f},{y(p[high]):.1f}h10M{cx:.1f},{y(p[high]):.1f}'
                             f'V{y(p[low]):.1f}M{cx - 5:.1f},{y(p[low]):.1f}h10" stroke="{colour}" '
                             f'stroke-width="1.2" fill="none"/>')
        if len(rows) > 1:
            coords = " ".join(f"{x(p['business_date']):.1f},{y(p[value]):.1f}" for p in rows)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{coords}"/>')
        for p in rows:
            interval = (f" [{fmt(p[low])}, {fmt(p[high])}]" if low and high and p.get(low) is not None
                        and p.get(high) is not None else "")
            parts.append(f'<circle cx="{x(p["business_date"]):.1f}" cy="{y(p[value]):.1f}" r="{width + 1}" '
                         f'fill="{colour}"><title>{html.escape(name)} {p["business_date"]}: '
                         f'{fmt(p[value])}{interval}</title></circle>')
        legend.append((name, colour, name == strong))
    parts += _legend(legend)
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(stacks: dict[str, dict[str, float]], *, label: str, order: list[str] | None = None,
                 colours: dict[str, str] | None = None, fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
                 top: float | None = None) -> str:
    """One stacked bar per business date (``stacks[day][part] = value``), parts in ``order``."""
    if not stacks:
        return "<p class=empty>Nothing yet.</p>"
    days = sorted(stacks)
    order = order or sorted({k for parts in stacks.values() for k in parts})
    colours = colours or {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(order)}
    top = top or _nice_top([sum(v for v in parts.values() if v) for parts in stacks.values()])
    parts = _svg_open(label)
    axes, x, y = _axes(days, top, fmt)
    parts += axes
    bar = min(48.0, (W - PAD_L - PAD_R) / len(days) * 0.6)
    for d in days:
        base = 0.0
        for k in order:
            v = stacks[d].get(k) or 0.0
            if v <= 0:
                continue
            parts.append(f'<rect x="{x(d) - bar / 2:.1f}" y="{y(base + v):.1f}" width="{bar:.1f}" '
                         f'height="{max(0.5, y(base) - y(base + v)):.1f}" fill="{colours[k]}">'
                         f'<title>{html.escape(k)} {d}: {fmt(v)}</title></rect>')
            base += v
    parts += _legend([(k, colours[k], False) for k in order])
    parts.append("</svg>")
    return "".join(parts)


def quality_grid(rows: list[dict], label: str = "data quality per table and day") -> str:
    """A grid: one row per table, one column per business date, a cell coloured pass / warn / block."""
    if not rows:
        return "<p class=empty>No gate has run yet.</p>"
    days = sorted({r["business_date"] for r in rows})
    tables = sorted({r["table_name"] for r in rows})
    cell = {(r["table_name"], r["business_date"]): r for r in rows}
    name_w, cw, ch = 200, max(44, min(90, (W + LEGEND_W - 200) // max(1, len(days)))), 20
    height = 24 + ch * len(tables) + 26
    parts = [f'<svg role="img" aria-label="{html.escape(label)}" viewBox="0 0 {W + LEGEND_W} {height}" '
             f'width="{W + LEGEND_W}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
             'font-family="system-ui, sans-serif" font-size="11">']
    for j, d in enumerate(days):
        parts.append(f'<text x="{name_w + j * cw + cw / 2:.0f}" y="14" text-anchor="middle" fill="#555">{d[5:]}'
                     f'<title>{d}</title></text>')
    for i, t in enumerate(tables):
        top = 22 + i * ch
        parts.append(f'<text x="{name_w - 8}" y="{top + 14}" text-anchor="end">{html.escape(t)}</text>')
        for j, d in enumerate(days):
            r = cell.get((t, d))
            if r is None:
                continue
            colour = STATUS_COLOURS[r["status"]]
            parts.append(f'<rect class="dq-{r["status"]}" x="{name_w + j * cw + 1}" y="{top + 1}" width="{cw - 2}" '
                         f'height="{ch - 2}" rx="3" fill="{colour}"><title>{html.escape(t)} {d}: {r["status"]} — '
                         f'{r["passed"]}/{r["checks"]} passed, {r["failed_error"]} blocking, {r["failed_warn"]} '
                         f'warnings</title></rect>'
                         f'<text x="{name_w + j * cw + cw / 2:.0f}" y="{top + 14}" text-anchor="middle" fill="#fff" '
                         f'pointer-events="none">{r["passed"]}/{r["checks"]}</text>')
    legend_y = 22 + ch * len(tables) + 8
    for k, (status, colour) in enumerate(STATUS_COLOURS.items()):
        parts.append(f'<rect x="{name_w + k * 70}" y="{legend_y}" width="12" height="10" fill="{colour}"/>'
                     f'<text x="{name_w + k * 70 + 16}" y="{legend_y + 9}">{status}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _is_base_model(name: str) -> bool:
    """A base model's own row (not a fusion variant, not a model re-scored with the business rules, not the
    ``served`` alias of whichever configuration is served)."""
    return not name.startswith("fusion_") and not name.endswith("_with_rules") and name != "served"


def interval_chart(rows: list[dict], *, label: str, value: str, low: str, high: str, strong: str | None = None,
                   fmt: Callable[[float], str] = lambda v: f"{v:.3f}") -> str:
    """One row per model: the value as a dot and its interval as a bar (a forest plot), best first."""
    rows = sorted(rows, key=lambda r: -r[value])
    if not rows:
        return "<p class=empty>Nothing yet.</p>"
    name_w, row_h = 150, 20
    height = PAD_T + row_h * len(rows) + 30
    top = _nice_top([r.get(high) or r[value] for r in rows])
    plot_w = W + LEGEND_W - name_w - 60

    def x(v: float) -> float:
        return name_w + max(0.0, min(v, top)) / top * plot_w

    parts = _svg_open(label, height)
    for tick in range(5):
        v = top * tick / 4
        parts.append(f'<line x1="{x(v):.1f}" y1="{PAD_T - 4}" x2="{x(v):.1f}" y2="{height - 26}" stroke="#e3e6ea"/>'
                     f'<text x="{x(v):.1f}" y="{height - 12}" text-anchor="middle" fill="#555">{fmt(v)}</text>')
    for i, r in enumerate(rows):
        cy = PAD_T + i * row_h + row_h / 2
        colour = PALETTE[0] if r["model_name"] == strong else "#52606d"
        weight = ' font-weight="bold"' if r["model_name"] == strong else ""
        parts.append(f'<text x="{name_w - 8}" y="{cy + 4:.1f}" text-anchor="end"{weight}>'
                     f'{html.escape(r["model_name"])}</text>')
        if r.get(low) is not None and r.get(high) is not None:
            parts.append(f'<rect class="interval" x="{x(r[low]):.1f}" y="{cy - 3:.1f}" '
                         f'width="{max(1.0, x(r[high]) - x(r[low])):.1f}" height="6" rx="3" fill="{colour}" '
                         f'fill-opacity="0.3"/>')
        interval = (f" [{fmt(r[low])}, {fmt(r[high])}]" if r.get(low) is not None and r.get(high) is not None
                    else "")
        parts.append(f'<circle cx="{x(r[value]):.1f}" cy="{cy:.1f}" r="4" fill="{colour}"><title>'
                     f'{html.escape(r["model_name"])}: {fmt(r[value])}{interval}</title></circle>'
                     f'<text x="{x(r.get(high) or r[value]) + 6:.1f}" y="{cy + 4:.1f}" fill="#52606d">'
                     f'{fmt(r[value])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def model_chart(points: list[dict]) -> str:
    """NDCG@10 of the fused model and of every base model: over the days (bands for the fused model and the best
    base model of the latest day), and on the latest day with every model's interval."""
    chosen = [p for p in points if p["model_name"] == FUSED or _is_base_model(p["model_name"])]
    if not chosen:
        return "<p class=empty>No retraining has been published yet.</p>"
    last = max(p["business_date"] for p in chosen)
    latest = [p for p in chosen if p["business_date"] == last]
    forest = (f"<h3>{last}: every model with its 90 % bootstrap interval over customers</h3>"
              + interval_chart(latest, label=f"NDCG@10 per model on {last}", value="ndcg10", low="ci_low",
                               high="ci_high", strong=FUSED))
    days = sorted({p["business_date"] for p in chosen})
    if len(days) < 2:
        return f"<p class=note>One retraining day so far: the chart over time starts with the second.</p>{forest}"
    series: dict[str, list[dict]] = {}
    for p in chosen:
        series.setdefault(p["model_name"], []).append(p)
    base = [p for p in latest if _is_base_model(p["model_name"])]
    best = max(base, key=lambda p: p["ndcg10"])["model_name"] if base else None
    ordered = {FUSED: series.pop(FUSED)} if FUSED in series else {}
    ordered.update(sorted(series.items()))
    over_time = line_chart(ordered, label="NDCG@10 per model and day, with 90 % bootstrap intervals",
                           value="ndcg10", low="ci_low", high="ci_high",
                           banded={FUSED} | ({best} if best else set()), strong=FUSED,
                           fmt=lambda v: f"{v:.3f}")
    return f"<h3>over the days (bands: {FUSED} and the best base model, {best})</h3>{over_time}{forest}"


def _contribution_bar(contributions: list[dict], colours: dict[str, str]) -> str:
    """A small horizontal bar: each model's share of the positive contributions behind one recommendation."""
    positive = [c for c in contributions if c["contribution"] > 0]
    total = sum(c["contribution"] for c in positive)
    if not positive or total <= 0:
        return ""
    parts, left, width = ['<svg width="160" height="12" xmlns="http://www.w3.org/2000/svg">'], 0.0, 160.0
    for c in positive:
        w = c["contribution"] / total * width
        parts.append(f'<rect x="{left:.1f}" y="0" width="{w:.1f}" height="12" fill="{colours[c["model_name"]]}">'
                     f'<title>{html.escape(c["model_name"])}: {c["contribution"]:.3f}</title></rect>')
        left += w
    parts.append("</svg>")
    return "".join(parts)


def explanation_table(recs: list[dict]) -> str:
    """The customer's list: product, score, the reason and the contributions of the base models behind it."""
    models = sorted({c["model_name"] for r in recs for c in r.get("contributions", [])})
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    head = ("<tr><th>rank</th><th>product</th><th>category</th><th>price</th><th>score</th><th>reason</th>"
            "<th>why: the models behind it (weight × normalised score)</th></tr>")
    body = []
    for r in recs:
        contributions = r.get("contributions", [])
        detail = ", ".join(f'<span style="color:{colours[c["model_name"]]}">■</span> {html.escape(c["model_name"])} '
                           f'{c["weight"]:.2f} × {c["normalised_score"]:.2f} = {c["contribution"]:+.3f}'
                           for c in contributions) or "<i>fallback list: no model scored it</i>"
        name = html.escape(str(r.get("name") or ""))
        body.append(f'<tr><td>{r["rank"]}</td><td><b>{html.escape(r["product_id"])}</b> {name}</td>'
                    f'<td>{html.escape(str(r.get("category") or ""))}</td><td>{html.escape(str(r.get("price") or ""))}'
                    f'</td><td>{r["score"]}</td><td>{html.escape(r["reason"])}</td>'
                    f'<td class=why>{_contribution_bar(contributions, colours)}<div>{detail}</div></td></tr>')
    version = html.escape(str(recs[0].get("model_version"))) if recs else ""
    return (f"<p>Published {html.escape(str(recs[0].get('business_date')))} by model version <b>{version}</b>.</p>"
            f"<table class=recs><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "<p class=empty>Nothing yet.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _volume_charts(volumes: list[dict]) -> tuple[str, str]:
    stacks: dict[str, dict[str, float]] = {}
    rates: dict[str, list[dict]] = {}
    for v in volumes:
        stacks.setdefault(v["business_date"], {})[v["channel"]] = v["rows_staged"]
        rates.setdefault(v["channel"], []).append({"business_date": v["business_date"],
                                                   "value": v["quarantine_rate"] * 100})
    channels = sorted({v["channel"] for v in volumes})
    staged = stacked_bars(stacks, label="rows staged per channel and day", order=channels)
    top = max([p["value"] for r in rates.values() for p in r] + [0.5]) * 1.2
    quarantine = line_chart(dict(sorted(rates.items())), label="quarantine rate per channel and day (%)",
                            fmt=lambda v: f"{v:.1f}%", top=top)
    return staged, quarantine


def _coverage_chart(coverage: list[dict]) -> str:
    stacks = {c["business_date"]: {"personalised": (c["personalised_share"] or 0) * 100,
                                   "fallback": (c["fallback_share"] or 0) * 100} for c in coverage}
    return stacked_bars(stacks, label="share of known customers with a published list (%)",
                        order=["personalised", "fallback"], colours={"personalised": "#1b6ca8", "fallback": "#e07b39"},
                        fmt=lambda v: f"{v:.0f}%", top=100.0)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 20px; color: #1f2933;
       background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 0 0 8px; }
h3 { font-size: 12.5px; font-weight: 600; color: #3e4c59; margin: 10px 0 4px; }
.sub { color: #52606d; margin: 0 0 16px; font-size: 13px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(820px, 1fr)); gap: 16px; }
.card { border: 1px solid #e4e7eb; border-radius: 8px; padding: 12px 14px; background: #fff;
        box-shadow: 0 1px 2px rgba(0,0,0,.04); overflow-x: auto; }
p.note { color: #52606d; font-size: 12px; margin: 4px 0 0; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border-bottom: 1px solid #e4e7eb; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f7fa; }
td.why div { font-size: 11.5px; color: #3e4c59; max-width: 520px; }
form input { padding: 5px 8px; width: 260px; } form button { padding: 5px 10px; }
p.empty { color: #7b8794; font-style: italic; }
"""


def page(customer_id: str | None = None, days: int = 14, url: str | None = None) -> str:
    """The whole view as one HTML document (rendered inside the Airflow UI by the plugin's external view)."""
    quality = data_quality(days, url)
    staged, quarantine = _volume_charts(load_volumes(days, url))
    coverage = publish_coverage(days, url)
    recs = recommendations(customer_id, url) if customer_id else []
    lookup = ""
    if customer_id:
        lookup = (f"<h2>Recommendations for {html.escape(customer_id)}</h2>"
                  + (explanation_table(recs) if recs else "<p class=empty>No published recommendations for this "
                     "customer id.</p>"))
    latest = coverage[-1] if coverage else None
    coverage_note = (f"<p class=note>{latest['business_date']}: model {html.escape(str(latest['model_version']))}, "
                     f"{latest['rows_published']:,} rows for {latest['customers_known']:,} known customers"
                     f"{'' if latest['live'] else ' (history only: an older date)'}.</p>") if latest else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>omnifuse — models and data health</title>
<style>{CSS}</style></head><body>
<h1>omnifuse — models and data health</h1>
<p class="sub">Last {days} business dates. Read from <code>mart</code> as the read-only BI role. JSON under
<code>api/</code>.</p>
<div class="grid">
<section class="card" id="models"><h2>NDCG@10 on the holdout: fused (thick) vs base models, 90 % intervals</h2>
{model_chart(model_ndcg(days, url))}</section>
<section class="card" id="quality"><h2>Data quality per table and day</h2>{quality_grid(quality)}</section>
<section class="card" id="volumes"><h2>Load volumes: rows staged per channel</h2>{staged}</section>
<section class="card" id="quarantine"><h2>Quarantine rate per channel (quarantined / lines read)</h2>{quarantine}
</section>
<section class="card" id="coverage"><h2>Publish coverage: known customers with a personalised or fallback list</h2>
{_coverage_chart(coverage)}{coverage_note}</section>
<section class="card" id="freshness"><h2>Freshness</h2>
{_table(freshness(url), ["stage", "latest_date", "updated_at", "row_count"])}</section>
</div>
<section class="card" id="lookup" style="margin-top:16px"><h2>Look up a customer</h2>
<form method="get" action=""><input name="customer_id" placeholder="customer id, e.g. C0000001"
 value="{html.escape(customer_id or '')}"> <button type="submit">Show recommendations and why</button></form>
{lookup}</section>
</body></html>"""
