"""The event loop's wait for the GIL: the interpreter's switch interval, CPython's default
(5 ms) against the app's (`GIL_SWITCH_INTERVAL_MS`, 1 ms; app/switch_interval.py), same run.

While the loop makes the rate-limit store's two calls per answer (`RateLimiter.admit`, then
`release`, 50 concurrent lanes, a real Redis on a unix socket), a second thread does what
the app's span exporter does for each batch: encodes 512 finished spans to OTLP protobuf
(OpenTelemetry's own encoder, in Python), over and over. Each time a store answer wakes
the loop, its thread must get the GIL back from the encoding thread, which gives it up at
the latest after the switch interval. Rounds alternate between the two intervals, the
order swapped every round; a last row has no encoding thread (the floor).

Columns: admit + release p50 / p95 / p99 (ms), answers per second, and the encoding
thread's batches per second (what the shorter interval costs the other thread).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import RedisStore
from bench.fixtures import bench_settings, temp_redis
from bench.table import Table, latency

NAME = "gil_switch"
LANES = 50
PER_LANE = 40
ROUNDS = 4
BATCH = 512  # the batch span processor's default max_export_batch_size
Row = tuple[list[float], float, float]  # call times (s), answers/s, batches/s
INTERVALS = {"CPython's default, 5 ms": 0.005, "GIL_SWITCH_INTERVAL_MS=1 (ragship)": 0.001}


def _spans() -> tuple[ReadableSpan, ...]:
    """A batch of finished spans shaped like the app's (a few attributes, one event)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench.gil_switch")
    for n in range(BATCH):
        with tracer.start_as_current_span("retrieve", attributes={"n": n, "k": "v" * 16}) as s:
            s.add_event("done", {"passages": 5})
    return exporter.get_finished_spans()


@contextmanager
def encoding(spans: tuple[ReadableSpan, ...]) -> Iterator[list[int]]:
    """A thread encoding ``spans`` to OTLP protobuf until the block ends; yields a list
    that holds, after the block, how many batches it encoded."""
    done = threading.Event()
    count = [0]

    def work() -> None:
        while not done.is_set():
            encode_spans(spans).SerializeToString()
            count[0] += 1

    thread = threading.Thread(target=work, name="bench-encoder")
    thread.start()
    try:
        yield count
    finally:
        done.set()
        thread.join()


async def _lane(limiter: RateLimiter, took: list[float], calls: int) -> None:
    for _ in range(calls):
        started = time.perf_counter()
        await limiter.release(await limiter.admit(uuid.uuid4()))
        took.append(time.perf_counter() - started)


async def _calls(url: str, batches: list[int]) -> Row:
    """The timed lanes, after one untimed call per lane (the pool's connections opened);
    ``batches``: the encoding thread's count, read at the start and end of the timing."""
    settings = bench_settings(rate_limit_store=url)
    store = RedisStore(url, timeout_s=settings.rate_limit_store_timeout_s)
    limiter = RateLimiter(store, settings)
    took: list[float] = []
    try:
        await asyncio.gather(*(_lane(limiter, [], 1) for _ in range(LANES)))
        started, encoded = time.perf_counter(), batches[0]
        await asyncio.gather(*(_lane(limiter, took, PER_LANE) for _ in range(LANES)))
        wall = time.perf_counter() - started
        return took, LANES * PER_LANE / wall, (batches[0] - encoded) / wall
    finally:
        await store.close()


def _round(url: str, interval: float, spans: tuple[ReadableSpan, ...] | None) -> Row:
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    try:
        if spans is None:
            return asyncio.run(_calls(url, [0]))
        with encoding(spans) as batches:
            return asyncio.run(_calls(url, batches))
    finally:
        sys.setswitchinterval(before)


def run() -> list[Table]:
    spans = _spans()
    sides: dict[str, list[Row]] = {label: [] for label in INTERVALS}
    with temp_redis() as url:
        _round(url, 0.005, spans)  # warm-up: the limiter's script cached in Redis
        for n in range(ROUNDS):
            order = list(INTERVALS) if n % 2 == 0 else list(reversed(INTERVALS))
            for label in order:
                sides[label].append(_round(url, INTERVALS[label], spans))
        floor = _round(url, 0.005, None)
    table = Table(
        f"The rate-limit store's two calls per answer, {LANES} concurrent, while a thread "
        f"encodes spans (batches of {BATCH}): {ROUNDS} rounds × {LANES * PER_LANE} answers "
        "per side, alternating",
        ["switch interval", "admit + release p50 / p95 / p99 ms", "answers/s", "batches/s"],
    )
    for label, rows in sides.items():
        table.add(label, _cell([t for took, _, _ in rows for t in took]),
                  f"{sum(r for _, r, _ in rows) / len(rows):.0f}",
                  f"{sum(b for _, _, b in rows) / len(rows):.1f}")  # fmt: skip
    table.add("no encoding thread (5 ms, one round)", _cell(floor[0]), f"{floor[1]:.0f}", "-")
    table.notes += [
        "the encoding thread never pauses, unlike the app's exporter (a batch a second, or "
        "at 512 spans): the loop meets it at every wake-up, the app's only while it encodes",
        "batches/s: the encoding thread's, over the timed calls; it gets the GIL less "
        "often with the shorter interval",
    ]
    return [table]


def _cell(samples: list[float]) -> str:
    lat = latency(samples)
    return f"{lat.p50 * 1000:.2f} / {lat.p95 * 1000:.2f} / {lat.p99 * 1000:.2f}"
