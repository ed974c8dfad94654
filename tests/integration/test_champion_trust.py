"""Trust, round two (issue 23): every shop gets a champion (finding 9), a registered version's artifacts are never
rewritten and are anchored in the registry (finding 10), and the same data and seed publish the same lists in
any process and physical row order (scenario 25)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from airflow.sdk import RetryAction
from omnifuse import registry, warehouse
from omnifuse.airflow_glue import OmnifuseRetryPolicy
from omnifuse.mart import publish_date
from omnifuse.recommendations import ModelArtifactError, champion_version, load_model
from omnifuse.training_run import Plan, RegisteredRunError, fuse_models, retrain, train_model

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
#: a challenger that cannot earn the champion's place: it must beat popularity by 500 % beyond the noise
UNREACHABLE_MARGIN = "5.0"
SMALL = ("popularity", "popularity_channel", "ease")


@pytest.fixture(scope="module")
def shop(tiny_world, warehouse_url, tmp_path_factory):
    """A new shop: three days of the tiny world loaded, no retrain yet."""
    from worlds import loaded_warehouse

    with loaded_warehouse(warehouse_url, tiny_world, DAYS, tmp_path_factory.mktemp("models"), 2) as url:
        yield url


def _registry(url):
    with warehouse.transaction(url) as cur:
        cur.execute("select model_version, status, baseline, reason, artifact_checksums from ml.model_registry "
                    "order by 1")
        return {v: (s, b, r, c) for v, s, b, r, c in cur.fetchall()}


def _fail_at_once(exc: BaseException) -> bool:
    return OmnifuseRetryPolicy().evaluate(exc, try_number=1, max_tries=3).action is RetryAction.FAIL


def test_publish_without_a_champion_fails_at_once_saying_what_to_run(shop):
    with pytest.raises(LookupError) as caught:
        champion_version(shop)
    assert _fail_at_once(caught.value), "no retry makes a champion appear: the task must fail at once"
    assert "omnifuse_retrain" in str(caught.value)
    from omnifuse.business_date import BusinessDateError

    # publishing checks the date first: no retrain through it (and so no champion) fails at once, naming the DAG
    with pytest.raises((registry.NoChampionError, BusinessDateError), match="omnifuse_retrain") as refused:
        publish_date(D, url=shop)
    assert _fail_at_once(refused.value)


def test_a_first_run_that_does_not_beat_popularity_still_gives_the_shop_a_champion(shop, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_GATE_MARGIN", UNREACHABLE_MARGIN)
    first = retrain(D, url=shop, require_quality=False, models=SMALL)
    run_id = first["prepare"]["run_id"]
    gate = first["gate"]
    assert not gate["promoted"] and "does not beat popularity" in gate["reason"]
    baseline = registry.baseline_version(run_id)
    assert gate["champion"] == baseline and "baseline champion" in gate["reason"]
    rows = _registry(shop)
    assert rows[run_id][:2] == ("rejected", False)
    status, is_baseline, reason, checksums = rows[baseline]
    assert (status, is_baseline) == ("champion", True)
    assert reason.startswith("baseline: there was no champion") and "with the business rules is served" in reason
    assert set(checksums) == {"fused", "evaluated"} and set(rows[run_id][3]) == {"fused", "evaluated"}
    champ = registry.champion_info(shop)
    assert champ is not None and champ.baseline and champ.reason == reason  # what publishing can show
    fused, _ = load_model(baseline, shop)
    assert fused.variant == "single" and len(fused.use) == 1 and fused.use[0] in SMALL
    with warehouse.transaction(shop) as cur:
        cur.execute("select model_name, value from ml.model_metrics where run_id = %s and metric = 'ndcg' "
                    "and k = 10 and slice = 'holdout' and model_name = any(%s)",
                    (run_id, [f"{m}_with_rules" for m in SMALL]))
        singles = dict(cur.fetchall())
    assert singles[f"{fused.use[0]}_with_rules"] == max(singles.values())  # the best single model with the rules
    # ... and publishing serves it
    published = publish_date(D, url=shop)
    assert published["model_version"] == baseline and published["rows"]["customer_recommendations"] > 0
    with warehouse.transaction(shop) as cur:
        cur.execute("select count(distinct customer_id), min(model_version), max(model_version) "
                    "from mart.customer_recommendations")
        customers, lo, hi = cur.fetchone()
    assert customers > 100 and lo == hi == baseline


def test_the_baseline_is_replaced_only_through_the_gate(shop, monkeypatch):
    champion = champion_version(shop)
    monkeypatch.setenv("OMNIFUSE_GATE_MARGIN", UNREACHABLE_MARGIN)
    again = retrain(D, url=shop, require_quality=False, models=SMALL, tag="again")
    assert not again["gate"]["promoted"] and again["gate"]["champion"] == champion
    assert f"champion {champion} stays" in again["gate"]["reason"]
    rows = _registry(shop)
    assert registry.baseline_version(again["prepare"]["run_id"]) not in rows  # no second baseline
    assert sum(s == "champion" for s, *_ in rows.values()) == 1


def _first_registered_run(url) -> str:
    with warehouse.transaction(url) as cur:
        cur.execute("select run_id from ml.model_registry order by created_at, model_version limit 1")
        return cur.fetchone()[0]


def test_a_rerun_task_of_a_registered_run_never_rewrites_its_artifacts(shop):
    """Clearing train_<model> or fuse_models of a gated run used to rewrite its folder (a champion's included)
    with no gate in between."""
    run_id = _first_registered_run(shop)
    folder = Plan.load(run_id, shop).artifact_dir

    def snapshot():
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    before = snapshot()
    for step in (lambda: train_model(run_id, "ease", url=shop), lambda: fuse_models(run_id, url=shop, models=SMALL)):
        with pytest.raises(RegisteredRunError, match="prepare_training") as caught:
            step()
        assert _fail_at_once(caught.value)
    assert snapshot() == before


def test_a_registered_folder_rewritten_consistently_is_refused(shop):
    """A version's manifest had no checksum of its own: a folder rewritten file and manifest alike loaded."""
    version = _first_registered_run(shop)
    fused = Plan.load(version, shop).artifact_dir / "fused"
    meta_path, manifest_path = fused / "fusion.json", fused / "MANIFEST.json"
    meta, manifest = meta_path.read_bytes(), manifest_path.read_bytes()
    try:
        changed = json.loads(meta) | {"n_candidates": 3}
        meta_path.write_text(json.dumps(changed))
        entries = json.loads(manifest)
        import hashlib

        entries["fusion.json"] = hashlib.sha256(meta_path.read_bytes()).hexdigest()
        manifest_path.write_text(json.dumps(entries, indent=1, sort_keys=True))
        with pytest.raises(ModelArtifactError, match="registered"):
            load_model(version, shop)
    finally:
        meta_path.write_bytes(meta)
        manifest_path.write_bytes(manifest)
    assert load_model(version, shop)[0].n_candidates != 3


_RETRAIN_AND_PUBLISH = """
import json, sys
from datetime import date
from omnifuse.mart import publish_mart
from omnifuse.recommendations import plan_batches, score_batch
from omnifuse.training_run import retrain

url, day, tag, models = sys.argv[1], date.fromisoformat(sys.argv[2]), sys.argv[3], tuple(sys.argv[4].split(","))
run = retrain(day, url=url, require_quality=False, models=models, tag=tag)
version = run["prepare"]["run_id"]
for batch in plan_batches(day, version, url):
    score_batch(day, batch, version, url=url)
publish_mart(day, model_version=version, url=url)
print(json.dumps({"run_id": version, "params": {m: t["params"] for m, t in run["train"].items()}}))
"""
ORDER_MODELS = ("popularity", "item_knn", "ease", "assoc_rules")


def _retrain_and_publish_elsewhere(url: str, tag: str) -> tuple[dict, list, list]:
    """Retrain and publish ``D`` in a process of its own; its run, published lists and holdout metrics."""
    done = subprocess.run([sys.executable, "-c", _RETRAIN_AND_PUBLISH, url, D.isoformat(), tag,
                           ",".join(ORDER_MODELS)], capture_output=True, text=True, timeout=900, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id, rank, product_id, round(score::numeric, 6), reason, evidence_product_id "
                    "from mart.customer_recommendations where model_version = %s order by 1, 2", (run["run_id"],))
        lists = cur.fetchall()
        cur.execute("select model_name, metric, k, slice, value, ci_low, ci_high from ml.model_metrics "
                    "where run_id = %s order by 1, 2, 3, 4", (run["run_id"],))
        metrics = cur.fetchall()
    return run, lists, metrics


def test_two_processes_over_different_physical_row_orders_publish_the_same_lists(shop):
    """Scenario 25: same data and seed, tuning by trial count, a retrain and publish in one process, the rows of
    core.interactions rewritten in another physical order, the same in a second process."""
    first, lists, metrics = _retrain_and_publish_elsewhere(shop, "order_a")
    with warehouse.transaction(shop) as cur:
        cur.execute("select setseed(0.17)")
        for table in ("core.interactions", "core.validated_interactions"):  # the working and the validated build
            cur.execute(f"with moved as (delete from {table} returning *) "
                        f"insert into {table} select * from moved order by random()")
        cur.execute("select count(*) from core.usable_interactions")
        assert cur.fetchone()[0] > 1000
    second, lists_b, metrics_b = _retrain_and_publish_elsewhere(shop, "order_b")
    assert first["run_id"] != second["run_id"] and first["params"] == second["params"]
    assert len(lists) > 1000 and lists_b == lists
    assert metrics_b == metrics


def test_two_retrains_and_publishes_of_one_date_at_once_register_two_versions_and_one_champion(shop):
    """Scenario 10: retrain and publish of one date started twice at the same moment, in two processes, with no
    retry of any kind: both succeed, each writes its own version with the same metrics (same data and seed), the
    registry holds one champion, and the live marts are one complete publish of one of them."""
    procs = [subprocess.Popen([sys.executable, "-c", _RETRAIN_AND_PUBLISH, shop, D.isoformat(), tag,
                               ",".join(ORDER_MODELS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=os.environ.copy()) for tag in ("twin_a", "twin_b")]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outputs]
    runs = [json.loads(out.strip().splitlines()[-1])["run_id"] for out, _ in outputs]
    assert len(set(runs)) == 2
    with warehouse.transaction(shop) as cur:
        metrics = []
        for run_id in runs:
            cur.execute("select model_name, metric, k, slice, value from ml.model_metrics where run_id = %s "
                        "order by 1, 2, 3, 4", (run_id,))
            metrics.append(cur.fetchall())
        cur.execute("select count(*) from ml.model_registry where status = 'champion'")
        champions = cur.fetchone()[0]
        cur.execute("select distinct model_version from mart.customer_recommendations")
        live = [v for (v,) in cur.fetchall()]
    assert metrics[0] and metrics[0] == metrics[1]
    assert champions == 1
    assert len(live) == 1 and live[0] in runs
