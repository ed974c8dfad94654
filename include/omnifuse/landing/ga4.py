"""Google Analytics 4 events, as the BigQuery export writes them (``bq extract`` of ``events_YYYYMMDD`` to
newline-delimited JSON), turned into the native ``web`` / ``mobile`` event records of the landing contract.

Selected per source by ``format = "ga4"`` in ``<mapping dir>/web.toml`` or ``mobile.toml``. One GA4 row is one
event; its ``items[]`` are the products it touched, so **one row becomes one native record per item** (the
interaction grain of ``core.interactions``). The records then go through the native staging SQL unchanged:
same quarantine reasons, same duplicate key, same reconciliation.

What a "line" is for the audit (``lines_read = rows_staged + rows_quarantined + duplicates_dropped``): one item
of a GA4 row of an interaction event, or one GA4 row that cannot be expanded (not JSON → ``malformed_json``; an
interaction event without items → ``missing_field:items``). Rows that are not product interactions of this
source (``page_view``, ``session_start``, ``begin_checkout`` …, or another platform's rows when one export is
delivered to both folders) are not lines of the source: they are counted per event name / platform in
``ops.load_audit.notes``; ``ops.landed_files.data_lines`` keeps the file's GA4 rows (what the manifest counts).

Fields read (Google's export schema): ``event_date``, ``event_timestamp`` (µs since epoch, integer or string),
``event_name``, ``user_pseudo_id`` (the anonymous id: cookie on web, app instance on mobile), ``user_id`` (the
login = CRM customer id), ``platform`` (``WEB`` / ``IOS`` / ``ANDROID``), ``items[].item_id`` / ``price`` /
``quantity``, ``event_params`` (``ga_session_id``, ``currency``, ``page_location``, ``page_referrer``),
``ecommerce.transaction_id``, ``device``, ``app_info``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

#: GA4 event name -> the native event type of each source (other events are not product interactions).
EVENT_TYPES: dict[str, dict[str, str]] = {
    "web": {"view_item": "product_view", "select_item": "product_click", "add_to_cart": "add_to_cart",
            "purchase": "checkout_complete", "refund": "refund"},
    "mobile": {"view_item": "view_item", "select_item": "tap_item", "add_to_cart": "add_to_cart",
               "purchase": "purchase", "refund": "refund"},
}
#: GA4 ``platform`` values each source loads; a row of another platform belongs to the other source.
PLATFORMS: dict[str, frozenset[str]] = {"web": frozenset({"WEB"}), "mobile": frozenset({"IOS", "ANDROID"})}
SOURCES = frozenset(EVENT_TYPES)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class Expansion:
    """What one GA4 row became: native ``records`` (JSON text), or a quarantine ``reason`` for the row as a
    whole, or ``skipped`` (why it is not a line of this source: ``event:<name>`` or ``platform:<name>``)."""

    records: tuple[str, ...] = ()
    reason: str | None = None
    skipped: str | None = None


def _param(row: dict[str, Any], key: str) -> Any:
    """The value of one ``event_params`` entry (whichever of string/int/double/float value is set)."""
    params = row.get("event_params")
    if not isinstance(params, list):
        return None
    for param in params:
        if isinstance(param, dict) and param.get("key") == key:
            value = param.get("value")
            if not isinstance(value, dict):
                return None
            for kind in ("string_value", "int_value", "double_value", "float_value"):
                if value.get(kind) is not None:
                    return value[kind]
    return None


#: An ``event_timestamp`` read as microseconds: ASCII digits only (``str.isdigit`` also accepts "²", which ``int``
#: refuses) and at most 19 of them (a bigint; ``int`` refuses more than 4,300 digits). Anything else is carried
#: as text, which staging quarantines as ``invalid_timestamp``.
_MICROS = re.compile(r"-?[0-9]{1,19}")


def _micros(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 1 << 63 else None
    if isinstance(value, str) and _MICROS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _iso(micros: int) -> str | None:
    try:
        return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return None


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def expand(line: str, source: str) -> Expansion:
    """One GA4 export row (a JSON line) as native records of ``source`` (``web`` or ``mobile``).

    Values are carried as they came (a bad price or timestamp is left for the staging rules to quarantine with
    the native reason and detail); the native event id is ``ga4:<user_pseudo_id>:<event_timestamp>:<event_name>:
    <item index from 1>``, so a double-fired or re-delivered identical row is a duplicate, not a second event.
    """
    try:
        row = json.loads(line)
    except ValueError:
        return Expansion(reason="malformed_json")
    if not isinstance(row, dict):
        return Expansion(reason="malformed_json")
    name = _text(row.get("event_name"))
    if name is None:
        return Expansion(reason="missing_field:event_name")
    platform = _text(row.get("platform"))
    if platform is not None and platform.upper() not in PLATFORMS[source]:
        return Expansion(skipped=f"platform:{platform.upper()}")
    native_type = EVENT_TYPES[source].get(name)
    if native_type is None:
        return Expansion(skipped=f"event:{name}")
    items = row.get("items")
    if not isinstance(items, list) or not items:
        return Expansion(reason="missing_field:items")
    ts_raw = row.get("event_timestamp")
    micros = _micros(ts_raw)
    pseudo = _text(row.get("user_pseudo_id"))
    user = _text(row.get("user_id"))
    currency = _text(_param(row, "currency"))
    ecommerce: dict = row["ecommerce"] if isinstance(row.get("ecommerce"), dict) else {}
    transaction = _text(ecommerce.get("transaction_id")) or _text(_param(row, "transaction_id"))
    id_base = f"ga4:{pseudo or ''}:{ts_raw if ts_raw is not None else ''}:{name}"
    origin = {"event_name": name, "platform": platform, "event_date": _text(row.get("event_date"))}
    if transaction:
        origin["transaction_id"] = transaction
    records = []
    for index, item in enumerate(items, start=1):
        item = item if isinstance(item, dict) else {}
        product: dict[str, Any] = {"sku": _text(item.get("item_id"))}
        if item.get("price") is not None:
            product["price"] = item["price"]
        if item.get("quantity") is not None:
            product["quantity"] = item["quantity"]
        if source == "web":
            device: dict = row["device"] if isinstance(row.get("device"), dict) else {}
            web_info: dict = device["web_info"] if isinstance(device.get("web_info"), dict) else {}
            if currency is not None:
                product["currency"] = currency
            record: dict[str, Any] = {
                "event_id": f"{id_base}:{index}",
                "type": native_type,
                "ts": (_iso(micros) if micros is not None else None) or _text(ts_raw),
                "cookie_id": pseudo,
                "session_id": _text(_param(row, "ga_session_id")),
                "customer_id": user,
                "product": product,
                "context": {"page": _text(_param(row, "page_location")),
                            "referrer": _text(_param(row, "page_referrer")),
                            "user_agent": _text(web_info.get("browser"))},
            }
        else:
            app: dict = row["app_info"] if isinstance(row.get("app_info"), dict) else {}
            product["currency"] = currency
            record = {
                "id": f"{id_base}:{index}",
                "event": native_type,
                "timestamp_ms": micros // 1000 if micros is not None else _text(ts_raw),
                "device_id": pseudo,
                "user_id": user,
                "properties": product,
                "app": {"version": _text(app.get("version")), "os": platform.lower() if platform else None},
            }
        record["ga4"] = {**origin, "item_index": index}
        records.append(_dumps(record))
    return Expansion(records=tuple(records))
