"""What /status and /api/status show: current state, 90-day uptime, incidents, pause."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caps.budget import GLOBAL, periods
from app.caps.killswitch import is_paused
from app.models import Incident, utcnow
from app.settings import Settings
from app.status.provider import provider_label

COMPONENTS = ["app", "database", "rate_limit_store", "llm_upstream", "embeddings"]
LABELS = {
    "app": "App",
    "database": "Database",
    "rate_limit_store": "Rate-limit store",
    "llm_upstream": "LLM upstream",
    "embeddings": "Embeddings",
    "provider": "Upstream provider",
}
_LATEST = text(
    "SELECT DISTINCT ON (component) component, state, latency_ms, detail, checked_at "
    "FROM status_probes ORDER BY component, id DESC"
)
_UPTIME = text(
    "SELECT component, date_trunc('day', checked_at AT TIME ZONE 'utc')::date AS day, "
    "avg(CASE WHEN state = 'operational' THEN 1.0 ELSE 0.0 END) AS uptime "
    "FROM status_probes WHERE checked_at >= :since AND component <> 'provider' "
    "GROUP BY component, day ORDER BY day"
)


async def status_report(session: AsyncSession, settings: Settings) -> dict[str, Any]:
    latest = {r.component: r for r in (await session.execute(_LATEST)).all()}
    since = utcnow() - timedelta(days=90)
    uptime: dict[str, list[dict[str, Any]]] = {c: [] for c in COMPONENTS}
    for row in (await session.execute(_UPTIME, {"since": since})).all():
        uptime.setdefault(row.component, []).append(
            {"day": row.day.isoformat(), "uptime": round(float(row.uptime), 4)}
        )
    components = []
    for name in COMPONENTS:
        probe = latest.get(name)
        components.append(
            {
                "name": name,
                "label": LABELS[name],
                "state": probe.state if probe else "unknown",
                "latency_ms": float(probe.latency_ms)
                if probe and probe.latency_ms is not None
                else None,
                "detail": probe.detail if probe else "not probed yet",
                "checked_at": probe.checked_at.isoformat() if probe else None,
                "uptime_90d": uptime.get(name, []),
            }
        )
    provider = latest.get("provider")
    provider_name = provider_label(settings)
    incidents = (
        await session.execute(
            select(Incident)
            .where(Incident.opened_at >= since)
            .order_by(Incident.opened_at.desc())
            .limit(50)
        )
    ).scalars()
    paused, paused_reason = await _paused(session, settings)
    states = {c["state"] for c in components}
    overall = "down" if "down" in states else "degraded" if "degraded" in states else "operational"
    return {
        "overall": "paused" if paused else overall,
        "paused": paused,
        "paused_reason": paused_reason,
        "components": components,
        "provider": None  # the built-in model: no provider to show
        if provider_name is None
        else {
            "name": provider_name,
            "state": provider.state if provider else "unknown",
            "headline": provider.detail
            if provider
            else f"Upstream: {provider_name} — status unknown",
        },
        "incidents": [
            {
                "id": i.id,
                "component": i.component,
                "title": i.title,
                "opened_at": i.opened_at.isoformat(),
                "closed_at": i.closed_at.isoformat() if i.closed_at else None,
                "notes": i.notes,
            }
            for i in incidents
        ],
    }


async def _paused(session: AsyncSession, settings: Settings) -> tuple[bool, str | None]:
    if await is_paused(session):
        return True, "paused by the operator"
    day, _ = periods()
    spent = await session.scalar(
        text(
            "SELECT spent_usd + reserved_usd FROM ragship_counter(:g, :d)"  # all shards
        ),
        {"g": GLOBAL, "d": day},
    )
    if spent is not None and spent + settings.max_request_cost_usd > settings.global_daily_cap_usd:
        return True, "paused for today: the daily budget is used up (resumes 00:00 UTC)"
    return False, None
