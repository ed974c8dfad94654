"""Retraining quality and cost: every base model, every fusion variant and the final fused model, on one split.

    .venv/bin/python bench/models.py [--part default|scale|both] [--reuse | --load-only]
                                     [--scale-customers 100000 --scale-products 10000 --scale-days 13]

1. The default generated world (``WorldConfig()``) loaded day by day through the DAG's functions, then the
   whole retrain for its last day (holdout: the last day; fusion validation: the day before). Prints one
   table: Recall@10/20, NDCG@10/20, coverage@20 and fit time per model, and the targets: the learned fusion
   beats the best single model by >= 3 % relative NDCG@10 and beats equal-weight averaging; every
   personalised model beats popularity.
2. Scale: 100,000 customers x 10,000 products x 13 days, >= 2,400,000 training interactions before the
   holdout; prints the time and the peak RSS of each retrain step (target: the whole retrain, TensorFlow
   included, <= 10 minutes on 2 cores and <= 4 GB peak RSS), beside the figures measured before the two-tower
   budget and the EASE memory work (:data:`BEFORE`). ``--load-only`` generates and loads the world and stops
   (with ``OMNIFUSE_BENCH_STATE_DIR`` set, a later ``--reuse`` retrains on it without the ~15 min load).
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import timedelta
from pathlib import Path

from _isolated import isolated_url, load_world
from _report import scratch_folder
from omnifuse import warehouse
from omnifuse.generate import WorldConfig
from omnifuse.models import BASE_MODELS
from omnifuse.training_run import fuse_models, gate_champion, prepare_training, train_model

PERSONALISED = ("item_knn", "pure_svd", "ease", "assoc_rules", "two_tower")
#: The scale retrain before the two-tower budget and the EASE memory work, measured by this bench on the same
#: world (93,586 customers x 10,000 products x 2,564,451 training interactions, 2 cores shared). Earlier runs:
#: 88 k x 10 k x 1.68 M took 9-11.6 min (two-tower 304-463 s) at 6.0 GB peak RSS (the world's load included);
#: 105 k x 10 k x 2.4 M took 22.4 min on a busier machine.
BEFORE = {"interactions": 2_564_451, "minutes": 8.3, "two_tower_s": 257.8, "ease_s": 32.7, "peak_rss_gb": 4.8,
          "served_ndcg10": 0.1319, "two_tower_ndcg10": 0.0791}
TARGET_MINUTES, TARGET_RSS_GB, TARGET_INTERACTIONS = 10.0, 4.0, 2_400_000


def _reset_peak_rss() -> None:
    """Start a new peak-RSS window for this process (Linux: ``clear_refs`` 5 resets VmHWM); no-op elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    """Peak RSS of this process since the last :func:`_reset_peak_rss` (VmHWM), else since it started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _retrain(url: str, cfg: WorldConfig, rss: dict[str, float] | None = None) -> tuple[str, dict[str, float]]:
    """Run the retrain steps one after the other; ``rss`` receives each step's peak RSS (MB)."""
    day = cfg.start + timedelta(days=cfg.days - 1)
    times = {}
    rss = {} if rss is None else rss

    def timed(step: str, fn, *args, **kwargs):
        _reset_peak_rss()
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        times[step] = time.perf_counter() - started
        rss[step] = _peak_rss_mb()
        return out

    prep = timed("prepare", prepare_training, day, url=url, require_quality=False)
    for name in BASE_MODELS:
        timed(name, train_model, prep["run_id"], name, url=url)
    timed("fusion + evaluation", fuse_models, prep["run_id"], url=url)
    timed("gate", gate_champion, prep["run_id"], url=url)
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
    parser.add_argument("--load-only", action="store_true",
                        help="scale part: generate and load the world, then stop "
                             "(keep it with OMNIFUSE_BENCH_STATE_DIR)")
    parser.add_argument("--scale-customers", type=int, default=100_000)
    parser.add_argument("--scale-products", type=int, default=10_000)
    parser.add_argument("--scale-days", type=int, default=13)
    args = parser.parse_args()
    if (args.reuse or args.load_only) and args.part != "scale":
        parser.error("--reuse and --load-only need --part scale: the default part loads its own world into the same "
                     "warehouse and would overwrite the kept scale world")
    url = isolated_url("models")  # never the user's warehouse
    with scratch_folder("models") as scratch:
        if args.part in ("default", "both"):
            cfg = WorldConfig()
            load_s = load_world(url, cfg, scratch / "default")
            run_id, times = _retrain(url, cfg)
            prep = times.pop("_prep")
            print(f"default world: {cfg.customers} customers, {cfg.products} products, {cfg.days} days "
                  f"(loaded in {load_s:.1f} s); {prep['train_events']:,} training events, "
                  f"{prep['holdout_customers']} holdout customers; whole retrain {sum(times.values()):.1f} s\n")
            _targets(url, run_id, _table(url, run_id, times))
        if args.part in ("scale", "both"):
            cfg = WorldConfig(customers=args.scale_customers, products=args.scale_products, days=args.scale_days)
            load_s = 0.0 if args.reuse else load_world(url, cfg, scratch / "scale")
            if args.load_only:
                print(f"scale world loaded in {load_s:.0f} s; retrain it with --reuse")
                return 0
            rss: dict[str, float] = {}
            run_id, times = _retrain(url, cfg, rss)
            prep = times.pop("_prep")
            print(f"\nscale: {prep['customers']:,} customers with history, {prep['products']:,} products, "
                  f"{prep['train_events']:,} training interactions before the holdout "
                  f"(world loaded in {load_s:.0f} s)")
            print(f"  {'step':22} {'seconds':>8} {'peak RSS MB':>12}")
            for step, seconds in times.items():
                print(f"  {step:22} {seconds:8.1f} {rss[step]:12,.0f}")
            total = sum(times.values())
            peak_gb = max(rss.values()) / 1024
            size_ok = prep["train_events"] >= TARGET_INTERACTIONS
            print(f"  {'whole retrain':22} {total:8.1f} s ({total / 60:.1f} min), peak RSS {peak_gb:.1f} GB")
            print(f"before: {BEFORE['minutes']} min at {BEFORE['interactions']:,} interactions, two-tower "
                  f"{BEFORE['two_tower_s']:.0f} s, EASE {BEFORE['ease_s']:.0f} s, peak RSS {BEFORE['peak_rss_gb']} GB")
            print(f"after:  {total / 60:.1f} min at {prep['train_events']:,} interactions, two-tower "
                  f"{times['two_tower']:.0f} s, EASE {times['ease']:.0f} s, peak RSS {peak_gb:.1f} GB")
            print(f"targets: <= {TARGET_MINUTES:.0f} min "
                  f"{'met' if total <= TARGET_MINUTES * 60 and size_ok else 'NOT met'}; <= {TARGET_RSS_GB:.0f} GB "
                  f"{'met' if peak_gb <= TARGET_RSS_GB else 'NOT met'}; >= {TARGET_INTERACTIONS:,} interactions "
                  f"{'met' if size_ok else 'NOT met'}")
            table = _table(url, run_id, times)
            print(f"holdout NDCG@10 before -> after: served {BEFORE['served_ndcg10']:.4f} -> "
                  f"{table['served']['ndcg@10']:.4f}, two-tower {BEFORE['two_tower_ndcg10']:.4f} -> "
                  f"{table['two_tower']['ndcg@10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
