"""One client process of the streams benchmark: `python -m bench.streams_shard SPEC RESULT`.

It reads its share of a level from the JSON file SPEC (written by bench/streams_fanout.py),
prints `ready` once imported, waits for a line on stdin (the parent's go, sent to every
process at once so that all shares start together), holds its streams on its own event loop
with bench/streams_client.py, and writes a `Part` (bench/streams_merge.py) as JSON to RESULT.

SPEC: {"target": "direct" | "chat", "url": base URL, "n": streams, and for "direct"
"request": the upstream request body, optional "ramp_s" (start the streams evenly over
that many seconds; default 0, all at once), for "chat" "question" and "users": [{"cookies":
[[name, value, domain, path], ...], "headers": {...}}, ...]}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.streams_client import Hold, User, hold_chat, hold_direct
from bench.streams_merge import Part


def user_to_json(user: User) -> dict[str, Any]:
    """A signed-in user as SPEC carries it: every cookie with its domain and path."""
    cookies = [[c.name, c.value, c.domain, c.path] for c in user.cookies.jar]
    return {"cookies": cookies, "headers": user.headers}


def user_from_json(data: dict[str, Any]) -> User:
    cookies = httpx.Cookies()
    for name, value, domain, path in data["cookies"]:
        cookies.set(name, value, domain=domain, path=path)
    return User(cookies, dict(data["headers"]))


async def hold_share(spec: dict[str, Any]) -> Hold:
    """The streams SPEC names, at once; raises ValueError on an unknown target."""
    ramp = float(spec.get("ramp_s", 0.0))
    if spec["target"] == "direct":
        return await hold_direct(spec["url"], spec["n"], spec["request"], ramp)
    if spec["target"] == "chat":
        users = [user_from_json(u) for u in spec["users"]]
        return await hold_chat(spec["url"], spec["n"], users, spec["question"], ramp_s=ramp)
    raise ValueError(f"unknown target {spec['target']!r}")


def main(argv: list[str]) -> int:
    spec_path, result_path = argv
    spec = json.loads(Path(spec_path).read_text())
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's go
    cpu, wall = time.process_time(), time.perf_counter()
    hold = asyncio.run(hold_share(spec))
    part = Part.of(hold, cpu_s=time.process_time() - cpu, wall_s=time.perf_counter() - wall)
    Path(result_path).write_text(json.dumps(part.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
