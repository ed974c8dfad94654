"""Settings come from config.py only: the alert notifier, the BI role and the demo's verbosity included."""

from __future__ import annotations

from collections import OrderedDict

from omnifuse.alerts import configured_notifier
from omnifuse.config import load_settings


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
