"""Fusion: combine the base models' candidates into one ranking, learned on a validation slice before T.

Candidates for a customer are the union of every base model's top-``n_candidates``. Each (customer,
candidate) pair gets features: every model's per-customer z-scored score and reciprocal rank, the product's
popularity, price band and in-store flag, and the customer's channel mix, recency and frequency. Variants:

- ``equal``: the mean of the models' z-scores (the naive blend to beat);
- ``rrf``: reciprocal-rank fusion, Σ 1 / (60 + rank);
- ``linear``: learned blend weights — a logistic regression on the z-scores;
- ``stacked``: a gradient-boosted ranker (scikit-learn) on all the features.

Learners are fitted on one half of the validation customers and the variant is chosen on the other half;
validation labels must end before the holdout starts (:class:`LeakageError` otherwise). Business rules then
shape the final top-K: in stock only, not already bought unless repeatable, at most ``max_per_category``
per category, and a boost for products the stores carry in proportion to a customer's store share.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from omnifuse.evaluate import Split, ranking_metrics
from omnifuse.features import CHANNELS, Dataset
from omnifuse.models import Recommender, model_class

VARIANTS = ("equal", "rrf", "linear", "stacked")


class LeakageError(RuntimeError):
    """Fusion was asked to learn from labels on or after the holdout start."""


@dataclass
class Rules:
    """Business rules applied to the fused ranking."""

    in_stock_only: bool = True
    max_per_category: int = 4
    store_boost: float = 0.3


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


def variant_scores(variant: str, cands: Candidates, learner=None) -> np.ndarray:
    if variant == "equal":
        return cands.z.mean(axis=1)
    if variant == "rrf":
        return cands.rr.sum(axis=1)
    if variant == "linear":
        return learner.decision_function(cands.z)
    if variant == "stacked":
        return learner.predict_proba(_stack_features(cands))[:, 1]
    raise ValueError(f"unknown fusion variant {variant!r}")


def _stack_features(c: Candidates) -> np.ndarray:
    return np.hstack([c.z, c.rr * 60.0, c.extra])


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


def fit_learners(models: dict[str, Recommender], data: Dataset, valid: Split, holdout_start_day: int,
                 n_candidates: int, seed: int, max_users: int = 20_000) -> tuple[dict, dict[str, float], dict]:
    """Fit the learned variants on half the validation customers; score every variant on the other half.

    ``valid``: a split whose relevant events all lie before ``holdout_start_day`` (days since epoch).
    Returns (learners, validation NDCG@10 per variant, learnt weights per variant for ``ml.fusion_weights``).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

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
    half = rng.random(len(users)) < 0.5
    fit_rows, sel_rows = np.flatnonzero(half), np.flatnonzero(~half)
    c_fit = candidates(models, valid.train, users[fit_rows], valid.exclude, n_candidates)
    y_fit = _labels(c_fit, rel[fit_rows])
    if y_fit.sum() == 0 or y_fit.all():
        raise RuntimeError("fusion: the validation slice has no positive (or no negative) candidates; "
                           "widen OMNIFUSE_VALID_DAYS or the training window.")
    learners = {
        "linear": LogisticRegression(C=1.0, max_iter=500).fit(c_fit.z, y_fit),
        "stacked": HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=31,
                                                  l2_regularization=1.0, random_state=seed)
        .fit(_stack_features(c_fit), y_fit),
    }
    c_sel = candidates(models, valid.train, users[sel_rows], valid.exclude, n_candidates)
    ndcg = {}
    for variant in VARIANTS:
        recs, _ = rank(c_sel, variant_scores(variant, c_sel, learners.get(variant)), len(sel_rows), 10)
        ndcg[variant] = ranking_metrics(recs, rel[sel_rows], 10)["ndcg"]
    names = list(models)
    weights = {"linear": dict(zip(names, learners["linear"].coef_[0].tolist(), strict=True))}
    weights["linear"]["intercept"] = float(learners["linear"].intercept_[0])
    weights["equal"] = {n: 1.0 / len(names) for n in names}
    return learners, ndcg, weights


class FusedModel:
    """Base models + a fusion variant + business rules: what is registered, gated and published."""

    def __init__(self, models: dict[str, Recommender], variant: str, learner=None, rules: Rules | None = None,
                 n_candidates: int = 50):
        self.models = models
        self.variant = variant
        self.learner = learner
        self.rules = rules or Rules()
        self.n_candidates = n_candidates

    def rank(self, data: Dataset, users: np.ndarray, exclude: sp.csr_matrix, k: int, rules: bool = True,
             batch: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k product indexes, scores and contributing-model masks (n_users, k, models) per user."""
        recs, vals, contrib = [], [], []
        for start in range(0, len(users), batch):
            u = users[start:start + batch]
            c = candidates(self.models, data, u, exclude, self.n_candidates)
            s = variant_scores(self.variant, c, self.learner)
            if rules:
                c, s = apply_rules(c, s, data, u, self.rules, k)
            r, v = rank(c, s, len(u), k)
            lookup = pd.MultiIndex.from_arrays([c.row, c.item]).get_indexer(
                pd.MultiIndex.from_arrays([np.repeat(np.arange(len(u)), k), r.ravel()]))
            m = np.zeros((len(u) * k, len(self.models)), dtype=bool)
            m[lookup >= 0] = c.in_top[lookup[lookup >= 0]]
            recs.append(r)
            vals.append(v)
            contrib.append(m.reshape(len(u), k, -1))
        if not recs:
            return (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32),
                    np.zeros((0, k, len(self.models)), bool))
        return np.vstack(recs), np.vstack(vals), np.concatenate(contrib)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.models.items():
            model.save(folder / "models" / name)
        # scikit-learn estimators persist with pickle; the artifact is written and read by this platform only
        (folder / "learner.pkl").write_bytes(pickle.dumps(self.learner))
        (folder / "fusion.json").write_text(json.dumps({
            "variant": self.variant, "models": list(self.models), "rules": asdict(self.rules),
            "n_candidates": self.n_candidates}, indent=1))

    @classmethod
    def load(cls, folder: Path) -> FusedModel:
        meta = json.loads((folder / "fusion.json").read_text())
        models = {name: model_class(name).load(folder / "models" / name) for name in meta["models"]}
        learner = pickle.loads((folder / "learner.pkl").read_bytes())  # noqa: S301 - our own artifact
        return cls(models, meta["variant"], learner, Rules(**meta["rules"]), meta["n_candidates"])
