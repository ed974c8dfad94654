"""EASE (Steck 2019): a closed-form item-item linear model, B = I − P / diag(P) with P = (XᵀX + λI)⁻¹.

Public benchmarks (RecBole on ML-1M, Amazon-Books) find it the strongest single CPU model. Its cost is an
items × items inverse, so beyond ``max_items`` products it is fitted on the ``max_items`` most popular
products only (the long tail then scores 0 here and is left to the other models): a documented fallback
that keeps the inverse at ≈ max_items³/3 flops and max_items² × 4 bytes.

Memory: one float64 items × items matrix is alive at a time (the Gram matrix is accumulated from blocks of
customers straight into it, inverted in place by Cholesky, then divided in place), plus the float32 B kept:
≈ 12 × max_items² bytes at the peak (430 MB at 6,000 products, 1.2 GB at 10,000) instead of ≈ 40 × max_items²
with a sparse Gram, ``np.linalg.inv`` and its copies.

Input: each (customer, product) cell is log(1 + decayed sum of event weights), divided by the mean of the
training matrix's non-zero cells, so a typical interaction counts about 1 whatever the event weights are: λ
then means what it means on a binary matrix (the published EASE results, and a plain EASE of the same data),
and one grid serves a clickstream world and a till-only shop alike. On the real-data benchmark the unscaled
input made the default λ = 200 act like λ ≈ 40 (NDCG@20 0.155 against 0.162 scaled, ``bench/real_data.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from omnifuse.dataset import Dataset
from omnifuse.models.base import Recommender, log_weights


class EASE(Recommender):
    name = "ease"

    def __init__(self, seed: int = 7, l2: float = 250.0, max_items: int = 6000, half_life_days: float = 30.0):
        super().__init__(seed, l2=l2, max_items=max_items, half_life_days=half_life_days)

    def fit(self, data: Dataset) -> EASE:
        x = log_weights(data, self.params["half_life_days"])
        unit = float(x.data.mean()) if x.nnz else 1.0
        x.data /= unit
        pop = np.asarray((x > 0).sum(axis=0)).ravel()
        keep = np.sort(np.argsort(-pop, kind="stable")[: self.params["max_items"]])
        g = _gram(x[:, keep].tocsr())
        g[np.diag_indices_from(g)] += self.params["l2"]
        p = _spd_inverse(g)  # in place: g is gone
        p /= -np.diag(p).copy()  # B = -P / diag(P), column by column
        p[np.diag_indices_from(p)] = 0.0
        b = p.astype(np.float32)
        del p
        self.state = {"items": keep.astype(np.int64), "b": b, "unit": np.array([unit])}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        x = log_weights(data, self.params["half_life_days"], users)
        if "unit" in self.state:  # champions saved before the scaling have none
            x.data /= float(self.state["unit"][0])
        items = self.state["items"]
        out = np.zeros((len(users), data.n_items), dtype=np.float32)
        out[:, items] = np.asarray(x[:, items] @ self.state["b"])
        return out


def _gram(xs: sp.csr_matrix, block: int = 8192) -> np.ndarray:
    """XᵀX as a dense float64 array, summed over blocks of rows (customers): no full sparse product in memory."""
    n = xs.shape[1]
    g = np.zeros((n, n), dtype=np.float64)
    for start in range(0, xs.shape[0], block):
        part = xs[start:start + block]
        coo = (part.T @ part).tocoo()  # canonical: one entry per cell
        g[coo.row, coo.col] += coo.data
    return g


def _spd_inverse(g: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive-definite float64 matrix, computed in ``g``'s own memory (LAPACK
    potrf + potri); raises ``np.linalg.LinAlgError`` when ``g`` is not positive definite."""
    from scipy.linalg import lapack

    # g is symmetric, so its transpose (a Fortran-ordered view, no copy) is the same matrix and LAPACK can
    # overwrite it in place
    c, info = lapack.dpotrf(g.T, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the regularised Gram matrix is not positive definite (potrf {info})")
    p, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the Gram matrix cannot be inverted (potri {info})")
    n = p.shape[0]
    for start in range(0, n, 1024):  # mirror the upper triangle into the lower one, a block of rows at a time
        stop = min(start + 1024, n)
        p[start:stop, :start] = p[:start, start:stop].T
        block = p[start:stop, start:stop]
        low = np.tril_indices(stop - start, -1)
        block[low] = block.T[low]
    return p.T  # symmetric: the C-ordered view of the same memory
