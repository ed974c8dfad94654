"""The bounds that staging quarantines by and that the quality gates judge by: one place, from settings.

Staging SQL receives :func:`staging_params` as bound parameters; a suite in ``include/gx/suites`` names a
bound as ``{"rule": "<name>"}`` (or ``{"rule": "<name>", "negate": true}``) and :func:`resolve` fills it in,
so a gate never blocks a date for a value the staging rules accept.
"""

from __future__ import annotations

from typing import Any

from omnifuse.config import Settings, load_settings


def rule_values(settings: Settings | None = None) -> dict[str, Any]:
    """Every named bound, from settings: ``max_quantity``, ``price_outlier_factor``, ``max_price_eur``,
    ``non_product_skus`` (a regular expression), ``default_currency``, ``max_quarantine_share``."""
    s = settings or load_settings()
    return {
        "max_quantity": s.max_quantity,
        "price_outlier_factor": s.price_outlier_factor,
        "max_price_eur": s.max_price_eur,
        "non_product_skus": s.non_product_skus,
        "default_currency": s.default_currency,
        "max_quarantine_share": s.max_quarantine_share,
    }


def staging_params(settings: Settings | None = None) -> dict[str, Any]:
    """Bound parameters every ``sql/ingest/*.sql`` statement may use (unused ones are harmless)."""
    return rule_values(settings)


def resolve(value: Any, settings: Settings | None = None) -> Any:
    """A suite kwarg with ``{"rule": name}`` replaced by the bound's value (recursively in lists/dicts)."""
    if isinstance(value, dict):
        if set(value) <= {"rule", "negate"} and "rule" in value:
            values = rule_values(settings)
            try:
                out = values[value["rule"]]
            except KeyError:
                raise KeyError(f"unknown rule {value['rule']!r} in a quality suite; known rules: {sorted(values)}") \
                    from None
            return -out if value.get("negate") else out
        return {k: resolve(v, settings) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, settings) for v in value]
    return value
