"""ragship against the bare upstream, side by side: added TTFT at 1 and 50 concurrent.

The upstream is the built-in local model in its own process, paced at 20 ms a piece; the
app runs as its own process (`python -m app`, Redis store, every cap on), in up to eight
variants started side by side (`GATEWAY_VARIANTS`, a comma list, default all): `torch` (as
`make dev` runs: one worker, sentence-transformers on torch), `onnx` (one worker, the
deploy image's onnxruntime embedder), `onnx2` (the same, two worker processes),
`onnx8` / `onnx8x2` (those two with EMBEDDING_ONNX_PRECISION=int8), `onnxidle` (`onnx`
with EMBED_IDLE_THREADS=2: a query with no other in flight on two threads), and `onnx8gil5` /
`onnx8x2gil5` (`onnx8` / `onnx8x2` with GIL_SWITCH_INTERVAL_MS=5, CPython's default), and
`onnx8exact` / `onnx8x2exact` (EARLY_RESERVATION=false: the reservation after retrieval), and
`onnx8serial` / `onnx8x2serial` (IDLE_OVERLAP=false: the rate limit after the sign-in). Each
exports its spans to a small OTLP receiver here, which gives the split of the work done
before the first event (rate limit, retrieval, reservation). Rounds alternate: the same
prompt straight to the upstream (the messages the app sent, read back from its `/_stats`),
then through ragship, at concurrency 1 and then 50.

LiteLLM's proxy (one worker, in front of the same upstream) is a third side when it is
installed (`pip install -e '.[bench]'`, bench/litellm_proxy.py); otherwise its row says so.

Columns: TTFT as the client sees it (first answer text), the first SSE event (`meta`,
sent once the request is admitted: everything before the stream), streams per second at
the concurrency, errors (any status but 200, or a stream not ending in `done`), and per
step the p50/p95 of its span. A last table reads issue 17's targets from the run
(bench/gateway_gate.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.caps.early import EARLY, EXACT
from app.localmodel.runner import BackgroundServer
from app.settings import LOCAL_MODEL_ID
from bench.fixtures import (
    DOCS,
    ingest_corpus,
    onnx_model,
    shared_embedder,
    temp_database,
    temp_redis,
)
from bench.gateway_gate import DIRECT, LITELLM, Measured, gate
from bench.gateway_variants import MAX_CONNECTIONS, VARIANTS, variants, workers_of
from bench.litellm_proxy import installed, litellm_proxy
from bench.procs import start_model, stop, wait_workers
from bench.sse_client import QUESTION, Side, has_text, ragship_side, upstream_side
from bench.streams_procs import free_port, start, wait_up
from bench.table import Table, latency

NAME = "gateway"
PLAN = {1: 30, 50: 200}  # concurrency: requests per side
# The answer's length, for every side: 108 tokens is 64 pieces of the local model's answer to
# QUESTION, the upstream of issue 17's measurements (64 chunks, 20 ms apart). At 50
# concurrent the paced answer's length caps the streams per second of every side (50 /
# 1.3 s); with the local model's whole answer (GATEWAY_MAX_TOKENS=512: 153 pieces, as this
# bench ran until 2026-12-02) the direct side itself reached only about 16 a second.
MAX_TOKENS_ENV = "GATEWAY_MAX_TOKENS"  # read like GATEWAY_VARIANTS: a bench knob, not a setting


def _max_tokens() -> int:
    """The answers' length (max_tokens) for every side: GATEWAY_MAX_TOKENS, default 108.
    Read when the bench runs, not on import: the model's process imports this module."""
    raw = os.environ.get(MAX_TOKENS_ENV, "108")
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{MAX_TOKENS_ENV}: a positive whole number of tokens, not {raw!r}")
    return int(raw)


STEPS = ("caps.rate_limit", "retrieve", "caps.reserve", "chat")
KIND = "ragship.reservation"  # app/caps/chain.py: EARLY or EXACT (app/caps/early.py)


def _receiver(spans: list[tuple[str, float, str]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    seconds = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
                    kind = next(  # caps.reserve's: the early reservation used, or the exact
                        (a.value.string_value for a in span.attributes if a.key == KIND), ""
                    )
                    spans.append((span.name, seconds, kind))
        body = ExportTraceServiceResponse().SerializeToString()
        return Response(body, media_type="application/x-protobuf")

    return app


def run() -> list[Table]:
    max_tokens = _max_tokens()
    embedder = shared_embedder()
    spans: list[tuple[str, float, str]] = []
    table = Table(
        "ragship vs the bare upstream (local model, 20 ms a piece), Redis store",
        ["concurrency", "side", "n", "TTFT p50 ms", "TTFT p95 ms", "added p50/p95 ms",
         "first event p50/p95 ms", "streams/s", "errors"],
    )  # fmt: skip
    split = Table(
        "ragship before the first event, by step (span durations)",
        ["concurrency", "side", "step", "n", "p50 ms", "p95 ms"],
    )
    out: tuple[Table, Table, list[Measured]] = (table, split, [])
    receiver = BackgroundServer(_receiver(spans)).start()
    with temp_database() as url, temp_redis() as redis_url, start_model() as model_url:
        ingest_corpus(url, embedder, [DOCS])
        # Every app signs in the same user on the one Redis, so the rate limit counts every
        # side's requests in its window: room for all of them, with a margin.
        most = sum(PLAN.values()) * 4 * len(variants())
        workers = sum(workers_of(name) for name in variants())
        app_env = {
            **os.environ,
            "LOG_LEVEL": "warning",
            "ENV": "dev",
            "DATABASE_URL": url,
            "LLM_BASE_URL": f"{model_url}/v1",
            "RATE_LIMIT_STORE": redis_url,
            "INGEST_ON_START": "false",
            "MIGRATE_ON_START": "false",
            "RATE_LIMIT_REQUESTS": str(most),
            "MAX_CONCURRENT_STREAMS": str(most),
            "USER_DAILY_CAP_USD": "1000",
            # The same question every time: with the cache on, every request after the
            # first would be a replay, not the full RAG path to the model.
            "RESPONSE_CACHE": "false",
            "LLM_MAX_TOKENS": str(max_tokens),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            # Every worker's pool within the server's connections: eight workers of 20 (all
            # variants) took 160 of 100, and the later apps' requests got 503s.
            "DB_POOL_SIZE": str(min(20, MAX_CONNECTIONS // workers)),
        }
        apps: list[tuple[str, str, subprocess.Popen[bytes]]] = []
        try:
            with onnx_model() as onnx_dir:
                for name in variants():
                    label, extra = VARIANTS[name]
                    port = free_port()
                    app = start(
                        [sys.executable, "-m", "app"],
                        {**app_env, **extra, "PORT": str(port),
                         "EMBEDDING_ONNX_DIR": str(onnx_dir)},
                    )  # fmt: skip
                    apps.append((label, f"http://127.0.0.1:{port}", app))
                for name, (_, app_url, app) in zip(variants(), apps, strict=True):
                    wait_up(app_url, app)
                    wait_workers(app, workers_of(name))
                if installed():
                    with litellm_proxy(model_url, LOCAL_MODEL_ID) as litellm:
                        _measure(apps, model_url, litellm, spans, out, max_tokens)
                else:
                    _measure(apps, model_url, None, spans, out, max_tokens)
        finally:
            for _, _, proc in apps:
                stop(proc)
            receiver.stop()
    table.notes += [
        "TTFT through ragship includes the guardrail hold-back (text that could still begin "
        "a violation waits for the next piece): the first event shows the cost of everything "
        "before the stream",
        "added = TTFT p50/p95 minus the direct side's in the same round; sides run one "
        "after the other per concurrency: direct, LiteLLM proxy, then each ragship variant",
    ]
    return [table, split, gate(out[2])]


def _sign_in(app_url: str) -> tuple[httpx.Cookies, str]:
    """A signed-in session (the dev login) and its CSRF token; one answer warms the app."""
    with httpx.Client(base_url=app_url, timeout=60, headers={"Origin": app_url}) as c:
        c.post("/auth/dev-login", data={"email": "gateway@localhost.test"})
        csrf = c.get("/api/me").json()["csrf_token"]
        c.headers["X-CSRF-Token"] = csrf
        for _ in range(4):  # a request per worker, most likely: each loads lazily
            assert c.post("/api/chat", json={"message": QUESTION}).status_code == 200
        return httpx.Cookies(c.cookies), csrf


def _chat_prompt(app_url: str, signed_in: tuple[httpx.Cookies, str], model_url: str) -> Any:
    """The messages the app sends upstream for QUESTION, read back from the model's
    `/_stats`. Each app's status prober calls the same model (every 60 s): when its short
    probe came last, the direct side measured its short answer (5.4 streams/s at c=1
    against ragship's 0.3), so the read is taken again until it is the chat's prompt."""
    cookies, csrf = signed_in
    headers = {"Origin": app_url, "X-CSRF-Token": csrf}
    with (
        httpx.Client(base_url=app_url, timeout=60, cookies=cookies, headers=headers) as c,
        httpx.Client(base_url=model_url) as m,
    ):
        for _ in range(10):
            assert c.post("/api/chat", json={"message": QUESTION}).status_code == 200
            messages = m.get("/_stats").json()["last_messages"]
            if messages and messages[-1].get("content", "").endswith(QUESTION):
                return messages
    raise RuntimeError("the model's last request was never the chat's: is something else using it?")


def _measure(
    apps: list[tuple[str, str, subprocess.Popen[bytes]]],
    model_url: str,
    litellm: tuple[str, str] | None,
    spans: list[tuple[str, float, str]],
    out: tuple[Table, Table, list[Measured]],
    max_tokens: int,
) -> None:
    table, split, measured = out
    signed_in = {app_url: _sign_in(app_url) for _, app_url, _ in apps}
    app_url = apps[-1][1]
    body = {
        "model": LOCAL_MODEL_ID,
        "messages": _chat_prompt(app_url, signed_in[app_url], model_url),
        "stream": True,
        "max_tokens": max_tokens,
    }
    table.notes.append(
        f"answers of {_pieces(model_url, body)} pieces (max_tokens {max_tokens}) on every side"
    )
    for concurrency, n in PLAN.items():
        direct, lite = Side(), Side()
        asyncio.run(upstream_side(model_url, concurrency, n, body, direct))
        if litellm is not None:
            asyncio.run(upstream_side(litellm[0], concurrency, n, body, lite, litellm[1]))
        base = latency(direct.ttft)
        measured.append(_row(table, concurrency, n, DIRECT, direct, base))
        if litellm is None:
            table.add(concurrency, f"{LITELLM}: not installed (pip install -e '.[bench]')",
                      *["-"] * 7)  # fmt: skip
        else:
            measured.append(_row(table, concurrency, n, LITELLM, lite, base))
        for label, app_url, _ in apps:
            ours = Side()
            cookies, csrf = signed_in[app_url]
            headers = {"Origin": app_url, "X-CSRF-Token": csrf}
            spans.clear()
            asyncio.run(ragship_side(app_url, concurrency, n, cookies, headers, ours))
            deadline = time.monotonic() + 30
            while sum(s[0] == "chat" for s in spans) < n and time.monotonic() < deadline:
                time.sleep(0.5)  # the app exports its spans in batches
            row = _row(table, concurrency, n, label, ours, base)
            for step in STEPS:
                took = latency([s for name, s, _ in spans if name == step])
                split.add(concurrency, label, step, took.n, f"{took.p50 * 1000:.1f}",
                          f"{took.p95 * 1000:.1f}")  # fmt: skip
                if step == "caps.reserve" and took.n:
                    row = replace(row, reserve_p95_s=took.p95)
            measured.append(row)
            kinds = [kind for name, _, kind in spans if name == "caps.reserve"]
            split.notes.append(
                f"c={concurrency} {label}: {kinds.count(EARLY)} early reservations used, "
                f"{kinds.count(EXACT)} exact"
            )
    split.notes += [
        "chat: the whole request span, to the end of settlement",
        "caps.reserve: pricing the prompt and, when the early reservation (sent in the "
        "search's round trip, so inside `retrieve`) does not cover it, the exact reservation",
    ]


def _pieces(model_url: str, body: dict[str, Any]) -> int:
    """How many pieces of text the upstream streams for ``body``."""
    with httpx.Client(base_url=model_url, timeout=60) as m:
        with m.stream("POST", "/v1/chat/completions", json=body) as response:
            return sum(has_text(line) for line in response.iter_lines())


def _row(table: Table, concurrency: int, n: int, label: str, side: Side, base: Any) -> Measured:
    """Add ``side``'s row to ``table`` and return its figures for the gate."""
    ttft, first = latency(side.ttft), latency(side.first_event)
    added = f"{(ttft.p50 - base.p50) * 1000:+.1f}/{(ttft.p95 - base.p95) * 1000:+.1f}"
    table.add(
        concurrency, label, len(side.ttft), f"{ttft.p50 * 1000:.1f}",
        f"{ttft.p95 * 1000:.1f}", "-" if label == DIRECT else added,
        f"{first.p50 * 1000:.1f}/{first.p95 * 1000:.1f}", f"{n / side.wall:.1f}", side.errors,
    )  # fmt: skip
    added_s = None if label == DIRECT else ttft.p50 - base.p50
    # The gate counts the streams that ended well: `Side.ttft` holds one per such stream.
    return Measured(concurrency, label, added_s, len(side.ttft) / side.wall, side.errors)


def paced_model() -> FastAPI:
    """The local model at 20 ms a piece (uvicorn --factory), as in issue 17's runs."""
    from app.localmodel.server import create_local_model

    return create_local_model(token_delay_s=0.02)
