"""Customer segments: k-means on recency, frequency, monetary value and channel mix, with stable names.

Grain of ``mart.customer_segments``: one row per customer active in the 90 days up to the business date (usable
dates only, see ``segments/customer_activity.sql``). Names are matched to the previous day's centroids
(Hungarian assignment) so a customer keeps their segment when the data barely changes.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import psycopg2.extensions

from omnifuse import warehouse
from omnifuse.config import Settings
from omnifuse.dataset import CHANNELS


def segment_customers(activity: pd.DataFrame, previous: dict[str, np.ndarray], seed: int,
                      segments: int = Settings.segments) -> tuple[pd.Series, dict]:
    """k-means on standardised RFM + channel mix into ``segments`` clusters (``OMNIFUSE_SEGMENTS``); names
    matched to yesterday's centroids (Hungarian) when yesterday had as many.

    Returns (segment name per activity row, centroids by name)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.cluster import KMeans

    x = np.column_stack([
        np.log1p(activity["recency_days"].astype(float)), np.log1p(activity["frequency"].astype(float)),
        np.log1p(activity["monetary"].astype(float).clip(lower=0)),
        activity[["web_share", "mobile_share", "social_share", "store_share"]].astype(float).to_numpy() * 2.0,
    ])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / std
    k = min(segments, len(activity))
    init = np.array(list(previous.values())) if len(previous) == k else "k-means++"
    km = KMeans(n_clusters=k, init=init, n_init=1 if len(previous) == k else 10, random_state=seed).fit(z)
    centroids = km.cluster_centers_
    if len(previous) == k:
        prev_names = list(previous)
        cost = ((centroids[:, None, :] - np.array([previous[n] for n in prev_names])[None]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        names = {r: prev_names[c] for r, c in zip(rows, cols, strict=True)}
    else:
        names = _describe(centroids * std + mean)
    labels = pd.Series([names[c] for c in km.labels_], index=activity.index)
    return labels, {names[i]: centroids[i] for i in range(k)}


def _describe(centroids: np.ndarray) -> dict[int, str]:
    """Human names from raw centroids: value tier + dominant channel (unique by construction of the suffix)."""
    money = centroids[:, 2]
    tiers = {int(i): "top spenders" if n == 0 else "regulars" if n == 1 else "occasional"
             for n, i in enumerate(np.argsort(-money))}
    out, used = {}, set()
    for i, c in enumerate(centroids):
        channel = CHANNELS[int(np.argmax(c[3:7]))]
        name = f"{channel}-first {tiers[i]}" if c[0] < np.log1p(30) else f"lapsing {channel} customers"
        base, n = name, 2
        while name in used:
            name, n = f"{base} {n}", n + 1
        used.add(name)
        out[i] = name
    return out


def build_segments(cur: psycopg2.extensions.cursor, business_date: date, settings: Settings) -> pd.DataFrame:
    """Today's segment per active customer (rows for ``mart.customer_segments``: ``settings.segments`` segments,
    k-means seeded with ``settings.seed``); stores the centroids in
    ``ml.segment_centroids`` so that tomorrow's names match. Reads ``segments/customer_activity.sql`` (usable
    dates only)."""
    cur.execute(warehouse.sql_text("segments/customer_activity.sql"), {"business_date": business_date})
    activity = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    cur.execute("select segment, centroid from ml.segment_centroids where business_date = "
                "(select max(business_date) from ml.segment_centroids where business_date < %s)", (business_date,))
    previous = {s: np.array(c) for s, c in cur.fetchall()}
    if activity.empty:
        return activity.assign(segment=[], business_date=[])
    labels, centroids = segment_customers(activity, previous, settings.seed, settings.segments)
    cur.execute("delete from ml.segment_centroids where business_date = %s", (business_date,))
    for name, c in centroids.items():
        cur.execute("insert into ml.segment_centroids values (%s, %s, %s)", (business_date, name, c.tolist()))
    activity["segment"] = labels
    activity["business_date"] = business_date
    activity["recency_days"] = activity["recency_days"].astype(int)
    return activity[["business_date", "customer_id", "segment", "recency_days", "frequency", "monetary", "web_share",
                     "mobile_share", "social_share", "store_share"]]
