"""Layer 2 beside the sign-in: on an idle worker, the rate limit runs during the sign-in lookup.

A chat request's sign-in lookup (PostgreSQL) and its rate limit (the store) were two round
trips, one after the other, because the rate limit needs the caller's user id. A
credential that signed in on this worker lately names its user already
(app/auth/recent.py `RecentCredentials.user_of`), so on a worker with nothing else in
flight (IDLE_OVERLAP, app/routes/chat.py) the route starts the rate limit for that user
when it starts the lookup, and the two round trips overlap (`limit_beside`). The outcome is
used only when the lookup signs in that very user, and only after it has: a caller who is
not signed in gets 401 as before, never a 429, and a refusal is recorded by the chain as
ever (app/caps/chain.py takes it with `EarlyLimit.take`).

The order of the chain holds for every request that is answered: input bounds (checked
before the rate limit starts: the route's early embedding validated the body), sign-in,
rate limit. What it costs: a credential signed out or revoked since it last signed in
here (within RecentCredentials' TTL) counts one request in its own user's window and takes
a stream slot that it gives back at once; a request refused after the rate limit (the
overload gate) gives its slot back the same way (`EarlyLimit.give_back`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio

from app.caps.ratelimit import RateLimiter, StreamLease
from app.caps.refusal import CapRefused


class HasId(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


U = TypeVar("U", bound=HasId)


@dataclass
class EarlyLimit:
    """The rate limit's outcome for ``user_id``, decided beside the sign-in: the stream
    lease it took, or the refusal it raised."""

    user_id: uuid.UUID
    lease: StreamLease | None = None
    refused: CapRefused | None = None
    taken: bool = False

    def take(self) -> StreamLease:
        """The lease, for the chain's layer 2; raises the refusal (`CapRefused`) instead
        when the limit refused."""
        self.taken = True
        if self.refused is not None:
            raise self.refused
        assert self.lease is not None  # one of the two is set (`_decide`)
        return self.lease

    async def give_back(self, limiter: RateLimiter) -> None:
        """Release a lease nobody took (the request ended before its chain's layer 2); a
        no-op once taken, or when the limit refused. Idempotent."""
        if self.taken or self.lease is None:
            return
        self.taken = True
        await limiter.release(self.lease)


async def limit_beside(
    limiter: RateLimiter, user_id: uuid.UUID, sign_in: Awaitable[U]
) -> tuple[U, EarlyLimit | None]:
    """Await ``sign_in`` (the sign-in lookup) while the rate limit runs for ``user_id``
    (the credential's hinted user); return the signed-in user and the limit's outcome, or
    None when the sign-in named another user (the lease, if any, is released: the chain
    then asks the limiter as usual). Raises what ``sign_in`` raises, after the limit's
    round trip has ended and its lease was released; what the limiter raises other than
    `CapRefused` (nothing, as `RateLimiter.admit` answers a failed store with one)."""
    deciding = asyncio.ensure_future(_decide(limiter, user_id))
    try:
        user = await sign_in
    except BaseException:
        with anyio.CancelScope(shield=True):
            await asyncio.wait([deciding])
            if not deciding.cancelled() and deciding.exception() is None:
                await deciding.result().give_back(limiter)
        raise
    with anyio.CancelScope(shield=True):  # a lease, once taken, must be known to be released
        early = await deciding
    if user.id != user_id:
        await early.give_back(limiter)
        return user, None
    return user, early


async def _decide(limiter: RateLimiter, user_id: uuid.UUID) -> EarlyLimit:
    try:
        return EarlyLimit(user_id, lease=await limiter.admit(user_id))
    except CapRefused as refused:
        return EarlyLimit(user_id, refused=refused)
