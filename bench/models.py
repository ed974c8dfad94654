"""Retraining quality and cost: every base model, every fusion variant and the final fused model, on one split.

    .venv/bin/python bench/models.py [--part default|scale|both] [--reuse]
                                     [--scale-customers 100000 --scale-products 10000 --scale-days 9]

1. The default generated world (``WorldConfig()``) loaded day by day through the DAG's functions, then the
   whole retrain for its last day (holdout: the last day; fusion validation: the day before). Prints one
   table: Recall@10/20, NDCG@10/20, coverage@20 and fit time per model, and the targets: the learned fusion
   beats the best single model by >= 3 % relative NDCG@10 and beats equal-weight averaging; every
   personalised model beats popularity.
2. Scale: >= 100,000 customers x 10,000 products x 2,000,000 interactions; prints the time of each retrain
   step (target: the whole retrain, TensorFlow included, under 15 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _isolated import isolated_url
from omnifuse import warehouse
from omnifuse.daily import run_day
from omnifuse.generate import WorldConfig, generate
from omnifuse.models import BASE_MODELS
from omnifuse.retrain import fuse_models, gate_champion, prepare_training, train_model

PERSONALISED = ("item_knn", "pure_svd", "ease", "assoc_rules", "two_tower")


def _load(url: str, cfg: WorldConfig, folder: Path) -> float:
    started = time.perf_counter()
    generate(cfg, folder)
    with warehouse.transaction(url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(url)
    for i in range(cfg.days):
        run_day(cfg.start + timedelta(days=i), folder, url)
    return time.perf_counter() - started


def _retrain(url: str, cfg: WorldConfig) -> tuple[str, dict[str, float]]:
    day = cfg.start + timedelta(days=cfg.days - 1)
    times = {}
    started = time.perf_counter()
    prep = prepare_training(day, url=url, require_quality=False)
    times["prepare"] = time.perf_counter() - started
    for name in BASE_MODELS:
        started = time.perf_counter()
        train_model(prep["run_id"], name, url=url)
        times[name] = time.perf_counter() - started
    started = time.perf_counter()
    fuse_models(prep["run_id"], url=url)
    times["fusion + evaluation"] = time.perf_counter() - started
    started = time.perf_counter()
    gate_champion(prep["run_id"], url=url)
    times["gate"] = time.perf_counter() - started
    return prep["run_id"], times | {"_prep": prep}


def _table(url: str, run_id: str, times: dict) -> dict[str, dict]:
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, metric, k, value, fit_seconds from ml.model_metrics "
                    "where run_id = %s and slice = 'holdout'", (run_id,))
        rows = cur.fetchall()
    table: dict[str, dict] = {}
    for model, metric, k, value, fit in rows:
        table.setdefault(model, {})[f"{metric}@{k}"] = value
        if fit is not None:
            table[model]["fit_s"] = fit
    print(f"{'model':20} {'R@10':>7} {'R@20':>7} {'N@10':>7} {'N@20':>7} {'cov@20':>7} {'fit s':>7}")
    for model, m in sorted(table.items(), key=lambda kv: -kv[1]["ndcg@10"]):
        fit = m.get("fit_s")
        print(f"{model:20} {m['recall@10']:7.4f} {m['recall@20']:7.4f} {m['ndcg@10']:7.4f} {m['ndcg@20']:7.4f} "
              f"{m['coverage@20']:7.4f} {'' if fit is None else f'{fit:7.2f}':>7}")
    return table


def _targets(url: str, run_id: str, table: dict[str, dict]) -> None:
    best_single = max(BASE_MODELS, key=lambda m: table[m]["ndcg@10"])
    learned = max(("fusion_linear", "fusion_stacked"), key=lambda m: table[m]["ndcg@10"])
    gain = table[learned]["ndcg@10"] / table[best_single]["ndcg@10"] - 1
    verdict = "met" if gain >= 0.03 else "NOT met"
    print(f"\nbest single model: {best_single} NDCG@10 {table[best_single]['ndcg@10']:.4f}; best learned fusion: "
          f"{learned} {table[learned]['ndcg@10']:.4f} ({gain:+.1%}; target >= +3%: {verdict})")
    eq = table["fusion_equal"]["ndcg@10"]
    print(f"learned fusion vs equal-weight averaging {eq:.4f}: "
          f"{'beats it' if table[learned]['ndcg@10'] > eq else 'does NOT beat it'}")
    pop = table["popularity"]["ndcg@10"]
    losers = [m for m in PERSONALISED if table[m]["ndcg@10"] <= pop]
    print(f"personalised models beating popularity ({pop:.4f}): "
          f"{'all' if not losers else 'all but ' + ', '.join(losers)}")
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, value, ci_low, ci_high from ml.model_metrics where run_id = %s "
                    "and slice = 'holdout' and metric = 'ndcg' and k = 10 and (model_name like '%%with_rules' "
                    "or model_name = 'served') order by value desc", (run_id,))
        ranked = cur.fetchall()
        cur.execute("select served_model, status, reason from ml.model_registry where model_version = %s", (run_id,))
        served_model, status, reason = cur.fetchone()
    print("\nwith the business rules (NDCG@10, 90 % bootstrap interval over customers):")
    for name, value, lo, hi in ranked:
        print(f"  {name:28} {value:.4f}  [{lo:.4f}, {hi:.4f}]")
    print(f"served: {served_model} ({status}); {reason}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["default", "scale", "both"], default="both")
    parser.add_argument("--reuse", action="store_true",
                        help="scale part: retrain on the world already loaded in the warehouse (skip generate/load)")
    parser.add_argument("--scale-customers", type=int, default=100_000)
    parser.add_argument("--scale-products", type=int, default=10_000)
    parser.add_argument("--scale-days", type=int, default=9)
    args = parser.parse_args()
    url = isolated_url("models")  # never the user's warehouse
    scratch = Path(tempfile.mkdtemp(prefix="omnifuse-bench-models-"))
    try:
        if args.part in ("default", "both"):
            cfg = WorldConfig()
            load_s = _load(url, cfg, scratch / "default")
            run_id, times = _retrain(url, cfg)
            prep = times.pop("_prep")
            print(f"default world: {cfg.customers} customers, {cfg.products} products, {cfg.days} days "
                  f"(loaded in {load_s:.1f} s); {prep['train_events']:,} training events, "
                  f"{prep['holdout_customers']} holdout customers\n")
            _targets(url, run_id, _table(url, run_id, times))
        if args.part in ("scale", "both"):
            cfg = WorldConfig(customers=args.scale_customers, products=args.scale_products, days=args.scale_days)
            load_s = 0.0 if args.reuse else _load(url, cfg, scratch / "scale")
            run_id, times = _retrain(url, cfg)
            prep = times.pop("_prep")
            print(f"\nscale: {prep['customers']:,} customers with history, {prep['products']:,} products, "
                  f"{prep['train_events']:,} training interactions before the holdout "
                  f"(world loaded in {load_s:.0f} s)")
            for step, seconds in times.items():
                print(f"  {step:22} {seconds:8.1f} s")
            total = sum(times.values())
            print(f"  {'whole retrain':22} {total:8.1f} s ({total / 60:.1f} min; target < 15 min: "
                  f"{'met' if total < 900 else 'NOT met'})")
            _table(url, run_id, times)
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
