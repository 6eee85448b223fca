"""The start-up heap, frozen out of the garbage collector's full collections.

CPython's cycle collector runs a full collection (generation 2) every so often, and a full
collection walks every tracked object in the process, stopping the event loop while it
does. A worker holds a few hundred thousand objects from start-up alone (FastAPI's and
SQLAlchemy's modules, the tokenizers, the embedding model's wrappers), objects that live as
long as the process, so each full collection paused every answer streaming from it for tens
to hundreds of milliseconds (measured in docs/deploy.md).

`gc.freeze()` (Python 3.7+) moves every tracked object into a permanent generation that
collections skip; objects made afterwards are collected as before. It is the pattern the
Python documentation gives for pre-fork servers ("gc.freeze() right before fork()"); here
it runs once the lifespan has built the worker's clients and models, the point after which
start-up objects stay for good. No collection runs before it: a full one would cost the
pause once more at start (and in every app a test starts). The cost is memory that no
collection frees: cyclic garbage left by start-up, and start-up objects that later become
cyclic garbage (a pooled connection replaced, say): bounded by the start-up heap, plus any
later object caught in a cycle with one of them. `gc.unfreeze()` at shutdown hands every
frozen object back, so a process that starts and stops many apps (the test suite) can free
each; another app still running in that process then runs unfrozen to its end, which
costs it slower full collections and nothing else.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("ragship")


@contextmanager
def frozen_heap() -> Iterator[int]:
    """Freeze every object tracked now (`gc.freeze`) for the block; yields how many are
    frozen in all (`gc.get_freeze_count`); unfreezes on the way out, however it ends."""
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("start-up: %d objects frozen out of full garbage collections", frozen)
    try:
        yield frozen
    finally:
        gc.unfreeze()
