"""Admin-only APIs: invites (create, list, revoke) and users (list, revoke, restore)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text, update

from app.auth.access import create_invite
from app.auth.sessions import end_all_sessions
from app.caps.killswitch import is_paused, set_paused
from app.db import session_scope
from app.deps import AdminDep, ProberDep, ServicesDep
from app.feedback import draft_cases
from app.http.params import RowId
from app.models import Incident, Invite, User, utcnow
from app.routes.pages import STATIC_DIR
from app.textclean import CleanStr

router = APIRouter(tags=["admin"])
_USER_TOTALS = text(
    "SELECT user_id, sum(cost_usd) AS cost, sum(calls) AS calls FROM user_rollups_daily "
    "WHERE day >= :since GROUP BY user_id"
)


class InviteRequest(BaseModel):
    max_uses: int = Field(1, ge=1, le=10_000)
    expires_in_days: float = Field(7, gt=0, le=365)
    note: CleanStr = Field("", max_length=200)


def _invite_json(invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.id,
        "code": invite.code,
        "url": f"/invite/{invite.code}",
        "note": invite.note,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "expires_at": invite.expires_at.isoformat(),
        "revoked": invite.revoked_at is not None,
        "created_by": invite.created_by,
    }


@router.get("/admin", include_in_schema=False)
async def admin_page(admin: AdminDep) -> FileResponse:
    return FileResponse(STATIC_DIR / "admin.html", headers={"Cache-Control": "no-cache"})


@router.post("/api/admin/invites", status_code=201)
async def new_invite(body: InviteRequest, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        invite = await create_invite(
            session,
            max_uses=body.max_uses,
            expires_at=utcnow() + timedelta(days=body.expires_in_days),
            created_by=admin.email,
            note=body.note,
        )
        return _invite_json(invite)


@router.get("/api/admin/invites")
async def list_invites(admin: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        invites = (await session.execute(select(Invite).order_by(Invite.id.desc()))).scalars()
        return [_invite_json(i) for i in invites]


@router.delete("/api/admin/invites/{invite_id}")
async def revoke_invite(invite_id: RowId, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        invite = await session.get(Invite, invite_id)
        if invite is None:
            raise HTTPException(404, "No such invite.")
        invite.revoked_at = invite.revoked_at or utcnow()
        return _invite_json(invite)


@router.get("/api/admin/users")
async def list_users(admin: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    """Users with their spend and requests over the last 30 days (from the rollups)."""
    since = (utcnow() - timedelta(days=30)).date()
    async with session_scope(services.sessions) as session:
        users = (await session.execute(select(User).order_by(User.created_at))).scalars().all()
        totals = {row.user_id: row for row in await session.execute(_USER_TOTALS, {"since": since})}
    return [
        {
            "id": str(u.id),
            "email": u.email,
            "name": u.name,
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "revoked": u.revoked_at is not None,
            "spend_30d_usd": str(totals[u.id].cost) if u.id in totals else "0",
            "requests_30d": int(totals[u.id].calls) if u.id in totals else 0,
        }
        for u in users
    ]


@router.post("/api/admin/users/{user_id}/revoke")
async def revoke_user(user_id: uuid.UUID, admin: AdminDep, services: ServicesDep) -> dict[str, Any]:
    """Sign the user out everywhere at once and keep them out until restored."""
    async with session_scope(services.sessions) as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(revoked_at=utcnow()).returning(User.id)
        )
        if result.scalar_one_or_none() is None:
            raise HTTPException(404, "No such user.")
        ended = await end_all_sessions(session, user_id=user_id)
    return {"revoked": str(user_id), "sessions_ended": ended}


@router.post("/api/admin/users/{user_id}/restore")
async def restore_user(
    user_id: uuid.UUID, admin: AdminDep, services: ServicesDep
) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        result = await session.execute(
            update(User).where(User.id == user_id).values(revoked_at=None).returning(User.id)
        )
        if result.scalar_one_or_none() is None:
            raise HTTPException(404, "No such user.")
    return {"restored": str(user_id)}


class KillSwitch(BaseModel):
    paused: bool


@router.get("/api/admin/kill-switch")
async def get_kill_switch(admin: AdminDep, services: ServicesDep) -> dict[str, bool]:
    async with session_scope(services.sessions) as session:
        return {"paused": await is_paused(session)}


@router.post("/api/admin/kill-switch")
async def put_kill_switch(
    body: KillSwitch, admin: AdminDep, services: ServicesDep
) -> dict[str, bool]:
    """Pause (or resume) every LLM call on every replica at once."""
    async with session_scope(services.sessions) as session:
        await set_paused(session, paused=body.paused, by=admin.email)
    return {"paused": body.paused}


class IncidentNote(BaseModel):
    notes: CleanStr = Field(max_length=2000)


@router.post("/api/admin/status/probe")
async def probe_now(admin: AdminDep, prober: ProberDep) -> list[dict[str, Any]]:
    """Run the status prober now (it also runs every STATUS_PROBE_INTERVAL_S)."""
    return [vars(p) for p in await prober.run_once(force=True)]


@router.post("/api/admin/incidents/{incident_id}/notes")
async def note_incident(
    incident_id: RowId, body: IncidentNote, admin: AdminDep, services: ServicesDep
) -> dict[str, Any]:
    async with session_scope(services.sessions) as session:
        incident = await session.get(Incident, incident_id)
        if incident is None:
            raise HTTPException(404, "No such incident.")
        incident.notes = body.notes
        return {"id": incident.id, "notes": incident.notes}


@router.get("/api/admin/feedback/draft-cases")
async def feedback_drafts(admin: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    """Thumbs-down answers as draft eval cases: review, complete, add to evals/cases."""
    async with session_scope(services.sessions) as session:
        return await draft_cases(session)
