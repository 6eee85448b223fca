"""Upstream failures, classified, each with a message that is safe and useful to show users."""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime

import httpx
import openai

MESSAGES = {
    "rate_limit": "The upstream provider is busy (rate limited). Please try again in a minute.",
    "insufficient_quota": "The service is paused: the provider's spending limit has been reached.",
    "server_error": "The upstream provider is having problems right now. Please try again shortly.",
    "connection": "The upstream provider could not be reached. Please try again shortly.",
    "first_token_timeout": "The upstream provider did not start answering in time. "
    "Please try again.",
    "total_timeout": "The answer took too long and was stopped.",
    "broken_stream": "The answer was cut off by the upstream provider.",
    "breaker_open": "The upstream provider is degraded, so answers are paused for a moment. "
    "Please try again shortly.",
    "auth": "The service cannot authenticate with its provider.",
    "bad_request": "The upstream provider refused the request.",
}
RETRYABLE = frozenset({"rate_limit", "server_error", "connection", "first_token_timeout"})
# Failures only the operator can fix (a key, a bill): they raise an alert, and the user's
# message says whether one was sent (app/observability/upstream_alarm.py).
OPERATOR_KINDS = frozenset({"auth", "insufficient_quota"})
ALERTED = " The operator has been alerted."
NOT_ALERTED = " Please let the operator of this service know."


class UpstreamError(Exception):
    """The upstream failed: ``kind`` says how; ``str()`` is the message for the user."""

    def __init__(
        self, kind: str, *, started: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(MESSAGES.get(kind, "The language model returned an error."))
        self.kind = kind
        self.started = started  # tokens were already streamed: never retried
        self.retry_after_s = retry_after_s
        if kind in OPERATOR_KINDS:
            self.operator_alerted(False)

    def operator_alerted(self, alerted: bool) -> None:
        """Say in the user's message whether the operator was told (only true if an alert
        was delivered to at least one channel)."""
        base = MESSAGES.get(self.kind, "The language model returned an error.")
        self.args = (base + (ALERTED if alerted else NOT_ALERTED),)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE and not self.started


def classify(err: Exception, *, started: bool) -> UpstreamError:
    if isinstance(err, openai.APIStatusError):
        retry_after = parse_retry_after(err.response.headers.get("retry-after"))
        if err.status_code == 429:
            kind = "insufficient_quota" if err.code == "insufficient_quota" else "rate_limit"
        elif err.status_code in (401, 403):
            kind = "auth"
        elif err.status_code >= 500 or err.status_code == 408:
            kind = "server_error"
        else:
            kind = "bad_request"
        return UpstreamError(kind, started=started, retry_after_s=retry_after)
    if isinstance(err, openai.APITimeoutError):
        return UpstreamError("broken_stream" if started else "connection", started=started)
    if isinstance(err, openai.APIConnectionError | httpx.HTTPError):
        return UpstreamError("broken_stream" if started else "connection", started=started)
    if isinstance(err, openai.APIError | json.JSONDecodeError):
        return UpstreamError("broken_stream", started=True)
    raise err


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
