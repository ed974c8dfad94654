"""Social interactions: CSV of likes, shares, comments and reviews; local time with a UTC offset."""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="social",
        channel="social",
        folder="social",
        patterns=("interactions*.csv",),
        fmt="csv",
        table="social_interactions",
        target="staging.social_interactions",
        stage_sql="ingest/stg_social_interactions.sql",
        key=("interaction_id",),
        staged_columns=("interaction_id", "platform", "handle", "event_type", "sku", "event_ts", "local_ts_text",
                        "comment_text", "is_late", "_arrival_date", "_source_file", "_line_no"),
        columns=("interaction_id", "platform", "handle", "action", "sku", "occurred_at", "text"),
        aliases={"user_handle": "handle", "comment": "text"},
    ),
)
