"""The admin dashboard's JSON APIs (the page is /admin): spend, top users, latency,
errors and refusals, models side by side, live cap state, recent calls with drill-down."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from app.db import session_scope
from app.deps import AdminDep, AlerterDep, QualityDep, ServicesDep
from app.http.params import BIGINT_MAX, RowId
from app.models import Alert
from app.observability import dashboard, levers, models
from app.quality.trend import Bucket, quality_trend

router = APIRouter(prefix="/api/admin/dashboard", tags=["admin"])
Days = Query(7, ge=1, le=400, description="Time range, in days back from now.")


@router.get("/spend")
async def spend(admin: AdminDep, services: ServicesDep, days: int = Days) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        return await dashboard.spend(session, days=days)


@router.get("/top-users")
async def top_users(
    admin: AdminDep, services: ServicesDep, days: int = Days
) -> dict[str, list[dict[str, Any]]]:
    async with session_scope(services.sessions) as session:
        return await dashboard.top_users(session, days=days)


@router.get("/latency")
async def latency(admin: AdminDep, services: ServicesDep, days: int = Days) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        return await dashboard.latency(session, days=days)


@router.get("/outcomes")
async def outcomes(
    admin: AdminDep, services: ServicesDep, days: int = Days
) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        return await dashboard.outcomes(session, days=days)


@router.get("/guardrails")
async def guardrails(
    admin: AdminDep, services: ServicesDep, days: int = Days
) -> list[dict[str, Any]]:
    """Guardrail triggers per rule (docs/guardrails.md)."""
    async with session_scope(services.sessions) as session:
        return await dashboard.guardrails(session, days=days)


@router.get("/levers")
async def cost_levers(admin: AdminDep, services: ServicesDep, days: int = Days) -> dict[str, Any]:
    """Response cache hit rate and saving, and answers given without a model call."""
    async with session_scope(services.sessions) as session:
        return await levers.cost_levers(session, days=days)


@router.get("/models")
async def compare_models(
    admin: AdminDep, services: ServicesDep, days: int = Days
) -> list[dict[str, Any]]:
    """Models, prompt versions and routing arms side by side (docs/routing.md)."""
    async with session_scope(services.sessions) as session:
        return await models.compare_models(session, days=days)


@router.get("/caps")
async def caps(admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        return await dashboard.cap_state(session, services.settings)


@router.get("/calls")
async def calls(
    admin: AdminDep, services: ServicesDep, before: int | None = Query(None, ge=1, le=BIGINT_MAX)
) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        return await dashboard.recent_calls(session, before=before)


@router.get("/calls/{call_id}")
async def call(call_id: RowId, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        found = await dashboard.one_call(session, call_id=call_id)
    if found is None:
        raise HTTPException(404, "No such call.")
    return found


@router.get("/alerts")
async def alerts(admin: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    """The alerts sent recently (most recent first)."""
    async with session_scope(services.sessions) as session:
        rows = await session.execute(select(Alert).order_by(Alert.id.desc()).limit(100))
        return [
            {
                "id": a.id,
                "rule": a.rule,
                "message": a.message,
                "fired_at": a.fired_at.isoformat(),
                "delivered": a.delivered,
            }
            for a in rows.scalars()
        ]


@router.post("/alerts/evaluate")
async def evaluate_alerts(admin: AdminDep, alerter: AlerterDep) -> list[dict[str, Any]]:
    """Run the alert rules now (they also run every ALERT_INTERVAL_S)."""
    return [{"rule": a.rule, "message": a.message} for a in await alerter.run_once()]


@router.get("/quality")
async def quality(
    admin: AdminDep, services: ServicesDep, days: int = Days, bucket: Bucket = "day"
) -> dict[str, Any]:
    """Judge scores of sampled live answers per model and prompt version (docs/evals.md)."""
    async with session_scope(services.sessions) as session:
        trend = await quality_trend(session, days=days, bucket=bucket)
    settings = services.settings
    return {
        "sample_rate": settings.quality_sample_rate,
        "judge_model": settings.quality_judge_model or settings.llm_model,
        "trend": trend,
    }


@router.post("/quality/score")
async def score_quality(admin: AdminDep, quality: QualityDep) -> dict[str, int]:
    """Claim and score one batch of sampled answers now (it also runs every
    QUALITY_INTERVAL_S); {status: count}."""
    return await quality.run_once()
