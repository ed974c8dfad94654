"""Airflow glue: the Assets that chain the omnifuse DAGs (the only module of the package importing Airflow)."""

from __future__ import annotations

from airflow.sdk import Asset

#: Emitted by ``omnifuse_ingest`` once a business date's interactions are rebuilt and passed their gates.
CORE_INTERACTIONS = Asset(name="core.interactions", uri="postgres://omnifuse-warehouse:5432/omnifuse/core/interactions")
#: Emitted by ``omnifuse_retrain`` when the model registry has a (new or kept) champion for a business date.
ML_CHAMPION = Asset(name="ml.champion", uri="postgres://omnifuse-warehouse:5432/omnifuse/ml/model_registry")
