"""`python -m bench gateway`'s last table: issue 17's targets read from the run's figures
(bench/gateway_gate.py)."""

from __future__ import annotations

from bench.gateway_gate import (
    DIRECT,
    LATENCY_TARGET,
    LITELLM,
    RESERVE_TARGET,
    THROUGHPUT_TARGET,
    Measured,
    gate,
)

OURS = "ragship (onnx int8, 1 worker)"
Rows = dict[tuple[str, str], tuple[str, str, str]]


def _run(
    *,
    ours_c1_ms: float,
    lite_c1_ms: float | None,
    ours_c50: float,
    lite_c50: float | None,
    direct_c50: float = 36.5,
    errors: int = 0,
    reserve_ms: float | None = 0.1,
) -> Rows:
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


def test_the_targets_are_the_issues() -> None:
    assert LATENCY_TARGET == "c=1 added TTFT p50 <= LiteLLM's"
    assert THROUGHPUT_TARGET == "c=50 streams/s >= 2x LiteLLM's"
    assert RESERVE_TARGET == "c=50 reservation p95 <= 20 ms"


def test_each_target_is_met_or_missed_by_the_runs_own_figures() -> None:
    met = _run(ours_c1_ms=7.0, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=14.0)
    assert met[(LATENCY_TARGET, OURS)] == ("+7.0 ms", "+7.3 ms", "yes")
    assert met[(THROUGHPUT_TARGET, OURS)] == ("30.0", "28.0", "yes")
    assert met[(RESERVE_TARGET, OURS)] == ("0.1 ms", "20.0 ms", "yes")
    assert met[("c=50 errors = 0", OURS)] == ("0", "0", "yes")
    assert met[("c=1 errors = 0", OURS)] == ("0", "0", "yes")
    missed = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=27.0, lite_c50=14.0, errors=2,
                  reserve_ms=25.0)  # fmt: skip
    assert missed[(LATENCY_TARGET, OURS)][2] == "no"
    assert missed[(THROUGHPUT_TARGET, OURS)][2] == "no"
    assert missed[(RESERVE_TARGET, OURS)][2] == "no"
    assert missed[("c=50 errors = 0", OURS)] == ("2", "0", "no")


def test_a_figure_equal_to_its_bound_meets_it() -> None:
    rows = _run(ours_c1_ms=8.4, lite_c1_ms=8.4, ours_c50=28.0, lite_c50=14.0, reserve_ms=20.0)
    assert rows[(LATENCY_TARGET, OURS)][2] == "yes"
    assert rows[(THROUGHPUT_TARGET, OURS)][2] == "yes"
    assert rows[(RESERVE_TARGET, OURS)][2] == "yes"


def test_a_missed_throughput_bound_above_the_direct_sides_rate_is_out_of_reach() -> None:
    # LiteLLM at 22.2 streams/s: twice that is above what the upstream served straight.
    rows = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=22.2)
    assert rows[(THROUGHPUT_TARGET, OURS)] == (
        "30.0", "44.4", "no (out of reach: above the direct side's 36.5)"
    )  # fmt: skip
    within = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=18.0)
    assert within[(THROUGHPUT_TARGET, OURS)][2] == "no"  # 36.0: within the direct side's
    # Met, though above the direct side's rate (noise): a plain yes, nothing contradictory.
    noisy = _run(ours_c1_ms=11.2, lite_c1_ms=7.3, ours_c50=37.0, lite_c50=18.4)
    assert noisy[(THROUGHPUT_TARGET, OURS)][2] == "yes"


def test_a_reservation_never_measured_is_a_no() -> None:
    rows = _run(ours_c1_ms=7.0, lite_c1_ms=7.3, ours_c50=30.0, lite_c50=14.0, reserve_ms=None)
    assert rows[(RESERVE_TARGET, OURS)] == ("not measured", "20.0 ms", "no")


def test_without_litellm_its_targets_are_not_evaluated() -> None:
    rows = _run(ours_c1_ms=11.2, lite_c1_ms=None, ours_c50=30.0, lite_c50=None)
    assert rows[(LATENCY_TARGET, OURS)][2] == "not evaluated: LiteLLM not installed"
    assert rows[(THROUGHPUT_TARGET, OURS)][2] == "not evaluated: LiteLLM not installed"
    assert rows[(RESERVE_TARGET, OURS)][2] == "yes"
    assert rows[("c=50 errors = 0", OURS)][2] == "yes"
