"""GET /metrics for Prometheus: admins, or a scraper holding METRICS_TOKEN."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.db import session_scope
from app.deps import ServicesDep, get_admin, get_current_user
from app.observability.metrics import render_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    supplied = request.headers.get("authorization", "").removeprefix("Bearer ")
    if not (token and secrets.compare_digest(supplied.encode(), token.get_secret_value().encode())):
        await get_admin(await get_current_user(request, services))  # 401/redirect or 403 otherwise
    async with session_scope(services.sessions) as session:
        body = await render_metrics(session)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
