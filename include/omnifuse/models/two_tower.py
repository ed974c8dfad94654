"""A two-tower retrieval model in plain TensorFlow/Keras (TensorFlow Recommenders breaks under Keras 3).

- customer tower: id embedding + a dense projection of the customer's features (channel mix, recency,
  frequency);
- product tower: id embedding + category, brand and price-band embeddings, so a new product with little
  history still lands near its kind.

Both end in an L2-normalised 32-d vector; training maximises the in-batch softmax of the true (customer,
product) pair against the other products of the batch, with the logQ correction for popularity sampling
(Yi et al. 2019). Positives are sampled in proportion to event weight (at most ``max_pairs``).

**Budget** (:func:`train_batch`, :func:`train_steps`): a fit runs ``epochs`` passes over the sampled pairs in
batches of ``batch_size`` (``batch_size - 1`` in-batch negatives per positive); when that would take more than
``max_steps`` steps the batch doubles (more negatives per step) up to ``max_batch_size``, and past that the
step count is capped at ``max_steps``. Small worlds train exactly as before; on big worlds the work, hence
CPU time and memory, stops growing with the data: a fit costs at most ``max_steps`` × (a
``max_batch_size``² logits matrix) however many interactions there are. (The batch used to grow without a
cap: at 2.6 M interactions 976 steps of 4096², 85-150 s per fit, three fits per retrain; now 1200 steps of
2048², ≈ 26 s, at the same holdout NDCG@10.) CPU only; deterministic for a seed.
After training, the towers' outputs for every customer and product are kept as numpy arrays, so scoring
and loading need no TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np

from omnifuse.dataset import Dataset
from omnifuse.models.base import Recommender


class TwoTower(Recommender):
    name = "two_tower"
    #: Optimiser steps the last :meth:`fit` ran (:func:`train_steps`); not part of the saved state.
    steps_run: int = 0

    def __init__(self, seed: int = 7, dim: int = 32, epochs: int = 4, batch_size: int = 1024,
                 learning_rate: float = 0.01, temperature: float = 0.1, max_pairs: int = 1_000_000,
                 max_steps: int = 1200, max_batch_size: int = 2048):
        super().__init__(seed, dim=dim, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         temperature=temperature, max_pairs=max_pairs, max_steps=max_steps,
                         max_batch_size=max_batch_size)

    def fit(self, data: Dataset) -> TwoTower:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        p = self.params
        keras.utils.set_random_seed(self.seed)
        tf.config.experimental.enable_op_determinism()
        rng = np.random.default_rng(self.seed)

        feats = data.user_features()
        n_pairs = min(p["max_pairs"], max(len(data.user), 1) * 2)
        prob = data.weight / data.weight.sum()
        pick = rng.choice(len(data.user), size=n_pairs, p=prob)
        users, items = data.user[pick], data.item[pick]
        freq = np.bincount(items, minlength=data.n_items) / len(items)
        log_q = np.log(np.maximum(freq, 1e-9)).astype(np.float32)

        dim = p["dim"]
        u_id = keras.Input(shape=(), dtype="int32")
        u_feat = keras.Input(shape=(feats.shape[1],), dtype="float32")
        u = keras.layers.Concatenate()([
            keras.layers.Embedding(data.n_users, dim)(u_id),
            keras.layers.Dense(dim, activation="relu")(u_feat),
        ])
        u = keras.layers.UnitNormalization()(keras.layers.Dense(dim)(u))
        user_tower = keras.Model([u_id, u_feat], u)

        i_id = keras.Input(shape=(), dtype="int32")
        i_cat = keras.Input(shape=(), dtype="int32")
        i_brand = keras.Input(shape=(), dtype="int32")
        i_band = keras.Input(shape=(), dtype="int32")
        v = keras.layers.Concatenate()([
            keras.layers.Embedding(data.n_items, dim)(i_id),
            keras.layers.Embedding(int(data.category.max()) + 1, 8)(i_cat),
            keras.layers.Embedding(int(data.brand.max()) + 1, 8)(i_brand),
            keras.layers.Embedding(int(data.price_band.max()) + 1, 4)(i_band),
        ])
        v = keras.layers.UnitNormalization()(keras.layers.Dense(dim)(v))
        item_tower = keras.Model([i_id, i_cat, i_brand, i_band], v)

        optimizer = keras.optimizers.Adam(p["learning_rate"])
        variables = user_tower.trainable_variables + item_tower.trainable_variables
        optimizer.build(variables)  # its slots exist before the step is traced: one trace per fit, not two
        temperature = p["temperature"]
        cat, brand, band = (tf.constant(a) for a in (data.category, data.brand, data.price_band))
        feats_t, log_q_t = tf.constant(feats), tf.constant(log_q)

        @tf.function(reduce_retracing=True)
        def step(bu, bi):
            with tf.GradientTape() as tape:
                ue = user_tower([bu, tf.gather(feats_t, bu)], training=True)
                ie = item_tower([bi, tf.gather(cat, bi), tf.gather(brand, bi), tf.gather(band, bi)], training=True)
                logits = tf.matmul(ue, ie, transpose_b=True) / temperature - tf.gather(log_q_t, bi)[None, :]
                same = tf.cast(tf.equal(bi[:, None], bi[None, :]), tf.float32) - tf.eye(tf.shape(bi)[0])
                logits = logits - 1e9 * same  # other copies of the positive are not negatives
                labels = tf.range(tf.shape(bi)[0])
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        # a fixed batch and a step budget: the work stops growing with the data (module docstring)
        bs = train_batch(n_pairs, p["batch_size"], p["epochs"], p["max_steps"], p.get("max_batch_size", 2048))
        steps = train_steps(n_pairs, bs, p["epochs"], p["max_steps"])
        done = 0
        while done < steps:
            order = rng.permutation(n_pairs)
            for start in range(0, n_pairs - bs + 1 if n_pairs >= bs else 1, bs):
                if done == steps:
                    break
                sel = order[start:start + bs]
                step(tf.constant(users[sel]), tf.constant(items[sel]))
                done += 1
        self.steps_run = done

        all_users = np.arange(data.n_users, dtype=np.int32)
        all_items = np.arange(data.n_items, dtype=np.int32)
        # the towers called directly, 8192 rows at a time (Keras' predict traces a function of its own per fit)
        user_in = [all_users, feats.astype(np.float32)]
        item_in = [all_items, *(a.astype(np.int32) for a in (data.category, data.brand, data.price_band))]
        user_emb = np.vstack([user_tower([a[s:s + 8192] for a in user_in], training=False).numpy()
                              for s in range(0, max(data.n_users, 1), 8192)])
        item_emb = np.vstack([item_tower([a[s:s + 8192] for a in item_in], training=False).numpy()
                              for s in range(0, max(data.n_items, 1), 8192)])
        self.state = {"user_emb": user_emb.astype(np.float32), "item_emb": item_emb.astype(np.float32)}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        return self.state["user_emb"][users] @ self.state["item_emb"].T


def train_batch(n_pairs: int, batch_size: int, epochs: int, max_steps: int, max_batch_size: int) -> int:
    """Pairs per step: ``batch_size``, doubled while ``epochs`` passes would take more than ``max_steps`` steps,
    never beyond ``max_batch_size`` (nor below ``batch_size``)."""
    wanted = 2 ** int(np.ceil(np.log2(max(1.0, n_pairs * epochs / max_steps))))
    return int(max(batch_size, min(wanted, max_batch_size)))


def train_steps(n_pairs: int, batch_size: int, epochs: int, max_steps: int) -> int:
    """Optimiser steps of one fit: ``epochs`` passes over ``n_pairs`` sampled pairs in batches of
    ``batch_size`` (at least one batch), capped at ``max_steps`` whatever the size of the data."""
    per_epoch = max(1, n_pairs // batch_size)
    return int(min(max_steps, epochs * per_epoch))
