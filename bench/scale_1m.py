"""Retrieval at 1,000,000 chunks: `bench scale`'s measurement at 1M, without its unbounded
keyword baseline (ranking every full-text match of a million rows takes seconds a query).

Needs about 6 GB of memory and, on two cores, most of an hour (the load, the GIN and HNSW
builds); not part of `python -m bench` with no names.
"""

from __future__ import annotations

from bench import scale
from bench.table import Table

NAME = "scale_1m"
SIZE = 1_000_000


def run() -> list[Table]:
    return scale.one_size(SIZE)
