"""Run an ASGI app on a real loopback socket in a background thread.

The socket is bound before the thread starts, so the URL is usable at once: connections
wait in the listen backlog until the server accepts them. Used for the built-in local
model and, in tests, for the app itself and other local stand-ins.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import uvicorn


class BackgroundServer:
    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        # IPPROTO_TCP explicitly: asyncio then sets TCP_NODELAY on accepted connections, which
        # avoids a ~40 ms Nagle + delayed-ACK stall per response on kept-alive connections.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(128)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="auto", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"server:{self.port}", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
