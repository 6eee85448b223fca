"""Personal access tokens over HTTP: each user manages their own; admins manage service
accounts' tokens and can revoke anyone's. Creating and revoking take a browser session
(cookie + CSRF), never a token: a leaked token cannot mint more."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.tokens import create_token, list_tokens, revoke_token, token_json
from app.db import session_scope
from app.deps import AdminDep, ServicesDep, UserDep
from app.models import User, utcnow
from app.textclean import CleanStr

router = APIRouter(tags=["tokens"])
SERVICE_DOMAIN = "service-account.invalid"  # RFC 2606: can never be a real sign-in email
_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class TokenRequest(BaseModel):
    name: CleanStr = Field(min_length=1, max_length=100)


@router.get("/api/tokens")
async def my_tokens(user: UserDep, services: ServicesDep) -> list[dict[str, Any]]:
    """The caller's tokens (never the secrets), newest first."""
    async with session_scope(services.sessions) as session:
        return [token_json(t) for t in await list_tokens(session, user_id=user.id)]


@router.post("/api/tokens", status_code=201)
async def new_token(body: TokenRequest, user: UserDep, services: ServicesDep) -> dict[str, Any]:
    """A new token for the caller: ``token`` is in this response only."""
    async with session_scope(services.sessions) as session:
        made = await create_token(session, user_id=user.id, name=body.name, created_by=user.email)
        return {**token_json(made.row), "token": made.secret}


@router.delete("/api/tokens/{token_id}")
async def revoke_my_token(
    token_id: uuid.UUID, user: UserDep, services: ServicesDep
) -> dict[str, str]:
    async with session_scope(services.sessions) as session:
        if not await revoke_token(session, token_id=token_id, user_id=user.id):
            raise HTTPException(404, "No such token (or already revoked).")
    return {"revoked": str(token_id)}


@router.get("/api/admin/tokens")
async def all_tokens(admin: AdminDep, services: ServicesDep) -> list[dict[str, Any]]:
    async with session_scope(services.sessions) as session:
        return [token_json(t) for t in await list_tokens(session, user_id=None)]


@router.post("/api/admin/service-accounts/{account}/tokens", status_code=201)
async def new_service_token(
    account: str, body: TokenRequest, admin: AdminDep, services: ServicesDep
) -> dict[str, Any]:
    """A token for the service account ``account`` (lower-case letters, digits, hyphens),
    created on first use as the user ``<account>@service-account.invalid``: its calls count
    against its own caps, apart from any person's."""
    if not _ACCOUNT.match(account):
        raise HTTPException(422, "account: lower-case letters, digits and hyphens, 1-63 chars.")
    email = f"{account}@{SERVICE_DOMAIN}"
    async with session_scope(services.sessions) as session:
        user = await session.scalar(select(User).where(User.email == email))
        if user is None:
            user = User(id=uuid.uuid4(), email=email, name=account, created_at=utcnow())
            session.add(user)
            await session.flush()
        made = await create_token(session, user_id=user.id, name=body.name, created_by=admin.email)
        return {**token_json(made.row), "account": email, "token": made.secret}


@router.delete("/api/admin/tokens/{token_id}")
async def revoke_any_token(
    token_id: uuid.UUID, admin: AdminDep, services: ServicesDep
) -> dict[str, str]:
    async with session_scope(services.sessions) as session:
        if not await revoke_token(session, token_id=token_id, user_id=None):
            raise HTTPException(404, "No such token (or already revoked).")
    return {"revoked": str(token_id)}
