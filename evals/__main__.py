"""`python -m evals`: run the eval cases, report, and gate against evals/baseline.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from evals.cases import Case, load_cases, missing_sections
from evals.compare import compare
from evals.gate import BASELINE, check, load_baseline, new_baseline
from evals.judge import JUDGE_PROMPT_VERSION, Judge
from evals.metrics import Outcome, case_score, score
from evals.report import overall, table, write_reports
from evals.runner import CORPUS, EvalConfig, chat_service, passage_texts, run_cases

OUT = Path(__file__).resolve().parent / "out"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evals", description=__doc__)
    p.add_argument("--top-k", type=int, default=5, help="passages retrieved per question")
    p.add_argument("--min-similarity", type=float, default=0.25)
    p.add_argument("--embedding-model-path", type=Path, default=None)
    p.add_argument("--concurrency", type=int, default=4, help="cases run at once")
    p.add_argument("--llm-base-url", default=None, help="an OpenAI-compatible upstream")
    p.add_argument("--llm-api-key", default="local")
    p.add_argument("--llm-model", default=None)
    p.add_argument("--judge-base-url", default=None, help="OpenAI-compatible judge upstream")
    p.add_argument("--judge-model", default=None)
    p.add_argument("--judge-api-key", default="local")
    p.add_argument("--judge-max-calls", type=int, default=200)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--update-baseline", action="store_true", help="accept these scores")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="compare results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.compare:
        print(compare(*args.compare))
        return 0
    cases = load_cases()
    missing = missing_sections(cases, CORPUS)
    if missing:
        for case_id, sections in missing.items():
            print(f"error: case {case_id} expects sections that no longer exist: {sections}")
        return 2
    config = EvalConfig(
        top_k=args.top_k,
        min_similarity=args.min_similarity,
        concurrency=args.concurrency,
        embedding_model_path=args.embedding_model_path,
        llm_base_url=args.llm_base_url,
        llm_api_key=args.llm_api_key,
        llm_model=args.llm_model,
    )
    started = time.perf_counter()
    with chat_service(config) as (url, db_url):
        outcomes = asyncio.run(run_cases(url, cases, concurrency=config.concurrency))
        per_case = {c.id: score(c, outcomes[c.id], k=config.top_k) for c in cases}
        if args.judge_base_url and args.judge_model:
            judge = Judge(
                args.judge_base_url, args.judge_model, args.judge_api_key, args.judge_max_calls
            )
            asyncio.run(_judge_all(judge, cases, outcomes, per_case, db_url))
            print(f"judge {JUDGE_PROMPT_VERSION}: {judge.calls} calls, tokens {judge.tokens}")
    summary = overall(per_case)
    seconds = time.perf_counter() - started
    print(table(summary, cases=len(cases), seconds=seconds))
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("compare",)}
    write_reports(args.out, cases, outcomes, per_case, summary, settings)
    print(f"reports: {args.out / 'report.md'}, {args.out / 'results.json'}")
    scores = {case_id: case_score(m) for case_id, m in per_case.items()}
    baseline = load_baseline() if BASELINE.exists() else {}
    if args.update_baseline:
        BASELINE.write_text(json.dumps(new_baseline(summary, scores, baseline), indent=2) + "\n")
        print(f"baseline updated: {BASELINE}")
        return 0
    failures = check(summary, scores, baseline)
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print("PASS: every metric meets its threshold and the baseline")
    return 1 if failures else 0


async def _judge_all(
    judge: Judge,
    cases: list[Case],
    outcomes: dict[str, Outcome],
    per_case: dict[str, dict[str, Any]],
    db_url: str,
) -> None:
    for case in cases:
        if case.expect == "answer":
            per_case[case.id].update(
                await judge.grade(
                    question=case.text,
                    passages=passage_texts(db_url, outcomes[case.id].sources),
                    answer=outcomes[case.id].answer,
                )
            )


if __name__ == "__main__":
    sys.exit(main())
