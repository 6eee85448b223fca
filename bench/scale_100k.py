"""Retrieval at 100,000 chunks only: `bench scale`'s 100k rows, without the 10k size and
without the unbounded keyword baseline (17 s on an idle machine, minutes under load), for
iterating on retrieval's speed. Reuses `bench scale`'s kept database (`bench.scale_db`).
Run only when named.
"""

from __future__ import annotations

from bench import scale
from bench.table import Table

NAME = "scale_100k"
SIZE = 100_000


def run() -> list[Table]:
    return scale.one_size(SIZE)
