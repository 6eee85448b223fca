"""Issue 17's gate, read from one `python -m bench gateway` run: each target, each ragship
side's figure, the bound it must meet, and whether it did.

The targets (issue 17, "Done when"), all against the LiteLLM proxy measured in the same run:
- c=1: ragship's added TTFT p50 at most LiteLLM's;
- c=50: ragship's streams/s at least twice LiteLLM's;
- c=50: the reservation step (`caps.reserve` span) p95 at most 20 ms;
- no errors at either concurrency.

Streams/s here counts the streams that ended well (a failed request is not a stream
served), for every side. Each of a proxy's streams is one of its upstream's, paced the
same, so with the same client, concurrency and answers a proxy cannot sustain more streams
a second than the upstream serves straight (the direct side), up to run-to-run noise. That
is an argument, not a measurement: when twice LiteLLM's rate is above the direct side's and
the target is missed, the row says it was out of reach in that run. Without LiteLLM
installed, the targets that compare with it are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.table import Table

DIRECT = "direct"
LITELLM = "LiteLLM proxy"
RESERVE_P95_MAX_S = 0.020  # issue 17: reservation p95 <= 20 ms at c=50
THROUGHPUT_FACTOR = 2.0  # issue 17: streams/s >= 2x LiteLLM's at c=50
LATENCY_TARGET = "c=1 added TTFT p50 <= LiteLLM's"
THROUGHPUT_TARGET = f"c=50 streams/s >= {THROUGHPUT_FACTOR:g}x LiteLLM's"
RESERVE_TARGET = f"c=50 reservation p95 <= {RESERVE_P95_MAX_S * 1000:g} ms"
NOT_INSTALLED = "not evaluated: LiteLLM not installed"


@dataclass(frozen=True)
class Measured:
    """One side at one concurrency: added TTFT p50 in seconds (None for the direct side),
    streams that ended well per second, errors, and for a ragship side its `caps.reserve`
    span p95 in seconds (None when no span arrived; the gate reads it at c=50)."""

    concurrency: int
    side: str
    added_p50_s: float | None
    streams_per_s: float
    errors: int
    reserve_p95_s: float | None = None


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def gate(measured: list[Measured]) -> Table:
    """A table of (target, side, figure, bound, met) rows: for each ragship side (any side
    but `DIRECT` and `LITELLM`) at concurrency 1 the latency target, at 50 the throughput
    and reservation targets, and at both the errors. A reservation p95 that was not measured
    is a "no". Raises KeyError when LiteLLM was measured at 50 but the direct side was not."""
    table = Table("Issue 17's targets in this run", ["target", "side", "figure", "bound", "met"])
    by = {(m.concurrency, m.side): m for m in measured}
    ours = [m for m in measured if m.side not in (DIRECT, LITELLM)]
    for m in ours:
        lite = by.get((m.concurrency, LITELLM))
        if m.concurrency == 1 and m.added_p50_s is not None:
            figure = f"{m.added_p50_s * 1000:+.1f} ms"
            if lite is None or lite.added_p50_s is None:
                table.add(LATENCY_TARGET, m.side, figure, "-", NOT_INSTALLED)
            else:
                table.add(LATENCY_TARGET, m.side, figure, f"{lite.added_p50_s * 1000:+.1f} ms",
                          _yes(m.added_p50_s <= lite.added_p50_s))  # fmt: skip
        elif m.concurrency == 50:
            figure = f"{m.streams_per_s:.1f}"
            if lite is None:
                table.add(THROUGHPUT_TARGET, m.side, figure, "-", NOT_INSTALLED)
            else:
                bound = THROUGHPUT_FACTOR * lite.streams_per_s
                met = m.streams_per_s >= bound
                direct = by[(m.concurrency, DIRECT)].streams_per_s
                verdict = _yes(met)
                if not met and bound > direct:
                    verdict += f" (out of reach: above the direct side's {direct:.1f})"
                table.add(THROUGHPUT_TARGET, m.side, figure, f"{bound:.1f}", verdict)
            bound_ms = f"{RESERVE_P95_MAX_S * 1000:.1f} ms"
            if m.reserve_p95_s is None:
                table.add(RESERVE_TARGET, m.side, "not measured", bound_ms, "no")
            else:
                table.add(RESERVE_TARGET, m.side, f"{m.reserve_p95_s * 1000:.1f} ms", bound_ms,
                          _yes(m.reserve_p95_s <= RESERVE_P95_MAX_S))  # fmt: skip
    for m in ours:
        table.add(f"c={m.concurrency} errors = 0", m.side, m.errors, 0, _yes(m.errors == 0))
    table.notes.append(
        "streams/s: streams that ended well; a proxy's streams are its upstream's, paced the "
        "same, so it cannot sustain more of them than the direct side, up to noise "
        "(bench/gateway_gate.py)"
    )
    return table
