"""Identity resolution: accuracy against the generator's truth, and speed at a million identifiers.

    .venv/bin/python bench/identity.py [--scale-customers 240000] [--skip-scale]

1. **Accuracy** on the default world (``WorldConfig()``: 2,000 customers, 3 days) and on a harder one (ten
   times the shared tablets, four times the anonymous browsing, fewer logins), each loaded day by day through
   the same functions the DAG's tasks call: pairwise precision and recall of identifier → customer clustering,
   and the share of events attributed to the right person. Also printed: the evidence ceiling, i.e. how many
   of the scored identifiers carry no linking evidence at all (a cookie that never logged in), which no
   resolver can place. Targets: precision ≥ 0.99 and recall ≥ 0.95 on the default world.
2. **Speed**: a world of at least 1,000,000 identifiers (one generated day); times the whole
   ``resolve_identities`` step (observations, evidence, clustering, replacing ``core.identity_map``) and,
   in the same run, a plain-Python union–find over the same CRM edges as the baseline for the clustering.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from _isolated import empty_warehouse, isolated_url, load_world
from _report import scratch_folder
from omnifuse import warehouse
from omnifuse.generate import WorldConfig, generate
from omnifuse.generate.truth import attribution_accuracy, clustering_accuracy, truth_identifiers
from omnifuse.identity import _components, _crm_edges, resolve_identities
from omnifuse.ingest import ingest_source

WORLDS = {
    "default": WorldConfig(),
    "harder": WorldConfig(shared_device_rate=0.2, anonymous_session_share=0.2, login_rate_web=0.35,
                          login_rate_mobile=0.6),
}


def _frame(url: str, text: str) -> pd.DataFrame:
    with warehouse.transaction(url) as cur:
        cur.execute(text)
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])


def accuracy(url: str, name: str, cfg: WorldConfig, scratch: Path) -> dict:
    world = scratch / name
    load_world(url, cfg, world)
    ident = _frame(url, "select * from core.identity_map")
    events = _frame(url, "select identifier_type, identifier, customer_id, attribution from core.interactions")
    truth = truth_identifiers(world)
    out = {"world": name, **clustering_accuracy(truth, ident), **attribution_accuracy(truth, events)}
    scored = ident.merge(truth.drop_duplicates(["identifier_type", "identifier"]), on=["identifier_type",
                                                                                       "identifier"])
    out["no_evidence"] = int((scored["status"] == "unresolved").sum())
    out["shared"] = int((ident["status"] == "shared").sum())
    return out


def _python_union_find(edges: pd.DataFrame) -> int:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for cust, kind, ident in edges.itertuples(index=False):
        a, b = find(cust), find(kind + ":" + ident)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return len({find(x) for x in list(parent)})


def speed(url: str, customers: int, scratch: Path) -> dict:
    cfg = WorldConfig(customers=customers, products=5000, days=1)
    world = scratch / "scale"
    started = time.perf_counter()
    generate(cfg, world)
    gen_s = time.perf_counter() - started
    empty_warehouse(url)
    for name in ("catalog", "store_locations", "fx_rates", "crm", "web", "mobile", "social", "store"):
        ingest_source(name, cfg.start, landing_dir=world, url=url)
    summary = resolve_identities(cfg.start, url=url)
    crm = _frame(url, "select customer_id, email_sha256, phone_sha256, loyalty_card, social_handles "
                      "from core.customers")
    edges = _crm_edges(crm)
    started = time.perf_counter()
    _components(crm["customer_id"].sort_values().to_numpy(dtype=object), edges)
    scipy_s = time.perf_counter() - started
    started = time.perf_counter()
    _python_union_find(edges)
    python_s = time.perf_counter() - started
    return {"customers": customers, "generate_s": gen_s, "identifiers": summary["identifiers"],
            "step_s": summary["seconds"], "resolve_s": summary["resolve_seconds"], "crm_edges": len(edges),
            "scipy_s": scipy_s, "python_s": python_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale-customers", type=int, default=240_000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    url = isolated_url("identity")  # never the user's warehouse
    with scratch_folder("identity") as scratch:
        print(f"{'world':8} {'ids':>6} {'precision':>9} {'recall':>7} {'no-evid.':>8} {'shared':>6} "
              f"{'events':>7} {'attrib.':>7} {'ambig.':>6}")
        for name, cfg in WORLDS.items():
            r = accuracy(url, name, cfg, scratch)
            print(f"{name:8} {r['identifiers_scored']:6d} {r['precision']:9.4f} {r['recall']:7.4f} "
                  f"{r['no_evidence']:8d} {r['shared']:6d} {r['events_scored']:7d} "
                  f"{r['attribution_accuracy']:7.4f} {r['ambiguous_events']:6d}", flush=True)
        print("targets (default world): precision >= 0.99, recall >= 0.95")
        if not args.skip_scale:
            s = speed(url, args.scale_customers, scratch)
            print(f"\nscale: {s['customers']:,} customers, {s['identifiers']:,} identifiers "
                  f"(generated in {s['generate_s']:.1f} s)")
            print(f"resolve_identities step: {s['step_s']:.2f} s = {s['identifiers'] / s['step_s']:,.0f} identifiers/s "
                  f"(clustering + map in pandas/scipy: {s['resolve_s']:.2f} s)")
            print(f"clustering {s['crm_edges']:,} CRM edges: scipy {s['scipy_s']:.2f} s, plain-Python union-find "
                  f"{s['python_s']:.2f} s, speed-up x{s['python_s'] / s['scipy_s']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
