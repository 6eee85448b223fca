"""The public status page (/status) and its JSON twin (/api/status) for uptime monitors."""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.db import session_scope
from app.deps import ServicesDep
from app.routes.html import human_time, page
from app.status.report import status_report

router = APIRouter(tags=["status"])
_STATES = frozenset({"operational", "degraded", "down", "unknown"})  # CSS: .state-<state>


@router.get("/api/status")
async def api_status(services: ServicesDep) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        return await status_report(session, services.settings)


@router.get("/status", include_in_schema=False)
async def status_page(services: ServicesDep) -> HTMLResponse:
    async with session_scope(services.sessions) as session:
        report = await status_report(session, services.settings)
    parts = [f"<p class='overall'>Overall: <strong>{escape(report['overall'])}</strong>"]
    if report["paused"]:
        parts.append(f" — {escape(report['paused_reason'] or '')}")
    parts.append("</p>")
    provider = report["provider"]
    if provider is not None:
        parts.append(f"<p class='provider'>{escape(provider['headline'])}</p>")
    parts.append(
        "<table><tr><th>Component</th><th>State</th><th>Response</th><th>Last 90 days</th></tr>"
    )
    for c in report["components"]:
        latency = f"{c['latency_ms']:.0f} ms" if c["latency_ms"] is not None else "–"
        bars = "".join(
            f"<span title='{escape(d['day'])}: {d['uptime'] * 100:.1f}%' "
            f"class='bar bar-{_bar(d['uptime'])}'></span>"
            for d in c["uptime_90d"]
        )
        parts.append(
            f"<tr><td>{escape(c['label'])}</td><td class='state-{_state(c['state'])}'>"
            f"{escape(c['state'])}</td><td>{latency}</td><td class='bars'>{bars}</td></tr>"
        )
    parts.append("</table><h2>Incidents</h2>")
    if not report["incidents"]:
        parts.append("<p>No incidents in the last 90 days.</p>")
    for i in report["incidents"]:
        state = "resolved " + human_time(i["closed_at"]) if i["closed_at"] else "ongoing"
        notes = f"<br><em>{escape(i['notes'])}</em>" if i["notes"] else ""
        parts.append(
            f"<p class='incident'><strong>{escape(i['title'])}</strong><br>"
            f"opened {escape(human_time(i['opened_at']))}, {escape(state)}{notes}</p>"
        )
    parts.append("<p><a href='/'>← Back to the chat</a></p>")
    return page("Status", "".join(parts))


def _bar(uptime: float) -> str:
    """The state a day's uptime bar is coloured as (no inline styles: the CSP forbids them)."""
    if uptime >= 0.999:
        return "operational"
    return "degraded" if uptime >= 0.95 else "down"


def _state(state: str) -> str:
    return state if state in _STATES else "unknown"
