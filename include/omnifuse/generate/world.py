"""A latent multi-channel commerce world and the landing zone it delivers.

The world is drawn once from a seed: customers with category/brand affinities, price sensitivity, a
preferred channel mix and identifiers (cookies, devices, social handle, loyalty card, hashed contacts);
products with category, brand, price, popularity and stock; stores with time zones and currencies. Each
day is drawn from its own seeded stream, so any day can be regenerated alone and the same seed always
gives byte-identical files.

Landing zone layout (``<out>/<source>/<YYYY-MM-DD>/``, ``_manifest.json`` written last)::

    web/      events.ndjson.gz     clickstream, ISO-8601 UTC, nested product/context
    mobile/   events.json.gz       app events, epoch ms, nested properties/app
    social/   interactions.csv     likes/shares/comments/reviews, local time with offset
    store/    pos.csv              receipt lines, store-local time, store currency
    catalog/  products.csv, stores.csv, fx_rates.csv
    crm/      customers.csv

``truth/`` (never read by the pipeline) holds identifiers → person, favourites and the mess planted per
channel and day with the quarantine/duplicate counts the pipeline must report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from omnifuse.generate.writers import write_csv, write_gzip_lines, write_lines, write_manifest
from omnifuse.sources import EVENT_CHANNELS

CATEGORIES = [
    "electronics", "home", "kitchen", "fashion", "shoes", "beauty",
    "grocery", "toys", "sports", "books", "garden", "pets",
]
#: Categories whose products are bought again and again (not excluded from recommendations once bought).
REPEATABLE = {"grocery", "beauty", "pets"}
STORES = [
    # store_id, city, timezone, currency
    ("S01", "Paris", "Europe/Paris", "EUR"),
    ("S02", "Berlin", "Europe/Berlin", "EUR"),
    ("S03", "Madrid", "Europe/Madrid", "EUR"),
    ("S04", "London", "Europe/London", "GBP"),
    ("S05", "Manchester", "Europe/London", "GBP"),
    ("S06", "New York", "America/New_York", "USD"),
    ("S07", "Chicago", "America/Chicago", "USD"),
    ("S08", "Toronto", "America/Toronto", "CAD"),
]
#: Reporting currency is EUR; ``amount_eur = amount * rate_to_eur``.
FX_TO_EUR = {"EUR": 1.0, "GBP": 1.17, "USD": 0.93, "CAD": 0.68}
CHANNELS = list(EVENT_CHANNELS)
SOCIAL_PLATFORMS = ["instagram", "tiktok", "x", "facebook"]
SOCIAL_ACTIONS = ["like", "share", "comment", "review"]
SOCIAL_TEXTS = ["love it, want it", "great value", "meh, not for me", "bought one, so happy", "", "wow"]
#: Weekly seasonality, Monday first.
WEEKDAY_FACTOR = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])
FAVOURITES = 15
STORE_QUANTITY_ALIASED = "qty"  # the renamed column planted on one day


@dataclass(frozen=True)
class MessConfig:
    """How messy the delivered files are. Rates are per line unless named per file."""

    redelivered_file_rate: float = 0.25  # per (channel, day): the main file arrives twice
    double_fire_rate: float = 0.01  # web/mobile: the same event line sent twice
    malformed_rate: float = 0.002  # truncated JSON / CSV lines with fields missing
    unknown_sku_rate: float = 0.002
    absurd_price_rate: float = 0.002  # negative or x1000 prices
    missing_field_rate: float = 0.002  # the SKU is absent
    clock_skew_rate: float = 0.001  # mobile: the device clock runs days ahead
    late_rate: float = 0.01  # clean events delivered in the next day's folder
    renamed_column_day: int | None = 1  # day index on which the store file says "qty" for "quantity"

    @classmethod
    def clean(cls) -> MessConfig:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, None)


@dataclass(frozen=True)
class WorldConfig:
    customers: int = 2_000
    products: int = 300
    days: int = 3
    start: date = date(2026, 11, 2)
    seed: int = 7
    sessions_per_customer_day: float = 0.5
    anonymous_session_share: float = 0.05  # web sessions by visitors who are nobody's customer
    shared_device_rate: float = 0.02  # customers whose tablet is shared with another customer
    duplicate_crm_rate: float = 0.01  # people with a second CRM record (same hashed email)
    login_rate_web: float = 0.5
    login_rate_mobile: float = 0.8
    mess: MessConfig = field(default_factory=MessConfig)
    #: ``default``, or ``wholesale``: what real shops' tills have (see :data:`PROFILES`).
    profile: str = "default"
    #: ``native``, or ``ga4``: web and app events written as a GA4 BigQuery export (``omnifuse.generate.ga4``).
    web_format: str = "native"


#: What each generator profile plants besides the default world.
PROFILES = {
    "default": "the generated multi-channel world with its planted mess",
    "wholesale": "plus wholesale buyers (quantities of 12 to 700 and big baskets), returns and cancellations "
                 "(negative quantities on cancellation receipts), zero-price lines, postage / bank-charge / "
                 "manual-adjustment lines, product descriptions that change, stores closed on Sundays and "
                 "holidays (an empty delivery), customers who come and go",
}
#: Quantities a wholesale buyer orders.
WHOLESALE_QUANTITIES = np.array([12, 24, 36, 48, 96, 128, 144, 240, 384, 700])
#: Till lines that are not products (what OMNIFUSE_NON_PRODUCT_SKUS recognises by default).
NON_PRODUCT_LINES = (("POST", 18.0), ("M", 2.55), ("BANK CHARGES", 15.0))
#: Days the shops are closed (month, day), besides Sundays, in the wholesale profile.
HOLIDAYS = {(1, 1), (12, 25), (12, 26)}


def store_closed(cfg: WorldConfig, day: date) -> bool:
    """The wholesale profile's stores do not trade on Sundays and holidays: the store delivery is empty."""
    return cfg.profile == "wholesale" and (day.weekday() == 6 or (day.month, day.day) in HOLIDAYS)


@dataclass
class _World:
    cfg: WorldConfig
    rng: np.random.Generator
    # products
    skus: np.ndarray
    p_category: np.ndarray
    p_brand: np.ndarray
    p_price: np.ndarray
    p_popularity: np.ndarray
    p_in_store: np.ndarray
    cat_order: np.ndarray  # product indices sorted by category
    cat_cum: np.ndarray  # cumulative popularity over cat_order
    cat_lo: np.ndarray
    cat_hi: np.ndarray
    # customers
    cust_ids: np.ndarray
    affinity_cum: np.ndarray  # (N, C)
    channel_cum: np.ndarray  # (N, 4)
    activity: np.ndarray
    favourites: np.ndarray  # (N, FAVOURITES) product indices
    cookies: np.ndarray  # (N, 3) str
    n_cookies: np.ndarray
    devices: np.ndarray  # (N, 2) str
    n_devices: np.ndarray
    handles: np.ndarray  # str or ""
    handle_linked: np.ndarray
    cards: np.ndarray  # str or ""
    home_store: np.ndarray
    utc_offset_min: np.ndarray
    dup_crm_id: np.ndarray  # second CRM id or ""
    dup_card: np.ndarray
    emails: np.ndarray
    phones: np.ndarray
    wholesale: np.ndarray  # bool: buys by the box (wholesale profile)
    active_from: np.ndarray  # day index a customer starts buying
    active_to: np.ndarray  # day index after their last


def _hex_ids(prefix: str, seed: int, n: int, salt: str) -> np.ndarray:
    """Deterministic random-looking ids: ``prefix`` + 12 hex chars from a seeded stream."""
    rng = np.random.default_rng([seed, int.from_bytes(salt.encode()[:8].ljust(8, b"\0"), "little")])
    vals = rng.integers(0, 2**48, size=n, dtype=np.int64)
    return np.array([f"{prefix}{v:012x}" for v in vals.tolist()], dtype=object)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def build_world(cfg: WorldConfig) -> _World:
    """Draw the latent world (products, stores, customers and their identifiers)."""
    rng = np.random.default_rng([cfg.seed, 0])
    n_c, n_p, n_cat = cfg.customers, cfg.products, len(CATEGORIES)

    # Products: category, brand (brands specialise in a few categories), price, Zipf-like popularity.
    p_category = rng.integers(0, n_cat, size=n_p)
    n_brands = max(8, n_p // 25)
    p_brand = (p_category * 7 + rng.integers(0, 4, size=n_p) * 13) % n_brands
    cat_price = np.exp(rng.normal(3.2, 0.6, size=n_cat))
    p_price = np.round(cat_price[p_category] * np.exp(rng.normal(0, 0.45, size=n_p)), 2).clip(0.99)
    p_popularity = rng.pareto(1.2, size=n_p) + 0.05
    p_in_store = rng.random(n_p) < 0.7
    skus = np.array([f"SKU{i:06d}" for i in range(n_p)], dtype=object)
    cat_order = np.argsort(p_category, kind="stable")
    cat_cum = np.cumsum(p_popularity[cat_order])
    sorted_cats = p_category[cat_order]
    cat_lo = np.searchsorted(sorted_cats, np.arange(n_cat), side="left")
    cat_hi = np.searchsorted(sorted_cats, np.arange(n_cat), side="right")

    # Customers: sparse category affinity, channel mix, activity, favourite products.
    affinity = rng.dirichlet(np.full(n_cat, 0.3), size=n_c)
    present = cat_hi > cat_lo
    affinity = affinity * present
    affinity /= affinity.sum(axis=1, keepdims=True)
    channel_pref = rng.dirichlet(np.array([1.2, 1.0, 0.4, 0.8]), size=n_c)
    activity = np.exp(rng.normal(np.log(cfg.sessions_per_customer_day), 0.6, size=n_c))
    fav_cats = _draw_categories(rng, np.cumsum(affinity, axis=1), np.repeat(np.arange(n_c), FAVOURITES))
    favourites = _draw_products(rng, fav_cats, cat_order, cat_cum, cat_lo, cat_hi).reshape(n_c, FAVOURITES)

    cust_ids = np.array([f"C{i:07d}" for i in range(n_c)], dtype=object)
    cookies = _hex_ids("ck_", cfg.seed, n_c * 3, "cookies").reshape(n_c, 3)
    n_cookies = rng.integers(1, 4, size=n_c)
    devices = _hex_ids("dv_", cfg.seed, n_c * 2, "devices").reshape(n_c, 2)
    n_devices = rng.integers(1, 3, size=n_c)
    # Shared family tablets: customer b's first device is customer a's first device.
    n_shared = int(n_c * cfg.shared_device_rate) // 2
    if n_shared:
        pairs = rng.permutation(n_c)[: 2 * n_shared].reshape(-1, 2)
        devices[pairs[:, 1], 0] = devices[pairs[:, 0], 0]
    has_handle = rng.random(n_c) < 0.35
    handles = np.where(has_handle, _hex_ids("@u", cfg.seed, n_c, "handles"), "")
    handle_linked = has_handle & (rng.random(n_c) < 0.8)
    has_card = rng.random(n_c) < 0.55
    cards = np.where(has_card, np.array([f"L{i:09d}" for i in rng.permutation(n_c) + 10**8]), "")
    home_store = rng.integers(0, len(STORES), size=n_c)
    utc_offset_min = np.array([60, 60, 60, 0, 0, -300, -360, -300])[home_store]
    emails = np.array([_sha(f"customer{i}.{cfg.seed}@example.com") for i in range(n_c)], dtype=object)
    phones = np.array([_sha(f"+33{cfg.seed:03d}{i:08d}") for i in range(n_c)], dtype=object)
    has_dup = (rng.random(n_c) < cfg.duplicate_crm_rate) & has_card
    dup_crm_id = np.where(has_dup, np.array([f"C9{i:06d}" for i in range(n_c)]), "")
    dup_card = np.where(has_dup, np.array([f"L2{i:08d}" for i in range(n_c)]), "")

    return _World(
        cfg=cfg, rng=rng, skus=skus, p_category=p_category, p_brand=p_brand, p_price=p_price,
        p_popularity=p_popularity, p_in_store=p_in_store, cat_order=cat_order, cat_cum=cat_cum,
        cat_lo=cat_lo, cat_hi=cat_hi, cust_ids=cust_ids, affinity_cum=np.cumsum(affinity, axis=1),
        channel_cum=np.cumsum(channel_pref, axis=1), activity=activity, favourites=favourites,
        cookies=cookies, n_cookies=n_cookies, devices=devices, n_devices=n_devices, handles=handles,
        handle_linked=handle_linked, cards=cards, home_store=home_store, utc_offset_min=utc_offset_min,
        dup_crm_id=dup_crm_id, dup_card=dup_card, emails=emails, phones=phones,
        **_profile_customers(cfg, np.random.default_rng([cfg.seed, 77])),
    )


def _profile_customers(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Wholesale buyers and activity windows: in the wholesale profile 15 % buy by the box and 40 % of the
    customers arrive or leave during the generated period (the default world keeps everyone all along)."""
    n = cfg.customers
    if cfg.profile == "default":
        return {"wholesale": np.zeros(n, bool), "active_from": np.zeros(n, int),
                "active_to": np.full(n, cfg.days, int)}
    if cfg.profile != "wholesale":
        raise ValueError(f"unknown generator profile {cfg.profile!r}; profiles: {sorted(PROFILES)}")
    starts = np.where(rng.random(n) < 0.2, rng.integers(0, max(cfg.days, 1), size=n), 0)
    ends = np.where(rng.random(n) < 0.2, rng.integers(0, max(cfg.days, 1), size=n) + 1, cfg.days)
    ends = np.maximum(ends, starts + 1)
    return {"wholesale": rng.random(n) < 0.15, "active_from": starts, "active_to": ends}


def _draw_categories(rng: np.random.Generator, cum: np.ndarray, rows: np.ndarray) -> np.ndarray:
    u = rng.random(len(rows))[:, None]
    return np.minimum((cum[rows] < u).sum(axis=1), cum.shape[1] - 1)


def _draw_products(rng, cats, cat_order, cat_cum, cat_lo, cat_hi) -> np.ndarray:
    """Popularity-weighted product within each given category."""
    lo_val = np.where(cat_lo[cats] > 0, cat_cum[np.maximum(cat_lo[cats] - 1, 0)], 0.0)
    lo_val = np.where(cat_lo[cats] == 0, 0.0, lo_val)
    hi_val = cat_cum[cat_hi[cats] - 1]
    target = lo_val + rng.random(len(cats)) * (hi_val - lo_val)
    pos = np.searchsorted(cat_cum, target, side="right")
    pos = np.clip(pos, cat_lo[cats], cat_hi[cats] - 1)
    return cat_order[pos]


# --- one day ---------------------------------------------------------------------------------------------


@dataclass
class _DayEvents:
    """Clean events of one day per channel, as columns (numpy arrays / lists)."""

    web: dict
    mobile: dict
    social: dict
    store: dict


def _day_events(w: _World, day_index: int, day: date) -> _DayEvents:
    cfg = w.cfg
    rng = np.random.default_rng([cfg.seed, 1000 + day_index])
    n_c = len(w.cust_ids)
    rate = w.activity * WEEKDAY_FACTOR[day.weekday()]
    rate = rate * ((w.active_from <= day_index) & (day_index < w.active_to))
    n_sess = rng.poisson(rate)
    s_cust = np.repeat(np.arange(n_c), n_sess)
    n_s = len(s_cust)
    u = rng.random(n_s)[:, None]
    s_chan = np.minimum((w.channel_cum[s_cust] < u).sum(axis=1), 3)
    s_chan = np.where((s_chan == 2) & (w.handles[s_cust] == ""), 0, s_chan)  # no handle: no social
    s_start = np.clip(rng.normal(14 * 3600, 4 * 3600, size=n_s), 0, 86_000).astype(np.int64)
    s_items = 1 + rng.poisson(np.where(s_chan == 3, np.where(w.wholesale[s_cust], 25.0, 1.8), 1.5))
    if store_closed(cfg, day):  # closed: store visits become web visits
        s_chan = np.where(s_chan == 3, 0, s_chan)
    i_sess = np.repeat(np.arange(n_s), s_items)
    i_pos = np.arange(len(i_sess)) - np.repeat(np.cumsum(s_items) - s_items, s_items)
    i_cust = s_cust[i_sess]
    from_fav = rng.random(len(i_sess)) < 0.6
    fav_pick = w.favourites[i_cust, rng.integers(0, FAVOURITES, size=len(i_sess))]
    cats = _draw_categories(rng, w.affinity_cum, i_cust)
    explore = _draw_products(rng, cats, w.cat_order, w.cat_cum, w.cat_lo, w.cat_hi)
    i_prod = np.where(from_fav, fav_pick, explore)
    i_ts = s_start[i_sess] + i_pos * rng.integers(20, 180, size=len(i_sess))
    day0 = np.datetime64(day.isoformat(), "ms")
    day_ms = int((day0 - np.datetime64("1970-01-01", "ms")).astype(np.int64))

    session_ids = _hex_ids("s_", cfg.seed, n_s, f"sess{day_index}")

    def pick(chan: int) -> np.ndarray:
        return np.flatnonzero(s_chan[i_sess] == chan)

    # web: funnel of views (+ clicks), carts and purchases per item
    out = {}
    for chan in (0, 1):
        idx = pick(chan)
        cust = i_cust[idx]
        sess = i_sess[idx]
        prod = i_prod[idx]
        ts = i_ts[idx]
        fav = from_fav[idx]
        cart = rng.random(len(idx)) < np.where(fav, 0.45, 0.25)
        buy = cart & (rng.random(len(idx)) < 0.55)
        click = rng.random(len(idx)) < 0.3
        kinds = [("view", np.ones(len(idx), bool), 0), ("click", click, -5), ("add_to_cart", cart, 30),
                 ("purchase", buy, 90)]
        rows: dict[str, list] = {"type": [], "cust": [], "sess": [], "prod": [], "ts_ms": []}
        for name, mask, shift in kinds:
            rows["type"].append(np.full(int(mask.sum()), name, dtype=object))
            rows["cust"].append(cust[mask])
            rows["sess"].append(sess[mask])
            rows["prod"].append(prod[mask])
            rows["ts_ms"].append((ts[mask] + shift).clip(0, 86_399) * 1000 + rng.integers(0, 1000, int(mask.sum())))
        ev = {k: np.concatenate(v) for k, v in rows.items()}
        order = np.lexsort((ev["sess"], ev["ts_ms"]))
        ev = {k: v[order] for k, v in ev.items()}
        ev["ts_ms"] = ev["ts_ms"] + day_ms
        login_rate = cfg.login_rate_web if chan == 0 else cfg.login_rate_mobile
        s_login = rng.random(n_s) < login_rate
        ev["logged_in"] = s_login[ev["sess"]]
        if chan == 0:
            slot = (rng.random(n_s) * w.n_cookies[s_cust]).astype(int)
            ev["ident"] = w.cookies[ev["cust"], slot[ev["sess"]]]
        else:
            slot = (rng.random(n_s) * w.n_devices[s_cust]).astype(int)
            ev["ident"] = w.devices[ev["cust"], slot[ev["sess"]]]
        ev["qty"] = np.where(ev["type"] == "purchase", 1 + (rng.random(len(order)) < 0.15), 1)
        out[chan] = ev

    # anonymous web visitors who are nobody's customer
    n_anon = int(len(np.unique(out[0]["sess"])) * cfg.anonymous_session_share)
    if n_anon:
        a_prod = rng.choice(len(w.skus), size=n_anon * 2, p=w.p_popularity / w.p_popularity.sum())
        a_ts = day_ms + rng.integers(0, 86_400_000, size=n_anon * 2)
        anon_cookies = _hex_ids("ck_", cfg.seed, n_anon, f"anon{day_index}")
        web = out[0]
        web["type"] = np.concatenate([web["type"], np.full(n_anon * 2, "view", dtype=object)])
        web["cust"] = np.concatenate([web["cust"], np.full(n_anon * 2, -1)])
        web["sess"] = np.concatenate([web["sess"], n_s + np.repeat(np.arange(n_anon), 2)])
        web["prod"] = np.concatenate([web["prod"], a_prod])
        web["ts_ms"] = np.concatenate([web["ts_ms"], np.sort(a_ts)])
        web["logged_in"] = np.concatenate([web["logged_in"], np.zeros(n_anon * 2, bool)])
        web["ident"] = np.concatenate([web["ident"], np.repeat(anon_cookies, 2)])
        web["qty"] = np.concatenate([web["qty"], np.ones(n_anon * 2, int)])
        session_ids = np.concatenate([session_ids, _hex_ids("s_", cfg.seed, n_anon, f"asess{day_index}")])

    # social: one action per item
    idx = pick(2)
    social = {
        "cust": i_cust[idx], "prod": i_prod[idx],
        "ts_ms": day_ms + i_ts[idx] * 1000,
        "action": np.array(SOCIAL_ACTIONS, dtype=object)[rng.choice(4, size=len(idx), p=[0.55, 0.15, 0.2, 0.1])],
        "platform": np.array(SOCIAL_PLATFORMS, dtype=object)[rng.integers(0, 4, size=len(idx))],
        "text": np.array(SOCIAL_TEXTS, dtype=object)[rng.integers(0, len(SOCIAL_TEXTS), size=len(idx))],
    }
    # store: one receipt per session, one line per item
    idx = pick(3)
    sess = i_sess[idx]
    cust = i_cust[idx]
    uses_card = (w.cards[cust] != "") & (rng.random(n_s) < 0.85)[sess]
    card = np.where(uses_card, w.cards[cust], "")
    use_dup = (w.dup_card[cust] != "") & (rng.random(n_s) < 0.5)[sess] & uses_card
    card = np.where(use_dup, w.dup_card[cust], card)
    store = {
        "sess": sess, "line": i_pos[idx] + 1, "cust": cust, "card": card, "prod": i_prod[idx],
        # tills close before local midnight: a basket rung up late stays in the store's local day (UTC+2 in summer)
        "store": w.home_store[cust], "ts_ms": day_ms + np.minimum(i_ts[idx], 82_799) * 1000,
        "qty": np.where(w.wholesale[cust], WHOLESALE_QUANTITIES[rng.integers(0, len(WHOLESALE_QUANTITIES),
                                                                            size=len(idx))],
                        1 + (rng.random(len(idx)) < 0.2) * rng.integers(1, 3, size=len(idx))),
    }
    out[0]["session_id"] = session_ids[out[0]["sess"]]
    out[1]["session_id"] = session_ids[out[1]["sess"]]
    return _DayEvents(web=out[0], mobile=out[1], social=social, store=store)


def _iso_ms(ts_ms: np.ndarray) -> list[str]:
    return [s + "Z" for s in np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms").tolist()]


def _fmt_price(x: float) -> str:
    return f"{x:.2f}"


def _event_fields(w: _World, ev: dict, day: date, prefix: str,
                  type_names: dict[str, str]) -> tuple[list[str], list[str], list[str], list[float]]:
    """(event ids ``<prefix>-<yyyymmdd>-<n>``, the channel's event type names, SKUs, prices) of a day's events."""
    tag = day.strftime("%Y%m%d")
    ids = [f"{prefix}-{tag}-{i:08d}" for i in range(len(ev["type"]))]
    types = [type_names[t] for t in ev["type"].tolist()]
    return ids, types, w.skus[ev["prod"]].tolist(), w.p_price[ev["prod"]].tolist()


def _web_lines(w: _World, ev: dict, day: date) -> tuple[list[str], list[str]]:
    """Return (lines, event ids)."""
    ids, types, skus, prices = _event_fields(w, ev, day, "w", {
        "view": "product_view", "click": "product_click", "add_to_cart": "add_to_cart",
        "purchase": "checkout_complete"})
    ts = _iso_ms(ev["ts_ms"])
    known = ev["logged_in"] & (ev["cust"] >= 0)
    cust = np.asarray(np.where(known, w.cust_ids[np.maximum(ev["cust"], 0)], None)).tolist()
    lines = [
        f'{{"event_id":"{i}","type":"{t}","ts":"{s}","cookie_id":"{c}","session_id":"{sid}",'
        f'"customer_id":{"null" if cu is None else chr(34) + cu + chr(34)},'
        f'"product":{{"sku":"{k}","price":{p:.2f},"quantity":{q}}},'
        f'"context":{{"page":"/p/{k}","referrer":"search","user_agent":"Mozilla/5.0"}}}}'
        for i, t, s, c, sid, cu, k, p, q in zip(
            ids, types, ts, ev["ident"].tolist(), ev["session_id"].tolist(), cust, skus, prices,
            ev["qty"].tolist(), strict=True,
        )
    ]
    return lines, ids


def _mobile_lines(w: _World, ev: dict, day: date) -> tuple[list[str], list[str]]:
    ids, types, skus, prices = _event_fields(w, ev, day, "m", {
        "view": "view_item", "click": "tap_item", "add_to_cart": "add_to_cart", "purchase": "purchase"})
    cust = np.asarray(np.where(ev["logged_in"], w.cust_ids[ev["cust"]], None)).tolist()
    lines = [
        f'{{"id":"{i}","event":"{t}","timestamp_ms":{s},"device_id":"{d}",'
        f'"user_id":{"null" if cu is None else chr(34) + cu + chr(34)},'
        f'"properties":{{"sku":"{k}","price":{p:.2f},"quantity":{q},"currency":"EUR"}},'
        f'"app":{{"version":"5.2.1","os":"{"ios" if len(d) % 2 else "android"}"}}}}'
        for i, t, s, d, cu, k, p, q in zip(
            ids, types, ev["ts_ms"].tolist(), ev["ident"].tolist(), cust, skus, prices, ev["qty"].tolist(),
            strict=True,
        )
    ]
    return lines, ids


SOCIAL_HEADER = ["interaction_id", "platform", "handle", "action", "sku", "occurred_at", "text"]
STORE_HEADER = ["receipt_id", "line_no", "store_id", "loyalty_card", "sku", "quantity", "unit_price", "currency",
                "sold_at"]


def _social_rows(w: _World, ev: dict, day: date) -> list[list[str]]:
    tag = day.strftime("%Y%m%d")
    offsets = w.utc_offset_min[ev["cust"]]
    local = (ev["ts_ms"] + offsets * 60_000).astype("datetime64[ms]")
    local_s = np.datetime_as_string(local, unit="s").tolist()
    suffix = [f"{'+' if o >= 0 else '-'}{abs(o) // 60:02d}:{abs(o) % 60:02d}" for o in offsets.tolist()]
    return [
        [f"so-{tag}-{i:07d}", pl, h, a, k, ls + sx, tx]
        for i, (pl, h, a, k, ls, sx, tx) in enumerate(zip(
            ev["platform"].tolist(), w.handles[ev["cust"]].tolist(), ev["action"].tolist(),
            w.skus[ev["prod"]].tolist(), local_s, suffix, ev["text"].tolist(), strict=True,
        ))
    ]


def _store_rows(w: _World, ev: dict, day: date) -> list[list[str]]:
    tag = day.strftime("%Y%m%d")
    n = len(ev["sess"])
    local = np.empty(n, dtype=object)
    for s_idx, (_, _, tz, _) in enumerate(STORES):
        mask = ev["store"] == s_idx
        if mask.any():
            stamps = pd.to_datetime(ev["ts_ms"][mask], unit="ms", utc=True).tz_convert(tz).tz_localize(None)
            local[mask] = stamps.strftime("%Y-%m-%d %H:%M:%S").to_numpy()
    currency = np.array([s[3] for s in STORES], dtype=object)[ev["store"]]
    rate = np.array([FX_TO_EUR[c] for c in currency.tolist()])
    price = np.round(w.p_price[ev["prod"]] / rate, 2)
    store_ids = np.array([s[0] for s in STORES], dtype=object)[ev["store"]]
    return [
        [f"r-{tag}-{se:07d}", ln, st, cd, k, q, _fmt_price(p), cur, lt]
        for se, ln, st, cd, k, q, p, cur, lt in zip(
            ev["sess"].tolist(), ev["line"].tolist(), store_ids.tolist(), ev["card"].tolist(),
            w.skus[ev["prod"]].tolist(), ev["qty"].tolist(), price.tolist(), currency.tolist(), local.tolist(),
            strict=True,
        )
    ]


# --- mess ------------------------------------------------------------------------------------------------


def _mess_kinds(rng: np.random.Generator, n: int, m: MessConfig, channel: str) -> np.ndarray:
    """One mess kind (or "") per line, mutually exclusive."""
    kinds = [("malformed", m.malformed_rate), ("unknown_sku", m.unknown_sku_rate),
             ("missing_field", m.missing_field_rate)]
    if channel in ("web", "mobile", "store"):
        kinds.append(("absurd_price", m.absurd_price_rate))
    if channel == "mobile":
        kinds.append(("clock_skew", m.clock_skew_rate))
    if channel != "store":  # a late store receipt line would split its receipt
        kinds.append(("late", m.late_rate))
    if channel in ("web", "mobile"):
        kinds.append(("double_fire", m.double_fire_rate))
    u = rng.random(n)
    out = np.full(n, "", dtype=object)
    lo = 0.0
    for name, rate in kinds:
        out[(u >= lo) & (u < lo + rate)] = name
        lo += rate
    return out


#: Quarantine reason the pipeline must give for each planted kind, per channel format.
EXPECTED_REASON = {
    ("json", "malformed"): "malformed_json",
    ("csv", "malformed"): "wrong_field_count",
    ("json", "unknown_sku"): "unknown_sku",
    ("csv", "unknown_sku"): "unknown_sku",
    ("json", "missing_field"): "missing_field:sku",
    ("csv", "missing_field"): "missing_field:sku",
    ("json", "absurd_price"): "invalid_price",
    ("csv", "absurd_price"): "invalid_price",
    ("json", "clock_skew"): "clock_skew",
}


def _mess_json(line: str, kind: str, channel: str, rng: np.random.Generator) -> str:
    if kind == "malformed":
        return line[: len(line) // 2]
    obj = json.loads(line)
    props = obj["product"] if channel == "web" else obj["properties"]
    if kind == "unknown_sku":
        props["sku"] = f"SKU-UNKNOWN-{int(rng.integers(0, 99999)):05d}"
    elif kind == "missing_field":
        del props["sku"]
    elif kind == "absurd_price":
        props["price"] = -props["price"] if rng.random() < 0.5 else round(props["price"] * 1000, 2)
    elif kind == "clock_skew":
        obj["timestamp_ms"] += 3 * 86_400_000
    return json.dumps(obj, separators=(",", ":"))


def _mess_csv(row: list, kind: str, header: list[str], rng: np.random.Generator) -> list:
    row = list(row)
    if kind == "malformed":
        return row[:-2]
    sku = header.index("sku")
    if kind == "unknown_sku":
        row[sku] = f"SKU-UNKNOWN-{int(rng.integers(0, 99999)):05d}"
    elif kind == "missing_field":
        row[sku] = ""
    elif kind == "absurd_price":
        price = header.index("unit_price")
        row[price] = f"-{row[price]}" if rng.random() < 0.5 else f"{float(row[price]) * 1000:.2f}"
    return row


def _csv_line(row: list) -> str:
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


# --- the generator ---------------------------------------------------------------------------------------


def generate(cfg: WorldConfig, out: Path) -> dict[str, object]:
    """Write the landing zone and ``truth/`` for ``cfg`` under ``out``; returns a small summary."""
    out = Path(out)
    w = build_world(cfg)
    days = [cfg.start + timedelta(days=i) for i in range(cfg.days)]
    carry: dict[str, list] = {c: [] for c in CHANNELS}
    summary: dict[str, object] = {"days": [d.isoformat() for d in days], "events": 0}
    total_events = 0
    for di, day in enumerate(days):
        ev = _day_events(w, di, day)
        rng = np.random.default_rng([cfg.seed, 5000 + di])
        mess_truth: dict[str, dict[str, object]] = {}
        last = di == len(days) - 1
        _write_snapshots(w, out, di, day)
        for channel in CHANNELS:
            if channel in ("web", "mobile"):
                lines: list = (_web_lines if channel == "web" else _mobile_lines)(w, getattr(ev, channel), day)[0]
                fmt = "json"
                header: list[str] = []
            else:
                header = SOCIAL_HEADER if channel == "social" else STORE_HEADER
                rows = (_social_rows if channel == "social" else _store_rows)(w, getattr(ev, channel), day)
                lines = rows
                fmt = "csv"
            kinds = _mess_kinds(rng, len(lines), cfg.mess, channel)
            if last:
                kinds[kinds == "late"] = ""
            truth = {k: 0 for k in ("malformed", "unknown_sku", "missing_field", "absurd_price", "clock_skew",
                                    "double_fire", "late_out")}
            final: list = []
            late_out: list = []
            for line, kind in zip(lines, kinds.tolist(), strict=True):
                if kind == "":
                    final.append(line)
                    continue
                if kind == "late":
                    late_out.append(line)
                elif kind == "double_fire":
                    final.extend((line, line))
                else:
                    final.append(_mess_json(line, kind, channel, rng) if fmt == "json"
                                 else _mess_csv(line, kind, header, rng))
                truth[kind if kind != "late" else "late_out"] += 1
            if channel == "store" and cfg.profile == "wholesale":
                final.extend(_wholesale_extra_lines(w, lines, rng))
            late_in = len(carry[channel])
            final.extend(carry[channel])
            carry[channel] = late_out
            total_events += len(lines)
            renamed = channel == "store" and cfg.mess.renamed_column_day == di
            redelivered = bool(rng.random() < cfg.mess.redelivered_file_rate)
            folder = out / channel / day.isoformat()
            if channel == "store" and store_closed(cfg, day):  # an explicit empty delivery
                final, redelivered = [], False
                folder.mkdir(parents=True, exist_ok=True)
                entries = []
            else:
                entries = _write_channel_files(folder, channel, fmt, header, final, renamed, redelivered)
            write_manifest(folder, entries)
            copies = 2 if redelivered else 1
            expected_q: dict[str, int] = {}
            for kind in ("malformed", "unknown_sku", "missing_field", "absurd_price", "clock_skew"):
                if truth[kind]:
                    reason = EXPECTED_REASON[(fmt, kind)]
                    expected_q[reason] = expected_q.get(reason, 0) + truth[kind] * copies
            if not final:
                truth = dict.fromkeys(truth, 0)
                expected_q = {}
            messed = sum(truth[k] for k in ("malformed", "unknown_sku", "missing_field", "absurd_price",
                                             "clock_skew"))
            staged = len(final) - messed - truth["double_fire"]
            mess_truth[channel] = {
                "planted": truth, "late_in": late_in, "redelivered": redelivered, "renamed_column": renamed,
                "expected": {
                    "lines_read": len(final) * copies,
                    "rows_staged": staged,
                    "rows_quarantined_by_reason": expected_q,
                    "duplicates_dropped": (len(final) - messed) * copies - staged,
                },
            }
        truth_dir = out / "truth" / "mess"
        truth_dir.mkdir(parents=True, exist_ok=True)
        (truth_dir / f"{day.isoformat()}.json").write_text(json.dumps(mess_truth, indent=1, sort_keys=True) + "\n")
    _write_truth(w, out)
    if cfg.web_format == "ga4":
        from omnifuse.generate.ga4 import rewrite_as_ga4

        rewrite_as_ga4(out, [d.isoformat() for d in days])
    elif cfg.web_format != "native":
        raise ValueError(f"web_format {cfg.web_format!r}: use 'native' or 'ga4'")
    summary["events"] = total_events
    summary["config"] = _jsonable(asdict(cfg))
    return summary


def _wholesale_extra_lines(w: _World, rows: list[list], rng: np.random.Generator) -> list[list]:
    """What real tills add to a day's clean receipt lines (wholesale profile), all of them valid:

    - a cancellation receipt (``c-…``) for 3 % of receipts, repeating their lines with negative quantities;
    - a free line (price 0.00) on 1 % of receipts;
    - postage on every wholesale receipt, a manual adjustment (``M``) on 2 % and bank charges on 0.5 %.
    """
    by_receipt: dict[str, list[list]] = {}
    for row in rows:
        by_receipt.setdefault(row[0], []).append(row)
    extra: list[list] = []
    wholesale_cards = set(w.cards[w.wholesale].tolist()) - {""}
    for receipt, lines in by_receipt.items():
        first = lines[0]
        u = rng.random(5)
        if u[0] < 0.03:
            extra.extend([["c" + r[0][1:], r[1], r[2], r[3], r[4], -int(r[5]), r[6], r[7], r[8]] for r in lines])
        if u[1] < 0.01:
            extra.append([receipt, 900, first[2], first[3], lines[-1][4], 1, "0.00", first[7], first[8]])
        specials = []
        if first[3] in wholesale_cards:
            specials.append(NON_PRODUCT_LINES[0])
        if u[2] < 0.02:
            specials.append(NON_PRODUCT_LINES[1])
        if u[3] < 0.005:
            specials.append(NON_PRODUCT_LINES[2])
        for n, (sku, price) in enumerate(specials):
            extra.append([receipt, 990 + n, first[2], first[3], sku, 1, _fmt_price(price), first[7], first[8]])
    return extra


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, date):
        return obj.isoformat()
    return obj


def _write_channel_files(folder: Path, channel: str, fmt: str, header: list[str], final: list, renamed: bool,
                         redelivered: bool) -> list[dict[str, object]]:
    if fmt == "json":
        name = "events.ndjson.gz" if channel == "web" else "events.json.gz"
        entries = [write_gzip_lines(folder / name, final)]
        if redelivered:
            entries.append(write_gzip_lines(folder / name.replace("events", "events-redelivery"), final))
        return entries
    name = "interactions.csv" if channel == "social" else "pos.csv"
    head = [STORE_QUANTITY_ALIASED if (renamed and h == "quantity") else h for h in header]
    text_lines = [_csv_line(head)] + [_csv_line(r) for r in final]
    entries = [write_lines(folder / name, text_lines)]
    if redelivered:
        entries.append(write_lines(folder / name.replace(".csv", "-redelivery.csv"), text_lines))
    return entries


def _write_snapshots(w: _World, out: Path, di: int, day: date) -> None:
    """Daily catalog (products, stores, FX rates) and CRM snapshots."""
    rng = np.random.default_rng([w.cfg.seed, 9000 + di])
    stock = rng.poisson(40, size=len(w.skus)) * (rng.random(len(w.skus)) > 0.05)
    folder = out / "catalog" / day.isoformat()
    renamed = (rng.random(len(w.skus)) < 0.02) if w.cfg.profile == "wholesale" else np.zeros(len(w.skus), bool)
    rows = [
        [k, f"{CATEGORIES[c].title()} item {i}" + (f" (pack {di % 7 + 2})" if rn else ""), CATEGORIES[c],
         f"brand{b:03d}", _fmt_price(p), "EUR", int(s),
         "true" if CATEGORIES[c] in REPEATABLE else "false", "true" if ins else "false"]
        for i, (k, c, b, p, s, ins, rn) in enumerate(zip(
            w.skus.tolist(), w.p_category.tolist(), w.p_brand.tolist(), w.p_price.tolist(), stock.tolist(),
            w.p_in_store.tolist(), renamed.tolist(), strict=True,
        ))
    ]
    entries = [
        write_csv(folder / "products.csv",
                  ["sku", "name", "category", "brand", "price", "currency", "stock", "repeatable", "in_store"], rows),
        write_csv(folder / "stores.csv", ["store_id", "city", "timezone", "currency"], [list(s) for s in STORES]),
        write_csv(folder / "fx_rates.csv", ["rate_date", "currency", "rate_to_eur"],
                  [[day.isoformat(), c, f"{r:.4f}"] for c, r in FX_TO_EUR.items()]),
    ]
    write_manifest(folder, entries)

    folder = out / "crm" / day.isoformat()
    header = ["customer_id", "email_sha256", "phone_sha256", "loyalty_card", "social_handles", "signup_date",
              "home_store_id", "country"]
    countries = {"EUR": "FR", "GBP": "GB", "USD": "US", "CAD": "CA"}
    signup = (w.cfg.start - timedelta(days=400)).isoformat()
    crm_rows = []
    for i, cid in enumerate(w.cust_ids.tolist()):
        store = STORES[w.home_store[i]]
        handle = w.handles[i] if w.handle_linked[i] else ""
        crm_rows.append([cid, w.emails[i], w.phones[i], w.cards[i], handle, signup, store[0], countries[store[3]]])
        if w.dup_crm_id[i]:
            crm_rows.append([w.dup_crm_id[i], w.emails[i], "", w.dup_card[i], "", signup, store[0],
                             countries[store[3]]])
    write_manifest(folder, [write_csv(folder / "customers.csv", header, crm_rows)])


def _write_truth(w: _World, out: Path) -> None:
    folder = out / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    ident_rows: list[list[object]] = []
    for i, cid in enumerate(w.cust_ids.tolist()):
        ident_rows.append(["customer_id", cid, cid])
        for s in range(int(w.n_cookies[i])):
            ident_rows.append(["cookie_id", w.cookies[i, s], cid])
        for s in range(int(w.n_devices[i])):
            ident_rows.append(["device_id", w.devices[i, s], cid])
        if w.handles[i]:
            ident_rows.append(["social_handle", w.handles[i], cid])
        if w.cards[i]:
            ident_rows.append(["loyalty_card", w.cards[i], cid])
        if w.dup_crm_id[i]:
            ident_rows.append(["customer_id", w.dup_crm_id[i], cid])
            ident_rows.append(["loyalty_card", w.dup_card[i], cid])
        ident_rows.append(["email_sha256", w.emails[i], cid])
    write_csv(folder / "identifiers.csv", ["identifier_type", "identifier", "person_id"], ident_rows)
    fav_rows = [[cid, w.skus[p], r + 1] for i, cid in enumerate(w.cust_ids.tolist())
                for r, p in enumerate(w.favourites[i].tolist())]
    write_csv(folder / "favourites.csv", ["person_id", "sku", "rank"], fav_rows)
    (folder / "world.json").write_text(json.dumps(_jsonable(asdict(replace(w.cfg))), indent=1, sort_keys=True) + "\n")
