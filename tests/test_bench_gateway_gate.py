"""`python -m bench gateway`'s last table: issue 17's targets read from the run's figures
(bench/gateway_gate.py)."""

from __future__ import annotations

from bench.gateway_gate import DIRECT, LITELLM, Measured, gate

OURS = "ragship (onnx int8, 1 worker)"


def _run(
    *,
    ours_c1_ms: float,
    lite_c1_ms: float | None,
    ours_c50: float,
    lite_c50: float | None,
    direct_c50: float = 36.5,
    errors: int = 0,
    reserve_ms: float | None = 0.1,
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The gate's rows for one run's figures, by (target, side): (figure, bound, met)."""
    measured = [
        Measured(1, DIRECT, None, 0.8, 0),
        Measured(1, OURS, ours_c1_ms / 1000, 0.8, 0),
        Measured(50, DIRECT, None, direct_c50, 0),
        Measured(50, OURS, 0.2, ours_c50, errors,
                 None if reserve_ms is None else reserve_ms / 1000),
    ]  # fmt: skip
    if lite_c1_ms is not None and lite_c50 is not None:
        measured += [
            Measured(1, LITELLM, lite_c1_ms / 1000, 0.8, 0),
            Measured(50, LITELLM, 0.05, lite_c50, 0),
        ]
    table = gate(measured)
    return {(row[0], row[1]): (row[2], row[3], row[4]) for row in table.rows}


def test_each_target_is_met_or_missed_by_the_runs_own_figures() -> None:
    met = _run(ours_c1_ms=7.0, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=14.0)
    assert met[("c=1 added TTFT p50 <= LiteLLM's", OURS)] == ("+7.0 ms", "+7.3 ms", "yes")
    assert met[("c=50 streams/s >= 2x LiteLLM's", OURS)] == ("30.0", "28.0", "yes")
    assert met[("c=50 reservation p95 <= 20 ms", OURS)] == ("0.1 ms", "20.0 ms", "yes")
    assert met[("c=50 errors = 0", OURS)] == ("0", "0", "yes")
    assert met[("c=1 errors = 0", OURS)] == ("0", "0", "yes")
    missed = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=27.0, lite_c50=14.0, errors=2,
                  reserve_ms=25.0)  # fmt: skip
    assert missed[("c=1 added TTFT p50 <= LiteLLM's", OURS)][2] == "no"
    assert missed[("c=50 streams/s >= 2x LiteLLM's", OURS)][2] == "no"
    assert missed[("c=50 reservation p95 <= 20 ms", OURS)][2] == "no"
    assert missed[("c=50 errors = 0", OURS)] == ("2", "0", "no")


def test_a_throughput_bound_above_the_direct_sides_rate_is_called_unreachable() -> None:
    # LiteLLM at 22.2 streams/s: twice that is above what the upstream served straight.
    rows = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=22.2)
    figure, bound, verdict = rows[("c=50 streams/s >= 2x LiteLLM's", OURS)]
    assert (figure, bound) == ("30.0", "44.4")
    assert verdict == "no (unreachable: above the direct side's 36.5)"
    reachable = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=18.0)
    assert reachable[("c=50 streams/s >= 2x LiteLLM's", OURS)][2] == "no"


def test_without_litellm_its_targets_are_not_evaluated() -> None:
    rows = _run(ours_c1_ms=11.2, lite_c1_ms=None, ours_c50=30.0, lite_c50=None,
                reserve_ms=None)  # fmt: skip
    assert rows[("c=1 added TTFT p50 <= LiteLLM's", OURS)][2].startswith("not evaluated")
    assert rows[("c=50 streams/s >= 2x LiteLLM's", OURS)][2].startswith("not evaluated")
    assert ("c=50 reservation p95 <= 20 ms", OURS) not in rows  # no spans: no row
    assert rows[("c=50 errors = 0", OURS)][2] == "yes"
