"""Who may enter: the allowlist (emails, domains), admins, invited users and invite codes."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Invite, User, utcnow
from app.settings import Settings


class AccessDenied(Exception):
    """Sign-in refused; the message is shown to the person."""


@dataclass(frozen=True)
class Identity:
    email: str
    name: str
    email_verified: bool


# The dev sign-in's "Sign in as admin" identity: an admin only while dev sign-in is enabled
# (ENV=dev, on this machine), so a developer can see the admin pages without restarting
# with ADMIN_EMAILS. `.test` is a reserved TLD: no identity provider issues it.
DEV_ADMIN_EMAIL = "admin@localhost.test"


def is_admin(settings: Settings, email: str) -> bool:
    email = email.lower()
    return email in settings.admin_emails or (
        settings.dev_login_enabled and email == DEV_ADMIN_EMAIL
    )


def on_allowlist(settings: Settings, email: str) -> bool:
    email = email.lower()
    domain = email.rpartition("@")[2]
    return (
        email in settings.allowed_emails
        or domain in settings.allowed_domains
        or is_admin(settings, email)
    )


async def admit(
    session: AsyncSession,
    settings: Settings,
    identity: Identity,
    *,
    invite_code: str | None,
    skip_allowlist: bool = False,
) -> User:
    """The user to sign in, creating them if new; raises AccessDenied for anyone not let in."""
    if not identity.email_verified:
        raise AccessDenied(f"The provider has not verified the email address {identity.email}.")
    email = identity.email.lower()
    user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if user is not None and user.revoked_at is not None:
        raise AccessDenied(f"Access for {email} has been revoked by the operator.")
    invite_id: int | None = None
    invited_before = user is not None and user.invited_by is not None
    if not (skip_allowlist or invited_before or on_allowlist(settings, email)):
        if not invite_code:
            raise AccessDenied(f"{email} is not on this service's list of allowed users.")
        invite_id = await consume_invite(session, invite_code)
        if invite_id is None:
            raise AccessDenied("This invite code is not valid: it was used up, expired or revoked.")
    if user is None:
        user = await _create_user(session, email=email, name=identity.name or email)
    if invite_id is not None:
        user.invited_by = invite_id
    user.last_login_at = utcnow()
    await session.flush()
    return user


async def _create_user(session: AsyncSession, *, email: str, name: str) -> User:
    """A new user, or the one a concurrent first sign-in with the same email just created
    (two tabs, two replicas): the unique email decides, under a savepoint, so neither
    sign-in fails."""
    try:
        async with session.begin_nested():
            user = User(id=uuid.uuid4(), email=email, name=name)
            session.add(user)
            await session.flush()
    except IntegrityError:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
    return user


async def consume_invite(session: AsyncSession, code: str) -> int | None:
    """Use one use of an invite, atomically: two people cannot both take the last use."""
    result = await session.execute(
        update(Invite)
        .where(
            Invite.code == code,
            Invite.uses < Invite.max_uses,
            Invite.expires_at > utcnow(),
            Invite.revoked_at.is_(None),
        )
        .values(uses=Invite.uses + 1)
        .returning(Invite.id)
    )
    return result.scalar_one_or_none()


async def create_invite(
    session: AsyncSession, *, max_uses: int, expires_at: datetime, created_by: str, note: str
) -> Invite:
    invite = Invite(
        code=secrets.token_urlsafe(12),
        max_uses=max_uses,
        uses=0,
        expires_at=expires_at,
        created_by=created_by,
        note=note,
        created_at=utcnow(),
    )
    session.add(invite)
    await session.flush()
    return invite
