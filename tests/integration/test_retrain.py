"""Retraining on a real warehouse: determinism, served fit, the champion gate and registry, the quality block."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import psycopg2
import pytest
from omnifuse import registry, warehouse
from omnifuse.artifacts import ArtifactError
from omnifuse.dataset import Dataset
from omnifuse.models import model_class
from omnifuse.training_run import BlockedDateError, Plan, retrain

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
FAST = ("popularity", "popularity_channel", "item_knn", "pure_svd", "ease", "assoc_rules")


@pytest.fixture(scope="module")
def retrain_world(tmp_path_factory):
    """The tiny world's shape with more customers: under the new-items protocol a 600-customer world leaves
    a holdout too small for the gate's beyond-the-noise rule to be anything but chance."""
    from omnifuse.generate import WorldConfig, generate

    out = tmp_path_factory.mktemp("retrain_world")
    generate(WorldConfig(customers=1500, products=150, days=3, start=DAYS[0], seed=11), out)
    return out


@pytest.fixture(scope="module")
def loaded(retrain_world, warehouse_url, tmp_path_factory):
    from worlds import loaded_warehouse

    with loaded_warehouse(warehouse_url, retrain_world, DAYS, tmp_path_factory.mktemp("models"), 1) as url:
        yield url


def _metrics(url, run_id):
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, metric, k, slice, value, ci_low, ci_high from ml.model_metrics "
                    "where run_id = %s order by 1, 2, 3, 4", (run_id,))
        return cur.fetchall()


def _registry(url):
    with warehouse.transaction(url) as cur:
        cur.execute("select model_version, status, previous_champion, reason from ml.model_registry order by 1")
        return cur.fetchall()


def test_a_date_without_passed_gates_is_refused(loaded):
    with pytest.raises(BlockedDateError, match="quality gates"):
        retrain(D + timedelta(days=1), url=loaded)  # no gate ever ran for it


def test_same_data_and_seed_give_the_same_metrics_and_a_rerun_keeps_the_champion(loaded):
    first = retrain(D, url=loaded, require_quality=False)
    run_id = first["prepare"]["run_id"]
    assert run_id == f"retrain_{D:%Y%m%d}" and first["gate"]["promoted"]
    metrics = _metrics(loaded, run_id)
    assert len(metrics) > 100
    assert all(lo <= v + 1e-9 and v <= hi + 1e-9 for *_, v, lo, hi in metrics if lo is not None)
    second = retrain(D, url=loaded, require_quality=False)
    rerun = second["prepare"]["run_id"]
    assert rerun == f"retrain_{D:%Y%m%d}_v2"  # a new version, the first kept for audit
    assert _metrics(loaded, rerun) == metrics
    # re-running the champion's own date (identical model) does not replace or lose the champion
    assert not second["gate"]["promoted"] and second["gate"]["champion"] == run_id
    assert "does not beat champion" in second["gate"]["reason"]
    rows = {v: s for v, s, _, _ in _registry(loaded)}
    assert rows == {run_id: "champion", rerun: "rejected"}
    assert (Plan.load(run_id, loaded).artifact_dir / "fused" / "MANIFEST.json").exists()
    ndcg = {m: v for m, metric, k, s, v, *_ in metrics if metric == "ndcg" and k == 10 and s == "holdout"}
    # three days of a generated world, new products only: the linear models learn it; the two-tower and the
    # kNN are at popularity's level there and the fused model must beat them all
    assert all(ndcg[m] > ndcg["popularity"] for m in ("pure_svd", "ease")), ndcg
    assert all(ndcg["served"] >= ndcg[m] for m in FAST + ("two_tower",)), ndcg
    assert {"fusion_equal", "fusion_rrf", "fusion_linear", "fusion_stacked", "fused_with_rules", "served",
            "ease_with_rules"} <= set(ndcg)
    assert any(s == "holdout_repeat" for _, _, _, s, *_ in metrics)
    # the served configuration says why: fusion beat the best single model beyond the noise, or not
    assert "Served: " in first["gate"]["reason"]
    served = first["fuse"]["served_model"]
    assert served.startswith("fusion_") or "does not beat it" in first["fuse"]["reason"]


def test_served_fit_is_refitted_up_to_the_business_date(loaded):
    with warehouse.transaction(loaded) as cur:
        cur.execute("select model_version, upper(data_window) - 1, upper(evaluated_window) - 1, artifact_path, "
                    "served_model from ml.model_registry where status = 'champion'")
        version, served_end, evaluated_end, folder, served_model = cur.fetchone()
    plan = Plan.load(version, loaded)
    assert served_end == D and evaluated_end == plan.split_date - timedelta(days=1)
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    assert int(data.day.max()) == (D - date(1970, 1, 1)).days
    name = "popularity"
    served = model_class(name).load(plan.artifact_dir / "served" / name)
    evaluated = model_class(name).load(plan.artifact_dir / "holdout" / name)
    refit = model_class(name)(seed=served.seed, **served.params).fit(data)
    np.testing.assert_allclose(served.state["global"], refit.state["global"])
    assert not np.allclose(served.state["global"], evaluated.state["global"])
    # what publishing loads is the served fit, not the evaluated one
    version2, folder2, business_date = registry.current_champion(loaded)
    assert (version2, str(folder2), business_date) == (version, folder, D)
    fused = registry.FusedModel.load(folder2 / "fused")
    first = fused.use[0]
    np.testing.assert_allclose(next(iter(fused.models[first].state.values())),
                               next(iter(model_class(first).load(plan.artifact_dir / "served" / first).state.values())))
    assert not list(plan.artifact_dir.rglob("*.pkl"))


def test_gate_keeps_the_champion_when_the_challenger_is_worse(loaded):
    champion = registry.current_champion(loaded)[0]
    weak = retrain(D, url=loaded, require_quality=False, models=("popularity", "popularity_channel"), tag="weak")
    gate = weak["gate"]
    assert not gate["promoted"] and gate["champion"] == champion
    assert "does not beat" in gate["reason"]
    assert dict((v, s) for v, s, _, _ in _registry(loaded))[weak["prepare"]["run_id"]] == "rejected"


def test_an_older_date_never_replaces_a_newer_champion(loaded):
    champion = registry.current_champion(loaded)[0]
    with warehouse.transaction(loaded) as cur:  # the champion now stands for a later date
        cur.execute("update ml.model_registry set business_date = business_date + 5 where status = 'champion'")
    try:
        run = retrain(D, url=loaded, require_quality=False, models=FAST, tag="older")
        assert not run["gate"]["promoted"] and run["gate"]["champion"] == champion
        assert "older than the champion" in run["gate"]["reason"]
    finally:
        with warehouse.transaction(loaded) as cur:
            cur.execute("update ml.model_registry set business_date = business_date - 5 where status = 'champion'")


def test_the_champion_cannot_be_deleted(loaded):
    with pytest.raises(psycopg2.Error, match="never deleted"), warehouse.transaction(loaded) as cur:
        cur.execute("delete from ml.model_registry where status = 'champion'")
    with pytest.raises(psycopg2.Error), warehouse.transaction(loaded) as cur:
        cur.execute("delete from ml.training_runs")  # the registry holds on to its runs
    assert registry.current_champion(loaded)


def test_rollback_restores_the_previous_champion_and_refuses_a_corrupt_one(loaded):
    first, second = f"retrain_{D:%Y%m%d}", f"retrain_{D:%Y%m%d}_v2"
    assert registry.current_champion(loaded)[0] == first
    with warehouse.transaction(loaded) as cur:  # as if v2 had been promoted over v1
        cur.execute("update ml.model_registry set status = 'retired' where model_version = %s", (first,))
        cur.execute("update ml.model_registry set status = 'champion', previous_champion = %s "
                    "where model_version = %s", (first, second))
    folder = Plan.load(first, loaded).artifact_dir
    state = folder / "fused" / "models" / "ease" / "state.npz"
    good = state.read_bytes()
    state.write_bytes(good[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="state.npz"):
        registry.rollback(loaded)
    assert registry.current_champion(loaded)[0] == second  # nothing changed
    state.write_bytes(good)
    assert registry.cli_model("rollback", loaded) == 0
    assert registry.current_champion(loaded)[0] == first
    rows = {v: (s, reason) for v, s, _, reason in _registry(loaded)}
    assert rows[second][0] == "retired" and "rolled back" in rows[second][1]
    with pytest.raises(LookupError, match="nothing to roll back"):
        registry.rollback(loaded)


def test_same_metrics_whatever_the_physical_row_order(loaded):
    def run(tag):
        # two_tower included: it samples training pairs, which used to follow the rows' order
        prep = retrain(D, url=loaded, require_quality=False, models=(*FAST, "two_tower"), tag=tag)["prepare"]
        return _metrics(loaded, prep["run_id"])

    before = run("order_a")
    with warehouse.transaction(loaded) as cur:  # rewrite every partition in a random physical order
        cur.execute("select setseed(0.42)")
        for table in ("core.interactions", "core.validated_interactions"):  # the working and the validated build
            cur.execute(f"with moved as (delete from {table} returning *) "
                        f"insert into {table} select * from moved order by random()")
    assert run("order_b") == before
