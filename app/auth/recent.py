"""Credentials that signed in on this worker recently: a hint, never a sign-in.

The chat route starts a question's embedding before the sign-in lookup has answered
(app/routes/chat.py `early_embedding`). Starting it for any request that merely carries a
cookie or an `Authorization` header let an anonymous client keep a core busy with made-up
credentials; now it starts only for a credential this worker signed in within `ttl_s`
(the page's own `/api/me` at load, or the caller's previous request). The sign-in itself
is checked as always, against the database. Per worker and in memory: a hint that only
picks when work starts, nothing replicas must agree on. A credential signed out on
another worker stays here until it expires, and costs at most a wasted embedding.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

SIZE = 4096  # credentials kept, the least recently signed in dropped first
TTL_S = 600.0


class RecentCredentials:
    """Hashes (SHA-256) of up to `size` credentials, each kept `ttl_s` seconds after it
    last signed in on this worker."""

    def __init__(
        self, *, size: int = SIZE, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def signed_in(self, credential: str) -> None:
        """Record that ``credential`` (a session cookie's value, or an `Authorization`
        header as sent) signed in now."""
        key = _key(credential)
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def __contains__(self, credential: str) -> bool:
        seen = self._seen.get(_key(credential))
        return seen is not None and self._clock() - seen < self._ttl_s


def _key(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()
