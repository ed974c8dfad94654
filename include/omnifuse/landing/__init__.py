"""Adapters that read standard exports (GA4 events, Merchant Center feeds) as landing-contract records; the
JSON Schemas of the contract live in ``schemas/``."""
