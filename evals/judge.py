"""LLM-as-judge (when a judge model is configured): groundedness and answer relevance.

The judge's prompt and verdict format are shared with the production scorer
(app/quality/judge.py; the prompt is versioned in app/prompts/judge-v1.txt). Every judge
call goes through the official `openai` client, is capped (`max_calls`), and is recorded
(case, tokens, the raw verdict) in the results file. A verdict that cannot be parsed is
recorded and left out of the scores, never guessed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import openai

from app.quality.judge import JUDGE_PROMPT_VERSION, judge_messages, parse_verdict

__all__ = ["JUDGE_PROMPT_VERSION", "Grading", "Judge", "parse_verdict"]


@dataclass
class Grading:
    """What the judge is shown for one case."""

    case_id: str
    question: str
    passages: list[str]
    answer: str


@dataclass
class Judge:
    base_url: str
    model: str
    api_key: str
    max_calls: int = 200
    concurrency: int = 4
    prompt_version: str = JUDGE_PROMPT_VERSION
    calls: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})
    records: list[dict[str, Any]] = field(default_factory=list)

    async def grade_all(self, items: list[Grading]) -> dict[str, dict[str, float]]:
        """{case id: {"groundedness": g, "relevance": r}} for the cases the judge scored."""
        bound = asyncio.Semaphore(self.concurrency)
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=2)
        try:

            async def one(item: Grading) -> tuple[str, dict[str, float]]:
                async with bound:
                    return item.case_id, await self._grade(client, item)

            results = await asyncio.gather(*(one(item) for item in items))
        finally:
            await client.close()
        return {case_id: scores for case_id, scores in results if scores}

    async def _grade(self, client: openai.AsyncOpenAI, item: Grading) -> dict[str, float]:
        if self.calls >= self.max_calls:
            return {}
        self.calls += 1  # counted before the await, so concurrent calls respect the cap
        record: dict[str, Any] = {"case": item.case_id, "model": self.model}
        self.records.append(record)
        messages = judge_messages(
            item.question, item.passages, item.answer, version=self.prompt_version
        )
        try:
            result = await client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_completion_tokens=200,
                temperature=0,
            )
        except openai.OpenAIError as err:
            record["error"] = f"{type(err).__name__}: {err}"[:300]
            return {}
        if result.usage:
            self.tokens["input"] += result.usage.prompt_tokens
            self.tokens["output"] += result.usage.completion_tokens
            record["tokens"] = [result.usage.prompt_tokens, result.usage.completion_tokens]
        verdict = (result.choices[0].message.content or "") if result.choices else ""
        record["verdict"] = verdict[:500]
        scores = parse_verdict(verdict)
        if scores is None:
            record["error"] = "unparseable verdict"
            return {}
        record["scores"] = scores
        return scores
