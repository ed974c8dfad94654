"""The daily catalog delivery: product snapshot, store list (the ``store_locations`` source, ``stores.csv``) and FX
rates (CSV)."""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="catalog",
        folder="catalog",
        patterns=("products.csv",),
        fmt="csv",
        judges_events=True,
        table="products",
        target="core.product_snapshots",
        stage_sql="ingest/core_products.sql",
        key=("product_id",),
        columns=("sku", "name", "category", "brand", "price", "currency", "stock", "repeatable", "in_store"),
    ),
    Source(
        name="store_locations",
        folder="catalog",
        patterns=("stores.csv",),
        fmt="csv",
        judges_events=True,
        table="store_locations",
        target="core.store_snapshots",  # and core.stores, the latest list
        stage_sql="ingest/core_stores.sql",
        key=("store_id",),
        columns=("store_id", "city", "timezone", "currency"),
        # "stores" until migration 0020: beside the `store` channel (till lines) the name confused both
        former_names=("stores",),
    ),
    Source(
        name="fx_rates",
        folder="catalog",
        patterns=("fx_rates.csv",),
        fmt="csv",
        judges_events=True,
        table="fx_rates",
        target="core.fx_rates",
        stage_sql="ingest/core_fx_rates.sql",
        key=("rate_date_text", "currency"),
        columns=("rate_date", "currency", "rate_to_eur"),
    ),
)
