"""The re-ranker (fusion variant ``rerank``): a logistic regression over several scorers' views of EASE's top
candidates, with popularity, trend and customer controls, trained on time folds inside its own history.

Why it exists: on a real retailer's history (Online Retail II, ``bench/real_data.py``) every blend of the base
models' scores plateaus at plain EASE; a learned re-ranker over several cheap scorers is what beats it
(``bench/research/issue12_reranker.md``). It ranks as follows, for customer u and history H:

- **candidates**: the top ``candidates`` products by EASE (λ = 250) on the binary customer × product matrix
  of H, among the products u may be recommended (the split's or publishing's exclusions);
- **scorers** (all fitted on H): EASE at λ 250 (its relative score and rank), 80 and 1000; user-kNN
  (overlap / (|I_u|^½ |I_v|^½ + 10), 100 neighbours); item-kNN (cosine, 200 neighbours); EASE fitted on
  purchase baskets instead of customers; EASE scored with a decayed profile (half-life 30 days since the
  customer first had the product); product-name similarity (word TF-IDF over ``core.products.name``). A
  scorer's feature is log(1 + the candidate's position among u's allowed products);
- **product features**: log(1 + buyers) in the last 7 and 28 days and in all of H, the 28-day trend, and the
  product's age in H; **customer controls**: log(1 + distinct products), days since u's last event and
  log(1 + purchase baskets). Controls cannot reorder a list; they keep the other weights from absorbing the
  differences between customers;
- **the learner** (:class:`RerankLearner`): the mean, in log-odds, of a standardised logistic regression
  (C = 0.01) and of three seeded LightGBM gradient-boosted tree models (200 trees of 15 leaves), all fitted on
  the same candidates labelled by later purchases, pooled from three folds inside H: cut-offs at E - S/6,
  E - S/3 and E - S/2 (E: H's last day, S: its span), each fold's features computed on its own history only,
  labels over the next S/3 days (to E at most) under the protocol publishing uses
  (:func:`omnifuse.evaluate.make_split`). The logistic half is the steady part (the features' main effects);
  the trees add the interactions a line cannot express (how much one scorer's rank counts may depend on
  the customer's history or the product's popularity). Measured over 22 monthly cut-offs of two years of
  Online Retail, the blend beats plain EASE at every one (1.03-1.16×, geometric mean 1.07×) where the
  logistic regression alone ranged 1.00-1.16× (1.06×): ``bench/research/issue12_reranker.md``.

The scorers are memory-based: they are recomputed from the history a list is ranked from (like item-kNN's
profile), so what is learnt and stored is the logistic weights (arrays) and the trees (LightGBM's own text
format, JSON-quoted; no pickle). Products outside the ``max_items`` most bought of H are not candidates
(bounds the cost on very large catalogs: every scorer is a dense ``max_items``² matrix).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import scipy.sparse as sp

from omnifuse.config import RerankConfig
from omnifuse.dataset import Dataset
from omnifuse.evaluate import make_split
from omnifuse.fusion import Candidates, LinearScorer

FEATURES = ("ease_rel", "ease_rank", "ease80_rank", "ease1000_rank", "uknn_rel", "uknn_rank", "iknn_rank",
            "basket_rank", "decay_rank", "text_rank", "lpop7", "lpop28", "lpop_all", "trend28", "age",
            "history_len", "days_since_last", "baskets")
EASE_LAMBDAS = (250.0, 80.0, 1000.0)
USER_NEIGHBOURS = 100
ITEM_NEIGHBOURS = 200
DECAY_HALF_LIFE = 30.0
C = 0.01
#: LightGBM's settings for the trees half (one thread: the same trees on any machine)
TREES: dict[str, Any] = {
    "objective": "binary", "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 50,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "n_jobs": 1, "deterministic": True,
    "force_row_wise": True, "verbose": -1,
}
TREE_SEEDS = 3
TREE_WEIGHT = 0.5
_WORD = re.compile(r"[a-z]{3,}")
EPOCH = date(1970, 1, 1)


@dataclass
class Scorers:
    """Every scorer fitted on one history (arrays over ``universe``, the products they cover)."""

    universe: np.ndarray  # product indexes
    col: np.ndarray  # product index -> column in universe (-1 outside)
    x: sp.csr_matrix  # customers × universe, binary: any event in the history
    n_user: np.ndarray  # distinct products per customer (in universe)
    ease: list[np.ndarray]  # one B per EASE_LAMBDAS
    basket: np.ndarray  # EASE on basket rows
    iknn: np.ndarray  # cosine, top ITEM_NEIGHBOURS per target column
    text: np.ndarray | None  # name similarity (None: no names)
    decay: sp.csr_matrix  # customers × universe decayed profile
    item_stats: np.ndarray  # (universe, 5): lpop7, lpop28, lpop_all, trend28, age
    user_stats: np.ndarray  # (customers, 3): history_len, days_since_last, baskets


def _ease(gram: np.ndarray, lam: float) -> np.ndarray:
    g = gram.astype(np.float64, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _text(names: np.ndarray | None) -> np.ndarray | None:
    if names is None:
        return None
    docs = [_WORD.findall(str(n).lower()) for n in names]
    vocab: dict[str, int] = {}
    for doc in docs:
        for w in doc:
            vocab.setdefault(w, len(vocab))
    if not vocab:
        return None
    rows = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    cols = np.array([vocab[w] for d in docs for w in d], dtype=np.int64)
    m = _binary(rows, cols, (len(docs), len(vocab)))
    df = np.asarray(m.sum(axis=0)).ravel()
    m = m.multiply(np.log(len(docs) / (1.0 + df))[None, :]).tocsr()
    norm = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    m = sp.diags(1.0 / np.maximum(norm, 1e-9)) @ m
    sim = (m @ m.T).toarray().astype(np.float32)
    np.fill_diagonal(sim, 0.0)
    return sim


def fit_scorers(history: Dataset, config: RerankConfig) -> Scorers:
    """Fit every scorer on ``history`` (its last event day is the cut-off the features are measured at)."""
    end = int(history.day.max()) if len(history.day) else 0
    start = int(history.day.min()) if len(history.day) else 0
    span = end - start + 1
    p = history.purchase
    # the universe: the most bought products (by distinct customers; any event breaks ties)
    buyers = np.bincount(history.item[p], minlength=history.n_items).astype(np.float64)
    seen = np.bincount(history.item, minlength=history.n_items)
    order = np.lexsort((np.arange(history.n_items), -seen, -buyers))
    universe = np.sort(order[:min(config.max_items, int((seen > 0).sum()))])
    col = np.full(history.n_items, -1, dtype=np.int64)
    col[universe] = np.arange(len(universe))
    n_u = len(universe)
    keep = col[history.item] >= 0
    x = _binary(history.user[keep], col[history.item[keep]], (history.n_users, n_u))
    gram = (x.T @ x).toarray()
    ease = [_ease(gram, lam) for lam in EASE_LAMBDAS]
    counts = np.diag(gram).astype(np.float64)
    cos = gram / np.sqrt(np.maximum(counts[:, None] * counts[None, :], 1e-9))
    np.fill_diagonal(cos, 0.0)
    if n_u > ITEM_NEIGHBOURS:
        cut = np.partition(cos, n_u - ITEM_NEIGHBOURS, axis=0)[n_u - ITEM_NEIGHBOURS]
        cos[cos < cut[None, :]] = 0.0
    bk = keep & p if (keep & p).any() else keep
    basket_codes, basket_rows = np.unique(history.basket[bk], return_inverse=True)
    xb = _binary(basket_rows, col[history.item[bk]], (len(basket_codes), n_u))
    basket = _ease((xb.T @ xb).toarray(), EASE_LAMBDAS[0])
    # decayed profile: 0.5 ** (days since the customer first had the product / half-life)
    decay = _first_age(history, keep, col, end, n_u)
    decay.data = np.power(0.5, (decay.data - 1.0) / DECAY_HALF_LIFE).astype(np.float32)
    names = getattr(history, "names", None)
    text = _text(names[universe]) if names is not None else None
    # product features (over the universe)
    pop7, pop28, pop_all = (_buyers(history, p & (history.day > end - days))[universe] for days in (7, 28, span))
    trend = np.log((pop28 / 28.0 + 5.0 / span) / ((pop_all + 5.0) / span))
    first_day = np.full(history.n_items, end + 1, dtype=np.int64)
    np.minimum.at(first_day, history.item, history.day)
    age = (end - first_day[universe]).astype(np.float64)
    item_stats = np.column_stack([np.log1p(pop7), np.log1p(pop28), np.log1p(pop_all), trend, age])
    # customer controls
    n_user = np.asarray(x.sum(axis=1)).ravel()
    last = np.full(history.n_users, start - 1, dtype=np.int64)
    np.maximum.at(last, history.user, history.day)
    n_baskets = np.zeros(history.n_users)
    if p.any():
        pairs = np.unique(np.column_stack([history.user[p], history.basket[p]]), axis=0)
        n_baskets = np.bincount(pairs[:, 0], minlength=history.n_users).astype(np.float64)
    user_stats = np.column_stack([np.log1p(n_user), (end - last).astype(np.float64), np.log1p(n_baskets)])
    return Scorers(universe=universe, col=col, x=x, n_user=n_user, ease=ease, basket=basket,
                   iknn=cos.astype(np.float32), text=text, decay=decay, item_stats=item_stats, user_stats=user_stats)


def _first_age(history: Dataset, keep: np.ndarray, col: np.ndarray, end: int, n_u: int) -> sp.csr_matrix:
    """Customers × universe: 1 + days from the customer's first event with the product to the cut-off."""
    u, i, d = history.user[keep], col[history.item[keep]], history.day[keep]
    order = np.lexsort((d, i, u))
    u, i, d = u[order], i[order], d[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    return sp.csr_matrix(((end - d[first] + 1).astype(np.float64), (u[first], i[first])),
                         shape=(history.n_users, n_u))


def _buyers(history: Dataset, events: np.ndarray) -> np.ndarray:
    """Distinct customers per product among ``events`` (a mask over the history's events)."""
    m = _binary(history.user[events], history.item[events], (history.n_users, history.n_items))
    return np.asarray(m.sum(axis=0)).ravel().astype(np.float64)


def _positions(score: np.ndarray, allowed: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based position of each (row, col) pair in its row's ranking of the allowed products: how many allowed
    products score strictly higher (ties share a position). One sort per row, no full argsort."""
    neg = np.where(allowed, -score, np.inf)
    ordered = np.sort(neg, axis=1)
    out = np.empty(len(rows), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(len(score) + 1))
    for r in range(len(score)):
        lo, hi = bounds[r], bounds[r + 1]
        if hi > lo:
            out[lo:hi] = np.searchsorted(ordered[r], neg[r, cols[lo:hi]], side="left")
    return out


def _user_knn(sc: Scorers, users: np.ndarray, xb: sp.csr_matrix) -> np.ndarray:
    """Scores from each customer's USER_NEIGHBOURS most similar customers (overlap / (|I_u|^½ |I_v|^½ + 10))."""
    root = np.sqrt(sc.n_user).astype(np.float32)
    sim = (xb @ sc.x.T).toarray()
    sim /= root[users][:, None] * root[None, :] + np.float32(10.0)
    sim[np.arange(len(users)), users] = 0.0
    k = min(USER_NEIGHBOURS, sim.shape[1])
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else np.tile(np.arange(k), (len(users), 1))
    near = sp.csr_matrix((np.take_along_axis(sim, top, axis=1).ravel(), top.ravel(),
                          np.arange(0, len(users) * k + 1, k)), shape=sim.shape)
    return (near @ sc.x).toarray().astype(np.float32)


def features(sc: Scorers, users: np.ndarray, exclude: sp.csr_matrix, config: RerankConfig
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row into ``users``, product index, features ``(pairs, len(FEATURES))``) of every candidate."""
    batch = int(max(50, min(1000, 20_000_000 // max(sc.x.shape[0], 1))))
    parts = [_batch_features(sc, users[s:s + batch], exclude, config) for s in range(0, len(users), batch)]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(FEATURES)), np.float32)
    offsets = np.arange(0, len(users), batch)
    return (np.concatenate([r + o for (r, _, _), o in zip(parts, offsets, strict=True)]),
            np.concatenate([i for _, i, _ in parts]), np.vstack([f for _, _, f in parts]))


def _batch_features(sc: Scorers, users: np.ndarray, exclude: sp.csr_matrix, config: RerankConfig
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    b, n_u = len(users), len(sc.universe)
    xb = sc.x[users]
    allowed = np.ones((b, n_u), dtype=bool)
    er, ec = exclude[users][:, sc.universe].nonzero()
    allowed[er, ec] = False
    s250 = np.asarray(xb @ sc.ease[0])
    # candidates: EASE's top n allowed products (ties: product order), for customers with any history
    n = min(config.candidates, n_u)
    masked = np.where(allowed, s250, -np.inf)
    top = np.argpartition(-masked, n - 1, axis=1)[:, :n] if n < n_u else np.tile(np.arange(n_u), (b, 1))
    top = np.sort(top, axis=1)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(masked, top, axis=1), axis=1, kind="stable"), 1)
    rows = np.repeat(np.arange(b), n)
    cols = top.ravel()
    ok = allowed[rows, cols] & (xb.getnnz(axis=1)[rows] > 0)
    rows, cols = rows[ok], cols[ok]
    high = s250.max(axis=1)
    uknn = _user_knn(sc, users, xb)
    scorers = {
        "ease_rank": s250, "ease80_rank": np.asarray(xb @ sc.ease[1]), "ease1000_rank": np.asarray(xb @ sc.ease[2]),
        "uknn_rank": uknn, "iknn_rank": np.asarray(xb @ sc.iknn), "basket_rank": np.asarray(xb @ sc.basket),
        "decay_rank": np.asarray(sc.decay[users] @ sc.ease[0]),
    }
    if sc.text is not None:
        scorers["text_rank"] = np.asarray(xb @ sc.text)
    out = np.zeros((len(rows), len(FEATURES)), dtype=np.float32)
    at = {f: j for j, f in enumerate(FEATURES)}
    for name, score in scorers.items():
        out[:, at[name]] = np.log1p(_positions(score, allowed, rows, cols))
    out[:, at["ease_rel"]] = s250[rows, cols] / np.where(high > 0, high, 1.0)[rows]
    u_high = uknn.max(axis=1)
    out[:, at["uknn_rel"]] = uknn[rows, cols] / np.where(u_high > 0, u_high, 1.0)[rows]
    out[:, at["lpop7"]:at["age"] + 1] = sc.item_stats[cols]
    out[:, at["history_len"]:] = sc.user_stats[users[rows]]
    return rows, sc.universe[cols], out


class RerankLearner(LinearScorer):
    """The re-ranker's score: ``(1 - TREE_WEIGHT)`` x the logistic regression's log-odds (the inherited
    :class:`~omnifuse.fusion.LinearScorer`) + ``TREE_WEIGHT`` x the mean raw score (log-odds) of the trees.
    ``trees`` are LightGBM model strings; without trees it is the logistic regression alone."""

    def __init__(self, linear: LinearScorer, trees: list[str]):
        super().__init__(linear.coef, linear.intercept, linear.mean, linear.scale)
        self.trees = list(trees)
        self._boosters: list | None = None

    def boosters(self) -> list:
        if self._boosters is None:
            import lightgbm as lgb

            self._boosters = [lgb.Booster(model_str=t) for t in self.trees]
        return self._boosters

    def linear_part(self, x: np.ndarray) -> np.ndarray:
        return LinearScorer.decision_function(self, x)

    def tree_part(self, x: np.ndarray) -> np.ndarray:
        """The trees' mean raw score (0 without trees)."""
        x = np.asarray(x, np.float64)
        if not self.trees or not len(x):
            return np.zeros(len(x))
        return np.mean([b.predict(x, raw_score=True, num_threads=1) for b in self.boosters()], axis=0)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.linear_weight * self.linear_part(x) + (1.0 - self.linear_weight) * self.tree_part(x)

    @property
    def linear_weight(self) -> float:
        """The logistic half's share of the score."""
        return 1.0 - TREE_WEIGHT if self.trees else 1.0

    def importance(self) -> np.ndarray:
        """Each feature's share of the trees' total split gain (zeros without trees)."""
        if not self.trees:
            return np.zeros(len(self.coef))
        gain = np.sum([b.feature_importance("gain") for b in self.boosters()], axis=0).astype(np.float64)
        return gain / gain.sum() if gain.sum() > 0 else gain


def weights(learner: RerankLearner) -> dict[str, float]:
    """What ``ml.fusion_weights`` shows of a re-ranker: the logistic half's standardised coefficients, one per
    feature, and the trees' share of split gain per feature as ``trees:<feature>``."""
    out = dict(zip(FEATURES, learner.coef.tolist(), strict=True))
    if learner.trees:
        out.update({f"trees:{f}": g for f, g in zip(FEATURES, learner.importance().tolist(), strict=True)})
    return out


def _fit_trees(x: np.ndarray, y: np.ndarray, seed: int) -> list[str]:
    import lightgbm as lgb

    return [lgb.LGBMClassifier(**TREES, random_state=seed + k).fit(x, y).booster_.model_to_string()
            for k in range(TREE_SEEDS)]


def _folds(history: Dataset) -> list[tuple[int, int]]:
    """(cut-off day, label days) of the training folds inside ``history``."""
    if not len(history.day):
        return []
    start, end = int(history.day.min()), int(history.day.max())
    span = end - start + 1
    label = max(1, span // 3)
    out = []
    for cut in (end - span // 6, end - label, end - span // 2):
        if start < cut < end:
            out.append((cut, min(label, end - cut)))
    return sorted(set(out))


def fit(history: Dataset, seed: int, repeats: bool = False, config: RerankConfig | None = None
        ) -> RerankLearner | None:
    """The re-ranker learnt on folds inside ``history`` (None when the folds hold no positive or no negative
    candidate: too little history to learn from)."""
    config = config or RerankConfig()
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for cut, days in _folds(history):
        split = make_split(history, EPOCH + timedelta(days=cut + 1), EPOCH + timedelta(days=cut + days),
                           "new", repeats)
        pick = np.arange(len(split.users))
        if len(pick) > config.fold_customers:
            pick = np.sort(rng.choice(len(pick), config.fold_customers, replace=False))
        if not len(pick):
            continue
        sc = fit_scorers(split.train, config)
        row, item, x = features(sc, split.users[pick], split.exclude, config)
        xs.append(x)
        ys.append(np.asarray(split.relevant[pick][row, item]).ravel() > 0)
    if not xs:
        return None
    x, y = np.vstack(xs), np.concatenate(ys)
    if y.sum() == 0 or y.all():
        return None
    return RerankLearner(LinearScorer.fit(x, y, standardise=True, seed=seed, c=C), _fit_trees(x, y, seed))


def candidates(history: Dataset, users: np.ndarray, exclude: sp.csr_matrix, config: RerankConfig,
               models: list[str], scorers: Scorers | None = None) -> Candidates:
    """The candidates of ``users`` with their features (in ``Candidates.z``), ready for the learnt weights and
    the business rules. ``models`` are the fused model's ranking models: the pairs count as proposed by
    ``ease`` (the candidates are EASE's top products) for the explanations."""
    sc = scorers if scorers is not None else fit_scorers(history, config)
    row, item, x = features(sc, users, exclude, config)
    in_top = np.zeros((len(row), len(models)), dtype=bool)
    if "ease" in models:
        in_top[:, models.index("ease")] = True
    empty = np.zeros((len(row), 0), dtype=np.float32)
    return Candidates(row=row, item=item, z=x, rr=empty, extra=empty, in_top=in_top)


#: the features grouped by the scorer they come from: the re-ranker's "models" in the contribution table
GROUPS = {
    "ease": ("ease_rel", "ease_rank", "ease80_rank", "ease1000_rank"),
    "user_knn": ("uknn_rel", "uknn_rank"),
    "item_knn": ("iknn_rank",),
    "basket_ease": ("basket_rank",),
    "decayed_ease": ("decay_rank",),
    "product_names": ("text_rank",),
    "popularity_trend": ("lpop7", "lpop28", "lpop_all", "trend28", "age"),
    "customer": ("history_len", "days_since_last", "baskets"),
    "boosted_trees": (),  # the trees' half of the score, as one term
}


def contributions(learner: LinearScorer, x: np.ndarray) -> np.ndarray:
    """Per candidate row of features ``x``, each scorer group's terms of the learnt score,
    ``(rows, len(GROUPS))``: the logistic half's linear terms of the group's features, and the trees' half as
    the ``boosted_trees`` group (trees cannot be split by feature cheaply). They add up to the score less the
    logistic half's intercept."""
    if not isinstance(learner, RerankLearner):  # a re-ranker stored before it had trees
        learner = RerankLearner(learner, [])
    x = np.asarray(x, np.float64)
    terms = (x - learner.mean) / learner.scale * learner.coef * learner.linear_weight
    at = {f: j for j, f in enumerate(FEATURES)}
    trees = (1.0 - learner.linear_weight) * learner.tree_part(x)
    return np.column_stack([terms[:, [at[f] for f in feats]].sum(axis=1) if feats else trees
                            for feats in GROUPS.values()])
