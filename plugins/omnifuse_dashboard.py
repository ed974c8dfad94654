"""The omnifuse view in the Airflow 3 UI: a FastAPI app served by the api-server under /omnifuse, shown *inside*
the Airflow UI (an external view with a ``url_route``: the UI's page ``/plugin/omnifuse`` embeds it, with the
navigation bar around it; Browse → "omnifuse: models & data health"). JSON endpoints for the same data live under
/omnifuse/api/: model-performance (NDCG@10 with bootstrap intervals), data-quality, load-volumes,
publish-coverage, freshness, recommendations/<customer_id> (with each recommendation's contributions).

Every route is behind the api-server's own authentication: the caller must be a logged-in Airflow user (the
``_token`` cookie the UI sets, or ``Authorization: Bearer <token from POST /auth/token>``) allowed to see the
website; anybody else gets 401/403. The data is read as the read-only BI role (see ``omnifuse.dashboard``)."""

from __future__ import annotations

import asyncio

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

app = FastAPI(title="omnifuse dashboard", description="Model quality, data health and recommendations.",
              dependencies=[Depends(requires_access_view(AccessView.WEBSITE))])


@app.get("/", response_class=HTMLResponse)
async def index(customer_id: str | None = None, days: int = Query(14, ge=1, le=365)) -> str:
    from omnifuse.dashboard import page

    return await asyncio.to_thread(page, customer_id or None, days)


@app.get("/api/model-performance")
async def model_performance(days: int = Query(14, ge=1, le=365)) -> list[dict]:
    from omnifuse.dashboard import model_ndcg

    return await asyncio.to_thread(model_ndcg, days)


@app.get("/api/data-quality")
async def data_quality(days: int = Query(7, ge=1, le=365)) -> list[dict]:
    from omnifuse.dashboard import data_quality as rows

    return await asyncio.to_thread(rows, days)


@app.get("/api/freshness")
async def freshness() -> list[dict]:
    from omnifuse.dashboard import freshness as rows

    return await asyncio.to_thread(rows)


@app.get("/api/load-volumes")
async def load_volumes(days: int = Query(14, ge=1, le=365)) -> list[dict]:
    from omnifuse.dashboard import load_volumes as rows

    return await asyncio.to_thread(rows, days)


@app.get("/api/publish-coverage")
async def publish_coverage(days: int = Query(14, ge=1, le=365)) -> list[dict]:
    from omnifuse.dashboard import publish_coverage as rows

    return await asyncio.to_thread(rows, days)


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
