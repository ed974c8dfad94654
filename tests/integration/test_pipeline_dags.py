"""The three real DAGs end to end with dag.test(): ingest (gates included) → retrain → publish, the Asset events
they emit, then the omnifuse view answering real HTTP requests with that data, and a real ``airflow api-server``
showing the view inside Airflow's UI in headless Chromium and the runs' true durations in its REST API."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from api_server import api_server, http, stop
from omnifuse import warehouse
from omnifuse.airflow_glue import run_dag_days, run_ingest_days
from omnifuse.config import load_settings

DAYS = [date(2026, 11, 2) + timedelta(days=i) for i in range(3)]
D = DAYS[-1]
STARTED: dict[str, datetime] = {}


@pytest.fixture(scope="module")
def pipeline(tiny_world, warehouse_url, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("OMNIFUSE_LANDING_DIR", str(tiny_world))
    mp.setenv("OMNIFUSE_MODEL_STORE", str(tmp_path_factory.mktemp("models")))
    mp.setenv("OMNIFUSE_DATA_DOCS", "always")  # the product's default (tests/conftest.py sets on_failure)
    with warehouse.transaction(warehouse_url) as cur:
        cur.execute("drop schema if exists raw, staging, quarantine, core, ml, mart, ops cascade")
    warehouse.migrate(warehouse_url)
    shutil.rmtree(load_settings().state_dir / "data_docs", ignore_errors=True)  # pages only these runs render
    STARTED["at"] = datetime.now(UTC)
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
    for gate in ("staging", "core"):  # passing gates render their Data Docs (OMNIFUSE_DATA_DOCS=always)
        assert (load_settings().state_dir / "data_docs" / gate / D.isoformat() / "index.html").exists(), gate

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.execute(select(AssetModel.name, AssetEvent.extra)
                                 .join(AssetModel, AssetModel.id == AssetEvent.asset_id)).all()
    names = {n for n, _ in events}
    assert {"core.interactions", "ml.champion"} <= names
    champion = [e for n, e in events if n == "ml.champion"]
    assert champion[-1] == {"business_date": D.isoformat(), "champion": f"retrain_{D:%Y%m%d}",
                            "model_version": f"retrain_{D:%Y%m%d}", "promoted": True, "run_id": f"retrain_{D:%Y%m%d}"}


def test_asset_events_say_what_changed_and_every_published_mart_table_is_an_asset(pipeline):
    """core.interactions (date, rows) → ml.champion (date, model version) → one Asset per mart table (date, rows,
    model version): the asset graph runs from ingest to what BI reads, and each event names what it changed."""
    url, _ = pipeline
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from omnifuse.airflow_glue import MART_TABLES
    from omnifuse.mart import SWAPPED
    from sqlalchemy import select

    assert set(MART_TABLES) == set(SWAPPED)  # the DAG files' list is the publisher's
    with create_session() as session:
        events = session.execute(select(AssetModel.name, AssetEvent.extra, AssetEvent.source_dag_id)
                                 .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                                 .where(AssetEvent.timestamp >= STARTED["at"])
                                 .order_by(AssetEvent.timestamp)).all()
    interactions = [e for n, e, _ in events if n == "core.interactions"]
    assert [e["business_date"] for e in interactions] == [d.isoformat() for d in DAYS]
    assert all(e["rows"] > 0 and e["event_dates"] for e in interactions)
    with warehouse.transaction(url) as cur:
        cur.execute("select table_name, rows_published, model_version from mart.publish_log where business_date = %s",
                    (D,))
        logged = {t: (n, v) for t, n, v in cur.fetchall()}
    marts = {n: (e, dag) for n, e, dag in events if n.startswith("mart.")}
    assert set(marts) == {f"mart.{t}" for t in MART_TABLES}
    for name, (extra, dag_id) in marts.items():
        assert dag_id == "omnifuse_publish"
        assert extra["business_date"] == D.isoformat() and extra["live"] is True
        assert (extra["rows"], extra["model_version"]) == logged[name], name
    assert marts["mart.customer_recommendations"][0]["coverage"]["personalised_share"] > 0


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
    assert "<svg" in page and "fused_with_rules" in page and recs[0]["product_id"] in page and "dq-pass" in page
    for section in ("models", "quality", "volumes", "quarantine", "coverage", "freshness", "lookup"):
        assert f'id="{section}"' in page, section


def test_api_charts_bands_volumes_coverage_and_explanations(dashboard, pipeline):
    base, _, _ = dashboard
    url, _ = pipeline
    for path in ("/api/load-volumes", "/api/publish-coverage"):  # the new endpoints refuse strangers too
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{base}{path}", token=None)
        assert refused.value.code == 401
    perf = {p["model_name"]: p for p in json.loads(_get(f"{base}/api/model-performance")[2])}
    fused = perf["fused_with_rules"]
    assert fused["ci_low"] <= fused["ndcg10"] <= fused["ci_high"] and fused["customers"] > 0
    quality = json.loads(_get(f"{base}/api/data-quality?days=30")[2])
    assert {q["status"] for q in quality} <= {"pass", "warn", "block"}
    assert {q["business_date"] for q in quality} == {d.isoformat() for d in DAYS}
    volumes = json.loads(_get(f"{base}/api/load-volumes?days=30")[2])
    with warehouse.transaction(url) as cur:
        cur.execute("select business_date::text, channel, lines_read, rows_quarantined from ops.load_audit")
        audit = {(d, c): (n, q) for d, c, n, q in cur.fetchall()}
    assert {(v["business_date"], v["channel"]): (v["lines_read"], v["rows_quarantined"]) for v in volumes} == audit
    assert all(0 <= v["quarantine_rate"] < 1 for v in volumes)
    coverage = json.loads(_get(f"{base}/api/publish-coverage")[2])
    assert [c["business_date"] for c in coverage] == [D.isoformat()]
    assert abs(coverage[0]["personalised_share"] + coverage[0]["fallback_share"] - 1) < 1e-6
    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id from mart.recommendation_contributions order by 1 limit 1")
        customer = cur.fetchone()[0]
        cur.execute("select rank, sum(contribution) from mart.recommendation_contributions where customer_id = %s "
                    "group by rank", (customer,))
        sums = dict(cur.fetchall())
    recs = json.loads(_get(f"{base}/api/recommendations/{customer}")[2])
    explained = [r for r in recs if r["contributions"]]
    assert explained and {r["rank"] for r in explained} == set(sums)
    for r in explained:
        assert abs(sum(c["contribution"] for c in r["contributions"]) - sums[r["rank"]]) < 1e-6 and r["reason"]
    page = _get(f"{base}/?customer_id={customer}")[2]
    assert "why: the models behind it" in page and explained[0]["contributions"][0]["model_name"] in page


SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "omnifuse-dashboard.png"


_call = http


@pytest.fixture(scope="module")
def airflow_ui(pipeline, tmp_path_factory):
    """(base url, token): a real ``airflow api-server`` — Airflow's UI, its REST API and the omnifuse plugin — on
    this session's metadata database and warehouse, with the simple auth manager and one admin whose password
    only this fixture knows; the token comes from the server's own ``POST /auth/token``."""
    home = tmp_path_factory.mktemp("api-server")
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({"admin": password}))
    env = {**os.environ,
           "AIRFLOW__CORE__AUTH_MANAGER":
               "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
           "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(load_settings().home / "plugins"),
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    with api_server(Path(sys.executable).with_name("airflow"), env, home) as base:
        status, body = _call(f"{base}/auth/token", data={"username": "admin", "password": password})
        assert status == 201, body
        yield base, json.loads(body)["access_token"]


def test_demo_runs_have_their_true_start_times_and_durations_in_the_airflow_api(airflow_ui, pipeline):
    """``dag.test(logical_date=None)``: each run is stamped when it ran, so the UI's durations are real (not the
    days between a past logical date and now)."""
    base, token = airflow_ui
    finished = datetime.now(UTC)
    for dag_id, days in (("omnifuse_ingest", DAYS), ("omnifuse_retrain", [D]), ("omnifuse_publish", [D])):
        status, body = _call(f"{base}/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=start_date", token=token)
        assert status == 200, body
        runs = [r for r in json.loads(body)["dag_runs"]
                if datetime.fromisoformat(r["start_date"]) >= STARTED["at"]]  # this module's runs
        assert sorted((r["conf"] or {}).get("business_date") for r in runs) == [d.isoformat() for d in days]
        for r in runs:
            start, end = datetime.fromisoformat(r["start_date"]), datetime.fromisoformat(r["end_date"])
            assert r["state"] == "success", r
            assert timedelta(0) < end - start < timedelta(hours=1), (dag_id, r["start_date"], r["end_date"])
            assert STARTED["at"] <= start <= end <= finished
            if r.get("duration") is not None:
                assert 0 < r["duration"] < 3600


def test_the_view_and_its_api_need_a_login_on_the_real_api_server(airflow_ui):
    base, token = airflow_ui
    for path in ("/omnifuse/", "/omnifuse/api/model-performance", "/omnifuse/api/load-volumes",
                 "/omnifuse/api/publish-coverage", "/omnifuse/api/recommendations/C0000001"):
        assert _call(base + path)[0] in (401, 403), path
        assert _call(base + path, token="not-a-token")[0] in (401, 403), path
    assert _call(f"{base}/omnifuse/api/publish-coverage", token=token)[0] == 200
    status, body = _call(f"{base}/api/v2/plugins", token=token)
    assert status == 200, body
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "omnifuse_dashboard")
    view = plugin["external_views"][0]
    assert view["url_route"] == "omnifuse" and view["destination"] == "nav"


class _DevTools:
    """The Chrome DevTools protocol over one page's websocket (``websockets``, already a dependency of uvicorn)."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, condition: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.evaluate(f"!!({condition})") is True:
                return
            time.sleep(0.25)
        raise AssertionError(f"not in the page after {seconds}s: {condition}")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


#: In the page of the Airflow UI: the document of the iframe in which the UI shows the external view, once loaded.
FRAME = "(() => { const f = document.querySelector('iframe'); return f && f.contentDocument; })()"


def test_view_renders_inside_the_airflow_ui_in_headless_chromium(airflow_ui, pipeline):
    """A logged-in browser opens Airflow's own page for the plugin (``/plugin/omnifuse``): the UI's navigation
    around, the omnifuse view inside with its charts; a customer looked up from the form shows the reasons and the
    models behind them. The screenshots are kept in ``test-artifacts/omnifuse-dashboard.png`` (the charts) and
    ``omnifuse-dashboard-lookup.png`` (the lookup)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (`apt-get install chromium`): the view's HTML and API are covered over HTTP "
                    "by the other tests of this module")
    base, token = airflow_ui
    url, _ = pipeline
    with warehouse.transaction(url) as cur:
        cur.execute("select customer_id from mart.recommendation_contributions order by 1 limit 1")
        customer = cur.fetchone()[0]
    profile = tempfile.mkdtemp(prefix="omnifuse-chromium-")
    proc = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                             "--remote-debugging-port=0", "--window-size=1440,1700", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        active = Path(profile) / "DevToolsActivePort"
        for _ in range(120):
            if active.exists() and active.read_text().count("\n") >= 1:
                break
            time.sleep(0.25)
        port = active.read_text().split("\n")[0]
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        page = _DevTools(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Network.enable")
        # the session cookie the UI sets at login
        assert page.call("Network.setCookie", name="_token", value=token, url=f"{base}/", path="/")["success"]
        page.call("Page.enable")
        page.call("Page.navigate", url=f"{base}/plugin/omnifuse")
        page.wait_for(f"{FRAME} && {FRAME}.querySelector('#models svg') && {FRAME}.querySelector('#coverage svg')")
        # Airflow's own page around the view: its navigation (links to Dags and Assets, the Browse menu)
        assert page.evaluate("!!document.querySelector('a[href=\"/dags\"]') && "
                             "!!document.querySelector('a[href=\"/assets\"]') && "
                             "!!document.querySelector('button[aria-label=\"Browse\"]')"), "no Airflow UI around"
        assert page.evaluate(f"{FRAME}.location.pathname").startswith("/omnifuse")
        for section in ("models", "quality", "volumes", "quarantine", "coverage"):
            assert page.evaluate(f"{FRAME}.querySelectorAll('#{section} svg').length"), section
        assert page.evaluate(f"{FRAME}.querySelectorAll('#quality rect.dq-pass').length") >= 3
        # the customer lookup, used through the form inside the UI
        page.evaluate(f"(() => {{ const d = {FRAME}; d.querySelector('input[name=customer_id]').value = "
                      f"{json.dumps(customer)}; d.querySelector('#lookup form').submit(); return true; }})()")
        page.wait_for(f"{FRAME} && {FRAME}.querySelector('table.recs td.why svg')")
        assert f"Recommendations for {customer}" in page.evaluate(f"{FRAME}.querySelector('#lookup').textContent")
        assert page.evaluate(f"{FRAME}.querySelectorAll('table.recs tbody tr').length") >= 1
        time.sleep(1)  # let the UI settle its layout (fonts, nav icons)
        shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        page.evaluate(f"{FRAME}.querySelector('#lookup').scrollIntoView() || true")
        time.sleep(0.5)
        lookup = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        page.ws.close()
    finally:
        stop(proc, 20)
        shutil.rmtree(profile, ignore_errors=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 50_000
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(shot)
    SCREENSHOT.with_name("omnifuse-dashboard-lookup.png").write_bytes(lookup)
