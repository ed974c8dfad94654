"""The operator's view on tiny inputs: the SVG charts of ``omnifuse.dashboard`` (bands over several days, a forest
plot for one, the data-quality grid, stacked bars), the explanation table, and what Asset events carry
(``omnifuse.airflow_glue``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from omnifuse import dashboard
from omnifuse.airflow_glue import (
    MART_ASSETS,
    MART_TABLES,
    champion_event_extra,
    interactions_event_extra,
    mart_event_extras,
)


def _points(days: list[str]) -> list[dict]:
    rows = []
    for i, d in enumerate(days):
        for model, v in (("fused_with_rules", 0.24), ("ease", 0.20), ("popularity", 0.16), ("fusion_rrf", 0.19),
                         ("ease_with_rules", 0.19), ("served", 0.24)):
            rows.append({"business_date": d, "model_name": model, "ndcg10": v + i * 0.01, "ci_low": v - 0.03,
                         "ci_high": v + i * 0.01 + 0.03, "customers": 200, "is_champion": True})
    return rows


def _svgs(markup: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg.*?</svg>", markup, flags=re.S)]


def test_model_chart_over_days_draws_bands_for_the_fused_and_the_best_base_model():
    html = dashboard.model_chart(_points(["2026-11-03", "2026-11-04", "2026-11-05"]))
    line, forest = _svgs(html)  # well-formed SVG
    assert html.count('class="band"') == 2  # fused_with_rules and ease (best base model), nothing else
    legend = [t.text for t in line.iter("{http://www.w3.org/2000/svg}text")]
    assert "fused_with_rules" in legend and "ease" in legend and "popularity" in legend
    assert "fusion_rrf" not in legend and "ease_with_rules" not in legend and "served" not in legend
    assert "best base model, ease" in html
    assert len(forest.findall("{http://www.w3.org/2000/svg}circle")) == 3  # one dot per model on the last day


def test_model_chart_on_one_day_is_a_forest_plot_with_intervals():
    html = dashboard.model_chart(_points(["2026-11-05"]))
    assert "One retraining day so far" in html and html.count('class="interval"') == 3
    assert len(_svgs(html)) == 1
    assert dashboard.model_chart([]).startswith("<p")


def test_quality_grid_colours_pass_warn_block():
    rows = [{"business_date": "2026-11-0" + str(d), "table_name": t, "checks": 10, "passed": p, "failed_error": e,
             "failed_warn": w, "status": s}
            for d, t, p, e, w, s in ((4, "core.interactions", 10, 0, 0, "pass"),
                                     (5, "core.interactions", 9, 0, 1, "warn"),
                                     (5, "staging.web_events", 8, 2, 0, "block"))]
    html = dashboard.quality_grid(rows)
    _svgs(html)
    assert html.count('class="dq-pass"') == 1 and html.count('class="dq-warn"') == 1
    assert html.count('class="dq-block"') == 1 and "2 blocking" in html


def test_stacked_bars_and_explanations_escape_and_add_up():
    html = dashboard.stacked_bars({"2026-11-05": {"web": 30, "<store>": 10}}, label="x", order=["web", "<store>"])
    (svg,) = _svgs(html)
    assert len(svg.findall("{http://www.w3.org/2000/svg}rect")) == 2 + 2  # two bars + two legend keys
    recs = [{"rank": 1, "product_id": "P1", "name": "<b>x</b>", "category": "toys", "price": 3.0, "score": 1.2,
             "reason": "because you bought <Y>", "model_version": "v1", "business_date": "2026-11-05",
             "contributions": [{"model_name": "ease", "weight": 0.5, "normalised_score": 2.0, "contribution": 1.0,
                                "method": "m"},
                               {"model_name": "two_tower", "weight": 0.5, "normalised_score": -0.4,
                                "contribution": -0.2, "method": "m"}]},
            {"rank": 2, "product_id": "P2", "name": None, "category": None, "price": None, "score": 0.5,
             "reason": "popular in your segment", "model_version": "v1", "business_date": "2026-11-05",
             "contributions": []}]
    table = dashboard.explanation_table(recs)
    assert "<b>x</b>" not in table and "&lt;Y&gt;" in table
    assert "ease 0.50 × 2.00 = +1.000" in table and "two_tower 0.50 × -0.40 = -0.200" in table
    assert "fallback list: no model scored it" in table


def test_asset_events_carry_date_rows_and_model_version():
    assert set(MART_ASSETS) == set(MART_TABLES)
    assert {a.name for a in MART_ASSETS.values()} == {f"mart.{t}" for t in MART_TABLES}
    built = {"business_date": "2026-11-05", "event_dates": ["2026-11-04", "2026-11-05"], "rows": 1234,
             "quarantined": 5, "anonymous": 7, "seconds": 1.0}
    assert interactions_event_extra(built) == {"business_date": "2026-11-05",
                                               "event_dates": ["2026-11-04", "2026-11-05"], "rows": 1234,
                                               "quarantined": 5}
    decision = {"run_id": "retrain_20261105_v2", "business_date": "2026-11-05", "promoted": False,
                "champion": "retrain_20261104", "reason": "kept"}
    assert champion_event_extra(decision) == {"business_date": "2026-11-05", "champion": "retrain_20261104",
                                              "model_version": "retrain_20261104", "promoted": False,
                                              "run_id": "retrain_20261105_v2"}
    published = {"business_date": "2026-11-05", "model_version": "retrain_20261104", "live": False,
                 "rows": {t: i + 1 for i, t in enumerate(MART_TABLES)},
                 "coverage": {"customers_known": 10, "personalised_share": 0.6, "fallback_share": 0.4}}
    extras = mart_event_extras(published)
    assert set(extras) == set(MART_TABLES)
    assert extras["similar_products"] == {"business_date": "2026-11-05", "model_version": "retrain_20261104",
                                          "rows": MART_TABLES.index("similar_products") + 1, "live": False}
    assert extras["customer_recommendations"]["coverage"]["personalised_share"] == 0.6
