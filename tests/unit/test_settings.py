"""Settings come from config.py only (the alert notifier, the BI role, the demo's verbosity and the list, batch,
segment and candidate counts included) and the README's settings table documents exactly them."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omnifuse.alerts import configured_notifier
from omnifuse.config import load_settings, load_training_settings
from omnifuse.segments import segment_customers


def test_the_alert_notifier_is_built_from_the_settings(monkeypatch):
    monkeypatch.delenv("OMNIFUSE_ALERT_NOTIFIER", raising=False)
    assert configured_notifier() is None
    monkeypatch.setenv("OMNIFUSE_ALERT_NOTIFIER", "collections:OrderedDict")
    monkeypatch.setenv("OMNIFUSE_ALERT_NOTIFIER_KWARGS", '{"channel": "#data"}')
    notifier = configured_notifier()
    assert isinstance(notifier, OrderedDict) and notifier == {"channel": "#data"}


def test_bi_credentials_and_verbosity_are_settings_and_the_password_is_never_printed(monkeypatch):
    monkeypatch.setenv("OMNIFUSE_BI_ROLE", "shop_bi")
    monkeypatch.setenv("OMNIFUSE_BI_PASSWORD", "s3cret-value")
    monkeypatch.setenv("OMNIFUSE_DEMO_VERBOSE", "1")
    settings = load_settings()
    assert (settings.bi_role, settings.bi_password, settings.demo_verbose) == ("shop_bi", "s3cret-value", True)
    assert "s3cret-value" not in repr(settings)
    monkeypatch.setenv("OMNIFUSE_BI_PASSWORD", "")  # empty is missing, never a password
    monkeypatch.setenv("OMNIFUSE_DEMO_VERBOSE", "0")
    assert (load_settings().bi_password, load_settings().demo_verbose) == (None, False)


ROOT = Path(__file__).resolve().parents[2]
#: variables the README documents that the product never reads (tests and benchmarks only)
TEST_ONLY = {"OMNIFUSE_TEST_WAREHOUSE_URL", "OMNIFUSE_BENCH_STATE_DIR"}


def _readme_table() -> dict[str, str]:
    """Every variable of the README's Configuration table and the default column of its row."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| `OMNIFUSE_") and len(cells) >= 3:
            for name in re.findall(r"`(OMNIFUSE_[A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[1]
    return rows


def test_the_readme_table_documents_exactly_the_settings_config_reads():
    source = (ROOT / "include" / "omnifuse" / "config.py").read_text()
    read = set(re.findall(r"[\"'](OMNIFUSE_[A-Z0-9_]+)[\"']", source))
    documented_in_config = set(re.findall(r"``(OMNIFUSE_[A-Z0-9_]+)``", source))
    assert read - documented_in_config == set(), "read in config.py but not in its docstrings"
    table = _readme_table()
    assert read - set(table) == set(), "read in config.py but missing from the README settings table"
    assert set(table) - TEST_ONLY - read == set(), "in the README settings table but never read by config.py"


def test_the_readme_defaults_of_the_new_settings_are_the_config_defaults(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OMNIFUSE_") and name != "OMNIFUSE_HOME":
            monkeypatch.delenv(name)
    settings, training = load_settings(), load_training_settings()
    table = _readme_table()
    for name, value in [("OMNIFUSE_TOP_K", settings.top_k),
                        ("OMNIFUSE_SCORING_BATCH_SIZE", settings.scoring_batch_size),
                        ("OMNIFUSE_SEGMENTS", settings.segments),
                        ("OMNIFUSE_FUSION_CANDIDATES", training.fusion_candidates),
                        ("OMNIFUSE_TRAIN_DAYS", settings.train_days), ("OMNIFUSE_SEED", settings.seed),
                        ("OMNIFUSE_MAX_QUARANTINE_SHARE", settings.max_quarantine_share)]:
        assert table[name] == f"`{value}`", name
    assert (settings.top_k, settings.scoring_batch_size, settings.segments, training.fusion_candidates) == (
        20, 5000, 5, 50)


@pytest.mark.parametrize("name", ["OMNIFUSE_TOP_K", "OMNIFUSE_SCORING_BATCH_SIZE", "OMNIFUSE_SEGMENTS",
                                  "OMNIFUSE_FUSION_CANDIDATES"])
def test_counts_are_positive_whole_numbers_and_a_bad_one_names_its_variable(monkeypatch, name):
    def load():
        return load_training_settings().fusion_candidates if name == "OMNIFUSE_FUSION_CANDIDATES" else {
            "OMNIFUSE_TOP_K": load_settings().top_k, "OMNIFUSE_SCORING_BATCH_SIZE": load_settings().scoring_batch_size,
            "OMNIFUSE_SEGMENTS": load_settings().segments}[name]

    monkeypatch.setenv(name, "7")
    assert load() == 7
    for bad in ("0", "-3", "2.5", "ten"):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=f"{name}='{re.escape(bad)}' is not a positive whole number"):
            load()


def test_the_segment_count_setting_sets_the_number_of_segments():
    rng = np.random.default_rng(0)
    n = 400
    activity = pd.DataFrame({"recency_days": rng.integers(0, 90, n), "frequency": rng.integers(1, 30, n),
                             "monetary": rng.gamma(2.0, 50.0, n), "web_share": rng.random(n),
                             "mobile_share": rng.random(n), "social_share": rng.random(n),
                             "store_share": rng.random(n)})
    for k in (3, 5, 8):
        labels, centroids = segment_customers(activity, {}, seed=1, segments=k)
        assert labels.nunique() == len(centroids) == k
