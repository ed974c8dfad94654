"""Popularity, recency-weighted (exponential decay), per channel: what customers like this one buy now.

The channel variant scores a product by its decayed popularity in each channel, mixed by the customer's own
channel mix (a store-first customer sees what sells in stores). With ``per_channel=False`` it is the plain
global popularity baseline every personalised model must beat.
"""

from __future__ import annotations

import numpy as np

from omnifuse.dataset import CHANNELS, Dataset
from omnifuse.models.base import Recommender


class Popularity(Recommender):
    name = "popularity"

    def __init__(self, seed: int = 7, half_life_days: float = 7.0, per_channel: bool = False):
        super().__init__(seed, half_life_days=half_life_days, per_channel=per_channel)

    def fit(self, data: Dataset) -> Popularity:
        age = (data.day.max() - data.day) if len(data.day) else data.day
        w = data.weight * np.power(0.5, age / self.params["half_life_days"])
        by_channel = np.zeros((len(CHANNELS), data.n_items), dtype=np.float64)
        np.add.at(by_channel, (data.channel, data.item), w)
        total = by_channel.sum(axis=0)
        by_channel = by_channel / np.maximum(by_channel.sum(axis=1, keepdims=True), 1e-9)
        self.state = {"global": (total / max(total.sum(), 1e-9)).astype(np.float32),
                      "by_channel": by_channel.astype(np.float32)}
        return self

    def score(self, data: Dataset, users: np.ndarray) -> np.ndarray:
        base = np.tile(self.state["global"], (len(users), 1))
        if not self.params["per_channel"]:
            return base
        mix = data.user_features()[users, : len(CHANNELS)]
        # customers without history fall back to the global ranking
        return 0.5 * base + 0.5 * np.where(mix.sum(axis=1, keepdims=True) > 0, mix @ self.state["by_channel"], base)


class ChannelPopularity(Popularity):
    """The per-channel variant: popularity mixed by the customer's own channel mix."""

    name = "popularity_channel"

    def __init__(self, seed: int = 7, half_life_days: float = 7.0, per_channel: bool = True):
        super().__init__(seed, half_life_days=half_life_days, per_channel=per_channel)
