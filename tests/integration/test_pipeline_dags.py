"""The three real DAGs end to end with dag.test(): ingest (gates included) → retrain → publish, then the
omnifuse view of the Airflow UI answering real HTTP requests with that data."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import date, timedelta

import pytest
from omnifuse import warehouse
from omnifuse.cli import run_dag_days, run_ingest_days
from omnifuse.config import load_settings

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]


@pytest.fixture(scope="module")
def pipeline(tiny_world, warehouse_url, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("OMNIFUSE_LANDING_DIR", str(tiny_world))
    mp.setenv("OMNIFUSE_MODEL_STORE", str(tmp_path_factory.mktemp("models")))
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    states = {"ingest": run_ingest_days(DAYS, load_settings())}
    states["retrain"] = run_dag_days("omnifuse_retrain", [D], load_settings())
    states["publish"] = run_dag_days("omnifuse_publish", [D], load_settings())
    yield warehouse_url, states
    mp.undo()


def test_ingest_retrain_publish_all_succeed_and_chain_by_assets(pipeline):
    url, states = pipeline
    assert states == {"ingest": ["success"] * 3, "retrain": ["success"], "publish": ["success"]}
    with warehouse.transaction(url) as cur:
        cur.execute("select status, fusion_variant from ml.model_registry")
        assert [s for s, _ in cur.fetchall()] == ["champion"]
        cur.execute("select count(distinct customer_id), max(rank) from mart.customer_recommendations")
        customers, top = cur.fetchone()
        cur.execute("select count(*) from ml.model_metrics where run_id = %s", (f"retrain_{D:%Y%m%d}",))
        n_metrics = cur.fetchone()[0]
    assert customers > 100 and top == 20 and n_metrics > 100
    from omnifuse.report import pipeline_summary

    summary = pipeline_summary(D, url)
    for part in ("staging.web_events", "core.interactions", "fused_with_rules", "champion: retrain_",
                 "mart.customer_recommendations"):
        assert part in summary, summary

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.execute(select(AssetModel.name, AssetEvent.extra)
                                 .join(AssetModel, AssetModel.id == AssetEvent.asset_id)).all()
    names = {n for n, _ in events}
    assert {"core.interactions", "ml.champion"} <= names
    champion = [e for n, e in events if n == "ml.champion"]
    assert champion[-1] == {"business_date": D.isoformat(), "champion": f"retrain_{D:%Y%m%d}"}


def _serve(app) -> tuple[str, object]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", (server, thread)


@pytest.fixture(scope="module")
def dashboard(pipeline):
    """The plugin's FastAPI app served by uvicorn on a free port, behind this session's Airflow auth manager as
    the api-server mounts it; requests carry a token the auth manager issued (``_get`` sends it). A second
    server plays a logged-in browser: it adds the ``_token`` session cookie the Airflow UI sets at login."""
    import importlib.util

    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    path = load_settings().home / "plugins" / "omnifuse_dashboard.py"
    spec = importlib.util.spec_from_file_location("omnifuse_dashboard_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manager = init_auth_manager()
    TOKEN["value"] = manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))

    async def logged_in_browser(scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "headers": [*scope["headers"], (b"cookie", f"_token={TOKEN['value']}".encode())]}
        await module.app(scope, receive, send)

    base, api = _serve(module.app)
    browser_base, browser = _serve(logged_in_browser)
    yield base, module, browser_base
    for server, thread in (api, browser):
        server.should_exit = True
        thread.join(timeout=5)


TOKEN: dict[str, str] = {}


def _get(url: str, token: str | None = "session"):
    req = urllib.request.Request(url)
    if token:
        req.add_header("authorization", f"Bearer {TOKEN['value'] if token == 'session' else token}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("content-type"), resp.read().decode()


def test_plugin_registers_an_app_and_a_nav_view(dashboard):
    _, module, _ = dashboard
    plugin = module.OmnifuseDashboard
    assert plugin.fastapi_apps[0]["url_prefix"] == "/omnifuse"
    assert plugin.external_views[0]["destination"] == "nav" and not plugin.external_views[0]["href"].startswith("/")


def test_plugin_endpoints_answer_with_the_pipelines_data(dashboard, pipeline):
    base, _, _ = dashboard
    for path in ("/", "/api/freshness", "/api/recommendations/NOBODY"):  # strangers are refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{base}{path}", token=None)
        assert refused.value.code == 401
    status, kind, body = _get(f"{base}/api/model-performance")
    perf = json.loads(body)
    assert status == 200 and "json" in kind
    assert {p["model_name"] for p in perf} >= {"fused_with_rules", "popularity", "two_tower"}
    quality = json.loads(_get(f"{base}/api/data-quality")[2])
    assert {q["table_name"] for q in quality} >= {"staging.web_events", "core.interactions"}
    assert all(q["usable"] for q in quality)
    fresh = {f["stage"]: f for f in json.loads(_get(f"{base}/api/freshness")[2])}
    assert fresh["core.interactions"]["row_count"] > 0 and fresh["core.interactions"]["latest_date"] == D.isoformat()
    url, _ = pipeline
    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id from mart.customer_recommendations where rank = 1 order by 1 limit 1")
        customer = cur.fetchone()[0]
    recs = json.loads(_get(f"{base}/api/recommendations/{customer}")[2])
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1)) and all(r["reason"] for r in recs)
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{base}/api/recommendations/NOBODY")
    assert missing.value.code == 404
    status, kind, page = _get(f"{base}/?customer_id={customer}")
    assert status == 200 and "text/html" in kind
    assert "<svg" in page and "fused_with_rules" in page and recs[0]["product_id"] in page and "PASS" in page


def test_view_renders_in_headless_chromium(dashboard, pipeline):
    """Once, the real page in a real browser; the screenshot is kept as a test artifact."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    _, _, base = dashboard  # the logged-in browser's address
    url, _ = pipeline
    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id from mart.customer_recommendations order by 1 limit 1")
        customer = cur.fetchone()[0]
    out = load_settings().home / "test-artifacts" / "omnifuse-dashboard.png"
    out.parent.mkdir(exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1280,1800", f"--screenshot={out}", f"{base}/?customer_id={customer}"],
                   check=True, capture_output=True, timeout=120)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
