"""Dependency aliases: every injectable declared once, used as `Annotated` types in routes.

Every dependency is `async def`, even those that only read `app.state`: FastAPI runs a plain
`def` dependency in its thread pool, a hop to a worker thread and back on every request
(tests/test_deps.py holds them to that)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.auth.access import is_admin
from app.auth.csrf import SAFE_METHODS, require_csrf
from app.auth.sessions import SESSION_COOKIE, resolve_session
from app.auth.tokens import CALLER_TOKEN, resolve_token
from app.db_retry import run_idempotent
from app.observability.alerts import Alerter
from app.quality.watch import QualityWatch
from app.services import Services
from app.status.llm_health import LLMHealthCheck
from app.status.prober import Prober


class NotSignedIn(Exception):
    """No valid session: 401 JSON for API calls, a redirect to sign-in for pages."""


@dataclass(frozen=True)
class CurrentUser:
    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    csrf_token: str
    session_token: str


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_llm_health(request: Request) -> LLMHealthCheck:
    check: LLMHealthCheck = request.app.state.llm_health
    return check


async def get_prober(request: Request) -> Prober:
    prober: Prober = request.app.state.prober
    return prober


async def get_alerter(request: Request) -> Alerter:
    alerter: Alerter = request.app.state.alerter
    return alerter


AlerterDep = Annotated[Alerter, Depends(get_alerter)]


async def get_quality(request: Request) -> QualityWatch:
    quality: QualityWatch = request.app.state.quality
    return quality


QualityDep = Annotated[QualityWatch, Depends(get_quality)]
LLMHealthDep = Annotated[LLMHealthCheck, Depends(get_llm_health)]
ProberDep = Annotated[Prober, Depends(get_prober)]


async def get_current_user(request: Request, services: ServicesDep) -> CurrentUser:
    """The signed-in user; state-changing requests must also pass the CSRF checks."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise NotSignedIn()
    settings = services.settings
    # A lookup and at most one UPDATE (the sliding expiry): no transaction needed around them,
    # and no ORM session. Safe to run twice: no idle check first (app/db_retry.py).
    idle = timedelta(minutes=settings.session_idle_minutes)
    signed_in = await run_idempotent(
        services.sessions, lambda connection: resolve_session(connection, token=token, idle=idle)
    )
    if signed_in is None:
        raise NotSignedIn()
    services.recent_credentials.signed_in(token, signed_in.user_id)
    if request.method not in SAFE_METHODS:
        require_csrf(request, settings, signed_in.csrf_token)
    return CurrentUser(
        id=signed_in.user_id,
        email=signed_in.email,
        name=signed_in.name,
        is_admin=is_admin(settings, signed_in.email),
        csrf_token=signed_in.csrf_token,
        session_token=token,
    )


UserDep = Annotated[CurrentUser, Depends(get_current_user)]


async def get_api_user(request: Request, services: ServicesDep) -> CurrentUser:
    """The chat API's caller: a personal access token (``Authorization: Bearer``, no CSRF:
    no cookie is involved), else the signed-in browser session as for `UserDep`."""
    header = request.headers.get("authorization")
    if header is None:
        return await get_current_user(request, services)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "Use 'Authorization: Bearer <token>'.", headers={"WWW-Authenticate": "Bearer"}
        )
    # A lookup and at most one UPDATE (`last_used_at`), as for a browser session.
    caller = await run_idempotent(
        services.sessions, lambda connection: resolve_token(connection, token=token.strip())
    )
    if caller is None:
        raise HTTPException(
            401,
            "Invalid or revoked API token: create one on the Tokens page (docs/chat-api.md).",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    CALLER_TOKEN.set(caller.token_id)  # recorded with each call this request makes
    services.recent_credentials.signed_in(header, caller.user_id)
    return CurrentUser(
        id=caller.user_id,
        email=caller.email,
        name=caller.name,
        is_admin=False,  # a token reaches the chat API only, never the admin routes
        csrf_token="",
        session_token="",
    )


ApiUserDep = Annotated[CurrentUser, Depends(get_api_user)]


async def get_admin(user: UserDep) -> CurrentUser:
    if not user.is_admin:
        raise HTTPException(403, "Admins only.")
    return user


AdminDep = Annotated[CurrentUser, Depends(get_admin)]
