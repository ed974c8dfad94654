"""Recommenders behind one interface (:class:`omnifuse.models.base.Recommender`), one per module."""

from __future__ import annotations

from omnifuse.models.base import Recommender

#: Base models trained every day: name -> "module:Class".
BASE_MODELS = {
    "popularity": "omnifuse.models.popularity:Popularity",
    "popularity_channel": "omnifuse.models.popularity:ChannelPopularity",
    "item_knn": "omnifuse.models.item_knn:ItemKNN",
    "pure_svd": "omnifuse.models.pure_svd:PureSVD",
    "ease": "omnifuse.models.ease:EASE",
    "assoc_rules": "omnifuse.models.assoc_rules:AssociationRules",
    "two_tower": "omnifuse.models.two_tower:TwoTower",
}


def model_class(name: str) -> type[Recommender]:
    import importlib

    try:
        module, cls = BASE_MODELS[name].split(":")
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(BASE_MODELS)}") from None
    return getattr(importlib.import_module(module), cls)


__all__ = ["BASE_MODELS", "Recommender", "model_class"]
