"""The daily CRM snapshot: customer id, hashed contacts, loyalty card, linked social handles (CSV)."""

from __future__ import annotations

from omnifuse.sources import Source

SOURCES = (
    Source(
        name="crm",
        folder="crm",
        patterns=("customers*.csv",),
        fmt="csv",
        table="customers",
        target="core.customer_snapshots",
        stage_sql="ingest/core_customers.sql",
        key=("customer_id",),
        columns=("customer_id", "email_sha256", "phone_sha256", "loyalty_card", "social_handles", "signup_date",
                 "home_store_id", "country"),
    ),
)
