"""Fusion: combine the base models' candidates into one ranking, learned on a validation slice before T.

Candidates for a customer are the union of every base model's top-``n_candidates``. Each (customer,
candidate) pair gets features: every model's per-customer z-scored score and reciprocal rank, the product's
popularity, price band and in-store flag, and the customer's channel mix, recency and frequency. Variants:

- ``equal``: the mean of the models' z-scores (the naive blend to beat);
- ``rrf``: reciprocal-rank fusion, Σ 1 / (60 + rank);
- ``linear``: learned blend weights — a logistic regression on the z-scores;
- ``stacked``: a logistic regression on all the standardised features (z-scores, reciprocal ranks, product
  and customer features);
- ``rerank``: :mod:`omnifuse.reranker`, a logistic regression blended with gradient-boosted trees over
  several scorers' views of EASE's top candidates, trained on time folds inside its own history (never on
  the validation labels, so every validation customer is scored out of sample without cross-fitting);
- ``single``: one model's own ranking (what is served when fusion does not beat the best single model).

The other learned variants are compared on every validation customer by two-fold cross-fitting (learners
fitted on one half score the other), and the served learners are fitted on all of them. The choice is the
simplest variant (equal, rrf, linear, stacked, rerank, in that order) that the best one does not beat beyond
the noise (paired bootstrap over customers). Validation labels must end before the holdout starts
(:class:`LeakageError` otherwise). Learners are stored as numpy arrays, and the re-ranker's trees as
LightGBM model text (no pickle). Business rules then shape the final top-K: in stock only, not already
bought unless repeatable, at most ``max_per_category`` per category, and a boost for products the stores
carry in proportion to a customer's store share.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from omnifuse.config import RerankConfig, Settings, load_settings
from omnifuse.dataset import CHANNELS, Dataset
from omnifuse.evaluate import Split, paired_lower_bound, per_customer
from omnifuse.models import Recommender, model_class

if TYPE_CHECKING:
    from omnifuse.reranker import Scorers

#: fusion variants, simplest first (the choice prefers the simpler of two that the noise cannot tell apart)
VARIANTS = ("equal", "rrf", "linear", "stacked", "rerank")
#: the variants ranking the union of the base models' candidates (``rerank`` has its own)
BLENDS = VARIANTS[:4]


class LinearScorer:
    """A logistic-regression scorer as plain arrays: ``(x - mean) / scale @ coef + intercept``."""

    def __init__(self, coef: np.ndarray, intercept: float, mean: np.ndarray | None = None,
                 scale: np.ndarray | None = None):
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.mean = np.zeros_like(self.coef) if mean is None else np.asarray(mean, dtype=np.float64)
        self.scale = np.ones_like(self.coef) if scale is None else np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, standardise: bool, seed: int, c: float = 1.0) -> LinearScorer:
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0) if standardise else np.zeros(x.shape[1])
        scale = np.maximum(x.std(axis=0), 1e-6) if standardise else np.ones(x.shape[1])
        lr = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit((x - mean) / scale, y)
        return cls(lr.coef_[0], lr.intercept_[0], mean, scale)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.array([self.intercept]), "mean": self.mean, "scale": self.scale}


class LeakageError(RuntimeError):
    """Fusion was asked to learn from labels on or after the holdout start."""


@dataclass
class Rules:
    """Business rules applied to the fused ranking."""

    in_stock_only: bool = True
    max_per_category: int = 4
    store_boost: float = 0.3

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Rules:
        """The rules of a new model: ``OMNIFUSE_MAX_PER_CATEGORY`` and ``OMNIFUSE_STORE_BOOST``."""
        s = settings or load_settings()
        return cls(max_per_category=s.max_per_category, store_boost=s.store_boost)


@dataclass
class Candidates:
    """Candidate (customer, product) pairs of a batch: ``row`` indexes into the batch's users."""

    row: np.ndarray
    item: np.ndarray
    z: np.ndarray  # (pairs, models)
    rr: np.ndarray  # (pairs, models)
    extra: np.ndarray  # (pairs, extra features)
    in_top: np.ndarray  # (pairs, models) bool: which models proposed the pair


def candidates(models: dict[str, Recommender], data: Dataset, users: np.ndarray, exclude: sp.csr_matrix,
               n_candidates: int, batch: int = 1000) -> Candidates:
    """Candidates of every user, computed ``batch`` users at a time (dense scores stay batch × products)."""
    parts = [_candidates(models, data, users[s:s + batch], exclude, n_candidates)
             for s in range(0, len(users), batch)]
    if not parts:
        parts = [_candidates(models, data, users[:0], exclude, n_candidates)]
    offsets = np.cumsum([0] + [min(batch, len(users) - s) for s in range(0, len(users), batch)])[:-1]
    return Candidates(
        row=np.concatenate([p.row + o for p, o in zip(parts, offsets, strict=False)]),
        item=np.concatenate([p.item for p in parts]), z=np.concatenate([p.z for p in parts]),
        rr=np.concatenate([p.rr for p in parts]), extra=np.concatenate([p.extra for p in parts]),
        in_top=np.concatenate([p.in_top for p in parts]),
    )


def _candidates(models: dict[str, Recommender], data: Dataset, users: np.ndarray, exclude: sp.csr_matrix,
                n_candidates: int) -> Candidates:
    names = list(models)
    excl = exclude[users]
    er, ec = excl.nonzero()
    zs, positions = [], []
    mask = np.zeros((len(users), data.n_items), dtype=bool)
    n = min(n_candidates, data.n_items)
    rows = np.arange(len(users))[:, None]
    for name in names:
        s = models[name].score(data, users).astype(np.float32)
        z = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-6)
        z[er, ec] = -np.inf
        top = np.argpartition(-z, n - 1, axis=1)[:, :n] if len(users) else np.zeros((0, n), dtype=np.int64)
        order = np.argsort(-np.take_along_axis(z, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        mask[rows, top] = True
        pos = np.zeros((len(users), data.n_items), dtype=np.int16)  # 1-based rank in this model's top-n
        pos[rows, top] = np.arange(1, n + 1, dtype=np.int16)[None, :]
        zs.append(z)
        positions.append(pos)
    mask[er, ec] = False
    row, item = mask.nonzero()
    z = np.stack([zz[row, item] for zz in zs], axis=1)
    z = np.where(np.isfinite(z), z, -10.0).astype(np.float32)
    ranks = np.stack([pos[row, item] for pos in positions], axis=1)
    in_top = ranks > 0
    rr = np.where(in_top, 1.0 / (60.0 + ranks), 0.0).astype(np.float32)
    uf = data.user_features()[users]
    pop = np.log1p(np.bincount(data.item, weights=data.weight, minlength=data.n_items))
    store_share = uf[:, CHANNELS.index("store")]
    extra = np.column_stack([
        pop[item], data.price_band[item], data.in_store[item] * store_share[row], uf[row],
    ]).astype(np.float32)
    return Candidates(row=row, item=item, z=z, rr=rr, extra=extra, in_top=in_top)


def variant_scores(variant: str, cands: Candidates, learner: LinearScorer | None = None) -> np.ndarray:
    if variant == "equal":
        return cands.z.mean(axis=1)
    if variant == "rrf":
        return cands.rr.sum(axis=1)
    if variant in ("linear", "stacked", "rerank") and learner is None:
        raise ValueError(f"fusion variant {variant!r} needs its learned scorer")
    if variant in ("linear", "rerank"):  # z: the models' z-scores, or the re-ranker's features
        return learner.decision_function(cands.z)  # type: ignore[union-attr]  # checked above
    if variant == "stacked":
        return learner.decision_function(_stack_features(cands))  # type: ignore[union-attr]
    if variant == "single":
        return cands.z[:, 0]
    raise ValueError(f"unknown fusion variant {variant!r}")


def _stack_features(c: Candidates) -> np.ndarray:
    return np.hstack([c.z, c.rr * 60.0, c.extra])


def pair_index(cands: Candidates, recs: np.ndarray) -> np.ndarray:
    """For each (batch row, product) of ``recs`` (rows × k, flattened), its index in ``cands`` (-1: none)."""
    rows = np.repeat(np.arange(recs.shape[0]), recs.shape[1])
    return pd.MultiIndex.from_arrays([cands.row, cands.item]).get_indexer(
        pd.MultiIndex.from_arrays([rows, recs.ravel()]))


def _labels(cands: Candidates, relevant: sp.csr_matrix) -> np.ndarray:
    return np.asarray(relevant[cands.row, cands.item]).ravel() > 0


def rank(cands: Candidates, score: np.ndarray, n_users: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and scores per batch row (rows with fewer candidates are padded with -1 / -inf)."""
    order = np.lexsort((cands.item, -score, cands.row))
    row, item, s = cands.row[order], cands.item[order], score[order]
    pos = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    keep = pos < k
    recs = np.full((n_users, k), -1, dtype=np.int64)
    vals = np.full((n_users, k), -np.inf, dtype=np.float32)
    recs[row[keep], pos[keep]] = item[keep]
    vals[row[keep], pos[keep]] = s[keep]
    return recs, vals


def apply_rules(cands: Candidates, score: np.ndarray, data: Dataset, users: np.ndarray, rules: Rules,
                k: int) -> tuple[Candidates, np.ndarray]:
    """Filter and re-weight candidates by the business rules; returns the kept candidates and their scores."""
    keep = np.ones(len(cands.row), dtype=bool)
    if rules.in_stock_only:
        keep &= data.in_stock[cands.item]
    frame = pd.DataFrame({"row": cands.row, "score": score})
    lo = frame.groupby("row")["score"].transform("min").to_numpy()
    hi = frame.groupby("row")["score"].transform("max").to_numpy()
    norm = (score - lo) / np.maximum(hi - lo, 1e-9)
    store_share = data.user_features()[users, CHANNELS.index("store")]
    boosted = norm + rules.store_boost * store_share[cands.row] * data.in_store[cands.item]
    frame = pd.DataFrame({"row": cands.row, "item": cands.item, "cat": data.category[cands.item],
                          "score": boosted, "idx": np.arange(len(cands.row))})[keep]
    frame = frame.sort_values(["row", "score", "item"], ascending=[True, False, True], kind="stable")
    frame = frame[frame.groupby(["row", "cat"]).cumcount() < rules.max_per_category]
    frame = frame[frame.groupby("row").cumcount() < k]
    idx = np.sort(frame["idx"].to_numpy())
    sub = Candidates(row=cands.row[idx], item=cands.item[idx], z=cands.z[idx], rr=cands.rr[idx],
                     extra=cands.extra[idx], in_top=cands.in_top[idx])
    return sub, boosted[idx]


@dataclass
class Learnt:
    """What :func:`fit_learners` learnt: the learners, each variant's validation NDCG@10 (mean and per
    customer of the selection half), the blend weights for ``ml.fusion_weights``, and the noise-aware choice."""

    learners: dict
    ndcg: dict[str, float]
    per_customer: dict[str, np.ndarray]
    weights: dict
    choice: str = "equal"
    reason: str = ""
    extra: dict = field(default_factory=dict)


def choose_variant(per_cust: dict[str, np.ndarray], seed: int) -> tuple[str, str]:
    """The simplest variant that the best (by mean) does not beat beyond the noise, and why."""
    means = {v: float(np.mean(x)) if len(x) else 0.0 for v, x in per_cust.items()}
    best = max(per_cust, key=lambda v: (means[v], -list(per_cust).index(v)))
    for v in per_cust:
        if v == best or paired_lower_bound(per_cust[best], per_cust[v], seed) <= 0:
            why = (f"{v}: validation NDCG@10 {means[v]:.4f}" + ("" if v == best else
                   f"; {best} ({means[best]:.4f}) is not better beyond the noise, the simpler variant wins"))
            return v, why
    return best, f"{best}: validation NDCG@10 {means[best]:.4f}"


#: the variants whose learner never saw the validation labels: their validation scores are out of sample, so
#: the validation customers are evidence for serving them too (``linear`` and ``stacked`` learn on them)
OUT_OF_SAMPLE_ON_VALIDATION = ("equal", "rrf", "rerank")


def choose_served(fused: np.ndarray, singles: dict[str, np.ndarray], variant: str, seed: int,
                  evidence: str = "holdout") -> tuple[str, str]:
    """Fusion earns its place: ``(served, why)`` where ``served`` is ``fusion_<variant>`` when the fusion's
    per-customer NDCG (``fused``) beats the best single model's (``singles``, same customers, both with the
    business rules) beyond the noise (paired bootstrap lower bound > 0), else the best single model's name.
    ``evidence`` names the customers the arrays hold, for the reason."""
    names = list(singles)
    best = max(names, key=lambda n: (float(singles[n].mean()) if len(singles[n]) else 0.0, -names.index(n)))
    lb = paired_lower_bound(fused, singles[best], seed) if len(fused) else 0.0
    f_mean = float(fused.mean()) if len(fused) else 0.0
    b_mean = float(singles[best].mean()) if len(singles[best]) else 0.0
    on = f"on {len(fused):,} {evidence} customers"
    if len(names) > 1 and lb > 0:
        return f"fusion_{variant}", (f"fusion_{variant} (NDCG@10 {f_mean:.4f}) beats the best single model {best} "
                                     f"({b_mean:.4f}) beyond the noise {on} (gain lower bound {lb:+.4f})")
    return best, (f"serving {best} with the business rules: fusion_{variant} (NDCG@10 {f_mean:.4f}) does not beat "
                  f"it ({b_mean:.4f}) beyond the noise {on} (gain lower bound {lb:+.4f})")


def fit_learners(models: dict[str, Recommender], data: Dataset, valid: Split, holdout_start_day: int,
                 n_candidates: int, seed: int, max_users: int = 20_000, rerank: RerankConfig | None = None,
                 repeats: bool = False) -> Learnt:
    """Fit the learned variants on the validation customers and score every variant on them by two-fold
    cross-fitting (each customer scored by learners fitted on the other half); the served learners are then
    fitted on all of them. With ``rerank``, the re-ranker is trained on folds of ``valid.train`` (``repeats``:
    the protocol publishing uses) and scored on every validation customer.

    ``valid``: a split whose relevant events all lie before ``holdout_start_day`` (days since epoch).
    """
    if valid.end_day >= holdout_start_day:
        raise LeakageError(
            f"fusion validation labels run to day {valid.end_day} but the holdout starts at day "
            f"{holdout_start_day}: learning there would leak the future into the evaluation.")
    rng = np.random.default_rng(seed)
    users = valid.users
    rel = valid.relevant
    if len(users) > max_users:
        pick = np.sort(rng.choice(len(users), max_users, replace=False))
        users, rel = users[pick], rel[pick]
    fold = (rng.random(len(users)) < 0.5).astype(np.int8)
    c_all = candidates(models, valid.train, users, valid.exclude, n_candidates)
    y_all = _labels(c_all, rel)
    if y_all.sum() == 0 or y_all.all():
        raise RuntimeError("fusion: the validation slice has no positive (or no negative) candidates; "
                           "widen OMNIFUSE_VALID_DAYS / OMNIFUSE_EVAL_CUSTOMERS or the training window.")
    stack_all = _stack_features(c_all)

    def fit(pairs: np.ndarray) -> dict:
        return {"linear": LinearScorer.fit(c_all.z[pairs], y_all[pairs], standardise=False, seed=seed),
                "stacked": LinearScorer.fit(stack_all[pairs], y_all[pairs], standardise=True, seed=seed)}

    # two-fold cross-fitting: every validation customer is scored by learners that never saw their labels
    scores = {v: np.zeros(len(c_all.row)) for v in BLENDS}
    scores["equal"] = variant_scores("equal", c_all)
    scores["rrf"] = variant_scores("rrf", c_all)
    for f in (0, 1):
        train_pairs = fold[c_all.row] == f
        y = y_all[train_pairs]
        if y.sum() == 0 or y.all():
            fitted = fit(np.ones(len(y_all), dtype=bool))  # a fold without positives: fall back to all pairs
        else:
            fitted = fit(train_pairs)
        other = ~train_pairs
        scores["linear"][other] = fitted["linear"].decision_function(c_all.z[other])
        scores["stacked"][other] = fitted["stacked"].decision_function(stack_all[other])
    learners = fit(np.ones(len(y_all), dtype=bool))
    per_cust = {}
    for variant in BLENDS:
        recs, _ = rank(c_all, scores[variant], len(users), 10)
        per_cust[variant] = per_customer(recs, rel, 10)["ndcg"]
    names = list(models)
    if rerank is not None:
        from omnifuse import reranker

        learner = reranker.fit(valid.train, seed, repeats, rerank)
        if learner is not None:
            learners["rerank"] = learner
            c = reranker.candidates(valid.train, users, valid.exclude, rerank, names)
            recs, _ = rank(c, learner.decision_function(c.z), len(users), 10)
            per_cust["rerank"] = per_customer(recs, rel, 10)["ndcg"]
    ndcg = {v: float(np.mean(x)) if len(x) else 0.0 for v, x in per_cust.items()}
    weights = {"linear": dict(zip(names, learners["linear"].coef.tolist(), strict=True))}
    weights["linear"]["intercept"] = learners["linear"].intercept
    weights["equal"] = {n: 1.0 / len(names) for n in names}
    choice, reason = choose_variant(per_cust, seed)
    return Learnt(learners, ndcg, per_cust, weights, choice, reason)


class FusedModel:
    """Base models + a fusion variant + business rules: what is registered, gated and published.

    ``models`` are every model kept with the version (publishing reads e.g. ``item_knn`` for similar products
    and ``assoc_rules`` for bought-together); ``use`` names the ones that rank (all of them for a fusion
    variant, one for ``single``). Contribution masks from :meth:`rank` always have one column per ``models``.
    """

    def __init__(self, models: dict[str, Recommender], variant: str, learner: LinearScorer | None = None,
                 rules: Rules | None = None, n_candidates: int = 50, use: list[str] | None = None,
                 rerank: RerankConfig | None = None):
        self.models = models
        self.variant = variant
        self.learner = learner
        self.rules = rules or Rules.from_settings()
        self.n_candidates = n_candidates
        self.use = list(use) if use else list(models)
        self.rerank = rerank if rerank is not None or variant != "rerank" else RerankConfig()  # its sizes
        self._scorers: tuple[Dataset, Scorers] | None = None
        #: the sha256 of the MANIFEST.json it was loaded from (:meth:`load`), None for a model built in memory
        self.manifest_sha256: str | None = None
        if variant == "single" and len(self.use) != 1:
            raise ValueError(f"variant 'single' ranks with one model, got {self.use}")

    def rank(self, data: Dataset, users: np.ndarray, exclude: sp.csr_matrix, k: int, rules: bool = True,
             batch: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k product indexes, scores and contributing-model masks (n_users, k, models) per user."""
        recs, vals, contrib = [], [], []
        ranking = {n: self.models[n] for n in self.use}
        cols = [list(self.models).index(n) for n in self.use]
        from omnifuse import reranker  # imports this module

        scorers = self.scorers(data) if self.variant == "rerank" else None
        for start in range(0, len(users), batch):
            u = users[start:start + batch]
            if scorers is not None:
                assert self.rerank is not None  # set in __init__ for this variant
                c = reranker.candidates(data, u, exclude, self.rerank, self.use, scorers)
            else:
                c = candidates(ranking, data, u, exclude, self.n_candidates)
            s = variant_scores(self.variant, c, self.learner)
            if rules:
                c, s = apply_rules(c, s, data, u, self.rules, k)
            r, v = rank(c, s, len(u), k)
            lookup = pair_index(c, r)
            m = np.zeros((len(u) * k, len(self.models)), dtype=bool)
            found = np.flatnonzero(lookup >= 0)
            m[np.ix_(found, np.asarray(cols, dtype=np.int64))] = c.in_top[lookup[found]]
            recs.append(r)
            vals.append(v)
            contrib.append(m.reshape(len(u), k, -1))
        if not recs:
            return (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32),
                    np.zeros((0, k, len(self.models)), bool))
        return np.vstack(recs), np.vstack(vals), np.concatenate(contrib)

    def scorers(self, data: Dataset) -> Scorers:
        """The re-ranker's scorers fitted on ``data`` (a model built with a ``rerank`` configuration), kept for the
        last dataset seen: ranking and explaining one batch fit them once."""
        from omnifuse import reranker

        assert self.rerank is not None, "only a model with a rerank configuration has scorers"
        if self._scorers is None or self._scorers[0] is not data:
            self._scorers = (data, reranker.fit_scorers(data, self.rerank))
        return self._scorers[1]

    def save(self, folder: Path) -> None:
        """Write the folder atomically (temp + rename) with a checksum manifest; no pickle."""
        from omnifuse.artifacts import write_dir

        with write_dir(folder) as tmp:
            for name, model in self.models.items():
                model.save(tmp / "models" / name)
            if self.learner is not None:
                np.savez(tmp / "learner.npz", **self.learner.arrays())  # type: ignore[arg-type]  # as in models.base
                trees = getattr(self.learner, "trees", None)  # the re-ranker's LightGBM half (model strings)
                if trees:
                    (tmp / "learner_trees.json").write_text(json.dumps(trees))
            (tmp / "fusion.json").write_text(json.dumps({
                "variant": self.variant, "models": list(self.models), "use": self.use, "rules": asdict(self.rules),
                "n_candidates": self.n_candidates, "learner": self.learner is not None,
                "rerank": asdict(self.rerank) if self.rerank is not None else None}, indent=1))

    @classmethod
    def load(cls, folder: Path, manifest_sha256: str | None = None) -> FusedModel:
        """Read a folder written by :meth:`save`: one read of every file its manifest lists (checked, then decoded
        from those same bytes), nothing it does not list; ``manifest_sha256``: the manifest's own checksum as
        the registry holds it. ``ArtifactError`` names a missing, corrupt or rewritten file."""
        from omnifuse.artifacts import ArtifactError, read_dir

        if (folder / "learner.pkl").exists():
            raise ArtifactError(f"{folder} holds a pickled learner written by an older omnifuse; pickles are no "
                                "longer loaded from the model store: re-run omnifuse_retrain for its date.")
        stored = read_dir(folder, manifest_sha256)
        try:
            meta = json.loads(stored.get("fusion.json"))
            learner = None
            if meta.get("learner"):
                with np.load(io.BytesIO(stored.get("learner.npz")), allow_pickle=False) as f:
                    learner = LinearScorer(f["coef"], float(f["intercept"][0]), f["mean"], f["scale"])
                if "learner_trees.json" in stored.files:
                    from omnifuse.reranker import RerankLearner

                    learner = RerankLearner(learner, json.loads(stored.files["learner_trees.json"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"fused model {folder} cannot be read ({exc}); re-run omnifuse_retrain.") from exc
        models = {name: model_class(name).from_stored(stored.sub(f"models/{name}")) for name in meta["models"]}
        rerank = RerankConfig(**meta["rerank"]) if meta.get("rerank") else None
        fused = cls(models, meta["variant"], learner, Rules(**meta["rules"]), meta["n_candidates"], meta.get("use"),
                    rerank)
        fused.manifest_sha256 = stored.digest
        return fused
