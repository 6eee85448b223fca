"""A first sign-in that races another with the same email (two tabs, two replicas) signs
both in, as one user: the unique email decides, never a 500."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine

from app.localmodel.runner import BackgroundServer
from tests.conftest import scalar

RACERS = 16


def test_concurrent_first_sign_ins_with_one_email_make_one_user(
    app_server: BackgroundServer, db_engine: Engine
) -> None:
    email = "twin-tabs@example.com"
    start = threading.Barrier(RACERS)

    def sign_in_once(_: int) -> int:
        with httpx.Client(base_url=app_server.url, headers={"Origin": app_server.url}) as c:
            start.wait()  # every request leaves at once
            return c.post("/auth/dev-login", data={"email": email}, timeout=60).status_code

    with ThreadPoolExecutor(RACERS) as pool:
        statuses = list(pool.map(sign_in_once, range(RACERS)))
    assert statuses == [303] * RACERS
    assert scalar(db_engine, "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    sessions = (
        "SELECT count(*) FROM auth_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = :e"
    )
    assert scalar(db_engine, sessions, e=email) == RACERS
