"""Every dependency of every route is `async def` (a coroutine or an async generator):
FastAPI runs a plain `def` dependency in its thread pool, a hop to a worker thread and back
on every request, for a function that only reads `app.state` (py-spy at one chat request
at a time: `run_in_threadpool` under `solve_dependencies` on the event loop, issue 17). The
app's own route table is read, not a list kept by hand: a new sync dependency anywhere
fails here."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.main import create_app
from tests.conftest import make_settings


def _calls(dependant: Dependant, route: str) -> Iterator[tuple[str, object]]:
    for sub in dependant.dependencies:
        yield route, sub.call
        yield from _calls(sub, route)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The routes, with those of included routers (FastAPI keeps an included router as one
    entry holding the router: `original_router`)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def test_no_route_waits_on_the_thread_pool_for_a_dependency() -> None:
    app = create_app(make_settings())
    routes = list(_api_routes(app.routes))
    calls = [pair for r in routes for pair in _calls(r.dependant, r.path)]
    assert any(route == "/api/chat" for route, _ in calls)  # the table was read
    sync = sorted(
        {
            (route, getattr(call, "__name__", repr(call)))
            for route, call in calls
            # an `async def` with `yield` runs on the loop too (FastAPI wraps it in an
            # async context manager); a plain generator goes to the thread pool
            if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
        }
    )
    assert sync == []
