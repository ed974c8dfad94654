"""Daily retraining: prepare the data window, train each base model, fuse, evaluate, gate, register.

One run per business date D (``run_id = retrain_<D>``; re-running a date replaces its run):

- holdout: event days ``T .. D`` with ``T = D - holdout_days + 1``;
- validation slice (fusion learns here): ``V .. T-1`` with ``V = T - valid_days``;
- training window: from ``D - train_days``. Event dates whose quality gate failed are never read.

Artifacts live under ``<model store>/runs/<run_id>/``: ``dataset.npz``, ``valid/<model>/`` (fitted before
V, used to learn fusion), ``holdout/<model>/`` (fitted before T, evaluated on the holdout and served), and
``fused/`` (the registered model). Heavy data moves through the model store, never through XCom.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings
from omnifuse.evaluate import KS, Split, evaluate, make_split, ranking_metrics
from omnifuse.features import Dataset, load_dataset
from omnifuse.fusion import VARIANTS, FusedModel, candidates, fit_learners, rank, variant_scores
from omnifuse.models import BASE_MODELS, model_class

log = logging.getLogger(__name__)
TOP_K = max(KS)


class BlockedDateError(RuntimeError):
    """The business date did not pass its quality gates: nothing may train on it."""


@dataclass(frozen=True)
class Plan:
    run_id: str
    business_date: date
    split_date: date
    valid_date: date
    train_start: date
    artifact_dir: Path

    @classmethod
    def for_date(cls, business_date: date, settings: Settings | None = None, tag: str | None = None) -> Plan:
        """The plan of a date's run; ``tag`` names an extra experiment run beside the date's daily one."""
        s = settings or load_settings()
        split = business_date - timedelta(days=s.holdout_days - 1)
        run_id = f"retrain_{business_date:%Y%m%d}" + (f"_{tag}" if tag else "")
        return cls(run_id, business_date, split, split - timedelta(days=s.valid_days),
                   business_date - timedelta(days=s.train_days), s.model_store / "runs" / run_id)

    @classmethod
    def load(cls, run_id: str, url: str | None = None) -> Plan:
        with warehouse.transaction(url) as cur:
            cur.execute("select business_date, split_date, valid_date, train_start, artifact_dir "
                        "from ml.training_runs where run_id = %s", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise LookupError(f"no training run {run_id} in ml.training_runs; run prepare_training first")
        return cls(run_id, row[0], row[1], row[2], row[3], Path(row[4]))

    def splits(self, data: Dataset) -> tuple[Split, Split]:
        """(validation split, holdout split)."""
        valid = make_split(data.before(self.split_date), self.valid_date, self.split_date - timedelta(days=1))
        holdout = make_split(data, self.split_date, self.business_date)
        return valid, holdout


def _check_quality(business_date: date, url: str | None) -> None:
    with warehouse.transaction(url) as cur:
        cur.execute("select gate, passed from ops.quality_status where business_date = %s", (business_date,))
        status = dict(cur.fetchall())
    if status.get("staging") is not True or status.get("core") is not True:
        raise BlockedDateError(
            f"{business_date} has not passed its quality gates ({status or 'no gate has run'}): retraining will not "
            "read it. Fix the data and re-run omnifuse_ingest for the date, then trigger this DAG with "
            f'{{"business_date": "{business_date}"}}.')


def prepare_training(business_date: date, *, url: str | None = None, require_quality: bool = True,
                     tag: str | None = None) -> dict:
    """Check the gates, load the data window, save the dataset and record the run in ``ml.training_runs``."""
    settings = load_settings()
    plan = Plan.for_date(business_date, settings, tag)
    if require_quality:
        _check_quality(business_date, url)
    data = load_dataset(plan.train_start, business_date, url)
    if not len(data.user) or not (data.day >= (plan.split_date - date(1970, 1, 1)).days).any():
        raise RuntimeError(f"retrain {business_date}: no attributed interactions in the holdout {plan.split_date}.."
                           f"{business_date}; load those dates first (omnifuse_ingest).")
    valid, holdout = plan.splits(data)
    plan.artifact_dir.mkdir(parents=True, exist_ok=True)
    data.save(plan.artifact_dir / "dataset.npz")
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.training_runs where run_id = %s", (plan.run_id,))
        cur.execute(
            """
            insert into ml.training_runs (run_id, business_date, split_date, valid_date, train_start, customers,
                                          products, train_events, eval_customers, seed, artifact_dir)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (plan.run_id, business_date, plan.split_date, plan.valid_date, plan.train_start, data.n_users,
             data.n_items, int(len(holdout.train.user)), len(holdout.users), settings.seed, str(plan.artifact_dir)),
        )
    return {"run_id": plan.run_id, "customers": data.n_users, "products": data.n_items,
            "train_events": int(len(holdout.train.user)), "valid_customers": len(valid.users),
            "holdout_customers": len(holdout.users)}


def _write_metrics(url, run_id: str, model: str, rows, split_date: date, slice_: str, fit_s: float | None) -> None:
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.model_metrics where run_id = %s and model_name = %s and slice = %s",
                    (run_id, model, slice_))
        for metric, k, value in rows:
            cur.execute(
                "insert into ml.model_metrics (run_id, model_name, metric, k, value, split_date, slice, fit_seconds) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, model, metric, k, value, split_date, slice_, fit_s),
            )


def train_model(run_id: str, name: str, *, url: str | None = None) -> dict:
    """Fit one base model before V (for fusion) and before T (evaluated on the holdout); save both."""
    plan = Plan.load(run_id, url)
    seed = load_settings().seed
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    valid, holdout = plan.splits(data)
    cls = model_class(name)
    cls(seed=seed).fit(valid.train).save(plan.artifact_dir / "valid" / name)
    started = time.perf_counter()
    model = cls(seed=seed).fit(holdout.train)
    fit_s = time.perf_counter() - started
    model.save(plan.artifact_dir / "holdout" / name)
    recs, _ = model.recommend(holdout.train, holdout.users, TOP_K, exclude=holdout.exclude)
    metrics = evaluate(recs, holdout, data.n_items)
    _write_metrics(url, run_id, name, metrics, plan.split_date, "holdout", fit_s)
    summary = {"model": name, "fit_seconds": round(fit_s, 2),
               **{f"{m}@{k}": round(v, 4) for m, k, v in metrics if m == "ndcg"}}
    log.info("trained %s: %s", name, summary)
    return summary


def _load_models(folder: Path, names) -> dict:
    return {n: model_class(n).load(folder / n) for n in names}


def fuse_models(run_id: str, *, url: str | None = None, models: tuple[str, ...] | None = None) -> dict:
    """Learn the fusion variants on the validation slice, score all on the holdout, register the challenger."""
    settings = load_settings()
    plan = Plan.load(run_id, url)
    names = tuple(models or BASE_MODELS)
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    valid, holdout = plan.splits(data)
    holdout_start = (plan.split_date - date(1970, 1, 1)).days
    learners, valid_ndcg, weights = fit_learners(_load_models(plan.artifact_dir / "valid", names), data, valid,
                                                 holdout_start, 50, settings.seed)
    choice = max(VARIANTS, key=lambda v: valid_ndcg[v])
    served = _load_models(plan.artifact_dir / "holdout", names)

    cands = candidates(served, holdout.train, holdout.users, holdout.exclude, 50)
    results = {}
    for variant in VARIANTS:
        recs, _ = rank(cands, variant_scores(variant, cands, learners.get(variant)), len(holdout.users), TOP_K)
        results[f"fusion_{variant}"] = evaluate(recs, holdout, data.n_items)
    fused = FusedModel(served, choice, learners.get(choice))
    final_recs, _, _ = fused.rank(holdout.train, holdout.users, holdout.exclude, TOP_K)
    results["fused_with_rules"] = evaluate(final_recs, holdout, data.n_items)
    for model_name, rows in results.items():
        _write_metrics(url, run_id, model_name, rows, plan.split_date, "holdout", None)
    _write_metrics(url, run_id, "fusion_selection", [(f"ndcg_{v}", 10, x) for v, x in valid_ndcg.items()],
                   plan.split_date, "validation", None)
    fused.save(plan.artifact_dir / "fused")
    np.savez(plan.artifact_dir / "fused" / "holdout_recs.npz", users=holdout.users, recs=final_recs)
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.fusion_weights where run_id = %s", (run_id,))
        for variant, w in weights.items():
            for feature, value in w.items():
                cur.execute("insert into ml.fusion_weights values (%s, %s, %s, %s)", (run_id, variant, feature, value))
    ndcg10 = {name: next(v for m, k, v in rows if m == "ndcg" and k == 10) for name, rows in results.items()}
    summary = {"run_id": run_id, "variant": choice,
               "validation_ndcg@10": {k: round(v, 4) for k, v in valid_ndcg.items()},
               "holdout_ndcg@10": {k: round(v, 4) for k, v in ndcg10.items()}}
    log.info("fusion %s: %s", run_id, summary)
    return summary


def _metric(url: str | None, run_id: str, model: str, metric: str = "ndcg", k: int = 10) -> float | None:
    with warehouse.transaction(url) as cur:
        cur.execute("select value from ml.model_metrics where run_id = %s and model_name = %s and metric = %s "
                    "and k = %s and slice = 'holdout'", (run_id, model, metric, k))
        row = cur.fetchone()
    return row[0] if row else None


def _champion_on_holdout(champion_dir: Path, data: Dataset, holdout: Split, challenger_recs: np.ndarray
                         ) -> tuple[float, float, int]:
    """Re-score the champion on this run's holdout, on the customers it knows: (champion, challenger, n) NDCG@10."""
    fused = FusedModel.load(champion_dir / "fused")
    old = Dataset.load(champion_dir / "dataset.npz")
    old_split_day = int(json.loads((champion_dir / "split.json").read_text())["split_day"])
    old_hist = old.before(date(1970, 1, 1) + timedelta(days=old_split_day))
    ids = data.customers[holdout.users]
    pos = np.searchsorted(old.customers.astype(str), ids.astype(str))
    pos = np.minimum(pos, len(old.customers) - 1)
    known = old.customers[pos] == ids
    if not known.any():
        return 0.0, 0.0, 0
    old_exclude = old_hist.bought().multiply(~old.repeatable[None, :]).tocsr()
    recs_old, _, _ = fused.rank(old_hist, pos[known], old_exclude, 10)
    mapped = data_index(data, old.products, recs_old)
    champ = ranking_metrics(mapped, holdout.relevant[np.flatnonzero(known)], 10)["ndcg"]
    chall = ranking_metrics(challenger_recs[known], holdout.relevant[np.flatnonzero(known)], 10)["ndcg"]
    return champ, chall, int(known.sum())


def data_index(data: Dataset, products: np.ndarray, recs: np.ndarray) -> np.ndarray:
    """Map product indexes of another dataset to this one's (-1 where the product is gone)."""
    idx = np.full(recs.shape, -1, dtype=np.int64)
    ok = recs >= 0
    found = np.searchsorted(data.products.astype(str), products[recs[ok]].astype(str))
    found = np.minimum(found, data.n_items - 1)
    same = data.products[found] == products[recs[ok]]
    idx[ok] = np.where(same, found, -1)
    return idx


def gate_champion(run_id: str, *, url: str | None = None, margin: float | None = None) -> dict:
    """Register the run's fused model and decide: promote to champion, or keep the champion and say why."""
    settings = load_settings()
    margin = settings.gate_margin if margin is None else margin
    plan = Plan.load(run_id, url)
    (plan.artifact_dir / "split.json").write_text(json.dumps({"split_day": (plan.split_date - date(1970, 1, 1)).days}))
    challenger = _metric(url, run_id, "fused_with_rules")
    popularity = _metric(url, run_id, "popularity")
    with warehouse.transaction(url) as cur:
        cur.execute("select model_version, artifact_path from ml.model_registry where status = 'champion'")
        current = cur.fetchone()
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    _, holdout = plan.splits(data)
    saved = np.load(plan.artifact_dir / "fused" / "holdout_recs.npz")
    reasons, promote = [], True
    if challenger < popularity * (1 + margin):
        promote = False
        reasons.append(f"NDCG@10 {challenger:.4f} does not beat popularity {popularity:.4f} by {margin:.0%}")
    champion_ndcg = None
    if current and current[0] != run_id:
        champ, chall, n = _champion_on_holdout(Path(current[1]), data, holdout, saved["recs"])
        champion_ndcg = champ
        if n and chall < champ * (1 + margin):
            promote = False
            reasons.append(f"on the {n} customers both know, NDCG@10 {chall:.4f} does not beat champion "
                           f"{current[0]} ({champ:.4f}) by {margin:.0%}")
    if promote:
        reason = (f"promoted: NDCG@10 {challenger:.4f} beats popularity {popularity:.4f}"
                  + (f" and champion {current[0]} ({champion_ndcg:.4f})" if champion_ndcg is not None else
                     " (no previous champion)") + f" by at least {margin:.0%}")
    else:
        reason = "rejected: " + "; ".join(reasons) + (f"; champion {current[0]} stays" if current else "")
    with open(plan.artifact_dir / "fused" / "fusion.json") as fh:
        meta = json.load(fh)
    metrics = {}
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, metric, k, value from ml.model_metrics where run_id = %s and slice = 'holdout'",
                    (run_id,))
        for model_name, metric, k, value in cur.fetchall():
            metrics.setdefault(model_name, {})[f"{metric}@{k}"] = value
        cur.execute("select pg_advisory_xact_lock(hashtext('ml.model_registry'))")
        cur.execute("delete from ml.model_registry where model_version = %s", (run_id,))
        if promote:
            cur.execute("update ml.model_registry set status = 'retired', decided_at = now(), "
                        "reason = reason || %s where status = 'champion'", (f" | retired by {run_id}",))
        cur.execute(
            """
            insert into ml.model_registry (model_version, run_id, business_date, fusion_variant, base_models,
                                           data_window, metrics, artifact_path, status, reason, decided_at)
            values (%s, %s, %s, %s, %s, daterange(%s, %s, '[]'), %s, %s, %s, %s, now())
            """,
            (run_id, run_id, plan.business_date, meta["variant"], meta["models"], plan.train_start,
             plan.split_date - timedelta(days=1), json.dumps(metrics), str(plan.artifact_dir),
             "champion" if promote else "rejected", reason),
        )
        cur.execute("update ml.training_runs set status = 'done', finished_at = now() where run_id = %s", (run_id,))
        cur.execute("select model_version from ml.model_registry where status = 'champion'")
        champion = cur.fetchone()
    summary = {"run_id": run_id, "business_date": plan.business_date.isoformat(), "promoted": promote,
               "champion": champion[0] if champion else None, "reason": reason}
    log.info("gate %s: %s", run_id, summary)
    return summary


def retrain(business_date: date, *, url: str | None = None, require_quality: bool = True,
            models: tuple[str, ...] | None = None, tag: str | None = None) -> dict:
    """The whole ``omnifuse_retrain`` DAG's work in one process (benchmarks and tests)."""
    prep = prepare_training(business_date, url=url, require_quality=require_quality, tag=tag)
    names = tuple(models or BASE_MODELS)
    trained = {n: train_model(prep["run_id"], n, url=url) for n in names}
    fused = fuse_models(prep["run_id"], url=url, models=names)
    gate = gate_champion(prep["run_id"], url=url)
    return {"prepare": prep, "train": trained, "fuse": fused, "gate": gate}
