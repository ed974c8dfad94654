"""The generated web and app events written as a Google Analytics 4 BigQuery export (``--web-format ga4``).

Each native line of the world becomes one GA4 row with one item (so the planted mess and ``truth/`` keep their
meaning: a truncated line stays broken JSON, a missing SKU is an item without ``item_id``, a double-fired event
is an identical row), under the same file names, with the manifests rewritten and ``_mappings/web.toml`` /
``mobile.toml`` saying ``format = "ga4"``. Read back by :mod:`omnifuse.landing.ga4`.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omnifuse.generate.writers import write_gzip_lines, write_manifest

#: Native event type -> GA4 event_name, per channel (the inverse of ``omnifuse.landing.ga4.EVENT_TYPES``).
GA4_EVENT_NAMES: dict[str, dict[str, str]] = {
    "web": {"product_view": "view_item", "product_click": "select_item", "add_to_cart": "add_to_cart",
            "checkout_complete": "purchase", "refund": "refund"},
    "mobile": {"view_item": "view_item", "tap_item": "select_item", "add_to_cart": "add_to_cart",
               "purchase": "purchase", "refund": "refund"},
}
MAPPING = 'version = 1\nformat = "ga4"\n'


def _param(key: str, value: Any) -> dict[str, Any]:
    kind = "int_value" if isinstance(value, int) else "string_value"
    return {"key": key, "value": {kind: value}}


def ga4_row(line: str, channel: str) -> str:
    """One native ``web`` / ``mobile`` line as a GA4 export row with one item; a line that is not a JSON object
    is returned as it is (it stays ``malformed_json``)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    web = channel == "web"
    product = obj.get("product" if web else "properties") or {}
    if web:
        micros = None
        if isinstance(obj.get("ts"), str):
            stamp = datetime.fromisoformat(obj["ts"].replace("Z", "+00:00"))
            micros = int(stamp.timestamp()) * 1_000_000 + stamp.microsecond
        ts: Any = micros
    else:
        ts = obj["timestamp_ms"] * 1000 if isinstance(obj.get("timestamp_ms"), int) else obj.get("timestamp_ms")
    native = str(obj.get("type" if web else "event"))
    name = GA4_EVENT_NAMES[channel].get(native, native)
    item = {k: v for k, v in (("item_id", product.get("sku")), ("item_name", product.get("sku")),
                              ("price", product.get("price")), ("quantity", product.get("quantity")))
            if v is not None}
    params = []
    if web:
        context = obj.get("context") or {}
        if obj.get("session_id"):
            params.append(_param("ga_session_id", obj["session_id"]))
        if context.get("page"):
            params.append(_param("page_location", context["page"]))
        if context.get("referrer"):
            params.append(_param("page_referrer", context["referrer"]))
    if product.get("currency"):
        params.append(_param("currency", product["currency"]))
    app = obj.get("app") or {}
    platform = "WEB" if web else str(app.get("os") or "android").upper()
    row: dict[str, Any] = {
        "event_date": None,
        "event_timestamp": str(ts) if ts is not None else None,  # BigQuery's extract writes INT64 as a string
        "event_name": name,
        "event_params": params,
        "user_id": obj.get("customer_id" if web else "user_id"),
        "user_pseudo_id": obj.get("cookie_id" if web else "device_id"),
        "platform": platform,
        "device": ({"category": "desktop", "web_info": {"browser": (obj.get("context") or {}).get("user_agent")}}
                   if web else {"category": "mobile", "operating_system": platform.title()}),
        "geo": {"country": None},
        "items": [item],
    }
    if not web:
        row["app_info"] = {"version": app.get("version")}
    if isinstance(ts, int):
        row["event_date"] = datetime.fromtimestamp(ts // 1_000_000, UTC).strftime("%Y%m%d")
    if name == "purchase":
        row["ecommerce"] = {"transaction_id": f"T-{obj.get('event_id') or obj.get('id')}"}
    return json.dumps(row, separators=(",", ":"))


def rewrite_as_ga4(out: Path, days: list[str]) -> None:
    """Rewrite the ``web`` and ``mobile`` folders of ``days`` under ``out`` as GA4 exports (same file names,
    new manifests) and write the two mapping files that select the format."""
    out = Path(out)
    for channel in ("web", "mobile"):
        for day in days:
            folder = out / channel / day
            manifest = json.loads((folder / "_manifest.json").read_text())
            entries = []
            for entry in manifest["files"]:
                path = folder / str(entry["name"])
                with gzip.open(path, "rt", encoding="utf-8") as fh:
                    text = fh.read()
                lines = text.split("\n")
                if lines and lines[-1] == "":
                    lines.pop()
                entries.append(write_gzip_lines(path, [ga4_row(line, channel) for line in lines]))
            write_manifest(folder, entries)
    mappings = out / "_mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    for channel in ("web", "mobile"):
        (mappings / f"{channel}.toml").write_text(MAPPING)
