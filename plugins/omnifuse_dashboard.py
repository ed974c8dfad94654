"""The omnifuse view in the Airflow 3 UI: a FastAPI app served by the api-server under /omnifuse, shown *inside*
the Airflow UI (an external view with a ``url_route``: the UI's page ``/plugin/omnifuse`` embeds it, with the
navigation bar around it; Browse → "omnifuse: models & data health"). JSON endpoints for the same data live under
/omnifuse/api/: model-performance (NDCG@10 with bootstrap intervals), data-quality, load-volumes,
publish-coverage, freshness, recommendations/<customer_id> (with each recommendation's contributions).

Every route is behind the api-server's own authentication: the caller must be a logged-in Airflow user (the
``_token`` cookie the UI sets, or ``Authorization: Bearer <token from POST /auth/token>``) allowed to see the
website; anybody else gets 401/403. That includes the API's schema and docs (``/omnifuse/openapi.json``,
``/omnifuse/docs``): FastAPI's own ones ignore the app's dependencies, so they are switched off and served here as
ordinary routes behind the same check (there is no ``/redoc``). The data is read as the read-only BI role (see
``omnifuse.dashboard``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

# FastAPI's built-in schema and docs routes do not run the app's dependencies: they would answer anyone
app = FastAPI(title="omnifuse dashboard", description="Model quality, data health and recommendations.",
              dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
              openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/openapi.json", include_in_schema=False)
async def openapi() -> dict:
    return app.openapi()


@app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=request.scope.get("root_path", "") + "/openapi.json",
                               title="omnifuse dashboard API")


@app.get("/", response_class=HTMLResponse)
async def index(customer_id: str | None = None, days: int = Query(14, ge=1, le=365)) -> str:
    from omnifuse.dashboard import page

    return await asyncio.to_thread(page, customer_id or None, days)


#: the JSON tables of the last ``days`` days: (path under /api/, function of ``omnifuse.dashboard``, default days)
_DAILY_TABLES = (
    ("model-performance", "model_ndcg", 14),
    ("data-quality", "data_quality", 7),
    ("load-volumes", "load_volumes", 14),
    ("publish-coverage", "publish_coverage", 14),
)


def _daily_table(function: str, default_days: int) -> Callable[..., Awaitable[list[dict]]]:
    """The endpoint of one table: ``omnifuse.dashboard.<function>(days)``, run in a thread (it blocks on SQL)."""

    async def endpoint(days: int = Query(default_days, ge=1, le=365)) -> list[dict]:
        from omnifuse import dashboard

        rows: Callable[[int], list[dict]] = getattr(dashboard, function)
        return await asyncio.to_thread(rows, days)

    return endpoint


for _path, _function, _default_days in _DAILY_TABLES:
    app.get(f"/api/{_path}", name=_path.replace("-", "_"))(_daily_table(_function, _default_days))


@app.get("/api/freshness")
async def freshness() -> list[dict]:
    from omnifuse.dashboard import freshness as rows

    return await asyncio.to_thread(rows)


@app.get("/api/recommendations/{customer_id}")
async def recommendations(customer_id: str) -> list[dict]:
    from omnifuse.dashboard import recommendations as rows

    found = await asyncio.to_thread(rows, customer_id)
    if not found:
        raise HTTPException(404, f"no published recommendations for customer {customer_id!r}")
    return found


class OmnifuseDashboard(AirflowPlugin):
    name = "omnifuse_dashboard"
    fastapi_apps = [{"app": app, "url_prefix": "/omnifuse", "name": "omnifuse dashboard"}]
    external_views = [{"name": "omnifuse: models & data health", "href": "omnifuse/", "destination": "nav",
                       "category": "browse", "url_route": "omnifuse"}]
