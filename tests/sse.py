"""Read a Server-Sent Events response into (event, data) pairs, as a browser would."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx


def read_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    return parse_lines(response.iter_lines())


def parse_lines(lines: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
    """The events in decoded SSE lines (the rest of a stream already partly read, say)."""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
    return events


def chat(client: httpx.Client, message: str, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    with client.stream("POST", "/api/chat", json={"message": message, **body}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_events(response)
