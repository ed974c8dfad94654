"""Training runs (``ml.training_runs`` and their model-store folders): prepare the data window, tune and train
each base model, fuse, evaluate, gate, register — the work of the ``omnifuse_retrain`` DAG.

One run per attempt at a business date D: ``run_id = retrain_<D>`` the first time, ``retrain_<D>_v2``, … on
re-runs (nothing is overwritten; see :mod:`omnifuse.registry`).

- holdout: event days ``T .. D``, as many days (from ``OMNIFUSE_HOLDOUT_DAYS`` up to
  ``OMNIFUSE_HOLDOUT_MAX_DAYS``) as it takes to reach ``OMNIFUSE_EVAL_CUSTOMERS`` labelled customers;
- validation slice (tuning and fusion learn here): ``V .. T-1``, sized the same way;
- training window: from ``D - train_days``; only event dates that passed their gates are read.

Per base model: its hyper-parameters are searched on the validation slice (:mod:`omnifuse.tuning`), then it is
fitted before T (the **evaluated fit**, scored on the holdout) and on the whole window up to D (the **served
fit**). Fusion chooses its variant on the validation slice; the served configuration is the fusion if it
beats the best single model (with the business rules) on the holdout beyond the noise, else that single
model. Artifacts live under ``<model store>/runs/<run_id>/``: ``dataset.npz``, ``valid/``, ``holdout/``,
``served/`` (base model fits), ``evaluated/`` (the served configuration on the evaluated fits, what the
metrics describe), ``fused/`` (the same configuration on the served fits: what is published) and
``selection.json`` (:class:`Selection`). Heavy data moves through the model store, never through XCom: each step
returns a small typed summary (:class:`PreparedRun`, :class:`TrainedModel`, :class:`FusionSummary`,
:class:`omnifuse.registry.GateDecision`), which is what the DAG's tasks hand on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TypedDict

import numpy as np

from omnifuse import registry, reranker, warehouse
from omnifuse.artifacts import manifest_digest, read_file, write_file
from omnifuse.config import RerankConfig, Settings, TrainingSettings, load_settings, load_training_settings
from omnifuse.dataset import Dataset, load_dataset
from omnifuse.evaluate import KS, Split, evaluate, make_split, per_customer, size_window
from omnifuse.fusion import (
    BLENDS,
    OUT_OF_SAMPLE_ON_VALIDATION,
    FusedModel,
    LinearScorer,
    Rules,
    candidates,
    choose_served,
    fit_learners,
    rank,
    variant_scores,
)
from omnifuse.models import BASE_MODELS, Recommender, model_class
from omnifuse.registry import GateDecision
from omnifuse.tuning import record_trials, tune

log = logging.getLogger(__name__)
TOP_K = max(KS)
EPOCH = date(1970, 1, 1)


class BlockedDateError(RuntimeError):
    """The business date did not pass its quality gates: nothing may train on it."""


class RegisteredRunError(RuntimeError):
    """A training step was re-run for a run already registered in ``ml.model_registry``: a registered version's
    artifacts are never rewritten (the champion changes only through the gate)."""


def _refuse_registered(plan: Plan, step: str, url: str | None) -> None:
    """Raise :class:`RegisteredRunError` when ``plan``'s run (or its baseline) is in ``ml.model_registry``."""
    with warehouse.transaction(url) as cur:
        cur.execute("select model_version, status from ml.model_registry where run_id = %s order by 1",
                    (plan.run_id,))
        rows = cur.fetchall()
    if rows:
        versions = ", ".join(f"{v} ({s})" for v, s in rows)
        raise RegisteredRunError(
            f"{step} of {plan.run_id}: the run is already gated and registered in ml.model_registry ({versions}); "
            f"its artifacts under {plan.artifact_dir} are never rewritten, and the champion changes only through "
            "the gate. To train again, clear the whole run from prepare_training (it records a new version, "
            f"{plan.run_id}_v2 or later) or trigger omnifuse_retrain with "
            f'{{"business_date": "{plan.business_date}"}}.')


@dataclass(frozen=True)
class Plan:
    run_id: str
    business_date: date
    split_date: date
    valid_date: date
    train_start: date
    artifact_dir: Path

    @classmethod
    def load(cls, run_id: str, url: str | None = None) -> Plan:
        with warehouse.transaction(url) as cur:
            cur.execute("select business_date, split_date, valid_date, train_start, artifact_dir "
                        "from ml.training_runs where run_id = %s", (run_id,))
            row = cur.fetchone()
        if row is None:
            raise LookupError(f"no training run {run_id} in ml.training_runs; run prepare_training first")
        return cls(run_id, row[0], row[1], row[2], row[3], Path(row[4]))

    def splits(self, data: Dataset, settings: Settings, protocol: str = "new") -> tuple[Split, Split]:
        """(validation split, holdout split), excluding what publishing excludes (``OMNIFUSE_RECOMMEND_REPEATS``)."""
        repeats = settings.recommend_repeats
        valid = make_split(data.before(self.split_date), self.valid_date, self.split_date - timedelta(days=1),
                           protocol, repeats)
        holdout = make_split(data, self.split_date, self.business_date, protocol, repeats)
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


def _size(data: Dataset, business_date: date, settings: Settings, ts: TrainingSettings) -> tuple[int, int]:
    """(holdout days, validation days) reaching the labelled-customer target, bounded by the settings and so
    that at least a third of the window stays for training."""
    first = EPOCH + timedelta(days=int(data.day.min())) if len(data.day) else business_date
    span = (business_date - first).days + 1
    h_max = max(settings.holdout_days, min(ts.holdout_max_days, span // 3))
    h = size_window(data, business_date, ts.eval_customers, settings.holdout_days, h_max)
    split = business_date - timedelta(days=h - 1)
    v_max = max(settings.valid_days, min(ts.valid_max_days, (span - h) // 2))
    v = size_window(data.before(split), split - timedelta(days=1), ts.eval_customers, settings.valid_days, v_max)
    return h, v


class PreparedRun(TypedDict):
    """:func:`prepare_training`'s summary: the run recorded in ``ml.training_runs`` and the size of its slices."""

    run_id: str
    version: int
    customers: int
    products: int
    train_events: int
    holdout_days: int
    valid_days: int
    valid_customers: int
    holdout_customers: int


def prepare_training(business_date: date, *, url: str | None = None, require_quality: bool = True,
                     tag: str | None = None, settings: Settings | None = None,
                     training: TrainingSettings | None = None) -> PreparedRun:
    """Check the gates, load the data window, size the holdout and validation slices, save the dataset and
    record a new run version in ``ml.training_runs`` (earlier runs of the date are kept)."""
    settings = settings or load_settings()
    training = training or load_training_settings()
    if require_quality:
        _check_quality(business_date, url)
    train_start = business_date - timedelta(days=settings.train_days)
    data = load_dataset(train_start, business_date, url).with_learned_repeatable()
    h, v = _size(data, business_date, settings, training)
    split = business_date - timedelta(days=h - 1)
    valid_date = split - timedelta(days=v)
    if not len(data.user) or not (data.day >= (split - EPOCH).days).any():
        raise RuntimeError(f"retrain {business_date}: no attributed interactions in the holdout {split}.."
                           f"{business_date}; load those dates first (omnifuse_ingest).")
    base = f"retrain_{business_date:%Y%m%d}" + (f"_{tag}" if tag else "")
    with warehouse.transaction(url) as cur:
        warehouse.lock(cur, "training_runs")
        cur.execute("select coalesce(max(version), 0) from ml.training_runs where business_date = %s "
                    "and tag is not distinct from %s", (business_date, tag))
        version = cur.fetchone()[0] + 1
        run_id = base if version == 1 else f"{base}_v{version}"
        folder = settings.model_store / "runs" / run_id
        plan = Plan(run_id, business_date, split, valid_date, train_start, folder)
        valid, holdout = plan.splits(data, settings)
        if not len(holdout.users) or not len(valid.users):
            raise RuntimeError(
                f"retrain {business_date}: no customer with a purchase in the holdout {split}..{business_date} "
                f"({len(holdout.users)}) or the validation slice {valid_date}..{split - timedelta(days=1)} "
                f"({len(valid.users)}); load more dates, or raise OMNIFUSE_HOLDOUT_MAX_DAYS / OMNIFUSE_VALID_MAX_DAYS.")
        data.save(folder / "dataset.npz")  # inside the transaction: no row without its dataset
        cur.execute(
            """
            insert into ml.training_runs (run_id, business_date, split_date, valid_date, train_start, customers,
                                          products, train_events, eval_customers, seed, artifact_dir, tag, version,
                                          holdout_days, valid_days, holdout_customers, valid_customers)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            """,
            (run_id, business_date, split, valid_date, train_start, data.n_users, data.n_items,
             int(len(holdout.train.user)), len(holdout.users), settings.seed, str(folder), tag, version, h, v,
             len(holdout.users), len(valid.users)),
        )
    return PreparedRun(run_id=run_id, version=version, customers=data.n_users, products=data.n_items,
                       train_events=int(len(holdout.train.user)), holdout_days=h, valid_days=v,
                       valid_customers=len(valid.users), holdout_customers=len(holdout.users))


def _write_metrics(url: str | None, run_id: str, model: str, rows: Iterable[tuple], split_date: date, slice_: str,
                   fit_s: float | None) -> None:
    """Replace the (run, model, slice) metrics: rows are (metric, k, value[, ci_low, ci_high, customers])."""
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.model_metrics where run_id = %s and model_name = %s and slice = %s",
                    (run_id, model, slice_))
        for row in rows:
            metric, k, value, lo, hi, n = (*row, None, None, None)[:6]
            cur.execute(
                "insert into ml.model_metrics (run_id, model_name, metric, k, value, split_date, slice, fit_seconds, "
                "ci_low, ci_high, customers) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (run_id, model, metric, k, value, split_date, slice_, fit_s, lo, hi, n),
            )


class TrainedModel(TypedDict):
    """:func:`train_model`'s summary: the tuned parameters, the evaluated fit's time and its holdout NDCG."""

    model: str
    fit_seconds: float
    params: dict[str, object]
    trials: int  # tuning trials run (not beyond OMNIFUSE_TUNING_TRIALS)
    ndcg: dict[str, float]  # "@10", "@20": holdout NDCG at that cut-off


def train_model(run_id: str, name: str, *, url: str | None = None, trials: int | None = None,
                settings: Settings | None = None, training: TrainingSettings | None = None) -> TrainedModel:
    """Tune one base model on the validation slice (its first ``trials`` settings, default
    ``OMNIFUSE_TUNING_TRIALS``), fit it before T (evaluated on the holdout) and on the whole window up to D
    (served); save the three fits; store metrics (new items and repeat purchases) and trials. Refuses a run
    already registered (:class:`RegisteredRunError`): its artifacts are never rewritten."""
    settings = settings or load_settings()
    plan = Plan.load(run_id, url)
    _refuse_registered(plan, f"train_{name}", url)
    seed = settings.seed
    if trials is None:
        trials = (training or load_training_settings()).tuning_trials
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    valid, holdout = plan.splits(data, settings)
    tuned, tried = tune(name, valid, seed, trials)
    tuned.save(plan.artifact_dir / "valid" / name)
    params = dict(tuned.params)
    cls = model_class(name)
    started = time.perf_counter()
    model = cls(seed=seed, **params).fit(holdout.train)
    fit_s = time.perf_counter() - started
    model.save(plan.artifact_dir / "holdout" / name)
    cls(seed=seed, **params).fit(data).save(plan.artifact_dir / "served" / name)
    recs, _ = model.recommend(holdout.train, holdout.users, TOP_K, exclude=holdout.exclude)
    metrics = evaluate(recs, holdout, data.n_items, seed)
    _write_metrics(url, run_id, name, metrics, plan.split_date, "holdout", fit_s)
    _, repeat = plan.splits(data, settings, "repeat")
    r_recs, _ = model.recommend(repeat.train, repeat.users, TOP_K, exclude=repeat.exclude)
    _write_metrics(url, run_id, name, evaluate(r_recs, repeat, data.n_items, seed), plan.split_date,
                   "holdout_repeat", None)
    record_trials(run_id, name, tried, url)
    summary = TrainedModel(model=name, fit_seconds=round(fit_s, 2), params=params,
                           trials=sum(t.status == "run" for t in tried),
                           ndcg={f"@{k}": round(v, 4) for m, k, v, *_ in metrics if m == "ndcg"})
    log.info("trained %s: %s", name, summary)
    return summary


def _load_models(folder: Path, names: Iterable[str]) -> dict[str, Recommender]:
    return {n: model_class(n).load(folder / n) for n in names}


def _ndcg10(recs: np.ndarray, split: Split) -> np.ndarray:
    return per_customer(recs, split.relevant, 10)["ndcg"]


#: validation customers scored for the serving decision at most (a seeded sample beyond)
EVIDENCE_MAX_USERS = 5_000


def _validation_evidence(models: dict, valid: Split, variant: str, learner: LinearScorer | None, rules: Rules,
                         n_cand: int, rr: RerankConfig, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-customer NDCG@10 on the validation slice, with the business rules, of the fusion ``variant`` (its
    learner learnt without the validation labels) and of every single model, all fitted before the slice."""
    users = valid.users
    keep = np.arange(len(users))
    if len(users) > EVIDENCE_MAX_USERS:
        keep = np.sort(np.random.default_rng(seed).choice(len(users), EVIDENCE_MAX_USERS, replace=False))
    users = users[keep]
    sub = Split(users, valid.relevant[keep], valid.exclude, valid.train, valid.end_day)

    def ndcg(model: FusedModel) -> np.ndarray:
        return _ndcg10(model.rank(valid.train, users, valid.exclude, TOP_K)[0], sub)

    fused = ndcg(FusedModel(models, variant, learner, rules=rules, n_candidates=n_cand, rerank=rr))
    singles = {n: ndcg(FusedModel(models, "single", rules=rules, n_candidates=n_cand, use=[n])) for n in models}
    return fused, singles


class Selection(TypedDict):
    """What a run serves (``selection.json``, written by :func:`fuse_models`, read by :func:`gate_champion`)."""

    served_model: str  # "fusion_<variant>" or a base model's name
    variant: str  # the served configuration's variant ("single" for a base model)
    use: list[str]  # the base models it combines
    models: list[str]  # every base model trained
    fusion_variant: str  # the fusion variant chosen on the validation slice
    variant_reason: str
    reason: str  # why the fusion or the single model is served


class FusionSummary(TypedDict):
    """:func:`fuse_models`'s summary: the fusion variant, what is served and why, and NDCG@10 per model."""

    run_id: str
    variant: str  # the fusion variant chosen on the validation slice
    served_model: str
    reason: str
    validation_ndcg10: dict[str, float]  # per fusion variant
    holdout_ndcg10: dict[str, float]  # per model, variant and served configuration


def fuse_models(run_id: str, *, url: str | None = None, models: tuple[str, ...] | None = None,
                settings: Settings | None = None, training: TrainingSettings | None = None) -> FusionSummary:
    """Choose the fusion variant on the validation slice; score every variant, the fusion with rules and each
    single model with rules on the holdout; serve the fusion only if it beats the best single model beyond the
    noise (on the holdout customers, and on the validation ones too for a variant whose learner never saw the
    validation labels); save the evaluated and the served (refitted) configuration."""
    settings = settings or load_settings()
    training = training or load_training_settings()
    seed = settings.seed
    n_cand = training.fusion_candidates
    rr = training.rerank
    repeats = settings.recommend_repeats
    rules = Rules.from_settings(settings)
    plan = Plan.load(run_id, url)
    _refuse_registered(plan, "fuse_models", url)
    names = tuple(models or BASE_MODELS)
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    valid, holdout = plan.splits(data, settings)
    valid_models = _load_models(plan.artifact_dir / "valid", names)
    learnt = fit_learners(valid_models, data, valid, (plan.split_date - EPOCH).days, n_cand, seed, rerank=rr,
                          repeats=repeats)
    choice = learnt.choice
    evaluated = _load_models(plan.artifact_dir / "holdout", names)

    cands = candidates(evaluated, holdout.train, holdout.users, holdout.exclude, n_cand)
    results = {}
    for variant in BLENDS:
        recs, _ = rank(cands, variant_scores(variant, cands, learnt.learners.get(variant)), len(holdout.users), TOP_K)
        results[f"fusion_{variant}"] = evaluate(recs, holdout, data.n_items, seed)
    # the re-ranker learns from its own history's folds: the evaluated one from the days before the holdout
    learners = {v: x for v, x in learnt.learners.items() if v != "rerank"}
    evaluated_rr = reranker.fit(holdout.train, seed, repeats, rr) if "rerank" in learnt.learners else None
    if evaluated_rr is not None:
        learners["rerank"] = evaluated_rr
    if choice not in learners and choice not in ("equal", "rrf"):
        learnt.reason += f"; {choice} could not be trained before the holdout (too little history), equal is used"
        choice = "equal"
    fused = FusedModel(evaluated, choice, learners.get(choice), rules=rules, n_candidates=n_cand, rerank=rr)
    if evaluated_rr is not None:  # its scorers, fitted once, also serve the fused ranking below when it is chosen
        c = reranker.candidates(holdout.train, holdout.users, holdout.exclude, rr, list(names),
                                fused.scorers(holdout.train))
        recs, _ = rank(c, evaluated_rr.decision_function(c.z), len(holdout.users), TOP_K)
        results["fusion_rerank"] = evaluate(recs, holdout, data.n_items, seed)
    fused_recs, _, _ = fused.rank(holdout.train, holdout.users, holdout.exclude, TOP_K)
    del fused  # with it go the re-ranker's scorers on the holdout's history (hundreds of MB at scale)
    results["fused_with_rules"] = evaluate(fused_recs, holdout, data.n_items, seed)
    fused_pc = _ndcg10(fused_recs, holdout)
    singles = {}
    for name in names:
        single = FusedModel(evaluated, "single", rules=rules, n_candidates=n_cand, use=[name])
        s_recs, _, _ = single.rank(holdout.train, holdout.users, holdout.exclude, TOP_K)
        results[f"{name}_with_rules"] = evaluate(s_recs, holdout, data.n_items, seed)
        singles[name] = (_ndcg10(s_recs, holdout), s_recs)
    fused_ev, singles_ev, evidence = fused_pc, {n: singles[n][0] for n in names}, "holdout"
    if choice in OUT_OF_SAMPLE_ON_VALIDATION:  # (rerank is only ever chosen with its validation learner)
        # its validation scores are out of sample too: about twice the customers, a √2 narrower interval
        v_fused, v_singles = _validation_evidence(valid_models, valid, choice, learnt.learners.get(choice), rules,
                                                  n_cand, rr, seed)
        fused_ev = np.concatenate([v_fused, fused_pc])
        singles_ev = {n: np.concatenate([v_singles[n], singles_ev[n]]) for n in names}
        evidence = "validation and holdout"
    served_model, why = choose_served(fused_ev, singles_ev, choice, seed, evidence)
    if served_model.startswith("fusion_"):
        variant, use, recs = choice, list(names), fused_recs
    else:
        variant, use, recs = "single", [served_model], singles[served_model][1]
    results["served"] = evaluate(recs, holdout, data.n_items, seed)
    for model_name, rows in results.items():
        _write_metrics(url, run_id, model_name, rows, plan.split_date, "holdout", None)
    _write_metrics(url, run_id, "fusion_selection", [(f"ndcg_{v}", 10, x) for v, x in learnt.ndcg.items()],
                   plan.split_date, "validation", None)
    learner = learners.get(variant) if variant != "single" else None
    served_learner = learner
    if variant == "rerank":  # refitted on folds of the whole window, like the base models' served fits
        served_learner = reranker.fit(data, seed, repeats, rr) or learner
        if served_learner is not None:
            learnt.weights["rerank"] = reranker.weights(served_learner)
    FusedModel(evaluated, variant, learner, rules=rules, n_candidates=n_cand, use=use, rerank=rr).save(
        plan.artifact_dir / "evaluated")
    FusedModel(_load_models(plan.artifact_dir / "served", names), variant, served_learner, rules=rules,
               n_candidates=n_cand, use=use, rerank=rr).save(plan.artifact_dir / "fused")
    selection = Selection(served_model=served_model, variant=variant, use=use, models=list(names),
                          fusion_variant=choice, variant_reason=learnt.reason, reason=why)
    write_file(plan.artifact_dir / "selection.json", json.dumps(selection, indent=1).encode())
    with warehouse.transaction(url) as cur:
        cur.execute("delete from ml.fusion_weights where run_id = %s", (run_id,))
        for v, w in learnt.weights.items():
            for feature, value in w.items():
                cur.execute("insert into ml.fusion_weights values (%s, %s, %s, %s)", (run_id, v, feature, value))
    ndcg10 = {name: next(v for m, k, v, *_ in rows if m == "ndcg" and k == 10) for name, rows in results.items()}
    summary = FusionSummary(run_id=run_id, variant=choice, served_model=served_model, reason=why,
                            validation_ndcg10={k: round(v, 4) for k, v in learnt.ndcg.items()},
                            holdout_ndcg10={k: round(v, 4) for k, v in ndcg10.items()})
    log.info("fusion %s: %s", run_id, summary)
    return summary


def gate_champion(run_id: str, *, url: str | None = None, margin: float | None = None,
                  force: bool | None = None, settings: Settings | None = None,
                  training: TrainingSettings | None = None) -> GateDecision:
    """Register the run's served configuration and decide: promote to champion, or keep the champion and say
    why (:mod:`omnifuse.registry`). Idempotent: a retried gate returns the decision already recorded."""
    done = registry.existing(url, run_id)
    if done is not None:
        return done
    settings = settings or load_settings()
    margin = settings.gate_margin if margin is None else margin
    forced = (training or load_training_settings()).force_champion if force is None else bool(force)
    plan = Plan.load(run_id, url)
    data = Dataset.load(plan.artifact_dir / "dataset.npz")
    _, holdout = plan.splits(data, settings)
    selection: Selection = json.loads(read_file(plan.artifact_dir / "selection.json"))
    served = FusedModel.load(plan.artifact_dir / "evaluated")
    recs, _, _ = served.rank(holdout.train, holdout.users, holdout.exclude, TOP_K)
    challenger = _ndcg10(recs, holdout)
    pop = model_class("popularity").load(plan.artifact_dir / "holdout" / "popularity") \
        if (plan.artifact_dir / "holdout" / "popularity").exists() else \
        model_class("popularity")(seed=settings.seed).fit(holdout.train)
    p_recs, _ = pop.recommend(holdout.train, holdout.users, TOP_K, exclude=holdout.exclude)
    popularity = _ndcg10(p_recs, holdout)

    champ = registry.champion_info(url)
    older = None
    versus = None
    unscored = None
    if champ is not None:
        if champ.business_date > plan.business_date:
            older = f"{champ.model_version}, {champ.business_date}"
        try:
            rows, values, which = registry.champion_on_holdout(champ, data, holdout, plan.split_date,
                                                               repeats=settings.recommend_repeats)
            versus = (champ.model_version, rows, values, which)
        except (registry.ArtifactError, ValueError) as exc:
            unscored = f"champion {champ.model_version} could not be scored on this holdout: {exc}"
    decision = registry.judge(run_id, challenger, popularity, versus, margin, settings.seed, older, forced)
    decision.previous = champ.model_version if champ else None
    if unscored and not forced:
        assert champ is not None  # only a champion can fail to be scored
        decision.promote = False
        decision.reason = (f"rejected: {unscored}; champion {champ.model_version} stays (force to replace it)")
    elif unscored:
        decision.reason += f" ({unscored}; forced)"
    decision.reason += f". Served: {selection['reason']}"
    metrics: dict = {}
    with warehouse.transaction(url) as cur:
        cur.execute("select model_name, metric, k, value from ml.model_metrics where run_id = %s and slice = 'holdout'",
                    (run_id,))
        for model_name, metric, k, value in cur.fetchall():
            metrics.setdefault(model_name, {})[f"{metric}@{k}"] = value
    # anchor what was judged in the registry: the manifest of evaluated/ as loaded above, and of fused/
    checksums = {"evaluated": served.manifest_sha256 or manifest_digest(plan.artifact_dir / "evaluated"),
                 "fused": manifest_digest(plan.artifact_dir / "fused")}
    baseline = None
    if champ is None and not decision.promote:
        baseline = _write_baseline(plan, selection, metrics, served, checksums["fused"], float(popularity.mean()),
                                   decision.reason)
        decision.reason += (f"; no champion yet: {registry.baseline_version(run_id)} ({baseline['served_model']} "
                            "with the business rules) is served as the baseline champion")
    with warehouse.transaction(url) as cur:
        champion = registry.record(
            cur, run_id=run_id, business_date=plan.business_date, variant=selection["variant"],
            base_models=selection["use"], served_model=selection["served_model"], train_start=plan.train_start,
            split_date=plan.split_date, artifact_dir=plan.artifact_dir, metrics=metrics, decision=decision,
            expected_champion=champ.model_version if champ else None, forced=forced and older is not None,
            checksums=checksums)
        if baseline is not None:
            champion = registry.record_baseline(
                cur, run_id=run_id, business_date=plan.business_date, served_model=baseline["served_model"],
                base_models=[baseline["served_model"]], train_start=plan.train_start, split_date=plan.split_date,
                folder=baseline["folder"], metrics=baseline["metrics"], reason=baseline["reason"])
        cur.execute("update ml.training_runs set status = 'done', finished_at = now() where run_id = %s", (run_id,))
    summary = GateDecision(run_id=run_id, business_date=plan.business_date.isoformat(), promoted=decision.promote,
                           champion=champion, reason=decision.reason)
    log.info("gate %s: %s", run_id, summary)
    return summary


class Baseline(TypedDict):
    """A run's baseline champion, written by :func:`_write_baseline` and registered by the gate."""

    served_model: str  # the single model served with the business rules
    folder: Path  # <run>/baseline: dataset.npz, evaluated/, fused/
    metrics: dict  # the run's holdout metrics, "served" being the baseline's
    reason: str


def _write_baseline(plan: Plan, selection: Selection, metrics: dict, evaluated: FusedModel, fused_sha256: str,
                    popularity: float, why: str) -> Baseline:
    """The baseline a shop without a champion is served: of the run's single models with the business rules, the
    one with the best holdout NDCG@10 (popularity on a tie: the model everything must beat), evaluated and
    served fits, in ``<run>/baseline/`` (a folder of its own: the run's artifacts are never rewritten)."""
    def ndcg(name: str) -> float:
        return float((metrics.get(f"{name}_with_rules") or {}).get("ndcg@10") or 0.0)

    names = list(selection["models"])
    best = max(names, key=lambda n: (ndcg(n), n == "popularity")) if names else "popularity"
    if best not in evaluated.models:
        raise RuntimeError(f"{plan.run_id}: no single model to serve as the baseline (models: {names}); retrain "
                           "with the popularity model included.")
    folder = plan.artifact_dir / "baseline"
    write_file(folder / "dataset.npz", read_file(plan.artifact_dir / "dataset.npz"))
    served_fit = FusedModel.load(plan.artifact_dir / "fused", manifest_sha256=fused_sha256)
    for which, source in (("evaluated", evaluated), ("fused", served_fit)):
        FusedModel(source.models, "single", rules=source.rules, n_candidates=source.n_candidates, use=[best],
                   rerank=source.rerank).save(folder / which)
    served = metrics.get(f"{best}_with_rules", {})
    reason = (f"baseline: there was no champion and {plan.run_id} was not promoted ({why.removeprefix('rejected: ')})"
              f"; {best} with the business rules is served (holdout NDCG@10 {ndcg(best):.4f}, the best single model; "
              f"popularity {popularity:.4f}) until a challenger beats it and popularity beyond the noise")
    return Baseline(served_model=best, folder=folder, metrics={**metrics, "served": served}, reason=reason)


class RetrainSummary(TypedDict):
    """:func:`retrain`'s summary: each step's."""

    prepare: PreparedRun
    train: dict[str, TrainedModel]
    fuse: FusionSummary
    gate: GateDecision


def retrain(business_date: date, *, url: str | None = None, require_quality: bool = True,
            models: tuple[str, ...] | None = None, tag: str | None = None,
            force: bool | None = None, settings: Settings | None = None,
            training: TrainingSettings | None = None) -> RetrainSummary:
    """The whole ``omnifuse_retrain`` DAG's work in one process (benchmarks and tests)."""
    settings = settings or load_settings()
    training = training or load_training_settings()
    prep = prepare_training(business_date, url=url, require_quality=require_quality, tag=tag, settings=settings,
                            training=training)
    names = tuple(models or BASE_MODELS)
    trained = {n: train_model(prep["run_id"], n, url=url, settings=settings, training=training) for n in names}
    fused = fuse_models(prep["run_id"], url=url, models=names, settings=settings, training=training)
    gate = gate_champion(prep["run_id"], url=url, force=force, settings=settings, training=training)
    return RetrainSummary(prepare=prep, train=trained, fuse=fused, gate=gate)
