"""The streams benchmark's client processes: shares of a level, and the merge of their parts."""

from __future__ import annotations

import json

import httpx

from bench.streams_client import User
from bench.streams_fanout import chat_shares, direct_shares
from bench.streams_merge import Part, merge, peak_held
from bench.streams_shard import user_from_json, user_to_json


def _part(**overrides: object) -> Part:
    fields: dict[str, object] = {
        "durations": [],
        "held": [],
        "done": 0,
        "errors": {},
        "examples": {},
        "retried": 0,
        "client_lag": [],
        "cpu_s": 0.0,
        "wall_s": 1.0,
    }
    return Part(**{**fields, **overrides})  # type: ignore[arg-type]


def test_merge_pools_samples_and_keeps_each_process_worst_lag_and_cpu() -> None:
    a = _part(
        durations=[40.0, 41.0],
        held=[(0.0, 40.0), (2.0, 43.0)],
        done=2,
        errors={"ReadTimeout": 1},
        examples={"ReadTimeout": "from a"},
        retried=3,
        client_lag=[0.01, 0.2],
        cpu_s=5.0,
        wall_s=50.0,
    )
    b = _part(
        durations=[42.0],
        held=[(1.0, 42.0)],
        done=1,
        errors={"ReadTimeout": 2, "HTTP 500": 1},
        examples={"ReadTimeout": "from b", "HTTP 500": "boom"},
        retried=1,
        client_lag=[0.05],
        cpu_s=20.0,
        wall_s=40.0,
    )
    merged = merge([a, b])
    assert sorted(merged.hold.durations) == [40.0, 41.0, 42.0]
    assert sorted(merged.hold.held) == [(0.0, 40.0), (1.0, 42.0), (2.0, 43.0)]
    assert merged.hold.done == 3
    assert dict(merged.hold.errors) == {"ReadTimeout": 3, "HTTP 500": 1}
    assert merged.hold.examples == {"ReadTimeout": "from a", "HTTP 500": "boom"}
    assert merged.hold.retried == 4
    assert sorted(merged.hold.client_lag) == [0.01, 0.05, 0.2]
    assert merged.lag_max == [0.2, 0.05]
    assert merged.cpu_pct == [10.0, 50.0]


def test_merge_of_a_process_without_samples() -> None:
    merged = merge([_part(wall_s=0.0)])
    assert merged.lag_max == [0.0]
    assert merged.cpu_pct == [0.0]
    assert merged.hold.done == 0


def test_part_survives_json() -> None:
    part = _part(
        durations=[1.5],
        held=[(10.0, 11.5)],
        done=1,
        errors={"x": 2},
        examples={"x": "e"},
        client_lag=[0.1],
        cpu_s=2,
    )
    assert Part.from_json(json.loads(json.dumps(part.to_json()))) == part


def test_peak_held_counts_the_most_streams_open_at_one_moment() -> None:
    # Two waves that overlap in one stretch, where three are open; a stream that ends at
    # the instant another begins is not counted with it.
    spans = [(0.0, 10.0), (2.0, 12.0), (9.0, 20.0), (12.0, 30.0), (20.0, 25.0)]
    assert peak_held(spans) == 3
    assert peak_held([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 1
    assert peak_held([(0.0, 5.0)] * 1000) == 1000
    assert peak_held([]) == 0


def test_direct_shares_cover_every_stream() -> None:
    assert direct_shares(1000, 4) == [250, 250, 250, 250]
    assert direct_shares(10, 4) == [3, 3, 2, 2]
    assert direct_shares(2, 4) == [1, 1]


def test_chat_shares_keep_each_user_in_one_process_and_under_its_limit() -> None:
    n, users, k = 997, 499, 4  # 499 users: not a multiple of k
    shares = chat_shares(n, users, k)
    assert sum(count for _, count in shares) == n
    seen = [u for members, _ in shares for u in members]
    assert sorted(seen) == list(range(users))  # each user in exactly one process
    for members, count in shares:
        # the process asks stream j of user members[j mod len]: at most 2 per user
        assert count <= 2 * len(members)
    per_user = [0] * users
    for i in range(n):
        per_user[i % users] += 1
    for members, count in shares:
        assert count == sum(per_user[u] for u in members)


def test_user_survives_the_spec() -> None:
    cookies = httpx.Cookies()
    cookies.set("session", "abc", domain="127.0.0.1", path="/")
    user = User(cookies, {"Origin": "http://127.0.0.1:1", "X-CSRF-Token": "t"})
    back = user_from_json(json.loads(json.dumps(user_to_json(user))))
    assert back.headers == user.headers
    assert [(c.name, c.value, c.domain, c.path) for c in back.cookies.jar] == [
        ("session", "abc", "127.0.0.1", "/")
    ]
