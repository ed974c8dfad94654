"""The one recommender interface every model implements (after lkpy / implicit's ``RecommenderBase``)."""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from omnifuse.dataset import Dataset

if TYPE_CHECKING:
    from omnifuse.artifacts import StoredDir


class Recommender(ABC):
    """Fit on a :class:`Dataset`; score customers (by index) against every product; save and load.

    Subclasses keep their learnt state in ``self.state`` (name -> numpy array or scipy sparse matrix) so that
    save/load is shared; ``self.params`` holds their (JSON-able) configuration.
    """

    name: str = "base"

    def __init__(self, seed: int = 7, **params: Any):
        self.seed = seed
        self.params = params
        self.state: dict[str, np.ndarray | sp.spmatrix] = {}

    @abstractmethod
    def fit(self, data: Dataset) -> Recommender:
        """Learn from ``data`` (only the events the caller allows: never the holdout)."""

    @abstractmethod
    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        """Dense scores, shape (len(users), n_items); higher is better. ``data`` gives the users' history."""

    def recommend(self, data: Dataset, users: np.ndarray, k: int, exclude: sp.csr_matrix | None = None,
                  batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Top-k product indexes and scores per user, excluding ``exclude``'s non-zeros (e.g. bought items).

        Users are scored ``batch`` at a time: dense scores stay batch × products whatever the number of users
        (20 k holdout customers × 10 k products were 3.4 GB at once)."""
        if len(users) > batch:
            parts = [self.recommend(data, users[s:s + batch], k, exclude, batch) for s in range(0, len(users), batch)]
            return np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
        scores = self.score(data, users).astype(np.float32, copy=True)
        if exclude is not None:
            rows = exclude[users]
            r, c = rows.nonzero()
            scores[r, c] = -np.inf
        return top_k(scores, k)

    def save(self, folder: Path) -> None:
        """Write ``folder`` atomically: ``state.npz``, ``<key>.sparse.npz``, ``model.json``, ``MANIFEST.json``."""
        from omnifuse.artifacts import write_dir

        with write_dir(folder) as tmp:
            dense = {k: v for k, v in self.state.items() if not sp.issparse(v)}
            np.savez(tmp / "state.npz", **dense)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
            for key, value in self.state.items():
                if sp.issparse(value):
                    sp.save_npz(tmp / f"{key}.sparse.npz", sp.csr_matrix(value))
            (tmp / "model.json").write_text(json.dumps({"name": self.name, "seed": self.seed,
                                                        "params": self.params}))

    @classmethod
    def load(cls, folder: Path, manifest_sha256: str | None = None) -> Recommender:
        """Read a model saved by :meth:`save`: only the files its ``MANIFEST.json`` lists, each read once and
        decoded from the bytes whose checksum was verified (``ArtifactError`` names the file);
        ``manifest_sha256``: the manifest's own checksum as the registry holds it."""
        from omnifuse.artifacts import read_dir

        return cls.from_stored(read_dir(folder, manifest_sha256))

    @classmethod
    def from_stored(cls, stored: StoredDir) -> Recommender:
        """The model held by a verified folder (:func:`omnifuse.artifacts.read_dir`, or a fused model's
        ``models/<name>/`` part of one): ``model.json``, ``state.npz`` and the ``<key>.sparse.npz`` it lists."""
        from omnifuse.artifacts import ArtifactError

        try:
            meta = json.loads(stored.get("model.json"))
            model = cls(seed=meta["seed"], **meta["params"])
            with np.load(io.BytesIO(stored.get("state.npz")), allow_pickle=False) as f:
                model.state = {k: f[k] for k in f.files}
            for name in sorted(stored.files):
                if "/" not in name and name.endswith(".sparse.npz"):
                    model.state[name.removesuffix(".sparse.npz")] = sp.load_npz(io.BytesIO(stored.files[name])).tocsr()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"model {stored.folder} cannot be read ({exc}); re-run the retrain that wrote it.") \
                from exc
        return model


def log_weights(data: Dataset, half_life_days: float, users: np.ndarray | None = None) -> sp.csr_matrix:
    """log(1 + time-decayed event weights) per (customer, product) as float32, for every customer or only
    ``users`` (rows in that order): the input the item-item and factor models read."""
    x = data.matrix(half_life_days)
    x = (x if users is None else x[users]).astype(np.float32)
    x.data = np.log1p(x.data)
    return x


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes and values of the k largest scores per row, best first (ties broken by lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=-1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(scores, idx, axis=1)
