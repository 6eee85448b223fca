"""Upstash's REST protocol in front of a real Redis, so the real upstash-redis client is
tested over HTTP: POST / with a JSON array command → {"result": ...} or {"error": ...}.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "upstash-test-token"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def create_upstash_proxy(redis_url: str) -> FastAPI:
    app = FastAPI()
    client = redis.Redis.from_url(redis_url)
    app.state.requests = 0
    app.state.headers = []  # each request's headers, names in lower case

    @app.post("/")
    async def command(request: Request) -> JSONResponse:
        app.state.requests += 1
        app.state.headers.append(dict(request.headers))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        args = await request.json()
        try:
            result = client.execute_command(*args)
        except redis.ResponseError as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return JSONResponse({"result": _plain(result)})

    return app
