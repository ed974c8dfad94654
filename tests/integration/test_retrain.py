"""Retraining on a real warehouse: determinism, the champion gate, and the quality block."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.retrain import BlockedDateError, retrain

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]


@pytest.fixture(scope="module")
def loaded(tiny_world, warehouse_url, tmp_path_factory):
    import os

    os.environ["OMNIFUSE_MODEL_STORE"] = str(tmp_path_factory.mktemp("models"))
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    for day in DAYS:
        run_day(day, tiny_world, warehouse_url)
    yield warehouse_url
    del os.environ["OMNIFUSE_MODEL_STORE"]


def _metrics(url, run_id):
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, metric, k, slice, value from ml.model_metrics where run_id = %s "
                    "order by 1, 2, 3, 4", (run_id,))
        return cur.fetchall()


def test_a_date_without_passed_gates_is_refused(loaded):
    with pytest.raises(BlockedDateError, match="quality gates"):
        retrain(D, url=loaded)


def test_same_data_and_seed_give_the_same_metrics(loaded):
    first = retrain(D, url=loaded, require_quality=False)
    run_id = first["prepare"]["run_id"]
    metrics = _metrics(loaded, run_id)
    assert len(metrics) > 100
    second = retrain(D, url=loaded, require_quality=False)
    assert _metrics(loaded, run_id) == metrics
    assert second["gate"]["champion"] == run_id
    ndcg = {m: v for m, metric, k, s, v in metrics if metric == "ndcg" and k == 10 and s == "holdout"}
    personalised = ("item_knn", "pure_svd", "ease", "assoc_rules", "two_tower")
    assert all(ndcg[m] > ndcg["popularity"] for m in personalised), ndcg
    assert {"fusion_equal", "fusion_rrf", "fusion_linear", "fusion_stacked", "fused_with_rules"} <= set(ndcg)


def test_gate_keeps_the_champion_when_the_challenger_is_worse(loaded):
    champion = retrain(D, url=loaded, require_quality=False)["gate"]
    assert champion["promoted"]
    weak = retrain(D, url=loaded, require_quality=False, models=("popularity", "popularity_channel"), tag="weak")
    gate = weak["gate"]
    assert not gate["promoted"] and gate["champion"] == champion["champion"]
    assert "does not beat" in gate["reason"]
    with warehouse.transaction(loaded) as cur:
        cur.execute("select model_version, status from ml.model_registry order by 1")
        assert cur.fetchall() == [(champion["champion"], "champion"), (weak["prepare"]["run_id"], "rejected")]
