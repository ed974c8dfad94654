"""Personalised recommendations: the champion scores its customers in batches, with evidence and contributions.

- :func:`champion_version` resolves the champion **once** per publish run; every later step receives that
  ``model_version`` (an XCom reference) and loads exactly that version's artifacts (:func:`load_model`);
- :func:`plan_batches` / :func:`score_batch`: the customers of the model's dataset, ``batch_size`` at a time,
  into ``ml.recommendation_batches`` (grain: business_date, customer_id, rank; unique, so a retried or
  concurrent copy of a batch replaces it instead of duplicating it);
- each recommendation carries a reason naming its evidence — the customer's own product that led to it
  ("because you bought …", "often bought with …") or popularity — and every base model's weight and
  normalised score (:func:`model_contributions`), so that BI can see what each model contributed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import scipy.sparse as sp

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings
from omnifuse.dataset import CHANNELS, Dataset
from omnifuse.fusion import FusedModel, pair_index

log = logging.getLogger(__name__)

#: models whose candidates come from products similar to the customer's own
SIMILARITY_MODELS = ("item_knn", "ease", "pure_svd", "two_tower")


class ModelArtifactError(RuntimeError):
    """The model version to publish has no readable artifact: nothing is published, yesterday's marts stay."""


def champion_version(url: str | None = None) -> str:
    """The current champion's model_version (the one lookup a publish run makes). Raises
    :class:`omnifuse.registry.NoChampionError` — which no retry fixes, so the task fails at once — when no
    retrain has registered one yet (every finished retrain does: its model, or the baseline)."""
    from omnifuse.registry import NO_CHAMPION, NoChampionError

    with warehouse.transaction(url) as cur:
        cur.execute("select model_version from ml.model_registry where status = 'champion'")
        row = cur.fetchone()
    if row is None:
        raise NoChampionError(NO_CHAMPION)
    return row[0]


def artifact_folder(model_version: str, url: str | None = None) -> Path:
    """Where ``model_version``'s artifacts live (``ml.model_registry.artifact_path``)."""
    with warehouse.transaction(url) as cur:
        cur.execute("select artifact_path from ml.model_registry where model_version = %s", (model_version,))
        row = cur.fetchone()
    if row is None:
        raise ModelArtifactError(f"model version {model_version!r} is not in ml.model_registry; nothing was "
                                 "published. Re-run omnifuse_publish (it resolves the current champion).")
    return Path(row[0])


def _unreadable(model_version: str, path: Path, exc: Exception) -> ModelArtifactError:
    return ModelArtifactError(
        f"the artifact of model {model_version} at {path} is missing or unreadable ({type(exc).__name__}: {exc}); "
        "nothing was published and yesterday's mart tables stay. Re-run omnifuse_retrain for its business date "
        "(or roll the registry back to the previous champion), then re-run omnifuse_publish.")


def load_dataset(model_version: str, url: str | None = None) -> Dataset:
    folder = artifact_folder(model_version, url)
    try:
        return Dataset.load(folder / "dataset.npz")
    except Exception as exc:  # noqa: BLE001 - any failure to read the artifact means the same to the operator
        raise _unreadable(model_version, folder / "dataset.npz", exc) from exc


def load_model(model_version: str, url: str | None = None) -> tuple[FusedModel, Dataset]:
    """The fused model and dataset of ``model_version``, its manifest checked against the checksum the registry
    holds for it (:func:`omnifuse.registry.load_fused`); :class:`ModelArtifactError` when they cannot be read."""
    from omnifuse.registry import load_fused, version_info

    data = load_dataset(model_version, url)
    version = version_info(model_version, url)
    if version is None:
        raise ModelArtifactError(f"model version {model_version!r} is not in ml.model_registry; nothing was "
                                 "published. Re-run omnifuse_publish (it resolves the current champion).")
    try:
        fused = load_fused(version)
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(model_version, version.artifact_path / "fused", exc) from exc
    return fused, data


def customer_count(model_version: str, url: str | None = None) -> int:
    """Customers in ``model_version``'s dataset (read from the checked bytes of its ``dataset.npz``)."""
    from omnifuse.artifacts import read_file

    folder = artifact_folder(model_version, url)
    try:
        with np.load(io.BytesIO(read_file(folder / "dataset.npz")), allow_pickle=False) as f:
            return len(f["customers"])
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(model_version, folder / "dataset.npz", exc) from exc


def plan_batches(business_date, model_version: str, url: str | None = None, batch_size: int | None = None, *,
                 settings: Settings | None = None) -> list[int]:
    """Batch numbers covering ``model_version``'s customers (one mapped scoring task each); forgets the date's
    rows from an earlier run that had more batches or used another model version. ``batch_size``: customers per
    batch (default ``OMNIFUSE_SCORING_BATCH_SIZE``)."""
    batch_size = batch_size or (settings or load_settings()).scoring_batch_size
    n = customer_count(model_version, url)
    batches = list(range(max(1, -(-n // batch_size))))
    with warehouse.transaction(url) as cur:
        warehouse.lock(cur, "recommendation_batches", "plan")
        cur.execute("delete from ml.recommendation_batches where business_date = %s "
                    "and (batch >= %s or model_version <> %s)", (business_date, len(batches), model_version))
    return batches


def _linear_terms(learner: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(coef, mean, scale) of a linear learner over at least ``n`` features, whatever its kind; else None."""
    coef = getattr(learner, "coef", None)
    if coef is None and hasattr(learner, "coef_"):
        coef = np.asarray(learner.coef_)[0]
    if coef is None or len(coef) < n:
        return None
    coef = np.asarray(coef, dtype=np.float64)
    mean = np.asarray(getattr(learner, "mean", np.zeros_like(coef)), dtype=np.float64)
    scale = np.asarray(getattr(learner, "scale", np.ones_like(coef)), dtype=np.float64)
    return coef, mean, scale


def model_contributions(fused: FusedModel, data: Dataset, users: np.ndarray, recs: np.ndarray,
                        exclude: sp.csr_matrix, chunk: int = 1000) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each ranking model's weight and normalised score behind each recommendation (before business rules).

    Returns (model names, weights ``(models,)``, normalised scores ``(users, k, models)``); contribution =
    weight × normalised score, and the contributions add up to the fused score before rules (less the
    learner's intercept). Normalised score: the per-customer z-score over the catalog that fusion blends
    (standardised as the linear learner was fitted); ``rrf``: 1 / (60 + the model's rank) within its top
    candidates, else 0; ``stacked``: the ranker's linear terms of the model's z-score and reciprocal rank, with
    weight 1. Weights: the learned coefficients (linear), 1 (rrf, single, stacked), 1 / models (equal, and any
    learner without per-model weights).

    Uses only ``FusedModel``'s public attributes (``models``, ``use``, ``variant``, ``learner``,
    ``n_candidates``) and the models' ``score``: it scores the batch a second time (a hook in
    ``FusedModel.rank`` returning the chosen candidates' z-scores would avoid that).
    """
    if fused.variant == "rerank":
        return _rerank_contributions(fused, data, users, recs, exclude, chunk)
    names = list(getattr(fused, "use", None) or fused.models)
    m_count = len(names)
    terms = _linear_terms(fused.learner, m_count) if fused.variant in ("linear", "stacked") else None
    stacked = fused.variant == "stacked" and terms is not None and len(terms[0]) >= 2 * m_count
    if fused.variant == "linear" and terms is not None:
        weights = terms[0][:m_count]
    elif fused.variant in ("rrf", "single") or stacked:
        weights = np.ones(m_count)
    else:
        weights = np.full(m_count, 1.0 / max(m_count, 1))
    need_rank = fused.variant == "rrf" or stacked
    k = recs.shape[1]
    out = np.zeros((len(users), k, m_count), dtype=np.float64)
    for start in range(0, len(users), chunk):
        u = users[start:start + chunk]
        r = recs[start:start + chunk]
        rows = np.repeat(np.arange(len(u)), k).reshape(len(u), k)
        items = np.where(r >= 0, r, 0)
        er, ec = exclude[u].nonzero()
        for m, name in enumerate(names):
            s = fused.models[name].score(data, u).astype(np.float32)
            z = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-6)
            picked = z[rows, items].astype(np.float64)
            rr = np.zeros_like(picked)
            if need_rank:
                z[er, ec] = -np.inf
                rank = np.column_stack([(z > picked[:, p:p + 1]).sum(axis=1) for p in range(k)]) + 1
                rr = np.where(rank <= fused.n_candidates, 1.0 / (60.0 + rank), 0.0)
            if fused.variant == "rrf":
                value = rr
            elif stacked:
                assert terms is not None  # stacked implies learner terms
                coef, mean, scale = terms
                value = (coef[m] * (picked - mean[m]) / scale[m]
                         + coef[m_count + m] * (60.0 * rr - mean[m_count + m]) / scale[m_count + m])
            elif terms is not None:
                value = (picked - terms[1][m]) / terms[2][m]
            else:
                value = picked
            out[start:start + len(u), :, m] = np.where(r >= 0, value, 0.0)
    return names, weights, out


def _rerank_contributions(fused: FusedModel, data: Dataset, users: np.ndarray, recs: np.ndarray,
                          exclude: sp.csr_matrix, chunk: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The re-ranker's contributions: per scorer group (:data:`omnifuse.reranker.GROUPS`), weight 1 x the
    group's terms of the learnt score (the logistic half's linear terms, the trees' half as one group); they
    add up to the fused score before rules, less the logistic half's intercept."""
    from omnifuse import reranker

    assert fused.learner is not None and fused.rerank is not None  # a rerank model always has both
    names = list(reranker.GROUPS)
    k = recs.shape[1]
    out = np.zeros((len(users), k, len(names)), dtype=np.float64)
    scorers = fused.scorers(data)
    for start in range(0, len(users), chunk):
        u = users[start:start + chunk]
        r = recs[start:start + chunk]
        c = reranker.candidates(data, u, exclude, fused.rerank, fused.use, scorers)
        lookup = pair_index(c, r)
        terms = np.zeros((len(u) * k, len(names)))
        found = lookup >= 0
        terms[found] = reranker.contributions(fused.learner, c.z[lookup[found]])
        out[start:start + len(u)] = terms.reshape(len(u), k, -1)
    return names, np.ones(len(names)), out


def _evidence(data: Dataset, fused: FusedModel, users: np.ndarray, recs: np.ndarray, proposed: np.ndarray,
              names: dict[str, str]) -> tuple[list[str], list[str | None]]:
    """A reason naming its evidence and the evidence product per recommendation (flattened, rows with item >= 0).

    - proposed by association rules and the customer has a product with a rule towards it: "often bought with X";
    - proposed by a similarity model: the customer's product most similar to it (item-kNN similarities, else
      their latest product of the same category): "because you bought X" / "because you viewed X";
    - otherwise popularity: "trending in stores near you" for store customers and store products, else
      "popular right now".
    """
    model_names = list(fused.models)
    idx = {n: i for i, n in enumerate(model_names)}
    similar = [idx[n] for n in SIMILARITY_MODELS if n in idx]
    sim = sp.csr_matrix(fused.models["item_knn"].state["sim"]) if "item_knn" in idx else None
    rules = None
    if "assoc_rules" in idx:
        s = fused.models["assoc_rules"].state
        rules = sp.csr_matrix((s["confidence"] * np.log(s["lift"]), (s["a"], s["b"])),
                              shape=(data.n_items, data.n_items))
    history = data.matrix()[users].tocsr()
    bought = data.bought()[users].tocsr()
    order = np.lexsort((data.day, data.user))
    last = pd.DataFrame({"user": data.user[order], "item": data.item[order], "cat": data.category[data.item[order]]})
    last_by_cat = last.drop_duplicates(["user", "cat"], keep="last").set_index(["user", "cat"])["item"]
    store_share = data.user_features()[:, CHANNELS.index("store")]
    reasons: list[str] = []
    evidence: list[str | None] = []

    def strongest(matrix: sp.csr_matrix | None, hist: np.ndarray, items: np.ndarray) -> list[int | None]:
        """Per item, the history product with the largest positive link to it (never the item itself)."""
        if matrix is None or not len(hist):
            return [None] * len(items)
        links = matrix[hist][:, items].toarray()
        links[hist[:, None] == items[None, :]] = 0.0
        top = links.argmax(axis=0)
        return [int(hist[t]) if links[t, j] > 0 else None for j, t in enumerate(top)]

    for row, u in enumerate(users):
        hist = history.indices[history.indptr[row]:history.indptr[row + 1]]
        own = set(bought.indices[bought.indptr[row]:bought.indptr[row + 1]].tolist())
        items = np.where(recs[row] >= 0, recs[row], 0)
        by_rule = strongest(rules, hist, items)
        by_similarity = strongest(sim, hist, items)
        for pos, item in enumerate(recs[row]):
            if item < 0:
                continue
            on = proposed[row, pos]
            anchor, reason = None, None
            if rules is not None and on[idx["assoc_rules"]]:
                anchor = by_rule[pos]
                if anchor is not None:
                    reason = "often bought with {}"
            if reason is None and any(on[i] for i in similar):
                anchor = by_similarity[pos]
                if anchor is None:
                    anchor = last_by_cat.get((u, data.category[item]))
                    anchor = None if anchor is None or anchor == item else int(anchor)
                if anchor is not None:
                    reason = "because you bought {}" if anchor in own else "because you viewed {}"
            if reason is None:
                anchor = None
                reason = ("trending in stores near you" if store_share[u] >= 0.5 and data.in_store[item]
                          else "popular right now")
            product = data.products[anchor] if anchor is not None else None
            reasons.append(reason.format(names.get(product, product)) if product is not None else reason)
            evidence.append(product)
    return reasons, evidence


def _pg_array(values: Iterable[object]) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


class ScoringJob(TypedDict):
    """One mapped scoring task of a publish run: which batch to score, for which date, with which version."""

    business_date: str  # ISO date
    model_version: str
    batch: int


class BatchScored(TypedDict):
    """:func:`score_batch`'s summary: a reference to the rows it wrote, and the model version it used."""

    batch: int
    customers: int
    rows: int
    model_version: str


def score_batch(business_date, batch: int, model_version: str, *, url: str | None = None,
                batch_size: int | None = None, top_k: int | None = None,
                settings: Settings | None = None) -> BatchScored:
    """Score one batch of ``model_version``'s customers into ``ml.recommendation_batches`` (replacing the batch).

    ``batch_size`` / ``top_k``: customers per batch and list length (defaults ``OMNIFUSE_SCORING_BATCH_SIZE`` and
    ``OMNIFUSE_TOP_K``); the batch size must be the one :func:`plan_batches` planned with."""
    settings = settings or load_settings()
    batch_size = batch_size or settings.scoring_batch_size
    top_k = top_k or settings.top_k
    fused, data = load_model(model_version, url)
    users = np.arange(batch * batch_size, min((batch + 1) * batch_size, data.n_users))
    # what the customer returned is left out, and what they bought unless repeat purchases are recommended and
    # the product is one customers buy again (repeat rates learnt from the data): the time split's rule
    exclude = data.not_recommendable(settings.recommend_repeats)
    with warehouse.transaction(url) as cur:
        cur.execute("select product_id, name, stock from core.products")
        catalog = cur.fetchall()
    names = {p: n for p, n, _ in catalog}
    # stock changes daily: judge it against today's catalog, not the one the champion was trained with
    stock = {p: s for p, _, s in catalog}
    data.in_stock = np.array([stock.get(p, 0) > 0 for p in data.products])
    recs, scores, proposed = fused.rank(data, users, exclude, top_k)
    model_names = list(fused.models)
    reasons, evidence = _evidence(data, fused, users, recs, proposed, names)
    contrib_names, weights, normalised = model_contributions(fused, data, users, recs, exclude)
    weights_text = _pg_array(np.round(weights, 8).tolist())
    models_text = _pg_array(contrib_names)
    rows, i = [], 0
    for row, u in enumerate(users):
        rank = 0
        for pos, item in enumerate(recs[row]):
            if item < 0:
                continue
            rank += 1
            models = _pg_array(m for m, on in zip(model_names, proposed[row, pos], strict=True) if on)
            rows.append((business_date.isoformat(), batch, data.customers[u], rank, data.products[item],
                         float(scores[row, pos]), reasons[i], models, model_version, evidence[i], models_text,
                         weights_text, _pg_array(np.round(normalised[row, pos], 6).tolist())))
            i += 1
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False, header=False)
    buf.seek(0)
    with warehouse.transaction(url) as cur:
        # two copies of one task (a retry racing its zombie) take turns: the later one replaces the earlier
        warehouse.lock(cur, "recommendation_batches", batch)
        cur.execute("delete from ml.recommendation_batches where business_date = %s and batch = %s",
                    (business_date, batch))
        cur.copy_expert("copy ml.recommendation_batches (business_date, batch, customer_id, rank, product_id, score, "
                        "reason, contributing_models, model_version, evidence_product_id, contribution_models, "
                        "contribution_weights, contribution_scores) from stdin with (format csv)", buf)
    return BatchScored(batch=batch, customers=len(users), rows=len(rows), model_version=model_version)
