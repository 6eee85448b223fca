"""The interpreter's thread switch interval, shortened while the app serves.

A worker runs its event loop in one thread and some work in others. Only the thread that
holds the GIL runs Python, and the event loop's thread gives the GIL up while it waits
for I/O (and around its socket calls), so it must get it back each time, from whichever
thread took it meanwhile. A thread that keeps computing in Python does not give
it back on request at once: CPython asks it to drop the GIL only after the waiting thread
has waited one switch interval (`sys.setswitchinterval`; 5 ms by default,
https://docs.python.org/3/library/sys.html#sys.setswitchinterval), and the holder drops it
at its next check between bytecodes (a long call into C code that keeps the GIL finishes
first). The app's thread that computes in Python is the span exporter, which runs only
with OTEL_EXPORTER_OTLP_ENDPOINT set: OpenTelemetry's batch processor encodes each batch of
spans to OTLP in Python, once a second or at 512 queued spans (app/observability/tracing.py).
Query embeddings run in threads too (`asyncio.to_thread`), but onnxruntime and the
tokenizer drop the GIL while they compute; torch's forward pass takes it between
operations. So under load a request's admission, which waits for several answers (the
sign-in lookup, the rate limit, the search, the reservation), may wait about an interval
for each while the exporter encodes.

`GIL_SWITCH_INTERVAL_MS` (default 1) shortens that wait. The cost falls on the threads that
compute: in `python -m bench gil_switch`, with a thread encoding spans without pause, the
event loop's store calls took about a quarter of the time and the thread encoded 35–40%
fewer batches a second (docs/architecture.md, "The GIL's switch interval"); the app's
exporter needs a small share of that rate.
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
    one it replaced. On the way out, however the block ends, it puts that one back, unless
    the interval is no longer ``seconds``: the interval is the whole process's, so when
    another app in the same process set its own since (the test suite starts many), that
    one is left as it is. Raises ValueError for ``seconds <= 0`` (`sys.setswitchinterval`)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    ours = sys.getswitchinterval()  # as CPython stores it (whole microseconds)
    log.info("start-up: thread switch interval %.2f ms (was %.2f)", ours * 1e3, before * 1e3)
    try:
        yield before
    finally:
        if sys.getswitchinterval() == ours:
            sys.setswitchinterval(before)
