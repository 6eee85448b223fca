"""A circuit breaker per upstream model: after repeated failures, fail fast for a cool-down
instead of piling requests onto a provider that is down; then let one request try again.

Kept per replica on purpose: each replica learns on its own that the upstream is down
within a few requests, and nothing is lost if replicas disagree for a moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

Permit = Literal["pass", "trial"]


class CircuitBreaker:
    def __init__(
        self, *, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._trial_running = False
        self.reason = ""

    @property
    def state(self) -> str:
        if self._failures < self.threshold and not self._open_until:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    def retry_in_s(self) -> float:
        return max(self._open_until - self._clock(), 0.0)

    def allow(self) -> bool:
        return self.admit() is not None

    def admit(self) -> Permit | None:
        """May a request go upstream? "pass" while closed; "trial" for the one request that
        tests a half-open upstream, which must end in a verdict (`record_success`,
        `record_failure`, `trip`) or `release_trial()`; None to fail fast."""
        state = self.state
        if state == "closed":
            return "pass"
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return "trial"
        return None

    def record_success(self) -> None:
        # Closed now. The trial flag is read only while half-open, and only trip() makes
        # the breaker half-open again (after its cool-down): trip() clears the flag.
        self._failures = 0
        self._open_until = 0.0
        self.reason = ""

    def release_trial(self) -> None:
        """The trial request ended without a verdict (its client left, its task was
        cancelled, any other exception): let another request try."""
        self._trial_running = False

    def record_failure(self, reason: str) -> None:
        # A trial ends here too: while half-open the count is at the threshold already (only
        # trip() leaves closed, and it raises the count to the threshold), so this trips,
        # and trip() clears the trial flag.
        self._failures += 1
        if self._failures >= self.threshold:
            self.trip(self.cooldown_s, reason)

    def trip(self, cooldown_s: float, reason: str) -> None:
        self._failures = max(self._failures, self.threshold)
        self._open_until = self._clock() + cooldown_s
        self._trial_running = False
        self.reason = reason
