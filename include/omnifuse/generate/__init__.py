"""The synthetic multi-channel world used by the demo, the tests and the benchmarks."""

from __future__ import annotations

from omnifuse.generate.world import MessConfig, WorldConfig, generate

__all__ = ["MessConfig", "WorldConfig", "generate"]
