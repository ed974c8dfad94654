"""In-store point of sale: CSV, one line per receipt line; store-local time, store currency."""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="store",
        channel="store",
        folder="store",
        patterns=("pos*.csv",),
        fmt="csv",
        table="store_sales",
        target="staging.store_sales",
        stage_sql="ingest/stg_store_sales.sql",
        key=("receipt_id", "line_no"),
        staged_columns=("receipt_id", "line_no", "store_id", "loyalty_card", "sku", "quantity", "unit_price",
                        "currency", "sold_at_local", "event_ts", "is_late", "line_kind", "_arrival_date",
                        "_source_file", "_line_no", "local_time_note"),
        columns=("receipt_id", "line_no", "store_id", "loyalty_card", "sku", "quantity", "unit_price", "currency",
                 "sold_at"),
        # Tills have shipped "qty" instead of "quantity"; the rename is mapped and noted in ops.landed_files.
        aliases={"qty": "quantity", "price": "unit_price"},
    ),
)
