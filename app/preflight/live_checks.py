"""The checklist items observed on a running deployment (`make preflight URL=...`).

Without PREFLIGHT_TOKEN, only what needs no identity is observed (health, anonymous and
cross-site refusals, /health/llm); the chat items are left to confirm by hand. With it,
the preflight chats as that token's user: one answer to observe the stream and the ledger,
then questions with max_tokens=1 until the rate limit answers 429 (a few cents at most).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from app.preflight.checklist import Item, by_hand, failed, passed
from app.settings import Settings

FIRST_BYTE_BOUND_S = 10.0  # a user waits this long for the first sign of life, at most
MIN_SPREAD_S = 0.2  # first event this long before the last: the stream was not buffered
QUESTION = "What does this service answer questions about?"
CROSS_SITE = "https://preflight-cross-site.invalid"


@dataclass
class StreamSeen:
    status: int
    first_byte_s: float | None = None
    first_event_s: float | None = None
    last_event_s: float | None = None
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    heartbeats: int = 0


def live_items(url: str, settings: Settings, *, timeout_s: float = 120.0) -> list[Item]:
    base = url.rstrip("/")
    with httpx.Client(base_url=base, timeout=timeout_s) as client:
        items = [_health(client), _anonymous(client), _cross_site(client), _llm_health(client)]
        token = settings.preflight_token
        if token is None:
            step = (
                "create a token (POST /api/tokens, or an admin's service-account token), set "
                "PREFLIGHT_TOKEN and run again; or ask a question in the browser and check "
                "that the answer streams word by word"
            )
            for id, title in (
                ("stream", "Streaming end to end"),
                ("ledger", "A call is recorded in the ledger"),
                ("rate_limit", "Rate limit observed"),
            ):
                items.append(by_hand(id, title, step, "PREFLIGHT_TOKEN is not set"))
            return items
        client.headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        seen = _stream(client, {"message": QUESTION})
        items += [_streaming(seen, settings), _ledger(seen), _rate_limit(client, settings)]
    return items


def _health(client: httpx.Client) -> Item:
    title = "/healthz and /readyz green"
    codes = {}
    for path in ("/healthz", "/readyz"):
        try:
            codes[path] = client.get(path).status_code
        except httpx.HTTPError as err:
            codes[path] = f"unreachable ({type(err).__name__})"  # type: ignore[assignment]
    detail = ", ".join(f"{p} {c}" for p, c in codes.items())
    if all(c == 200 for c in codes.values()):
        return passed("health", title, detail)
    return failed("health", title, detail, "See docs/resilience.md#health-endpoints.")


def _anonymous(client: httpx.Client) -> Item:
    title = "Every LLM route refuses anonymous calls"
    attempts = {
        "no credentials": {},
        "a made-up token": {"Authorization": "Bearer rs_preflight-made-up-0000000000"},
    }
    let_in = []
    for what, headers in attempts.items():
        response = client.post("/api/chat", json={"message": QUESTION}, headers=headers)
        if response.status_code not in (401, 403):
            let_in.append(f"POST /api/chat with {what}: HTTP {response.status_code}")
    if let_in:
        return failed(
            "anonymous",
            title,
            "; ".join(let_in),
            "Something in front of the app answers or signs in for anonymous callers (a proxy "
            "adding an Authorization header or cookie?): remove it; anyone could spend "
            "your budget.",
        )
    return passed("anonymous", title, "POST /api/chat: 401 without a valid identity")


def _cross_site(client: httpx.Client) -> Item:
    title = "A cross-site POST is refused"
    response = client.post(
        "/api/chat",
        json={"message": QUESTION},
        headers={"Origin": CROSS_SITE, "Cookie": "ragship_session=preflight"},
    )
    if response.status_code in (401, 403):
        return passed("cross_site", title, f"HTTP {response.status_code}")
    return failed(
        "cross_site",
        title,
        f"HTTP {response.status_code} for a POST from {CROSS_SITE}",
        "Check PUBLIC_URL and that the proxy passes Origin and Host through unchanged.",
    )


def _llm_health(client: httpx.Client) -> Item:
    title = "The upstream error path answers (/health/llm)"
    response = client.get("/health/llm")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200:
        return passed("llm_health", title, f"ok, {body.get('latency_ms')} ms")
    if response.status_code == 503 and "detail" in body:
        return failed(
            "llm_health",
            title,
            f"upstream unavailable: {body['detail']}",
            "Check LLM_BASE_URL, LLM_API_KEY and the provider's status (docs/resilience.md).",
        )
    return failed("llm_health", title, f"HTTP {response.status_code}", "See docs/resilience.md.")


def _stream(client: httpx.Client, body: dict[str, object]) -> StreamSeen:
    started = time.perf_counter()
    with client.stream("POST", "/api/chat", json=body) as response:
        seen = StreamSeen(response.status_code)
        if response.status_code != 200:
            response.read()
            return seen
        name, data = "message", []
        for line in response.iter_lines():
            now = time.perf_counter() - started
            if seen.first_byte_s is None:
                seen.first_byte_s = now
            if line.startswith(":"):
                seen.heartbeats += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                seen.events.append((name, json.loads("\n".join(data))))
                seen.first_event_s = seen.first_event_s if seen.first_event_s else now
                seen.last_event_s = now
                name, data = "message", []
    return seen


def _streaming(seen: StreamSeen, settings: Settings) -> Item:
    title = "Streaming end to end (first byte, events as they happen, heartbeats)"
    if seen.status != 200 or seen.first_event_s is None or seen.last_event_s is None:
        return failed(
            "stream",
            title,
            f"HTTP {seen.status}, {len(seen.events)} events",
            "Check PREFLIGHT_TOKEN (a 401) and the caps (a 429): make preflight needs one answer.",
        )
    spread = seen.last_event_s - seen.first_event_s
    detail = (
        f"first byte {seen.first_byte_s:.2f}s, first event {seen.first_event_s:.2f}s, "
        f"last {seen.last_event_s:.2f}s, {len(seen.events)} events, "
        f"{seen.heartbeats} heartbeat(s)"
    )
    if seen.first_byte_s is not None and seen.first_byte_s > FIRST_BYTE_BOUND_S:
        return failed(
            "stream", title, detail, f"The first byte must arrive within {FIRST_BYTE_BOUND_S}s."
        )
    if spread < MIN_SPREAD_S:
        return failed(
            "stream",
            title,
            detail + ": every event arrived at once, at the end",
            "A proxy buffers the stream: turn buffering off for /api/chat (nginx: "
            "proxy_buffering off, as infra/nginx/ragship-proxy.conf does; keep "
            "X-Accel-Buffering and Cache-Control: no-transform intact) (docs/deploy.md).",
        )
    if seen.heartbeats == 0:
        return by_hand(
            "stream",
            title,
            f"the answer ended before a heartbeat (every STREAM_HEARTBEAT_S="
            f"{settings.stream_heartbeat_s:g}s): check a long answer shows ': ping' lines "
            "with curl -N through the proxy",
            detail,
        )
    return passed("stream", title, detail)


def _ledger(seen: StreamSeen) -> Item:
    title = "A call is recorded in the ledger"
    last = seen.events[-1] if seen.events else ("none", {})
    if last[0] in ("done", "error") and "cost_usd" in last[1] and "usage" in last[1]:
        return passed("ledger", title, f"{last[0]}: ${last[1]['cost_usd']}, {last[1]['usage']}")
    return failed(
        "ledger",
        title,
        f"the stream ended with {last[0]!r} and no settled cost",
        "An answer must end with a settled cost: check the database (docs/observability.md).",
    )


def _rate_limit(client: httpx.Client, settings: Settings) -> Item:
    title = "Rate limit observed"
    limit = settings.rate_limit_requests
    for n in range(1, limit + 2):
        response = client.post("/api/chat", json={"message": QUESTION, "max_tokens": 1})
        if response.status_code == 429:
            layer = response.json().get("layer", "?")
            # The streamed question was request 1 of this user's window.
            detail = f"429 ({layer}) on request {n + 1}, RATE_LIMIT_REQUESTS={limit}"
            return passed("rate_limit", title, detail)
    return failed(
        "rate_limit",
        title,
        f"{limit + 1} requests in a row, none refused",
        "RATE_LIMIT_REQUESTS is not enforced: check RATE_LIMIT_STORE is shared by replicas "
        "(docs/caps.md).",
    )
