"""`python -m evals`: run the eval cases through the real chat path, report, and gate on
evals/baseline.json. `--compare A.json B.json` compares two runs' results instead."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url

from app.settings import Settings
from evals.cases import CASES_FILE, Case, CaseError, check_sections, load_cases, select
from evals.compare import compare
from evals.gate import BASELINE, check, dump_baseline, load_baseline, new_baseline
from evals.judge import JUDGE_PROMPT_VERSION, Grading, Judge
from evals.metrics import Outcome, score
from evals.report import Run, table, write_reports
from evals.tiers import parse_models, tiers_table

if TYPE_CHECKING:
    from evals.runner import EvalConfig

OUT = Path(__file__).resolve().parent / "out"
_SECRET_FLAGS = ("llm_api_key", "judge_api_key")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__)
    run = p.add_argument_group("what to run")
    run.add_argument("--cases", type=Path, default=CASES_FILE, help="the cases file")
    run.add_argument("--case", action="append", default=[], metavar="ID", help="glob; repeat")
    run.add_argument("--concurrency", type=int, default=4, help="cases in flight at once")
    run.add_argument("--database-url", help="a scratch PostgreSQL to use (default: a fresh one)")
    run.add_argument("--top-k", type=int, default=5, help="RETRIEVAL_TOP_K")
    run.add_argument("--min-similarity", type=float, default=0.25, help="RETRIEVAL_MIN_SIMILARITY")
    gate = Settings.model_fields
    run.add_argument("--relevance-similarity", type=float, help="RELEVANCE_SIMILARITY",
                     default=gate["relevance_similarity"].default)  # fmt: skip
    run.add_argument("--relevance-keyword-share", type=float, help="RELEVANCE_KEYWORD_SHARE",
                     default=gate["relevance_keyword_share"].default)  # fmt: skip
    run.add_argument("--embedding-model-path", type=Path, help="a sentence-transformers folder")
    run.add_argument("--llm-base-url", help="an OpenAI-compatible upstream (default: local)")
    run.add_argument("--llm-api-key", default="local")
    run.add_argument("--llm-model", help="the pinned model id (must be in the price table)")
    run.add_argument("--models", metavar="A,B", help="each model in turn: a quality/cost table")
    judge = p.add_argument_group("LLM-as-judge (off unless a judge model is given)")
    judge.add_argument("--judge-base-url", help="the judge's OpenAI-compatible upstream")
    judge.add_argument("--judge-model")
    judge.add_argument("--judge-api-key", default="local")
    judge.add_argument("--judge-prompt", default=JUDGE_PROMPT_VERSION, help="app/prompts/judge-*")
    judge.add_argument("--judge-max-calls", type=int, default=200, help="cap on judge calls")
    out = p.add_argument_group("results and the gate")
    out.add_argument("--out", type=Path, default=OUT, help="folder for report.md, results.json")
    out.add_argument("--baseline", type=Path, default=BASELINE)
    out.add_argument("--update-baseline", action="store_true", help="accept this run's scores")
    out.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two results")
    out.add_argument("--compare-metric", default="score", help="per-case metric to compare")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.compare:
        print(compare(*args.compare, metric=args.compare_metric))
        return 0
    try:
        every_case = load_cases(args.cases)
        check_sections(every_case)
        cases = select(every_case, args.case)
    except CaseError as err:
        print(f"error: {err}")
        return 2
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns, harmlessly.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    subset = len(cases) < len(every_case)
    if subset and args.update_baseline:
        print("error: --update-baseline needs the whole suite (no --case)")
        return 2
    if args.models:
        return tiers(args, cases, subset)
    status, _ = run_suite(args, cases, subset)
    return status


def tiers(args: argparse.Namespace, cases: list[Case], subset: bool) -> int:
    """The suite on each of `--models`, then the quality/cost table and the paired
    comparison of the first two; the baseline gate is not applied (the models differ)."""
    try:
        models = parse_models(args.models)
    except ValueError as err:
        print(f"error: {err}")
        return 2
    if args.update_baseline:
        print("error: --update-baseline takes one model, not --models")
        return 2
    out = args.out
    results = []
    for model in models:
        print(f"== {model}")
        args.llm_model, args.out = model, out / model
        _, path = run_suite(args, cases, subset)
        results.append(path)
    print(f"\nquality and cost per model ({len(cases)} cases)\n{tiers_table(results)}\n")
    print(compare(results[0], results[1], metric=args.compare_metric))
    return 0


def run_suite(args: argparse.Namespace, cases: list[Case], subset: bool) -> tuple[int, Path]:
    """One run of `cases` on `args.llm_model`: report, results file, gate (or a new
    baseline). Returns (exit status, the results.json path)."""
    from evals.runner import EvalConfig  # imports torch: not needed to compare or check cases

    config = EvalConfig(
        top_k=args.top_k,
        min_similarity=args.min_similarity,
        relevance_similarity=args.relevance_similarity,
        relevance_keyword_share=args.relevance_keyword_share,
        concurrency=args.concurrency,
        embedding_model_path=args.embedding_model_path,
        llm_base_url=args.llm_base_url,
        llm_api_key=args.llm_api_key,
        llm_model=args.llm_model,
        database_url=args.database_url,
    )
    started = time.perf_counter()
    outcomes, judge = evaluate(config, cases, args)
    per_case = {c.id: score(c, outcomes[c.id], k=config.top_k) for c in cases}
    judged = judge.records if judge else []
    for record in judged:
        if "scores" in record:
            per_case[record["case"]].update(record["scores"])
    run = Run(
        cases=cases,
        outcomes=outcomes,
        per_case=per_case,
        settings=_settings(args),
        seconds=time.perf_counter() - started,
        judge=_judge_summary(judge),
    )
    baseline = load_baseline(args.baseline)
    verdict = check(run.summary, run.case_metrics(), baseline, model=run.model, subset=subset)
    print(table(run, baseline))
    if judge:
        print(f"\njudge {judge.prompt_version}: {judge.calls} calls, tokens {judge.tokens}")
    print()
    results_path, report_path = write_reports(args.out, run, verdict.lines())
    print(f"reports: {report_path}, {results_path}")
    if args.update_baseline:
        accepted = new_baseline(
            run.summary,
            run.case_metrics(),
            baseline,
            model=run.model,
            prompt_version=run.prompt_version,
        )
        args.baseline.write_text(dump_baseline(accepted), encoding="utf-8")
        print(f"baseline updated: {args.baseline}")
        return 0, results_path
    print("\n".join(verdict.lines()))
    return (0 if verdict.passed else 1), results_path


def evaluate(
    config: EvalConfig, cases: list[Case], args: argparse.Namespace
) -> tuple[dict[str, Outcome], Judge | None]:
    """Ask every case, then (with a judge configured) grade the answers."""
    from evals.runner import chat_service, passage_texts, run_cases

    judge = None
    if args.judge_base_url and args.judge_model:
        judge = Judge(
            base_url=args.judge_base_url,
            model=args.judge_model,
            api_key=args.judge_api_key,
            max_calls=args.judge_max_calls,
            concurrency=config.concurrency,
            prompt_version=args.judge_prompt,
        )
    with chat_service(config) as service:
        outcomes = asyncio.run(run_cases(service.url, cases, concurrency=config.concurrency))
        if judge:
            items = [
                Grading(
                    case_id=c.id,
                    question=c.text,
                    passages=passage_texts(service.database_url, outcomes[c.id].sources),
                    answer=outcomes[c.id].answer,
                )
                for c in cases
                if c.expect == "answer" and outcomes[c.id].status == 200
            ]
            asyncio.run(judge.grade_all(items))
    return outcomes, judge


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's flags for the results file, secrets masked."""
    skip = ("compare", "compare_metric", "update_baseline", "models")
    values = {k: v for k, v in vars(args).items() if k not in skip}
    for key in _SECRET_FLAGS:
        if values.get(key) not in (None, "local"):
            values[key] = "***"
    if values.get("database_url"):
        values["database_url"] = make_url(values["database_url"]).render_as_string()
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def _judge_summary(judge: Judge | None) -> dict[str, Any] | None:
    if judge is None:
        return None
    return {
        "prompt_version": judge.prompt_version,
        "model": judge.model,
        "calls": judge.calls,
        "max_calls": judge.max_calls,
        "tokens": judge.tokens,
        "records": judge.records,
    }


if __name__ == "__main__":
    sys.exit(main())
