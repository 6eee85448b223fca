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
    table = Table(
        f"Retrieval at scale: {scale.QUERIES} queries, {SIZE:,} synthetic clustered vectors",
        ["chunks", "query", "recall@10", "p50 ms", "p95 ms", "HNSW build s"],
    )
    scale.measure(SIZE, table, baseline=False)
    table.notes += [
        "recall@10 against exact search (numpy brute force); HNSW as the migrations build it "
        "(m=16, ef_construction=128)",
        "hybrid = hybrid_search with the default settings; the unbounded baseline is left out",
    ]
    return [table]
