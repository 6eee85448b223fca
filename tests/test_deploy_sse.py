"""The chat stream arrives event by event through Caddy and nginx configured as shipped.

The local model pauses DELAY_S before every token, so the server cannot send token k before
k * DELAY_S: a proxy that streams delivers `meta` and `sources` one pause before the first
token and spreads the tokens over the answer; one that buffers delivers everything at the
end, at once. The assertions are lower bounds that a slow machine only makes easier to meet,
and the control cases (a buffering nginx, a buffering Caddy) show they fail when buffered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests import proxies
from tests.conftest import LocalModel, sign_in

DELAY_S = 0.25
MAX_TOKENS = 40  # a short answer: several pieces even when it opens with long code spans

Proxy = Callable[[Path, str], AbstractContextManager[str]]


def _arrivals(base_url: str, local_model: LocalModel) -> list[tuple[str, float]]:
    """Each event's name and when its `event:` line arrived, seconds after the request."""
    arrivals: list[tuple[str, float]] = []
    with sign_in(base_url, "ada@example.com", "Ada") as client:
        local_model.fault("slow", delay_s=DELAY_S)  # this answer's tokens, DELAY_S apart
        body = {"message": "How do I deploy ragship?"}
        started = time.monotonic()
        with client.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("event:"):
                    arrivals.append((line[6:].strip(), time.monotonic() - started))
    return arrivals


def assert_streamed(arrivals: list[tuple[str, float]]) -> None:
    names = [name for name, _ in arrivals]
    assert names[:2] == ["meta", "sources"] and names[-1] == "done", names
    first = arrivals[0][1]
    tokens = [at for name, at in arrivals if name == "token"]
    assert len(tokens) >= 3, names
    # The first event came while the model was still silent: before the first token existed.
    assert tokens[0] - first >= DELAY_S / 2, f"first event held back: {arrivals}"
    # The tokens came as they were made, not in one burst at the end.
    assert tokens[-1] - tokens[0] >= (len(tokens) - 1) * DELAY_S / 2, f"buffered: {arrivals}"
    assert len({round(at, 2) for at in tokens}) == len(tokens), (
        f"tokens arrived together: {arrivals}"
    )


@pytest.fixture
def upstream(start_app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A running app whose answers are short and paced by the local model."""
    server = start_app(llm_max_tokens=MAX_TOKENS, rate_limit_requests=1000)
    yield f"127.0.0.1:{server.port}"


def test_the_stream_is_event_by_event_without_a_proxy(
    upstream: str, local_model: LocalModel
) -> None:
    assert_streamed(_arrivals(f"http://{upstream}", local_model))


@pytest.mark.parametrize("proxy", [proxies.caddy, proxies.nginx], ids=["caddy", "nginx"])
def test_the_stream_arrives_event_by_event_through_the_shipped_proxy(
    proxy: Proxy, upstream: str, local_model: LocalModel, tmp_path: Path
) -> None:
    with proxy(tmp_path, upstream) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert_streamed(_arrivals(url, local_model))


def test_control_a_buffering_nginx_fails_the_check(
    upstream: str, local_model: LocalModel, tmp_path: Path
) -> None:
    """The shipped snippet, but buffering on, ragship's `X-Accel-Buffering: no` ignored, and
    the stream gzipped (a common copy-pasted `gzip_types` list that includes it)."""
    snippet = tmp_path / "buffering.conf"
    snippet.write_text(
        proxies.NGINX_SNIPPET.read_text()
        .replace("proxy_buffering off;", "proxy_buffering on;")
        .replace("gzip off;", "gzip on;\n    gzip_types text/event-stream;\n    gzip_min_length 1;")
        .replace(
            "proxy_cache off;", "proxy_cache off;\n    proxy_ignore_headers X-Accel-Buffering;"
        )
    )
    with proxies.nginx(tmp_path, upstream, snippet=snippet) as url:
        arrivals = _arrivals(url, local_model)
    assert [name for name, _ in arrivals][-1] == "done"
    with pytest.raises(AssertionError, match="held back|buffered"):
        assert_streamed(arrivals)
