"""The interpreter's thread switch interval is GIL_SWITCH_INTERVAL_MS while the app serves
(app/switch_interval.py), and what it was before once the app stops. What it buys is
measured in `python -m bench gil_switch`, not here: it is a matter of timing."""

from __future__ import annotations

import sys

import httpx
import pytest

from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from app.switch_interval import switch_interval
from tests.conftest import make_settings


def test_the_interval_is_set_for_the_block_and_put_back_however_it_ends() -> None:
    before = sys.getswitchinterval()
    with switch_interval(0.0015) as replaced:
        assert replaced == before
        assert sys.getswitchinterval() == pytest.approx(0.0015)
    assert sys.getswitchinterval() == before
    with pytest.raises(RuntimeError), switch_interval(0.0025):
        assert sys.getswitchinterval() == pytest.approx(0.0025)
        raise RuntimeError("the block failed")
    assert sys.getswitchinterval() == before


def test_an_app_that_stops_first_leaves_a_later_apps_interval_alone() -> None:
    """The interval is the process's: apps that overlap in one process (the test suite's)
    stop in any order, and the one still serving keeps its own."""
    before = sys.getswitchinterval()
    first = switch_interval(0.001)
    second = switch_interval(0.002)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.002)  # the second app's, still serving
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(0.001)  # what the second one replaced
    sys.setswitchinterval(before)


@pytest.mark.parametrize("milliseconds", [0, 0.05, 101])
def test_a_switch_interval_out_of_bounds_is_refused_at_start(milliseconds: float) -> None:
    with pytest.raises(ValueError, match="gil_switch_interval_ms"):
        make_settings(gil_switch_interval_ms=milliseconds)


def test_the_lifespan_serves_with_the_configured_interval(  # type: ignore[no-untyped-def]
    db_url: str, local_model, embedder: Embedder
) -> None:
    before = sys.getswitchinterval()
    settings = make_settings(
        database_url=db_url, llm_base_url=local_model.base_url, gil_switch_interval_ms=2.5
    )
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    try:  # answered: the lifespan has run
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200
        assert sys.getswitchinterval() == pytest.approx(0.0025)
    finally:
        server.stop()
    assert sys.getswitchinterval() == before
