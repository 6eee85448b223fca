"""Per-request overhead of observability: recording a call (ledger row + rollups) and
tracing a request (its six spans), each against a baseline measured in the same run."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.calls import record_call
from app.db import make_async_engine
from bench.fixtures import temp_database
from bench.table import Table, latency

ROUNDS = 300
SPANS = ("caps.rate_limit", "retrieve", "caps.reserve", "llm.stream", "settle")
_BARE = text(
    "INSERT INTO llm_calls (created_at, feature, model, admission, status, input_tokens, "
    "output_tokens, cost_usd) VALUES (now(), 'chat', 'm', 'allowed', 'ok', 900, 60, 0.0002)"
)


async def _recording(url: str) -> tuple[list[float], list[float]]:
    engine = make_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    bare: list[float] = []
    full: list[float] = []
    user = uuid.uuid4()
    try:
        for n in range(ROUNDS + 20):
            started = time.perf_counter()
            async with sessions() as session, session.begin():
                await session.execute(_BARE)
            mid = time.perf_counter()
            async with sessions() as session, session.begin():
                await record_call(
                    session,
                    user_id=user,
                    model="ragship-local-1",
                    status="ok",
                    input_tokens=900,
                    output_tokens=60,
                    cost_usd=Decimal("0.000171"),
                    latency_ms=80.0 + n % 50,
                    ttft_ms=8.0,
                    question="How do I run the tests?",
                    answer="Run make test.",
                )
            ended = time.perf_counter()
            if n >= 20:  # warm-up rounds not counted
                bare.append(mid - started)
                full.append(ended - mid)
    finally:
        await engine.dispose()
    return bare, full


def _tracing() -> tuple[list[float], list[float]]:
    # Nobody listens at the collector address: silence the exporter's retry complaints.
    logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter").setLevel(
        logging.CRITICAL
    )
    logging.getLogger("opentelemetry.sdk.trace.export").setLevel(logging.CRITICAL)
    exporting = TracerProvider()
    # A collector address nobody listens on: spans are queued and exported off-thread,
    # as in production; the request path only pays for creating and queueing them.
    exporting.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces", timeout=1))
    )
    plain = TracerProvider()
    results: dict[str, list[float]] = {"plain": [], "exporting": []}
    for provider, name in ((plain, "plain"), (exporting, "exporting")):
        tracer = provider.get_tracer("bench")
        for n in range(ROUNDS + 20):
            started = time.perf_counter()
            root = tracer.start_span("chat", attributes={"enduser.id": "u"})
            context = trace.set_span_in_context(root)
            for span_name in SPANS:
                tracer.start_span(span_name, context=context).end()
            root.set_attributes({"gen_ai.usage.input_tokens": 900, "ragship.cost_usd": "0.0002"})
            root.end()
            if n >= 20:
                results[name].append(time.perf_counter() - started)
    exporting.shutdown()
    return results["plain"], results["exporting"]


def run() -> list[Table]:
    with temp_database() as url:
        bare, full = asyncio.run(_recording(url))
    plain, exporting = _tracing()
    table = Table(
        f"observability overhead per request ({ROUNDS} rounds each, after 20 warm-up)",
        ["path", "n", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
    )
    table.add("baseline: bare INSERT of a call row + commit", *latency(bare).ms())
    table.add("record_call: row + hourly + per-user rollups", *latency(full).ms())
    table.add("baseline: 6 spans, no exporter", *latency(plain).ms())
    table.add("6 spans, OTLP batch exporter", *latency(exporting).ms())
    added = (latency(full).p50 - latency(bare).p50) * 1000
    table.notes += [
        f"rollups add {added:+.2f} ms p50 to recording a call (one transaction, after the "
        "last token)",
        "recording happens in the settle step after the stream ends: it never delays a token",
    ]
    return [table]
