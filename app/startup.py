"""Start-up, told in one line per phase with its duration, and "ready" only once the server
is listening; and a clean stop whatever ends the process.

`uvicorn` handles SIGTERM and SIGINT while it serves, then re-raises the signal with the
handler it found. With Python's default handler that ends the process at once, skipping
``finally`` blocks and ``atexit`` hooks (and so the embedded PostgreSQL's stop):
`exit_on_signals` installs a handler that exits through ``SystemExit`` instead.
"""

from __future__ import annotations

import logging
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn

log = logging.getLogger("ragship")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
NR_OPEN_DEFAULT = 1_048_576  # Linux's default fs.nr_open: the most one process may open
# Loggers that narrate their internals at INFO (pg_ctl command lines, model loading):
# their warnings still show.
# httpx2: the openai client's HTTP library logs every request at INFO.
CHATTY = ("pgserver", "sentence_transformers", "transformers", "httpx", "httpx2", "alembic")


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files (RLIMIT_NOFILE) to its hard limit, as
    Go's runtime does at start, and return (soft before, soft now). Each live answer holds
    two descriptors (the browser's socket and the upstream's): systemd's default soft limit
    of 1,024 would refuse new connections at about 500 answers a process, while 1,000
    answers held by two workers needed 2,093 descriptors in all (`python -m bench.streams`,
    issue 17). Worker processes inherit the raised limit. Under an unlimited hard limit the
    soft one goes to NR_OPEN_DEFAULT (Linux refuses more than fs.nr_open, 1,048,576 by
    default); a refusal leaves the limit as it was. A change is logged."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NR_OPEN_DEFAULT if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open file limit from %d to %d", soft, target)
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if now != soft:
        log.info("open file limit raised from %d to %d", soft, now)
    return soft, now


@contextmanager
def phase(name: str, *, stage: str = "start-up") -> Iterator[None]:
    """Log "<stage>: <name> in <seconds>s" once the phase is done (not when it fails)."""
    started = time.perf_counter()
    yield
    log.info("%s: %s in %.2fs", stage, name, time.perf_counter() - started)


def quiet_chatty_loggers() -> None:
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:  # the model's "Loading weights" progress bar
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def _exit(sig: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_on_signals() -> None:
    """SIGTERM, SIGINT and SIGHUP raise SystemExit(0): a stop that was asked for and done
    cleanly (live answers finished, PostgreSQL stopped) exits with status 0, which process
    managers (systemd, Docker, Fly) count as a clean stop; 143 would read as a failure."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit)


class ReadyServer(uvicorn.Server):
    """A uvicorn server that logs "ready" once its sockets are listening, with the time
    since ``started`` (a `time.perf_counter()` reading)."""

    def __init__(self, config: uvicorn.Config, *, started: float) -> None:
        super().__init__(config)
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            config = self.config
            log.info(
                "ready in %.1fs: listening on http://%s:%d",
                time.perf_counter() - self._started,
                config.host,
                config.port,
            )


def serve(server: ReadyServer) -> int:
    """Run ``server``; 0 after a clean stop, 3 when it could not start (uvicorn's code)."""
    server.run()
    if not server.started:
        print("ragship could not start serving (see the log above)", file=sys.stderr)
        return 3
    return 0
