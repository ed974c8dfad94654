"""Mobile app events: gzip JSON lines with nested ``properties`` and ``app``; epoch milliseconds.

Carries device_id always, user_id (the CRM customer id) when logged in; events view_item, tap_item,
add_to_cart, purchase.
"""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="mobile",
        channel="mobile",
        folder="mobile",
        patterns=("events*.json.gz",),
        fmt="ndjson",
        table="mobile_events",
        target="staging.mobile_events",
        stage_sql="ingest/stg_mobile_events.sql",
        key=("event_id",),
        keys=frozenset({"id", "event", "timestamp_ms", "device_id", "user_id", "properties", "app", "ga4"}),
        optional_keys=("user_id",),  # logged-in events only
        staged_columns=("event_id", "event_type", "source_event_type", "event_ts", "device_id", "customer_id", "sku",
                        "price", "quantity", "currency", "app_version", "os", "is_late", "_arrival_date",
                        "_source_file", "_line_no"),
    ),
)
