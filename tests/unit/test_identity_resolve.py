"""identity.resolve on hand-made evidence: merges, guards and unresolved identifiers."""

from __future__ import annotations

from datetime import date

import pandas as pd
from omnifuse.identity import resolve

D = date(2026, 11, 2)


def _crm(rows):
    return pd.DataFrame(
        [dict(customer_id=c, email_sha256=e, phone_sha256=p, loyalty_card=card, social_handles=h, snapshot_date=D)
         for c, e, p, card, h in rows]
    )


def _evidence(rows):
    return pd.DataFrame(
        [dict(identifier_type=t, identifier=i, login_customer_id=c, events=1, first_seen=D, last_seen=D)
         for t, i, c in rows]
    )


def _by_id(frame):
    return {(r.identifier_type, r.identifier): r for r in frame.itertuples()}


def test_duplicate_crm_record_merges_into_smallest_id_and_logins_follow():
    crm = _crm([("C1", "e1", "p1", "L1", ["@a"]), ("C9", "e1", None, "L9", []), ("C2", "e2", "p2", None, [])])
    ev = _evidence([("cookie_id", "ck1", "C9"), ("cookie_id", "ck1", None), ("loyalty_card", "L9", None)])
    m = _by_id(resolve(crm, ev))
    assert m[("customer_id", "C9")].customer_id == "C1"
    assert m[("customer_id", "C9")].rule == "crm_merged"
    assert m[("cookie_id", "ck1")].customer_id == "C1"
    assert m[("cookie_id", "ck1")].rule == "login_web"
    assert m[("loyalty_card", "L9")].customer_id == "C1"
    assert m[("social_handle", "@a")].customer_id == "C1"
    assert m[("customer_id", "C2")].customer_id == "C2"


def test_shared_device_links_nobody_and_merges_nothing():
    crm = _crm([("C1", "e1", None, None, []), ("C2", "e2", None, None, [])])
    ev = _evidence([("device_id", "tablet", "C1"), ("device_id", "tablet", "C2"), ("device_id", "phone", "C2")])
    m = _by_id(resolve(crm, ev))
    assert m[("device_id", "tablet")].status == "shared"
    assert m[("device_id", "tablet")].customer_id is None
    assert m[("device_id", "tablet")].linked_customers == 2
    assert m[("customer_id", "C1")].customer_id == "C1"
    assert m[("customer_id", "C2")].customer_id == "C2"
    assert m[("device_id", "phone")].customer_id == "C2"


def test_over_linked_crm_identifier_is_capped_and_glues_nothing():
    crm = _crm([(f"C{i}", f"e{i}", None, "TESTCARD", []) for i in range(5)])
    frame = resolve(crm, _evidence([("loyalty_card", "TESTCARD", None)]), max_crm_links=3)
    m = _by_id(frame)
    assert m[("loyalty_card", "TESTCARD")].status == "over_linked"
    assert m[("loyalty_card", "TESTCARD")].customer_id is None
    assert m[("loyalty_card", "TESTCARD")].linked_customers == 5
    cust = frame[frame["identifier_type"] == "customer_id"]
    assert list(cust["customer_id"]) == list(cust["identifier"])  # five customers, not one


def test_identifier_without_evidence_is_unresolved_and_login_unknown_to_crm_is_kept():
    crm = _crm([("C1", "e1", None, None, [])])
    ev = _evidence([("cookie_id", "anon", None), ("social_handle", "@x", None), ("cookie_id", "ck", "C7")])
    m = _by_id(resolve(crm, ev))
    assert m[("cookie_id", "anon")].status == "unresolved"
    assert m[("social_handle", "@x")].customer_id is None
    assert m[("customer_id", "C7")].rule == "login_only"
    assert m[("cookie_id", "ck")].customer_id == "C7"
    assert m[("cookie_id", "anon")].first_seen == D
