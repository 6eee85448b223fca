"""The start-up heap is frozen out of full garbage collections while the app serves
(app/heap.py), and handed back at shutdown."""

from __future__ import annotations

import gc
import weakref

import httpx

from app.heap import frozen_heap
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from tests.conftest import make_settings


class Cycle:
    """An object in a reference cycle: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _uncollected(obj: object) -> bool:
    """True when ``obj`` is tracked but in no collected generation: frozen."""
    return gc.is_tracked(obj) and all(o is not obj for o in gc.get_objects())


def test_objects_from_before_are_skipped_and_new_ones_still_collected() -> None:
    before = Cycle()
    old = weakref.ref(before)
    with frozen_heap() as frozen:
        assert frozen > 0
        assert _uncollected(before)
        del before
        gc.collect()
        assert old() is not None  # frozen: a full collection does not even look at it
        during = Cycle()
        new = weakref.ref(during)
        del during
        gc.collect()
        assert new() is None  # made after the freeze: collected as usual
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert old() is None  # handed back at the end, so collected once garbage


def test_the_lifespan_freezes_the_apps_objects_while_it_serves(  # type: ignore[no-untyped-def]
    db_url: str, local_model, embedder: Embedder
) -> None:
    app = create_app(
        make_settings(database_url=db_url, llm_base_url=local_model.base_url),
        embedder=embedder,
    )
    server = BackgroundServer(app).start()
    try:  # the socket is bound: the lifespan has run
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200
        services = app.state.services
        assert _uncollected(services)
        assert _uncollected(services.sessions)
    finally:
        server.stop()
    assert not _uncollected(services)


def test_gc_freeze_false_freezes_nothing(  # type: ignore[no-untyped-def]
    db_url: str, local_model, embedder: Embedder
) -> None:
    app = create_app(
        make_settings(database_url=db_url, llm_base_url=local_model.base_url, gc_freeze=False),
        embedder=embedder,
    )
    server = BackgroundServer(app).start()
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200
        assert not _uncollected(app.state.services)
    finally:
        server.stop()
