"""Identity resolution: one customer across cookies, devices, social handles, loyalty cards and CRM ids.

The graph's nodes are identifiers; its edges are evidence:

- **CRM statements** (``core.customers``): a customer id ↔ its hashed email, hashed phone, loyalty card and
  linked social handles. Two CRM ids that share a hashed email (a duplicate record) become one customer.
- **Logins** (``core.identity_observations``): a logged-in web or mobile event links its cookie or device to
  the customer id it carried.

Guards against over-merging:

- a CRM identifier on more than ``max_crm_links`` CRM ids (a store's test card, a shared office email) is
  ``over_linked``: it glues nothing together and resolves to nobody;
- a cookie or device that logged in as more than one customer (a family tablet) is ``shared``: it never
  merges those customers, and its anonymous events stay anonymous (its logged-in events carry their own id).

Clusters are connected components of the CRM graph (scipy's ``connected_components`` on a sparse
adjacency matrix); each is named by its smallest CRM id (the canonical ``customer_id``). The whole map is
recomputed from all evidence every day and replaces ``core.identity_map`` in one transaction.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import date

import numpy as np
import pandas as pd
import psycopg2.extensions

from omnifuse import warehouse
from omnifuse.config import Settings, load_settings

log = logging.getLogger(__name__)

#: Identifier types the CRM states about a customer id, with the column of ``core.customers`` holding them.
CRM_IDENTIFIERS = {"email_sha256": "email_sha256", "phone_sha256": "phone_sha256", "loyalty_card": "loyalty_card"}
#: Identifier types linked to a customer only by logging in, and the rule name of that evidence.
LOGIN_IDENTIFIERS = {"cookie_id": "login_web", "device_id": "login_mobile"}
MAP_COLUMNS = ["identifier_type", "identifier", "customer_id", "rule", "status", "linked_customers", "first_seen",
               "last_seen"]


def _crm_edges(crm: pd.DataFrame) -> pd.DataFrame:
    """CRM statements as edges: columns customer_id, identifier_type, identifier (one row per statement)."""
    parts = []
    for id_type, column in CRM_IDENTIFIERS.items():
        part = crm[["customer_id", column]].rename(columns={column: "identifier"})
        part = part[part["identifier"].notna() & (part["identifier"] != "")]
        parts.append(part.assign(identifier_type=id_type))
    handles = crm[["customer_id", "social_handles"]].explode("social_handles").rename(
        columns={"social_handles": "identifier"}
    )
    handles = handles[handles["identifier"].notna() & (handles["identifier"] != "")]
    parts.append(handles.assign(identifier_type="social_handle"))
    edges = pd.concat(parts, ignore_index=True)[["customer_id", "identifier_type", "identifier"]]
    return edges.drop_duplicates(ignore_index=True)


def _components(customer_ids: np.ndarray, edges: pd.DataFrame) -> pd.Series:
    """Canonical id (the smallest CRM id in its connected component) for every customer id."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_c = len(customer_ids)
    cust_index = pd.Index(customer_ids)
    ident_codes, _ = pd.factorize(edges["identifier_type"] + "\x1f" + edges["identifier"], sort=False)
    rows = cust_index.get_indexer(edges["customer_id"])
    cols = n_c + ident_codes
    n = n_c + (int(ident_codes.max()) + 1 if len(ident_codes) else 0)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    labels = labels[:n_c]
    # customer_ids is sorted, so the first member of each label is its smallest id
    first = pd.Series(np.arange(n_c)).groupby(labels).transform("min").to_numpy()
    return pd.Series(customer_ids[first], index=customer_ids)


def resolve(crm: pd.DataFrame, evidence: pd.DataFrame, *, max_crm_links: int = 3) -> pd.DataFrame:
    """Compute the identity map.

    ``crm``: one row per CRM customer id — customer_id, email_sha256, phone_sha256, loyalty_card,
    social_handles (list), snapshot_date. ``evidence``: identifiers seen in events — identifier_type,
    identifier, login_customer_id (null when not logged in), events, first_seen, last_seen.

    Returns one row per identifier (identifier_type, identifier) with customer_id (canonical, or null), rule,
    status (resolved / shared / over_linked / unresolved), linked_customers, first_seen, last_seen.
    """
    edges = _crm_edges(crm)
    edges["key"] = _key(edges)
    # _crm_edges holds each (identifier, customer) once, so a group's size is its number of CRM ids
    links = edges.groupby("key", sort=False)["key"].transform("size")
    over = edges[links > max_crm_links]
    edges = edges[links <= max_crm_links]

    login_ids = evidence.loc[evidence["login_customer_id"].notna(), "login_customer_id"]
    customer_ids = np.array(sorted(set(crm["customer_id"]).union(login_ids)), dtype=object)
    canonical = _components(customer_ids, edges)

    evidence = evidence.assign(key=_key(evidence))
    seen = evidence.groupby("key", sort=False).agg(first_seen=("first_seen", "min"), last_seen=("last_seen", "max"))
    crm_dates = crm.set_index("customer_id")["snapshot_date"]

    # customer ids: themselves, or the canonical id of the record they were merged into
    cust = pd.DataFrame({"identifier_type": "customer_id", "identifier": customer_ids,
                         "customer_id": canonical.to_numpy()})
    in_crm = cust["identifier"].isin(crm_dates.index)
    cust["rule"] = np.where(cust["identifier"] == cust["customer_id"], np.where(in_crm, "crm", "login_only"),
                            "crm_merged")
    cust["status"] = "resolved"
    cust["linked_customers"] = 1

    # CRM identifiers: the canonical id of their (single) cluster
    crm_map = _by_identifier(edges.assign(customer_id=canonical.reindex(edges["customer_id"]).to_numpy()))
    crm_map["rule"] = "crm_" + crm_map["identifier_type"]
    crm_map["status"] = "resolved"
    over_map = over.drop_duplicates("key").assign(
        linked_customers=over.groupby("key", sort=False)["key"].transform("size"))
    over_map = over_map.assign(customer_id=None, rule="guard_max_crm_links", status="over_linked")

    # login identifiers: resolved when every login was the same (canonical) customer, else shared
    logged = evidence[evidence["identifier_type"].isin(list(LOGIN_IDENTIFIERS)) & evidence["login_customer_id"].notna()]
    login_map = _by_identifier(logged.assign(customer_id=canonical.reindex(logged["login_customer_id"]).to_numpy()))
    shared = login_map["linked_customers"] > 1
    login_map["rule"] = np.where(shared, "guard_shared_login", login_map["identifier_type"].map(LOGIN_IDENTIFIERS))
    login_map["status"] = np.where(shared, "shared", "resolved")
    login_map.loc[shared, "customer_id"] = None

    cust["key"] = _key(cust)
    known = pd.concat([cust, crm_map, over_map, login_map], ignore_index=True)
    unresolved_keys = seen.index[~seen.index.isin(known["key"])]
    unresolved = evidence.drop_duplicates("key").set_index("key").loc[unresolved_keys, ["identifier_type",
                                                                                       "identifier"]]
    unresolved = unresolved.reset_index().assign(customer_id=None, rule="no_evidence", status="unresolved",
                                                 linked_customers=0)

    out = pd.concat([known, unresolved], ignore_index=True)
    dates = seen.reindex(out["key"])
    out["first_seen"] = dates["first_seen"].to_numpy()
    out["last_seen"] = dates["last_seen"].to_numpy()
    # an identifier only the CRM knows was last stated by the CRM snapshot of its customer
    crm_seen = out["customer_id"].map(crm_dates)
    never = out["first_seen"].isna()
    out.loc[never, "first_seen"] = crm_seen[never]
    out.loc[never, "last_seen"] = crm_seen[never]
    out["linked_customers"] = out["linked_customers"].astype("int64")
    out["customer_id"] = out["customer_id"].astype(object).where(out["customer_id"].notna(), None)
    # no identifier type is a prefix of another, so ordering by key orders by (type, identifier)
    return out.sort_values("key", ignore_index=True)[MAP_COLUMNS]


def _key(frame: pd.DataFrame) -> pd.Series:
    """One string per identifier: its type and value joined by a separator that occurs in neither."""
    return frame["identifier_type"] + "\x1f" + frame["identifier"]


def _by_identifier(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per key: identifier_type, identifier, key, the first customer_id and how many distinct ones."""
    distinct = frame.drop_duplicates(["key", "customer_id"])
    first = distinct.drop_duplicates("key")[["identifier_type", "identifier", "key", "customer_id"]]
    counts = distinct.groupby("key", sort=False).size()
    return first.assign(linked_customers=first["key"].map(counts).to_numpy()).reset_index(drop=True)


def _frame(cur: psycopg2.extensions.cursor, sql_name: str, params: dict | None = None) -> pd.DataFrame:
    cur.execute(warehouse.sql_text(sql_name), params or {})
    return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def _csv_field(column: pd.Series) -> pd.Series:
    """Every present value quoted (so a landed identifier like ``\\N`` or an empty string stays a value), a
    missing one as the unquoted empty field that CSV COPY reads as NULL."""
    quoted = '"' + column.astype(str).str.replace('"', '""', regex=False) + '"'
    return quoted.where(column.notna(), "")


def _copy_map(cur: psycopg2.extensions.cursor, frame: pd.DataFrame, business_date: date) -> None:
    out = frame.assign(resolved_for=business_date, linked_customers=frame["linked_customers"].astype("Int64"))
    lines = _csv_field(out[MAP_COLUMNS[0]])
    for name in [*MAP_COLUMNS[1:], "resolved_for"]:
        lines = lines + "," + _csv_field(out[name])
    buf = io.StringIO("\n".join(lines.tolist()) + ("\n" if len(lines) else ""))
    cur.copy_expert(
        "copy core.identity_map (identifier_type, identifier, customer_id, rule, status, linked_customers, "
        "first_seen, last_seen, resolved_for) from stdin with (format csv)",
        buf,
    )


def resolve_identities(business_date: date, *, url: str | None = None, max_crm_links: int | None = None,
                       settings: Settings | None = None) -> dict:
    """Record the date's observations, recompute the identity map from all evidence, replace
    ``core.identity_map`` and write ``core.identity_runs``, in one transaction. Returns a summary for XCom."""
    settings = settings or load_settings()
    max_links = settings.identity_max_crm_links if max_crm_links is None else max_crm_links
    started = time.perf_counter()
    with warehouse.transaction(url) as cur:
        warehouse.lock(cur, "identity")
        cur.execute("delete from core.identity_observations where evidence_date = %s", (business_date,))
        cur.execute(warehouse.sql_text("identity/observations.sql"), {"business_date": business_date})
        crm = _frame(cur, "identity/crm.sql")
        evidence = _frame(cur, "identity/evidence.sql")
        resolved_s = time.perf_counter()
        frame = resolve(crm, evidence, max_crm_links=max_links)
        resolve_s = time.perf_counter() - resolved_s
        cur.execute("truncate core.identity_map")
        _copy_map(cur, frame, business_date)
        status = frame["status"].value_counts()
        cust = frame[frame["identifier_type"] == "customer_id"]
        summary = {
            "business_date": business_date.isoformat(),
            "identifiers": len(frame),
            "resolved": int(status.get("resolved", 0)),
            "customers": int(frame["customer_id"].nunique()),
            "merged_crm_ids": int((cust["rule"] == "crm_merged").sum()),
            "shared": int(status.get("shared", 0)),
            "over_linked": int(status.get("over_linked", 0)),
            "unresolved": int(status.get("unresolved", 0)),
        }
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["resolve_seconds"] = round(resolve_s, 3)
        cur.execute(
            """
            insert into core.identity_runs as r (business_date, identifiers, resolved, customers, merged_crm_ids,
                                                 shared, over_linked, unresolved, seconds, computed_at)
            values (%(business_date)s, %(identifiers)s, %(resolved)s, %(customers)s, %(merged_crm_ids)s,
                    %(shared)s, %(over_linked)s, %(unresolved)s, %(seconds)s, now())
            on conflict (business_date) do update set
                identifiers = excluded.identifiers, resolved = excluded.resolved, customers = excluded.customers,
                merged_crm_ids = excluded.merged_crm_ids, shared = excluded.shared,
                over_linked = excluded.over_linked, unresolved = excluded.unresolved, seconds = excluded.seconds,
                computed_at = excluded.computed_at
            """,
            summary,
        )
    log.info("identity %s: %s", business_date, summary)
    return summary
