"""LLM-as-judge (when a judge model is configured): groundedness and answer relevance.

The judge's prompt is versioned (evals/prompts/judge-v1.txt); its calls are counted,
capped (`max_calls`) and their token usage is reported with the results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import openai

JUDGE_PROMPT_VERSION = "judge-v1"
_PROMPT = Path(__file__).resolve().parent / "prompts" / f"{JUDGE_PROMPT_VERSION}.txt"


@dataclass
class Judge:
    base_url: str
    model: str
    api_key: str
    max_calls: int = 200
    calls: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})

    async def grade(self, *, question: str, passages: list[str], answer: str) -> dict[str, float]:
        if self.calls >= self.max_calls:
            return {}
        self.calls += 1
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, max_retries=1)
        sources = "\n\n".join(f"[{n}] {p}" for n, p in enumerate(passages, start=1))
        try:
            result = await client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": _PROMPT.read_text()},
                    {
                        "role": "user",
                        "content": (
                            f"Question: {question}\n\nSources:\n{sources}\n\nAnswer: {answer}"
                        ),
                    },
                ],
                max_completion_tokens=100,
            )
        finally:
            await client.close()
        if result.usage:
            self.tokens["input"] += result.usage.prompt_tokens
            self.tokens["output"] += result.usage.completion_tokens
        try:
            verdict = json.loads(result.choices[0].message.content or "{}")
            return {
                "groundedness": float(verdict["grounded"]),
                "relevance": float(verdict["relevant"]),
            }
        except (ValueError, KeyError, TypeError):
            return {}  # an unparseable verdict is left out, not guessed
