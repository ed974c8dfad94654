"""Hyper-parameter search for each base model on the validation slice, bounded by a number of trials.

Each model has a short list of candidate settings (its defaults first) over the few parameters that matter:
EASE's λ; item-kNN's neighbourhood and shrinkage; PureSVD's factors; popularity's half-life; the two-tower's
width, steps and in-batch negatives (batch size); association rules' minimum support. The first ``trials``
settings run in that fixed order (``OMNIFUSE_TUNING_TRIALS``; the defaults always run: fusion needs that fit
anyway), each fitted before the validation slice and scored by NDCG@10 on it. The best mean wins (ties: the
earlier trial). The bound is a count, never seconds: fits are seeded, so the same data and seed give the same
choice on a busy machine or an idle one, in any process. A setting beyond the count is kept as a
``skipped_budget`` trial (``ml.tuning_trials``, counted in ``mart.model_performance.trials_skipped``). Each
trial's seconds are recorded; the task's ``execution_timeout`` caps the wall time by failing, never by
changing the choice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from omnifuse import warehouse
from omnifuse.evaluate import Split, per_customer
from omnifuse.models import Recommender, model_class

#: Candidate settings per model, defaults first (the defaults are the models' constructor defaults).
GRIDS: dict[str, list[dict]] = {
    "popularity": [{}, {"half_life_days": 3.0}, {"half_life_days": 14.0}, {"half_life_days": 30.0}],
    "popularity_channel": [{}, {"half_life_days": 3.0}, {"half_life_days": 14.0}, {"half_life_days": 30.0}],
    "item_knn": [{}, {"neighbours": 50}, {"neighbours": 200}, {"shrink": 50.0}, {"shrink": 1.0},
                 {"neighbours": 30, "shrink": 50.0}],
    "pure_svd": [{}, {"factors": 32}, {"factors": 128}, {"factors": 16}],
    "ease": [{}, {"l2": 100.0}, {"l2": 500.0}, {"l2": 1000.0}, {"l2": 50.0}],
    "assoc_rules": [{}, {"min_support_count": 1}, {"min_support_count": 3}],
    "two_tower": [{}, {"dim": 64}, {"batch_size": 2048}, {"max_steps": 500}, {"dim": 16, "max_steps": 3000}],
}


@dataclass
class Trial:
    """One setting of a model's grid: run (fitted and scored on the validation slice) or beyond the trial count."""

    trial: int
    params: dict
    valid_ndcg: float | None  # None: skipped
    fit_seconds: float | None
    chosen: bool = False

    @property
    def status(self) -> str:
        return "skipped_budget" if self.valid_ndcg is None else "run"


def tune(name: str, valid: Split, seed: int, trials: int, k: int = 10) -> tuple[Recommender, list[Trial]]:
    """Search the first ``trials`` settings of ``name``'s grid on ``valid`` (at least its defaults); returns the
    chosen model (fitted on ``valid.train``) and every setting of the grid as a trial, run or skipped."""
    cls = model_class(name)
    done: list[Trial] = []
    best: tuple[float, Recommender] | None = None
    for i, params in enumerate(GRIDS.get(name, [{}])):
        if i >= max(1, trials):
            done.append(Trial(i, dict(cls(**params).params), None, None))
            continue
        t0 = time.perf_counter()
        model = cls(seed=seed, **params).fit(valid.train)
        recs, _ = model.recommend(valid.train, valid.users, k, exclude=valid.exclude)
        ndcg = per_customer(recs, valid.relevant, k)["ndcg"]
        score = float(ndcg.mean()) if len(ndcg) else 0.0
        done.append(Trial(i, dict(model.params), score, time.perf_counter() - t0))
        if best is None or score > best[0]:
            best = (score, model)
    assert best is not None
    chosen = best[1]
    for t in done:
        t.chosen = t.params == chosen.params and t.valid_ndcg == best[0]
    return chosen, done


def record_trials(run_id: str, model_name: str, trials: list[Trial], url: str | None = None) -> None:
    """Replace ``ml.tuning_trials`` of one run and model with ``trials`` (a re-run of the task rewrites them)."""
    with warehouse.transaction(url) as cur:
        cur.execute(warehouse.sql_text("tuning/forget_trials.sql"), {"run_id": run_id, "model_name": model_name})
        cur.executemany(warehouse.sql_text("tuning/record_trial.sql"), [
            {"run_id": run_id, "model_name": model_name, "trial": t.trial, "params": json.dumps(t.params),
             "valid_ndcg": t.valid_ndcg, "fit_seconds": t.fit_seconds, "chosen": t.chosen, "status": t.status}
            for t in trials])


__all__ = ["GRIDS", "Trial", "record_trials", "tune"]
