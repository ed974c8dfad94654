"""``OMNIFUSE_LANDING_DIR``: a plain path or ``file://`` stays a local ``Path`` (plain file access, Airflow never
imported); a URL of object storage is kept as text until a task resolves it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omnifuse import landing_zone
from omnifuse.config import load_settings


def test_local_paths_and_file_urls_are_local_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", str(tmp_path / "zone"))
    assert load_settings().landing_dir == tmp_path / "zone"
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", f"file://{tmp_path}/my%20zone/")
    assert load_settings().landing_dir == tmp_path / "my zone"
    assert landing_zone.resolve(str(tmp_path)) == tmp_path and not landing_zone.is_remote(f"file://{tmp_path}")
    assert landing_zone.local_folder(tmp_path) == tmp_path
    with pytest.raises(landing_zone.LandingLocationError, match="remote host"):
        landing_zone.parse_setting("file://fileserver/share/landing")


def test_object_storage_urls_are_kept_as_text_with_their_connection(monkeypatch):
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", "s3://aws_landing@shop-bucket/landing/")
    monkeypatch.setenv("OMNIFUSE_LANDING_CONN_ID", "aws_default")
    settings = load_settings()
    assert settings.landing_dir == "s3://aws_landing@shop-bucket/landing"
    assert settings.landing_conn_id == "aws_default"
    assert landing_zone.is_remote(settings.landing_dir) and landing_zone.is_remote("gs://b/p")
    with pytest.raises(landing_zone.LandingLocationError, match="name a bucket"):
        landing_zone.parse_setting("s3:///landing")
    with pytest.raises(landing_zone.LandingLocationError, match="the generator writes a local folder"):
        landing_zone.local_folder(settings.landing_dir)


def test_reading_a_remote_setting_imports_no_airflow(monkeypatch):
    """Settings are read when a DAG file is parsed: a URL must not import object storage nor look a connection up."""
    monkeypatch.setenv("OMNIFUSE_LANDING_DIR", "s3://aws_landing@shop-bucket/landing")
    code = ("import sys; from omnifuse.config import load_settings; s = load_settings(); "
            "print(s.landing_dir, sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "s3://aws_landing@shop-bucket/landing []"


def test_a_scheme_without_an_installed_filesystem_says_which_provider_to_install():
    with pytest.raises(landing_zone.LandingLocationError, match="apache-airflow-providers-google"):
        landing_zone.resolve("gs://shop-bucket/landing", conn_id="google_cloud_default")
    assert isinstance(landing_zone.resolve("relative/zone"), Path)
