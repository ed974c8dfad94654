"""Web clickstream: gzip NDJSON, one event per line, nested ``product`` and ``context``; ISO-8601 UTC.

Carries cookie_id and session_id always, customer_id when logged in; event types product_view,
product_click, add_to_cart, checkout_complete.
"""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="web",
        channel="web",
        folder="web",
        patterns=("events*.ndjson.gz",),
        fmt="ndjson",
        table="web_events",
        target="staging.web_events",
        stage_sql="ingest/stg_web_events.sql",
        key=("event_id",),
        keys=frozenset({"event_id", "type", "ts", "cookie_id", "session_id", "customer_id", "product", "context",
                        "ga4"}),
        optional_keys=("customer_id",),  # logged-in events only
        staged_columns=("event_id", "event_type", "source_event_type", "event_ts", "cookie_id", "session_id",
                        "customer_id", "sku", "price", "quantity", "page", "referrer", "user_agent", "is_late",
                        "_arrival_date", "_source_file", "_line_no"),
    ),
)
