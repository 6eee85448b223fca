"""The gate: fail when a metric is below its threshold or regresses past the tolerance from
the accepted baseline, naming the cases that got worse.

evals/baseline.json holds the thresholds, the tolerance, and the accepted scores: overall
and per case (each case's quality metrics and their mean, its "score").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.metrics import QUALITY

BASELINE = Path(__file__).resolve().parent / "baseline.json"
DEFAULT_TOLERANCE = 0.02  # overall metrics
DEFAULT_CASE_TOLERANCE = 0.05  # one case's score
CaseMetrics = dict[str, dict[str, float]]  # {case id: {"score": s, metric: value, ...}}


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)  # case ids

    @property
    def passed(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [f"note: {n}" for n in self.notes] + [f"FAIL: {f}" for f in self.failures]
        if self.passed:
            out.append("PASS: every metric meets its threshold and the baseline")
        return out


def load_baseline(path: Path = BASELINE) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def check(
    summary: dict[str, float],
    cases: CaseMetrics,
    baseline: dict[str, Any],
    *,
    model: str | None = None,
    subset: bool = False,
) -> Verdict:
    """Judge a run against the thresholds and the baseline.

    A run of some cases only (`subset`) is compared case by case, not overall. A run with
    another model than the baseline's is held to the thresholds only: its per-case scores
    are not comparable with the baseline's.
    """
    verdict = Verdict()
    tolerance = float(baseline.get("tolerance", DEFAULT_TOLERANCE))
    case_tolerance = float(baseline.get("case_tolerance", DEFAULT_CASE_TOLERANCE))
    thresholds: dict[str, float] = baseline.get("thresholds", {})
    accepted: dict[str, float] = baseline.get("overall", {})
    accepted_cases: CaseMetrics = baseline.get("cases", {})
    same_model = model is None or baseline.get("model") in (None, model)
    if not baseline:
        verdict.notes.append("no baseline yet: accept this run with --update-baseline")
    if not same_model:
        verdict.notes.append(
            f"the baseline was recorded with {baseline.get('model')}, this run used {model}: "
            "held to the thresholds only"
        )
        accepted, accepted_cases = {}, {}
    if subset:
        verdict.notes.append("some cases only: compared case by case, not overall")
    else:
        gated = list(thresholds) + [m for m in QUALITY if m in accepted and m not in thresholds]
        for metric in gated:
            value = summary.get(metric)
            if value is None:
                continue
            reasons = []
            threshold, before = thresholds.get(metric), accepted.get(metric)
            if threshold is not None and value < threshold - 1e-9:
                reasons.append(f"below its threshold {threshold:.3f}")
            if before is not None and value < before - tolerance:
                reasons.append(f"below the baseline {before:.3f} by more than {tolerance}")
            if reasons:
                verdict.failures.append(
                    f"{metric} = {value:.3f} is {' and '.join(reasons)}"
                    + _naming(metric, cases, accepted_cases)
                )
    verdict.worse = sorted(
        case_id
        for case_id, metrics in cases.items()
        if case_id in accepted_cases
        and metrics["score"] < accepted_cases[case_id].get("score", 0.0) - case_tolerance
    )
    better = sorted(
        case_id
        for case_id, metrics in cases.items()
        if case_id in accepted_cases
        and metrics["score"] > accepted_cases[case_id].get("score", 0.0) + case_tolerance
    )
    if better:
        verdict.notes.append(f"cases that got better: {', '.join(better)}")
    new = sorted(set(cases) - set(accepted_cases)) if accepted_cases else []
    if new:
        verdict.notes.append(f"cases not in the baseline yet: {', '.join(new)}")
    if verdict.worse:
        verdict.failures.append(
            f"cases that got worse: {', '.join(verdict.worse)}\n"
            + "\n".join(_detail(c, cases[c], accepted_cases[c]) for c in verdict.worse)
        )
    return verdict


def _naming(metric: str, cases: CaseMetrics, accepted: CaseMetrics) -> str:
    """The cases whose `metric` dropped from the baseline (or, with none, scored 0)."""
    dropped = sorted(
        case_id
        for case_id, m in cases.items()
        if metric in m
        and metric in accepted.get(case_id, {})
        and m[metric] < accepted[case_id][metric] - 1e-9
    )
    if not dropped:
        dropped = sorted(c for c, m in cases.items() if m.get(metric, 1.0) == 0.0)
    return f"; cases: {', '.join(dropped)}" if dropped else ""


def _detail(case_id: str, now: dict[str, float], before: dict[str, float]) -> str:
    changed = [
        f"{metric} {before[metric]:.2f} -> {value:.2f}"
        for metric, value in now.items()
        if metric != "score" and metric in before and abs(value - before[metric]) > 1e-9
    ]
    return f"  {case_id}: score {before['score']:.2f} -> {now['score']:.2f} ({', '.join(changed)})"


_OWN_KEYS = frozenset(
    {"model", "prompt_version", "thresholds", "tolerance", "case_tolerance", "overall", "cases"}
)


def new_baseline(
    summary: dict[str, float],
    cases: CaseMetrics,
    previous: dict[str, Any],
    *,
    model: str | None,
    prompt_version: str | None,
) -> dict[str, Any]:
    """The accepted scores of this run, keeping the thresholds, the tolerance, and what
    other gates keep in the same file (the attack corpus's "attacks")."""
    others = {k: v for k, v in previous.items() if k not in _OWN_KEYS}
    return {
        **others,
        "model": model,
        "prompt_version": prompt_version,
        "thresholds": previous.get("thresholds", {}),
        "tolerance": previous.get("tolerance", DEFAULT_TOLERANCE),
        "case_tolerance": previous.get("case_tolerance", DEFAULT_CASE_TOLERANCE),
        # Latency varies from run to run: it is reported, not accepted. Cost is not noise.
        "overall": {k: v for k, v in summary.items() if k in QUALITY or k.startswith("cost")},
        "cases": {case_id: cases[case_id] for case_id in sorted(cases)},
    }


def dump_baseline(data: dict[str, Any]) -> str:
    """JSON with one line per case, so a review shows which cases moved."""
    head = json.dumps({k: v for k, v in data.items() if k != "cases"}, indent=2)
    rows = ",\n".join(
        f"    {json.dumps(case_id)}: {json.dumps(metrics)}"
        for case_id, metrics in data.get("cases", {}).items()
    )
    return head[:-2] + ',\n  "cases": {\n' + rows + "\n  }\n}\n"
