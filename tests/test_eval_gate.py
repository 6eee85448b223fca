"""The eval gate on its own: each of its checks (threshold, regression, per-case scores),
the notes it adds, and the baseline it writes; pure functions, so every edge is exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.gate import Verdict, check, dump_baseline, load_baseline, new_baseline

BASELINE: dict[str, Any] = {
    "model": "m",
    "thresholds": {"recall_at_k": 0.8},
    "tolerance": 0.02,
    "case_tolerance": 0.05,
    "overall": {"recall_at_k": 0.9, "mrr": 0.8},
    "cases": {
        "a": {"score": 1.0, "recall_at_k": 1.0, "mrr": 1.0},
        "b": {"score": 0.75, "recall_at_k": 1.0, "mrr": 0.5},
    },
}


def test_the_gate_names_the_cases_behind_each_failure() -> None:
    cases = {
        "a": {"score": 0.5, "recall_at_k": 0.5, "mrr": 0.5},
        "b": {"score": 0.75, "recall_at_k": 1.0, "mrr": 0.5},
    }
    verdict = check({"recall_at_k": 0.75, "mrr": 0.5}, cases, BASELINE, model="m")
    assert not verdict.passed
    assert verdict.failures[:2] == [
        "recall_at_k = 0.750 is below its threshold 0.800 and below the baseline 0.900 by more"
        " than 0.02; cases: a",
        "mrr = 0.500 is below the baseline 0.800 by more than 0.02; cases: a",
    ]
    assert verdict.worse == ["a"]
    assert (
        "a: score 1.00 -> 0.50 (recall_at_k 1.00 -> 0.50, mrr 1.00 -> 0.50)"
        in (verdict.failures[-1])
    )


def test_the_threshold_check_alone_fails_a_metric_below_its_threshold() -> None:
    """Below the threshold but within the tolerance of the baseline: only the threshold
    check can fail it."""
    baseline = {**BASELINE, "overall": {"recall_at_k": 0.79, "mrr": 0.8}}
    verdict = check({"recall_at_k": 0.78, "mrr": 0.8}, {}, baseline, model="m")
    assert verdict.failures == ["recall_at_k = 0.780 is below its threshold 0.800"]
    assert check({"recall_at_k": 0.8, "mrr": 0.8}, {}, baseline, model="m").passed  # at it


def test_the_regression_check_alone_fails_a_drop_from_the_baseline() -> None:
    """Above every threshold, but down from the baseline by more than the tolerance: only
    the regression check can fail it; within the tolerance it passes."""
    verdict = check({"recall_at_k": 0.87, "mrr": 0.8}, {}, BASELINE, model="m")
    assert verdict.failures == ["recall_at_k = 0.870 is below the baseline 0.900 by more than 0.02"]
    assert check({"recall_at_k": 0.885, "mrr": 0.79}, {}, BASELINE, model="m").passed


def test_another_model_is_held_to_the_thresholds_only() -> None:
    cases = {"a": {"score": 0.5, "recall_at_k": 0.5, "mrr": 0.5}}
    verdict = check({"recall_at_k": 0.85, "mrr": 0.5}, cases, BASELINE, model="other")
    assert verdict.passed and "held to the thresholds only" in verdict.notes[0]


def test_another_model_is_named_and_its_failures_name_the_cases_that_scored_zero() -> None:
    cases = {
        "a": {"score": 0.5, "recall_at_k": 0.0, "mrr": 0.5},
        "b": {"score": 0.75, "recall_at_k": 1.0, "mrr": 0.5},
        "c": {"score": 0.0, "recall_at_k": 0.0},
    }
    verdict = check({"recall_at_k": 0.7, "mrr": 0.5}, cases, BASELINE, model="other")
    assert verdict.notes == [
        "the baseline was recorded with m, this run used other: held to the thresholds only"
    ]
    # No per-case baseline to compare with: the cases named are those that scored 0.
    assert verdict.failures == ["recall_at_k = 0.700 is below its threshold 0.800; cases: a, c"]
    assert verdict.worse == []


def test_a_baseline_without_a_model_or_a_run_without_one_is_the_same_model() -> None:
    cases = {"a": {"score": 0.5, "recall_at_k": 0.5, "mrr": 0.5}}
    for baseline, model in (({**BASELINE, "model": None}, "other"), (BASELINE, None)):
        verdict = check({"recall_at_k": 0.9, "mrr": 0.8}, cases, baseline, model=model)
        assert verdict.worse == ["a"] and verdict.notes == []


def test_no_baseline_passes_with_a_note() -> None:
    verdict = check({"recall_at_k": 0.1}, {"a": {"score": 0.0}}, {}, model="m")
    assert verdict.passed
    assert verdict.notes == ["no baseline yet: accept this run with --update-baseline"]
    assert verdict.lines() == [
        "note: no baseline yet: accept this run with --update-baseline",
        "PASS: every metric meets its threshold and the baseline",
    ]


def test_a_subset_is_compared_case_by_case_only() -> None:
    cases = {"b": {"score": 0.5, "recall_at_k": 0.5, "mrr": 0.5}}
    verdict = check({"recall_at_k": 0.1, "mrr": 0.1}, cases, BASELINE, model="m", subset=True)
    assert verdict.notes == ["some cases only: compared case by case, not overall"]
    assert verdict.worse == ["b"]
    assert verdict.failures == [
        "cases that got worse: b\n  b: score 0.75 -> 0.50 (recall_at_k 1.00 -> 0.50)"
    ]
    assert verdict.lines() == [
        "note: some cases only: compared case by case, not overall",
        "FAIL: " + verdict.failures[0],
    ]
    assert check({"recall_at_k": 0.1}, {}, BASELINE, model="m", subset=True).passed


def test_case_scores_move_past_the_case_tolerance_only() -> None:
    baseline = {**BASELINE, "case_tolerance": 0.1}
    cases = {
        "a": {"score": 0.85, "recall_at_k": 1.0, "mrr": 1.0},  # down 0.15: worse
        "b": {"score": 0.9, "recall_at_k": 1.0, "mrr": 0.5},  # up 0.15: better
        "n": {"score": 1.0},  # not in the baseline
    }
    verdict = check({"recall_at_k": 0.9, "mrr": 0.8}, cases, baseline, model="m")
    assert verdict.worse == ["a"]
    assert verdict.notes == ["cases that got better: b", "cases not in the baseline yet: n"]
    within = {"a": {"score": 0.95}, "b": {"score": 0.8}}  # each moved 0.05 only
    verdict = check({"recall_at_k": 0.9, "mrr": 0.8}, within, baseline, model="m")
    assert verdict.passed and verdict.notes == []
    # A case missing its score in the baseline counts as having scored 0.
    loose = {**BASELINE, "cases": {"a": {"recall_at_k": 1.0}}}
    verdict = check({"recall_at_k": 0.9}, {"a": {"score": 0.06}}, loose, model="m")
    assert verdict.notes == ["cases that got better: a"]


def test_the_default_tolerances_apply_when_the_baseline_has_none() -> None:
    baseline = {
        "thresholds": {},
        "overall": {"mrr": 0.8},
        "cases": {"a": {"score": 1.0}, "b": {"score": 1.0}},
    }
    cases = {"a": {"score": 0.96}, "b": {"score": 0.94}}  # the case tolerance is 0.05
    verdict = check({"mrr": 0.79}, cases, baseline)  # the overall tolerance is 0.02
    assert verdict.worse == ["b"]
    assert verdict.failures[:-1] == []
    verdict = check({"mrr": 0.77}, {}, baseline)
    assert verdict.failures == ["mrr = 0.770 is below the baseline 0.800 by more than 0.02"]


def test_only_thresholded_and_accepted_quality_metrics_are_gated() -> None:
    baseline = {
        **BASELINE,
        "thresholds": {"recall_at_k": 0.8, "total_ms": 100.0},
        "overall": {"recall_at_k": 0.9, "mrr": 0.8, "ttft_ms": 50.0, "cost_usd": 1.0},
    }
    summary = {"recall_at_k": 0.9, "mrr": 0.8, "ttft_ms": 0.0, "cost_usd": 0.0, "total_ms": 50}
    verdict = check(summary, {}, baseline, model="m")
    assert verdict.failures == ["total_ms = 50.000 is below its threshold 100.000"]
    assert check({"mrr": 0.8}, {}, baseline, model="m").passed  # unmeasured: not judged


def test_a_metric_is_named_against_the_cases_that_dropped_only() -> None:
    cases = {
        "a": {"score": 1.0, "recall_at_k": 1.0, "mrr": 0.4},
        "b": {"score": 0.75, "recall_at_k": 1.0, "mrr": 0.5},  # as in the baseline
        "c": {"score": 0.0, "mrr": 0.0},  # new: not compared, and a drop was found
    }
    verdict = check({"recall_at_k": 0.9, "mrr": 0.5}, cases, BASELINE, model="m")
    assert verdict.failures == [
        "mrr = 0.500 is below the baseline 0.800 by more than 0.02; cases: a"
    ]
    assert check({"recall_at_k": 0.9, "mrr": 0.7}, {}, BASELINE, model="m").failures == [
        "mrr = 0.700 is below the baseline 0.800 by more than 0.02"
    ]


def test_a_failed_verdict_lists_notes_then_failures_and_no_pass_line() -> None:
    verdict = Verdict(failures=["x"], notes=["n"])
    assert not verdict.passed and verdict.lines() == ["note: n", "FAIL: x"]


def test_a_new_baseline_keeps_the_limits_and_accepts_quality_and_cost(tmp_path: Path) -> None:
    summary = {"recall_at_k": 0.9, "cost_usd": 0.01, "total_ms": 1200.0, "ttft_ms": 300.0}
    cases = {"b": {"score": 1.0}, "a": {"score": 0.5}}
    data = new_baseline(summary, cases, BASELINE, model="m2", prompt_version="answer-v1")
    assert data == {
        "model": "m2",
        "prompt_version": "answer-v1",
        "thresholds": {"recall_at_k": 0.8},
        "tolerance": 0.02,
        "case_tolerance": 0.05,
        "overall": {"recall_at_k": 0.9, "cost_usd": 0.01},
        "cases": {"a": {"score": 0.5}, "b": {"score": 1.0}},
    }
    assert list(data["cases"]) == ["a", "b"]
    fresh = new_baseline({}, {}, {}, model=None, prompt_version=None)
    assert (fresh["thresholds"], fresh["tolerance"], fresh["case_tolerance"]) == ({}, 0.02, 0.05)
    text = dump_baseline(data)
    assert '    "a": {"score": 0.5},\n    "b": {"score": 1.0}\n  }\n}\n' in text
    path = tmp_path / "baseline.json"
    path.write_text(text, encoding="utf-8")
    assert load_baseline(path) == data
    assert load_baseline(tmp_path / "missing.json") == {}


def test_the_baseline_file_has_one_line_per_case_after_the_settings() -> None:
    data = {"model": "m", "tolerance": 0.02, "cases": {"a": {"score": 0.5}, "b": {"score": 1.0}}}
    assert dump_baseline(data) == (
        '{\n  "model": "m",\n  "tolerance": 0.02,\n  "cases": {\n'
        '    "a": {"score": 0.5},\n    "b": {"score": 1.0}\n  }\n}\n'
    )
    assert dump_baseline({"model": "m"}) == '{\n  "model": "m",\n  "cases": {\n\n  }\n}\n'


def test_the_baselines_own_tolerances_are_used_and_kept() -> None:
    baseline = {**BASELINE, "tolerance": 0.1, "case_tolerance": 0.2}
    cases = {"a": {"score": 0.85, "recall_at_k": 1.0, "mrr": 1.0}}  # down 0.15: within 0.2
    verdict = check({"recall_at_k": 0.85, "mrr": 0.75}, cases, baseline, model="m")
    assert verdict.passed, verdict.failures  # each overall metric is down less than 0.1
    verdict = check({"recall_at_k": 0.85, "mrr": 0.65}, cases, baseline, model="m")
    assert verdict.failures == ["mrr = 0.650 is below the baseline 0.800 by more than 0.1"]
    kept = new_baseline({}, {}, baseline, model="m", prompt_version=None)
    assert (kept["tolerance"], kept["case_tolerance"]) == (0.1, 0.2)


def test_a_metric_down_by_exactly_the_rounding_margin_names_no_case() -> None:
    """A drop must exceed 1e-9 to count: a score that only lost float noise is not named."""
    cases = {"a": {"score": 1.0, "recall_at_k": 1.0, "mrr": 1.0 - 1e-9}}
    verdict = check({"recall_at_k": 0.9, "mrr": 0.5}, cases, BASELINE, model="m")
    assert verdict.failures == ["mrr = 0.500 is below the baseline 0.800 by more than 0.02"]


def test_every_name_in_a_note_or_failure_is_listed_and_each_worse_case_detailed() -> None:
    baseline = {**BASELINE, "cases": {c: {"score": 0.5, "mrr": 0.5} for c in "abcd"}}
    cases = {
        "a": {"score": 0.9, "mrr": 0.5},
        "b": {"score": 0.9, "mrr": 0.5},
        "c": {"score": 0.1, "mrr": 0.1},
        "d": {"score": 0.1, "mrr": 0.1},
        "x": {"score": 1.0},
        "y": {"score": 1.0},
    }
    verdict = check({}, cases, baseline, model="m")
    assert verdict.notes == ["cases that got better: a, b", "cases not in the baseline yet: x, y"]
    assert verdict.failures == [
        "cases that got worse: c, d\n"
        "  c: score 0.50 -> 0.10 (mrr 0.50 -> 0.10)\n"
        "  d: score 0.50 -> 0.10 (mrr 0.50 -> 0.10)"
    ]


def test_a_metric_the_run_did_not_measure_does_not_stop_the_others_being_gated() -> None:
    verdict = check({"mrr": 0.5}, {}, BASELINE, model="m")  # no recall_at_k this run
    assert verdict.failures == ["mrr = 0.500 is below the baseline 0.800 by more than 0.02"]


def test_exactly_at_a_limit_passes_every_check() -> None:
    """ "Below the threshold" and "by more than the tolerance" are strict: a run exactly at
    the threshold, or down exactly the tolerance, passes."""
    baseline = {
        **BASELINE,
        "thresholds": {"recall_at_k": 0.8 + 1e-9},
        "overall": {"recall_at_k": 0.8, "mrr": 0.8},
    }
    assert check({"recall_at_k": 0.8, "mrr": 0.8}, {}, baseline, model="m").passed
    at_tolerance = 0.8 - 0.02
    assert check({"recall_at_k": 0.9, "mrr": at_tolerance}, {}, BASELINE, model="m").passed
    moved = {"a": {"score": 1.0 - 0.05}, "b": {"score": 0.75 + 0.05}}
    verdict = check({"recall_at_k": 0.9, "mrr": 0.8}, moved, BASELINE, model="m")
    assert verdict.passed and verdict.notes == []
