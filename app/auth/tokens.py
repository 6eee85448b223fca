"""Personal access tokens: how scripts and integrations call the chat API.

A token is ``rs_`` followed by 43 URL-safe characters (256 random bits); the database holds
only its SHA-256, so a leaked table does not leak tokens, and the token is shown once, when
created. A request with ``Authorization: Bearer <token>`` acts as the token's user: it goes
through the same cap chain (keyed by the user), and each call it makes is recorded with the
token's id (`llm_calls.api_token_id`). No cookie is involved, so no CSRF check applies: a
browser never attaches this header to a cross-site request on its own.

Revoking a token, or the user, stops it at the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Runner, pipelined
from app.models import ApiToken, utcnow

TOKEN_PREFIX = "rs_"
SHOWN_CHARS = 10  # "rs_" and 7 more: enough to tell tokens apart in a list
LAST_USED_EVERY = timedelta(minutes=1)  # write last_used_at at most this often
# The token the current request came with; record_call (app/calls.py) stores it with the
# call. Set by the auth dependency; a context variable because it is per request and the
# call is settled deep in the stream, like the trace context.
CALLER_TOKEN: ContextVar[uuid.UUID | None] = ContextVar("ragship_caller_token", default=None)


@dataclass(frozen=True)
class TokenUser:
    token_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str


@dataclass(frozen=True)
class NewToken:
    row: ApiToken
    secret: str  # shown once


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 20 <= len(value) <= 100


async def create_token(
    session: AsyncSession, *, user_id: uuid.UUID, name: str, created_by: str
) -> NewToken:
    """A new token for ``user_id``; the secret is in the result and nowhere else."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=uuid.uuid4(),
        user_id=user_id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:SHOWN_CHARS],
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return NewToken(row, secret)


# A live token's row and its user's: one row, or none when the token is unknown or revoked
# or its user is.
_RESOLVE = text(
    """
    SELECT t.id, t.last_used_at, u.id, u.email, u.name
    FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_hash = :token_hash AND t.revoked_at IS NULL AND u.revoked_at IS NULL
    """
)


async def resolve_token(session: Runner, *, token: str) -> TokenUser | None:
    """The token's user, if the token exists and neither it nor its user is revoked. The
    lookup goes to psycopg as it is (`pipelined`), as a browser session's does
    (app/auth/sessions.py), in an ORM session or a Core connection; `last_used_at` is
    written at most every LAST_USED_EVERY."""
    if not looks_like_token(token):
        return None
    (rows,) = await pipelined(
        session, [(_RESOLVE, {"token_hash": hash_token(token)})], commit=False
    )
    if not rows:
        return None
    token_id, last_used_at, user_id, email, name = rows[0]
    now = utcnow()
    if last_used_at is None or now - last_used_at > LAST_USED_EVERY:
        await session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
        )
    return TokenUser(token_id, user_id, email, name)


async def list_tokens(session: AsyncSession, *, user_id: uuid.UUID | None) -> list[ApiToken]:
    """The tokens of ``user_id`` (None: everyone's, for admins), newest first."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc())
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list((await session.execute(query)).scalars())


async def revoke_token(
    session: AsyncSession, *, token_id: uuid.UUID, user_id: uuid.UUID | None
) -> bool:
    """Revoke a token of ``user_id`` (None: anyone's, for admins). False if there is none."""
    query = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    result = await session.execute(query.values(revoked_at=utcnow()))
    assert isinstance(result, CursorResult)  # an UPDATE's result: it counts its rows
    return result.rowcount == 1


def token_json(row: ApiToken) -> dict[str, object]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(row.id),
        "name": row.name,
        "prefix": row.prefix,
        "user_id": str(row.user_id),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }
