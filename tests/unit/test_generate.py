from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

from omnifuse.generate import MessConfig, WorldConfig, generate


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    cfg = WorldConfig(customers=200, products=60, days=2, seed=3)
    generate(cfg, tmp_path / "a")
    generate(cfg, tmp_path / "b")
    a, b = _tree_digest(tmp_path / "a"), _tree_digest(tmp_path / "b")
    assert a == b and len(a) > 10


def test_different_seed_differs(tmp_path):
    generate(WorldConfig(customers=200, products=60, days=1, seed=3), tmp_path / "a")
    generate(WorldConfig(customers=200, products=60, days=1, seed=4), tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "b")


def test_layout_formats_and_truth(tmp_path):
    generate(WorldConfig(customers=300, products=80, days=2, start=date(2026, 11, 2), seed=5), tmp_path)
    day = "2026-11-02"
    for folder, name in [("web", "events.ndjson.gz"), ("mobile", "events.json.gz"), ("social", "interactions.csv"),
                         ("store", "pos.csv"), ("catalog", "products.csv"), ("crm", "customers.csv")]:
        assert (tmp_path / folder / day / name).is_file(), (folder, name)
        assert (tmp_path / folder / day / "_manifest.json").is_file()
    first = json.loads(gzip.open(tmp_path / "web" / day / "events.ndjson.gz", "rt").readline())
    assert first["ts"].endswith("Z") and "sku" in first["product"]
    mobile = json.loads(gzip.open(tmp_path / "mobile" / day / "events.json.gz", "rt").readline())
    assert isinstance(mobile["timestamp_ms"], int)
    # store file of day index 1 carries the renamed column
    assert "qty" in (tmp_path / "store" / "2026-11-03" / "pos.csv").read_text().splitlines()[0].split(",")
    truth = json.loads((tmp_path / "truth" / "mess" / f"{day}.json").read_text())
    assert set(truth) == {"web", "mobile", "social", "store"}
    ids = (tmp_path / "truth" / "identifiers.csv").read_text().splitlines()
    assert ids[0] == "identifier_type,identifier,person_id" and len(ids) > 300


def test_clean_world_plants_no_mess(tmp_path):
    generate(WorldConfig(customers=200, products=60, days=2, seed=3, mess=MessConfig.clean()), tmp_path)
    for day in ("2026-11-02", "2026-11-03"):
        truth = json.loads((tmp_path / "truth" / "mess" / f"{day}.json").read_text())
        for channel in truth.values():
            assert channel["expected"]["rows_quarantined_by_reason"] == {}
            assert channel["expected"]["duplicates_dropped"] == 0


def test_purchases_follow_latent_favourites(tmp_path):
    """The world has signal: purchases concentrate on each person's favourite products."""
    generate(WorldConfig(customers=1000, products=200, days=2, seed=9, mess=MessConfig.clean()), tmp_path)
    favs: dict[str, set[str]] = {}
    for line in (tmp_path / "truth" / "favourites.csv").read_text().splitlines()[1:]:
        person, sku, _ = line.split(",")
        favs.setdefault(person, set()).add(sku)
    hits = total = 0
    for day in ("2026-11-02", "2026-11-03"):
        with gzip.open(tmp_path / "web" / day / "events.ndjson.gz", "rt") as fh:
            for line in fh:
                e = json.loads(line)
                if e["type"] == "checkout_complete" and e["customer_id"]:
                    total += 1
                    hits += e["product"]["sku"] in favs[e["customer_id"]]
    assert total > 50
    assert hits / total > 0.5  # 15 of 200 products are favourites: chance would be ~0.08
