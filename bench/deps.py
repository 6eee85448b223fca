"""A request's dependencies: `async def` against a plain `def`, which FastAPI runs in its
thread pool (a hop to a worker thread and back, on every request).

Two routes of one FastAPI app, called in process through httpx's ASGI transport: one
depends on ragship's `get_services` (app/deps.py, `async def` since 2026-12-03), the other
on the same body as a plain `def`, as it was before. Rounds alternate between the two; the
columns are the median and p95 of a request's wall time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, Request

from app.deps import get_services
from bench.table import Table, latency

NAME = "deps"
ROUNDS, CALLS = 6, 1000


def _former_get_services(request: Request) -> object:
    """`get_services` as it was: a plain `def`, so run in the thread pool."""
    return request.app.state.services


def _app() -> FastAPI:
    app = FastAPI()
    app.state.services = object()  # only read, never used: the dependency's cost is measured

    @app.get("/async")
    async def ours(services: Annotated[object, Depends(get_services)]) -> dict[str, bool]:
        return {"ok": services is not None}

    @app.get("/sync")
    async def former(
        services: Annotated[object, Depends(_former_get_services)],
    ) -> dict[str, bool]:
        return {"ok": services is not None}

    return app


async def _measure() -> dict[str, list[float]]:
    sides = {"plain def (thread pool), former": "/sync", "async def (event loop)": "/async"}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for round_ in range(ROUNDS):
            order = list(sides.items()) if round_ % 2 == 0 else list(reversed(sides.items()))
            for name, path in order:
                for _ in range(50):  # warm the thread pool and the route
                    await client.get(path)
                for _ in range(CALLS):
                    started = time.perf_counter()
                    response = await client.get(path)
                    samples[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
    return samples


def run() -> list[Table]:
    table = Table(
        "One request's dependency: a plain def (thread pool) against async def",
        ["dependency", "requests", "p50 ms", "p95 ms"],
    )
    for name, wall in asyncio.run(_measure()).items():
        took = latency(wall)
        table.add(name, took.n, f"{took.p50 * 1000:.3f}", f"{took.p95 * 1000:.3f}")
    table.notes.append(
        f"{ROUNDS} rounds of {CALLS} requests each, the two alternating; in process (httpx "
        "ASGITransport), no network"
    )
    return [table]
