"""The interpreter's thread switch interval, shortened while the app serves.

One worker runs its event loop in one thread and some work in others: the span exporter
(OpenTelemetry's batch processor, which encodes every span in Python) and the query
embeddings (`asyncio.to_thread`). Only the thread holding the GIL runs Python. When the
event loop's thread wakes up (a database or Redis answer arrived, a timer fired) while
another thread holds the GIL, it asks for it and waits until the holder gives it up: at
the latest after the switch interval (`sys.setswitchinterval`; CPython's default is 5 ms,
[the `sys` documentation](https://docs.python.org/3/library/sys.html#sys.setswitchinterval)).
A thread that computes in Python for long stretches, as the exporter does for a batch of
spans, so adds up to that interval to every wake-up of the loop that comes during it, and
a request's admission waits for several wake-ups. `GIL_SWITCH_INTERVAL_MS` (default 1)
bounds that wait lower; the price is more frequent switching between threads that both
want to compute, which the benchmarks below did not show as lost throughput.

Measured in `python -m bench gil_switch` (a Redis round trip from the event loop while a
thread encodes spans) and `python -m bench gateway` (docs/architecture.md, "The GIL's
switch interval").
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("ragship")


@contextmanager
def switch_interval(seconds: float) -> Iterator[float]:
    """Set the interpreter's switch interval to ``seconds`` (> 0) for the block; yields the
    one it replaced, and puts that back on the way out, however the block ends. Raises
    ValueError for ``seconds <= 0`` (as `sys.setswitchinterval` does)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    log.info("start-up: thread switch interval %.2f ms (was %.2f)", seconds * 1e3, before * 1e3)
    try:
        yield before
    finally:
        sys.setswitchinterval(before)
