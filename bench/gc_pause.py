"""The pause of a full garbage collection in a serving app, with its start-up heap frozen
(`app/heap.py`, as shipped) and not (before), in the same process and run.

The app and the built-in local model run on loopback background servers in this process,
as in `bench chat`; after some answers warm the heap, `gc.collect()` is timed while the
lifespan's freeze holds, then again after `gc.unfreeze()` hands the start-up objects back
to the collector: what every full collection cost before. The event loop, and so every
answer streaming from the worker, waits for the whole collection. This process also holds
the benchmark's own objects, so the counts are a little above a worker's.
"""

from __future__ import annotations

import gc
import time

from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from bench.fixtures import (
    DOCS,
    ask,
    bench_settings,
    ingest_corpus,
    shared_embedder,
    signed_in_client,
    temp_database,
)
from bench.table import Table, latency

NAME = "gc_pause"
ANSWERS = 30
COLLECTIONS = 7


def _full_collections() -> tuple[int, list[float]]:
    """(objects the collector tracks, seconds of each of COLLECTIONS full collections)."""
    took = []
    for _ in range(COLLECTIONS):
        started = time.perf_counter()
        gc.collect()
        took.append(time.perf_counter() - started)
    return len(gc.get_objects()), took


def run() -> list[Table]:
    embedder = shared_embedder()
    table = Table(
        "A full garbage collection in a serving app (the event loop waits for all of it)",
        ["start-up heap", "frozen objects", "tracked objects", "p50 ms", "max ms"],
    )
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        model = BackgroundServer(create_local_model(token_delay_s=0.0)).start()
        try:
            settings = bench_settings(
                database_url=url, llm_base_url=f"{model.url}/v1", rate_limit_requests=1000
            )
            app = BackgroundServer(create_app(settings, embedder=embedder)).start()
            try:
                with signed_in_client(app.url) as client:
                    for n in range(ANSWERS):
                        ask(client, f"How do I ingest PDF files? ({n})")
                sides = []
                frozen = gc.get_freeze_count()
                sides.append(("frozen (shipped)", frozen, *_full_collections()))
                gc.unfreeze()
                sides.append(("not frozen (before)", 0, *_full_collections()))
                gc.freeze()  # as it was: the lifespan's exit unfreezes
            finally:
                app.stop()
        finally:
            model.stop()
    for label, frozen, tracked, took in sides:
        p50 = latency(took).p50 * 1000
        table.add(label, f"{frozen:,}", f"{tracked:,}", f"{p50:.1f}", f"{max(took) * 1000:.1f}")
    table.notes.append(
        f"after {ANSWERS} answers, torch embedder, {COLLECTIONS} collections a side; "
        "both sides in this process, one after the other"
    )
    return [table]
