"""Retrieval at 100,000 chunks only: `bench scale`'s 100k rows, without the 10k size and
without the unbounded keyword baseline (17 s on an idle machine, minutes under load), for
iterating on retrieval's speed. Reuses `bench scale`'s kept database (`bench.scale_db`).
Run only when named.
"""

from __future__ import annotations

from bench import scale
from bench.scale_db import KEPT
from bench.table import Table

NAME = "scale_100k"
SIZE = 100_000


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
        f"database kept in {KEPT} (delete it to rebuild)",
    ]
    return [table]
