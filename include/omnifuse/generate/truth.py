"""Score the pipeline against the generator's ``truth/`` (benchmarks and tests only; the pipeline never reads it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def truth_identifiers(world_dir: Path) -> pd.DataFrame:
    """``truth/identifiers.csv``: identifier_type, identifier, person_id (a shared device appears twice)."""
    return pd.read_csv(Path(world_dir) / "truth" / "identifiers.csv", dtype=str)


def _pairs(counts: pd.Series) -> int:
    n = counts.to_numpy(dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


def clustering_accuracy(truth: pd.DataFrame, identity_map: pd.DataFrame) -> dict[str, float]:
    """Pairwise precision and recall of identifier → customer clustering.

    The universe is every identifier the pipeline has seen (``identity_map``) that the truth gives exactly one
    person. An identifier the pipeline left unattributed (customer_id null) is a cluster of its own.
    """
    counts = truth.groupby(["identifier_type", "identifier"])["person_id"].transform("nunique")
    unique = truth[counts == 1].drop_duplicates(["identifier_type", "identifier"])
    both = identity_map.merge(unique, on=["identifier_type", "identifier"], how="inner")
    predicted = both["customer_id"].where(both["customer_id"].notna(),
                                          "\x00" + both["identifier_type"] + ":" + both["identifier"])
    together = _pairs(both.groupby([predicted, both["person_id"]]).size())
    pred_pairs = _pairs(both.groupby(predicted).size())
    true_pairs = _pairs(both.groupby("person_id").size())
    return {
        "identifiers_scored": len(both),
        "precision": together / pred_pairs if pred_pairs else 1.0,
        "recall": together / true_pairs if true_pairs else 1.0,
    }


def attribution_accuracy(truth: pd.DataFrame, events: pd.DataFrame) -> dict[str, float]:
    """Share of events attributed to the right person (anonymous visitors: to nobody).

    ``events``: identifier_type, identifier, customer_id, attribution (from ``core.interactions``). An event's
    true person is that of its identifier; events of an identifier the truth gives to two people (a shared
    tablet, logged out) have no knowable owner and are left out (counted as ``ambiguous_events``).
    """
    persons = truth.groupby(["identifier_type", "identifier"])["person_id"].agg(["first", "nunique"]).reset_index()
    ev = events.merge(persons, on=["identifier_type", "identifier"], how="left")
    cust_person = truth[truth["identifier_type"] == "customer_id"].set_index("identifier")["person_id"]
    predicted = ev["customer_id"].map(cust_person)
    login = ev["attribution"] == "login"
    ambiguous = (ev["nunique"] > 1) & ~login
    expected = ev["first"]
    # a logged-in event on a shared device belongs to whoever logged in
    expected = expected.where(~(login & (ev["nunique"] > 1)), predicted)
    right = (predicted.fillna("") == expected.fillna("")) & ~ambiguous
    scored = int((~ambiguous).sum())
    return {
        "events_scored": scored,
        "ambiguous_events": int(ambiguous.sum()),
        "events_right": int(right.sum()),
        "attribution_accuracy": float(right.sum() / scored) if scored else 1.0,
    }
