"""Credentials that signed in on this worker recently: a hint, never a sign-in.

The chat route starts a question's embedding before the sign-in lookup has answered
(app/routes/chat.py `early_embedding`). Starting it for any request that merely carries a
cookie or an `Authorization` header let an anonymous client keep a core busy with made-up
credentials; now it starts only for a credential this worker signed in within `ttl_s`
(the page's own `/api/me` at load, or the caller's previous request). The sign-in itself
is checked as always, against the database. Each credential keeps the user it signed in
(a session or a token belongs to one user for its whole life): on an idle worker the rate
limit starts for that user beside the sign-in lookup (app/caps/overlap.py). Per worker and
in memory: a hint that only picks when work starts, nothing replicas must agree on. A
credential signed out on another worker stays here until it expires, and costs at most a
wasted embedding and one request counted in its own user's rate-limit window.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

SIZE = 4096  # credentials kept, the least recently signed in dropped first
TTL_S = 600.0


class RecentCredentials:
    """Hashes (SHA-256) of up to `size` credentials, each with the user it signed in, kept
    `ttl_s` seconds after it last signed in on this worker."""

    def __init__(
        self, *, size: int = SIZE, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock
        self._seen: OrderedDict[bytes, tuple[float, uuid.UUID]] = OrderedDict()

    def signed_in(self, credential: str, user_id: uuid.UUID) -> None:
        """Record that ``credential`` (a session cookie's value, or an `Authorization`
        header as sent) signed ``user_id`` in now."""
        key = _key(credential)
        self._seen[key] = (self._clock(), user_id)
        self._seen.move_to_end(key)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def user_of(self, credential: str) -> uuid.UUID | None:
        """The user ``credential`` signed in when it last did, within `ttl_s`; else None.
        A hint, never a sign-in."""
        seen = self._seen.get(_key(credential))
        if seen is None or self._clock() - seen[0] >= self._ttl_s:
            return None
        return seen[1]

    def __contains__(self, credential: str) -> bool:
        return self.user_of(credential) is not None


def _key(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()
