"""Issue 17's gate, read from one `python -m bench gateway` run: each target, each ragship
side's figure, the bound it must meet, and whether it did.

The targets (issue 17, "Done when"), all against the LiteLLM proxy measured in the same run:
- c=1: ragship's added TTFT p50 at most LiteLLM's;
- c=50: ragship's streams/s at least twice LiteLLM's;
- c=50: the reservation step (`caps.reserve` span) p95 at most 20 ms;
- no errors at either concurrency.

A proxy's streams are its upstream's streams, paced the same, so at one concurrency no proxy
can sustain more streams a second than the upstream serves straight to the same client (the
direct side's figure, within run-to-run noise). When twice LiteLLM's rate is above the
direct side's, the c=50 target is out of reach in that run for any proxy, and the row says
so. Without LiteLLM installed, the targets
that compare with it are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.table import Table

DIRECT = "direct"
LITELLM = "LiteLLM proxy"
RESERVE_P95_MAX_S = 0.020  # issue 17: reservation p95 <= 20 ms at c=50
THROUGHPUT_FACTOR = 2.0  # issue 17: streams/s >= 2x LiteLLM's at c=50


@dataclass(frozen=True)
class Measured:
    """One side at one concurrency: added TTFT p50 in seconds (None for the direct side),
    streams per second, errors, and for a ragship side its `caps.reserve` span p95 in
    seconds (None when not measured)."""

    concurrency: int
    side: str
    added_p50_s: float | None
    streams_per_s: float
    errors: int
    reserve_p95_s: float | None = None


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def gate(measured: list[Measured]) -> Table:
    """The gate's table: per ragship side (any side but `DIRECT` and `LITELLM`), a row per
    target. Raises KeyError when a concurrency's direct side is missing."""
    table = Table(
        "Issue 17's targets in this run",
        ["target", "side", "figure", "bound", "met"],
    )
    by = {(m.concurrency, m.side): m for m in measured}
    ours = [m for m in measured if m.side not in (DIRECT, LITELLM)]
    for m in ours:
        lite = by.get((m.concurrency, LITELLM))
        if m.concurrency == 1:
            assert m.added_p50_s is not None  # a ragship side has one
            figure = f"{m.added_p50_s * 1000:+.1f} ms"
            if lite is None or lite.added_p50_s is None:
                table.add("c=1 added TTFT p50 <= LiteLLM's", m.side, figure, "-",
                          "not evaluated: LiteLLM not installed")  # fmt: skip
            else:
                table.add("c=1 added TTFT p50 <= LiteLLM's", m.side, figure,
                          f"{lite.added_p50_s * 1000:+.1f} ms",
                          _yes(m.added_p50_s <= lite.added_p50_s))  # fmt: skip
        elif m.concurrency == 50:
            direct = by[(m.concurrency, DIRECT)]
            if lite is None:
                table.add("c=50 streams/s >= 2x LiteLLM's", m.side, f"{m.streams_per_s:.1f}",
                          "-", "not evaluated: LiteLLM not installed")  # fmt: skip
            else:
                bound = THROUGHPUT_FACTOR * lite.streams_per_s
                verdict = _yes(m.streams_per_s >= bound)
                if bound > direct.streams_per_s:
                    verdict += f" (unreachable: above the direct side's {direct.streams_per_s:.1f})"
                table.add("c=50 streams/s >= 2x LiteLLM's", m.side, f"{m.streams_per_s:.1f}",
                          f"{bound:.1f}", verdict)  # fmt: skip
            if m.reserve_p95_s is not None:
                table.add("c=50 reservation p95 <= 20 ms", m.side,
                          f"{m.reserve_p95_s * 1000:.1f} ms", "20.0 ms",
                          _yes(m.reserve_p95_s <= RESERVE_P95_MAX_S))  # fmt: skip
    for m in ours:
        table.add(f"c={m.concurrency} errors = 0", m.side, m.errors, 0, _yes(m.errors == 0))
    table.notes.append(
        "a proxy's streams are its upstream's, paced the same: at one concurrency it cannot "
        "sustain more streams/s than the upstream serves straight (the direct side, within "
        "run-to-run noise); bench/gateway_gate.py"
    )
    return table
