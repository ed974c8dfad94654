"""The source registry is the one home of the channel list."""

from __future__ import annotations

import re

from omnifuse import dataset, warehouse
from omnifuse.generate import world
from omnifuse.sources import EVENT_CHANNELS, REGISTRY


def test_channels_are_derived_from_the_event_sources_in_code_order():
    assert EVENT_CHANNELS == ("web", "mobile", "social", "store")
    assert {s.channel for s in REGISTRY.values() if s.channel} == set(EVENT_CHANNELS)
    assert all(REGISTRY[c].channel == c for c in EVENT_CHANNELS)  # an event source is named after its channel
    # the dataset's channel codes and the generator follow the registry, never a copy
    assert dataset.CHANNELS is EVENT_CHANNELS and world.CHANNELS == list(EVENT_CHANNELS)


def test_the_warehouse_accepts_exactly_the_registry_channels():
    text = warehouse.sql_text("migrations/0004_identity_interactions.sql")
    allowed = re.search(r"channel text not null check \(channel in \(([^)]*)\)\)", text)
    assert allowed is not None
    assert tuple(v.strip().strip("'") for v in allowed.group(1).split(",")) == EVENT_CHANNELS
