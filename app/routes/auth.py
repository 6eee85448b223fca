"""Sign-in and sign-out: OpenID Connect (Google by default), invites, and dev sign-in.

The sign-in flow's own state (OIDC state, nonce, PKCE verifier, the page to return to, an
invite code) lives in a short-lived signed cookie; the session itself is server-side.
"""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta
from decimal import Decimal
from html import escape
from typing import Any

import httpx
from authlib.integrations.base_client.errors import OAuthError
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from joserfc.errors import JoseError

from app.auth.access import DEV_ADMIN_EMAIL, AccessDenied, Identity, admit
from app.auth.csrf import require_same_origin
from app.auth.sessions import SESSION_COOKIE, create_session, end_session
from app.caps.killswitch import is_paused
from app.caps.refusal import seconds_to_midnight_utc
from app.caps.spend import remaining_display, spend_today
from app.db import session_scope
from app.deps import ServicesDep, UserDep
from app.routes.html import message_page, page
from app.services import Services
from app.textclean import clean_text

router = APIRouter(tags=["auth"])
log = logging.getLogger("ragship.auth")


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a signed-in user to another site."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def dev_login_allowed(request: Request, services: Services) -> bool:
    settings = services.settings
    if not settings.dev_login_enabled or request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def _sign_in(
    services: Services,
    identity: Identity,
    *,
    invite: str | None,
    next_url: str,
    skip_allowlist: bool = False,
) -> Response:
    settings = services.settings
    try:
        async with session_scope(services.sessions) as session:
            user = await admit(
                session, settings, identity, invite_code=invite, skip_allowlist=skip_allowlist
            )
            token = await create_session(
                session,
                user_id=user.id,
                idle=timedelta(minutes=settings.session_idle_minutes),
                max_age=timedelta(hours=settings.session_max_hours),
            )
    except AccessDenied as denied:
        return message_page("Not allowed", str(denied), status_code=403)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_max_hours * 3600,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
    )
    return response


@router.get("/auth/login", include_in_schema=False)
async def login_page(request: Request, services: ServicesDep, next: str = "/") -> Response:
    target = escape(_safe_next(next), quote=True)
    parts = [
        "<p class='lead'>An assistant that answers questions about ragship's documentation "
        "(how to run, configure and deploy it), citing the pages each answer comes from.</p>"
    ]
    if request.session.get("invite"):
        parts.append("<p>You have an invite: sign in to accept it.</p>")
    if services.oidc is not None:
        parts.append(
            f"<p><a class='button-link' href='/auth/start?next={target}'>"
            "Sign in with Google</a></p>"
        )
    if dev_login_allowed(request, services):
        parts.append(
            "<form method='post' action='/auth/dev-login'><h2>Dev sign-in</h2>"
            "<p class='muted'>Local development only: no password. <em>Sign in as admin</em> "
            f"uses {escape(DEV_ADMIN_EMAIL)}, an admin in dev without ADMIN_EMAILS.</p>"
            f"<input type='hidden' name='next' value='{target}'>"
            "<label for='dev-email'>Email</label><input id='dev-email' name='email' type='email'"
            " value='dev@localhost.test' required>"
            "<label for='dev-name'>Name</label><input id='dev-name' name='name' value='Dev'>"
            "<p class='actions'><button type='submit'>Sign in</button> "
            "<button type='submit' name='as_admin' value='1' formnovalidate>Sign in as admin"
            "</button></p></form>"
        )
    if len(parts) == 1:
        parts.append("<p>Sign-in is not configured: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET.</p>")
    return page("Sign in", f"<div class='signin'>{''.join(parts)}</div>")


@router.get("/auth/start", include_in_schema=False)
async def start(request: Request, services: ServicesDep, next: str = "/") -> Response:
    if services.oidc is None:
        raise HTTPException(404, "Sign-in with an identity provider is not configured.")
    request.session["next"] = _safe_next(next)
    public = services.settings.public_url
    redirect_uri = (
        f"{public.rstrip('/')}/auth/callback" if public else str(request.url_for("auth_callback"))
    )
    response: Response = await services.oidc.authorize_redirect(request, redirect_uri)
    return response


@router.get("/auth/callback", name="auth_callback", include_in_schema=False)
async def callback(request: Request, services: ServicesDep) -> Response:
    if services.oidc is None:
        raise HTTPException(404, "Sign-in with an identity provider is not configured.")
    try:
        token: dict[str, Any] = await services.oidc.authorize_access_token(request)
    except httpx.HTTPError as err:
        log.warning("identity provider unreachable: %r", err)
        return message_page(
            "Sign-in failed", "The identity provider could not be reached.", status_code=502
        )
    except (OAuthError, JoseError) as err:
        detail = (
            getattr(err, "description", None) or getattr(err, "error", None) or type(err).__name__
        )
        log.info("sign-in refused: %s", detail)
        return message_page(
            "Sign-in failed",
            f"Sign-in could not be completed ({detail}). Please try again.",
            status_code=400,
        )
    claims = token.get("userinfo") or {}
    # Claims are outside text too: the provider's name for a user may hold anything.
    email = clean_text(str(claims.get("email") or "")).strip()
    if not email:
        return message_page(
            "Sign-in failed", "The provider did not share an email address.", status_code=400
        )
    identity = Identity(
        email=email,
        name=clean_text(str(claims.get("name") or "")),
        email_verified=claims.get("email_verified") is True,
    )
    invite = request.session.pop("invite", None)
    next_url = request.session.pop("next", "/")
    return await _sign_in(services, identity, invite=invite, next_url=next_url)


@router.post("/auth/dev-login", include_in_schema=False)
async def dev_login(
    request: Request,
    services: ServicesDep,
    email: str = Form("", max_length=200),  # empty with as_admin (the button skips it)
    name: str = Form(""),
    next: str = Form("/"),
    as_admin: bool = Form(False),
) -> Response:
    if not dev_login_allowed(request, services):
        raise HTTPException(404, "Not Found")
    require_same_origin(request, services.settings)
    email, name, next = clean_text(email).strip(), clean_text(name).strip(), clean_text(next)
    if as_admin:
        email, name = DEV_ADMIN_EMAIL, "Dev admin"
    if "@" not in email:
        return message_page("Sign-in failed", "Enter an email address.", status_code=400)
    # Dev sign-in lets any email in: it exists only in dev mode, on this machine.
    identity = Identity(email=email, name=name, email_verified=True)
    return await _sign_in(services, identity, invite=None, next_url=next, skip_allowlist=True)


@router.post("/auth/logout")
async def logout(user: UserDep, services: ServicesDep) -> JSONResponse:
    async with session_scope(services.sessions) as session:
        await end_session(session, token=user.session_token)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, secure=services.settings.secure_cookies, samesite="lax"
    )
    return response


@router.get("/invite/{code}", include_in_schema=False)
async def accept_invite(code: str, request: Request) -> RedirectResponse:
    request.session["invite"] = clean_text(code)[:100]
    return RedirectResponse("/auth/login", status_code=303)


@router.get("/api/me")
async def me(user: UserDep, services: ServicesDep) -> dict[str, Any]:
    """Who is signed in, the CSRF token for state-changing calls, and today's budget."""
    async with session_scope(services.sessions) as session:
        spent, reserved = await spend_today(session, user_id=user.id)
        paused = await is_paused(session)
    cap = services.settings.user_daily_cap_usd
    return {
        "email": user.email,
        "name": user.name,
        "is_admin": user.is_admin,
        "csrf_token": user.csrf_token,
        "budget": {
            "daily_cap_usd": str(cap),
            "spent_today_usd": str(spent.quantize(Decimal("0.000001"))),
            "remaining_today_usd": remaining_display(cap, spent, reserved),
            "resets_in_s": seconds_to_midnight_utc(),
        },
        "paused": paused,
        "max_message_chars": services.settings.max_message_chars,
    }
