"""One client process's share of a streams level, as JSON, and the merge of every share.

Each client process (bench/streams_shard.py) holds its share of the level's streams on its
own event loop and writes a `Part`: its stream durations, failures by kind with one example
each, 503 retries, its own loop's lag samples, and the CPU it used over the wall time it
held them. The parent merges the parts into one `Hold` (the table's row) and keeps, per
process, the worst loop lag and the CPU used, so a saturated client shows as one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.streams_client import Hold


@dataclass(frozen=True)
class Part:
    """What one client process measured. Seconds throughout; `cpu_s` is the process's user
    plus system CPU time over the `wall_s` it held its share."""

    durations: list[float]
    held: list[tuple[float, float]]  # (began, ended) per stream read to its end
    done: int
    errors: dict[str, int]
    examples: dict[str, str]
    retried: int
    client_lag: list[float]
    cpu_s: float
    wall_s: float

    @classmethod
    def of(cls, hold: Hold, *, cpu_s: float, wall_s: float) -> Part:
        return cls(
            durations=list(hold.durations),
            held=list(hold.held),
            done=hold.done,
            errors=dict(hold.errors),
            examples=dict(hold.examples),
            retried=hold.retried,
            client_lag=list(hold.client_lag),
            cpu_s=cpu_s,
            wall_s=wall_s,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "durations": self.durations,
            "held": [list(span) for span in self.held],
            "done": self.done,
            "errors": self.errors,
            "examples": self.examples,
            "retried": self.retried,
            "client_lag": self.client_lag,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        """Raises KeyError on a missing field, ValueError/TypeError on a wrong-typed one."""
        return cls(
            durations=[float(d) for d in data["durations"]],
            held=[(float(a), float(b)) for a, b in data["held"]],
            done=int(data["done"]),
            errors={str(k): int(v) for k, v in data["errors"].items()},
            examples={str(k): str(v) for k, v in data["examples"].items()},
            retried=int(data["retried"]),
            client_lag=[float(x) for x in data["client_lag"]],
            cpu_s=float(data["cpu_s"]),
            wall_s=float(data["wall_s"]),
        )


@dataclass
class Merged:
    """Every part together: `hold` as one client would have measured it (lag samples of all
    processes pooled), and per process, in order, its worst lag (s) and CPU (% of one core)."""

    hold: Hold
    lag_max: list[float] = field(default_factory=list)
    cpu_pct: list[float] = field(default_factory=list)


def merge(parts: list[Part]) -> Merged:
    """Pool the parts: durations, lag samples, counts and errors add up; an error kind's
    example is the first part's that has one. A process with no lag sample has worst lag 0,
    one with no wall time CPU 0%."""
    hold = Hold()
    merged = Merged(hold)
    for part in parts:
        hold.durations += part.durations
        hold.held += part.held
        hold.done += part.done
        hold.errors += Counter(part.errors)
        for kind, example in part.examples.items():
            hold.examples.setdefault(kind, example)
        hold.retried += part.retried
        hold.client_lag += part.client_lag
        merged.lag_max.append(max(part.client_lag, default=0.0))
        merged.cpu_pct.append(100 * part.cpu_s / part.wall_s if part.wall_s > 0 else 0.0)
    return merged


def peak_held(held: list[tuple[float, float]]) -> int:
    """The most streams open at one moment, from (began, ended) spans on one clock: a sweep
    over the spans' ends in time order, an end before a beginning at the same instant."""
    events = sorted([(a, 1) for a, _ in held] + [(b, -1) for _, b in held])
    peak = open_now = 0
    for _, step in events:
        open_now += step
        peak = max(peak, open_now)
    return peak
