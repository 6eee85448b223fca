"""Plain-text tables, latency percentiles and time-bounded iteration for the benchmarks."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
DASH = "-"


@dataclass
class Table:
    """A titled table of text cells: the first column left-aligned, the others right-aligned."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(cell) for cell in cells])

    def render(self) -> str:
        grid = [self.columns, *self.rows]
        widths = [max(len(row[i]) for row in grid) for i in range(len(self.columns))]

        def line(cells: list[str]) -> str:
            parts = [cells[0].ljust(widths[0])]
            parts += [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * width for width in widths)
        out = [self.title, rule, line(self.columns), rule]
        out += [line(row) for row in self.rows]
        out.append(rule)
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


@dataclass(frozen=True)
class Latency:
    """Summary of a list of durations, in seconds."""

    n: int
    p50: float
    p95: float
    p99: float
    mean: float

    def ms(self) -> list[str]:
        """n, p50, p95, p99 and mean as table cells in milliseconds."""
        return [
            str(self.n),
            *(f"{v * 1000:.2f}" for v in (self.p50, self.p95, self.p99, self.mean)),
        ]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty sequence."""
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency(samples: Sequence[float]) -> Latency:
    if not samples:
        return Latency(0, math.nan, math.nan, math.nan, math.nan)
    ordered = sorted(samples)
    return Latency(
        n=len(ordered),
        p50=percentile(ordered, 50),
        p95=percentile(ordered, 95),
        p99=percentile(ordered, 99),
        mean=sum(ordered) / len(ordered),
    )


def bounded(items: Iterable[T], *, max_seconds: float) -> Iterator[T]:
    """Yield from a finite collection until it ends or the time budget is spent."""
    deadline = time.perf_counter() + max_seconds
    for item in items:
        if time.perf_counter() > deadline:
            return
        yield item


def ratio(value: float, base: float) -> str:
    return f"x{value / base:.2f}" if base > 0 else DASH


def seconds(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"
