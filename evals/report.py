"""Summaries and reports: overall metrics, a terminal table, Markdown and JSON files."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.cases import KINDS, Case
from evals.metrics import QUALITY, Outcome, case_score, found_facts, quality


@dataclass
class Run:
    """One run of the suite: its cases, what came back, and the scores."""

    cases: list[Case]
    outcomes: dict[str, Outcome]
    per_case: dict[str, dict[str, Any]]  # every metric, measurements included
    settings: dict[str, Any]
    seconds: float = 0.0
    judge: dict[str, Any] | None = None
    summary: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.summary = overall(self.per_case)

    @property
    def model(self) -> str | None:
        return next((o.model for o in self.outcomes.values() if o.model), None)

    @property
    def prompt_version(self) -> str | None:
        return next((o.prompt_version for o in self.outcomes.values() if o.prompt_version), None)

    def case_metrics(self) -> dict[str, dict[str, float]]:
        """{case id: {"score": s, quality metric: value}}: what the gate and baseline use."""
        return {
            c.id: {"score": round(case_score(self.per_case[c.id]), 4)}
            | quality(self.per_case[c.id])
            for c in self.cases
        }


def overall(per_case: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over the cases it applies to, plus latency and cost."""
    result: dict[str, float] = {}
    for metric in QUALITY:
        values = [m[metric] for m in per_case.values() if metric in m]
        if values:
            result[metric] = round(sum(values) / len(values), 4)
    totals = sorted(m["total_ms"] for m in per_case.values())
    ttfts = sorted(m["ttft_ms"] for m in per_case.values() if "ttft_ms" in m)
    if totals:
        result["total_ms_p50"] = _percentile(totals, 0.5)
        result["total_ms_p95"] = _percentile(totals, 0.95)
    if ttfts:
        result["ttft_ms_p50"] = _percentile(ttfts, 0.5)
        result["ttft_ms_p95"] = _percentile(ttfts, 0.95)
    costs = [m["cost_usd"] for m in per_case.values()]
    result["cost_usd"] = round(sum(costs), 6)
    result["cost_usd_per_case"] = round(sum(costs) / max(len(costs), 1), 6)
    return result


def _percentile(ordered: list[float], q: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def by_kind(run: Run) -> dict[str, dict[str, float]]:
    scores = run.case_metrics()
    result = {}
    for kind in KINDS:
        ids = [c.id for c in run.cases if c.kind == kind]
        if ids:
            values = [scores[i]["score"] for i in ids]
            result[kind] = {
                "cases": len(ids),
                "score": round(sum(values) / len(values), 4),
                "perfect": sum(v >= 1 - 1e-9 for v in values),
            }
    return result


def table(run: Run, baseline: dict[str, Any]) -> str:
    """The terminal table: overall metrics against threshold and baseline, then per kind."""
    thresholds = baseline.get("thresholds", {})
    accepted = baseline.get("overall", {})
    lines = [
        f"ragship evals: {len(run.cases)} cases in {run.seconds:.1f}s "
        f"(model {run.model}, prompt {run.prompt_version})",
        f"{'metric':<20} {'value':>10} {'threshold':>10} {'baseline':>10}",
        "-" * 53,
    ]
    for name, value in run.summary.items():
        lines.append(
            f"{name:<20} {_fmt(value):>10} {_fmt(thresholds.get(name)):>10} "
            f"{_fmt(accepted.get(name)):>10}"
        )
    lines += ["", f"{'kind':<14} {'cases':>6} {'perfect':>8} {'score':>8}", "-" * 39]
    for kind, row in by_kind(run).items():
        lines.append(f"{kind:<14} {row['cases']:>6} {row['perfect']:>8} {row['score']:>8.3f}")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.6f}" if 0 < abs(value) < 0.01 else f"{value:.4f}"


def results(run: Run) -> dict[str, Any]:
    scores = run.case_metrics()
    return {
        "run": {
            "cases": len(run.cases),
            "seconds": round(run.seconds, 2),
            "model": run.model,
            "prompt_version": run.prompt_version,
            "settings": run.settings,
        },
        "overall": run.summary,
        "kinds": by_kind(run),
        "judge": run.judge,
        "cases": {
            c.id: {
                "kind": c.kind,
                "expect": c.expect,
                "question": c.question if c.repeat == 1 else f"{c.question} (x{c.repeat})",
                "history": c.history,
                "score": scores[c.id]["score"],
                "metrics": run.per_case[c.id],
                "status": run.outcomes[c.id].status,
                "error": run.outcomes[c.id].error,
                "answer": run.outcomes[c.id].answer,
                "sources": run.outcomes[c.id].sources,
                "expected_sources": c.sources,
                "facts_missing": [
                    f for f in c.facts if f not in found_facts(c, run.outcomes[c.id].answer)
                ],
            }
            for c in run.cases
        },
    }


def markdown(data: dict[str, Any], gate_lines: list[str]) -> str:
    lines = ["# ragship eval report", ""]
    meta = data["run"]
    lines += [
        f"{meta['cases']} cases in {meta['seconds']}s; model `{meta['model']}`, "
        f"prompt `{meta['prompt_version']}`.",
        "",
        "```",
        *gate_lines,
        "```",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in data["overall"].items()]
    lines += ["", "| kind | cases | perfect | score |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {v['cases']} | {v['perfect']} | {v['score']} |" for k, v in data["kinds"].items()
    ]
    lines += ["", "## Cases", "", "Worst first.", ""]
    for case_id, c in sorted(data["cases"].items(), key=lambda kv: (kv[1]["score"], kv[0])):
        metrics = ", ".join(f"{k} {_fmt(v)}" for k, v in c["metrics"].items())
        lines += [
            f"### {case_id} ({c['kind']}, expect {c['expect']}): score {c['score']:.2f}",
            "",
            f"- question: {_inline(c['question'])}",
        ]
        if c["history"]:
            lines.append(f"- after: {' / '.join(_inline(h) for h in c['history'])}")
        lines += [
            f"- status {c['status']}" + (f", error `{c['error']}`" if c["error"] else ""),
            f"- metrics: {metrics}",
        ]
        if c["expected_sources"]:
            lines.append(f"- expected: {', '.join(c['expected_sources'])}")
        if c["sources"]:
            retrieved = ", ".join(f"[{n}] {s}" for n, s in enumerate(c["sources"], start=1))
            lines.append(f"- retrieved: {retrieved}")
        if c["facts_missing"]:
            lines.append(f"- missing facts: {', '.join(c['facts_missing'])}")
        lines += ["", f"> {_inline(c['answer']) or '(no answer)'}", ""]
    return "\n".join(lines)


def _inline(text: str, limit: int = 600) -> str:
    """One line of Markdown; "<" escaped, so an HTML comment in an answer stays visible."""
    flat = " ".join(text.split()).replace("<", "&lt;")
    return flat if len(flat) <= limit else flat[:limit] + " …"


def write_reports(out: Path, run: Run, gate_lines: list[str]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = results(run)
    results_path, report_path = out / "results.json", out / "report.md"
    results_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    report_path.write_text(markdown(data, gate_lines) + "\n", encoding="utf-8")
    return results_path, report_path
