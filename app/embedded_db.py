"""The embedded default database: a real PostgreSQL 16 with pgvector from the `pgserver` wheel.

Used when ``DATABASE_URL`` is unset (local development and tests). Production points
``DATABASE_URL`` at any PostgreSQL with the pgvector extension instead.

Lifecycle: `pgserver` stops the server when the last Python process using it exits, using
a list of process ids kept next to the data (``.handle_pids.json``) and an ``atexit`` hook.
Two things defeat that, and are handled here: an id left by a process that died without
running ``atexit`` (SIGKILL, a crash) keeps the server alive for ever, so dead ids are
dropped before joining; and a process ended by a signal skips ``atexit``, so
`python -m app` stops the server itself (`stop_embedded_postgres`) on any exit.
`python -m app.embedded_db stop` (`make stop`) stops a server left running anyway.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

log = logging.getLogger("ragship.db")
HANDLES = ".handle_pids.json"  # pgserver's list of the processes using the server
STOP_WAIT_S = 30.0  # PostgreSQL's own default for `pg_ctl stop -w`


def _pgdata(data_dir: Path) -> Path:
    return (data_dir / "pg").resolve()


def import_pgserver() -> ModuleType:
    """`pgserver`, imported on first use: the container image leaves it out (production sets
    DATABASE_URL). Its import asks platformdirs for a runtime folder for its lock file; where
    XDG_RUNTIME_DIR is unset (containers, CI, `su`, ssh without a login session) platformdirs
    warns `RuntimeDirWarning` and uses /tmp/runtime-<uid>. That fallback is fine for a lock
    file, so the warning, which read as a fault among `make dev`'s first lines, is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver
    return pgserver


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server under ``data_dir/pg`` and return its libpq URI."""
    pgserver = import_pgserver()
    pgdata = _pgdata(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    dropped = drop_stale_handles(pgdata)
    if dropped:
        log.info("embedded PostgreSQL: ignored %d process(es) that exited long ago", dropped)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()


def drop_stale_handles(pgdata: Path) -> int:
    """Remove the ids of processes that no longer exist from pgserver's handle list;
    returns how many were removed. A missing or unreadable list is left alone."""
    path = pgdata / HANDLES
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return 0
    alive = [pid for pid in pids if _alive(pid)]
    if len(alive) != len(pids):
        path.write_text(json.dumps(alive))
    return len(pids) - len(alive)


def stop_embedded_postgres(data_dir: Path, *, only_if_last: bool = True) -> bool:
    """Stop the embedded server under ``data_dir/pg`` (fast shutdown: SIGINT to the
    postmaster, as `pg_ctl stop -m fast`) and wait up to STOP_WAIT_S for it to exit.

    ``only_if_last``: leave it running while another live process still uses it (an
    ingest run, a second app). Returns whether a server was stopped."""
    pgdata = _pgdata(data_dir)
    drop_stale_handles(pgdata)
    handles = pgdata / HANDLES
    try:
        users = [int(p) for p in json.loads(handles.read_text())]
    except (OSError, ValueError, TypeError):
        users = []
    others = [pid for pid in users if pid != os.getpid()]
    if only_if_last and others:
        log.info("embedded PostgreSQL left running: still used by process(es) %s", others)
        return False
    pid = postmaster_pid(pgdata)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + STOP_WAIT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        log.error("embedded PostgreSQL (pid %d) did not stop within %.0fs", pid, STOP_WAIT_S)
        return False
    if handles.exists():
        handles.write_text("[]")
    return True


def postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's pid from ``postmaster.pid``; None if none is running (a
    stale file left by a crash names a dead process, or another one: both are None)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _alive(pid) and _is_postgres(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (pgserver's, under root)
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we have
    return stat.rpartition(")")[2].split()[0] != "Z"


def _is_postgres(pid: int) -> bool:
    try:
        return "postgres" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return True


def main(argv: list[str]) -> int:
    """`python -m app.embedded_db stop`: stop the embedded server, whoever started it."""
    from app.settings import get_settings

    if argv != ["stop"]:
        print("usage: python -m app.embedded_db stop", file=sys.stderr)
        return 2
    data_dir = get_settings().data_dir
    stopped = stop_embedded_postgres(data_dir, only_if_last=False)
    print(
        f"embedded PostgreSQL under {_pgdata(data_dir)}: {'stopped' if stopped else 'not running'}"
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main(sys.argv[1:]))
