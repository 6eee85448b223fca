"""The judge's request and verdict, shared by the eval suite (evals/judge.py) and the
production scorer (app/quality/scorer.py), so both grade with the same words.

The prompt is versioned (app/prompts/judge-v1.txt). The verdict is a JSON object
{"grounded": G, "relevant": R}, each 0 to 1; one that cannot be parsed is left out of the
scores, never guessed.
"""

from __future__ import annotations

import json
import re

from app.rag.prompt import system_prompt

JUDGE_PROMPT_VERSION = "judge-v1"
JUDGE_FEATURE = "judge"  # the feature name of a judge call in the call log
_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)


def judge_messages(
    question: str, passages: list[str], answer: str, *, version: str = JUDGE_PROMPT_VERSION
) -> list[dict[str, str]]:
    """The judge's request: the versioned prompt, then the question, the numbered passages
    the answer saw (numbered from 1, as the answer cites them) and the answer."""
    sources = "\n\n".join(f"[{n}] {p}" for n, p in enumerate(passages, start=1))
    user = f"Question: {question}\n\nSources:\n{sources or '(none)'}\n\nAnswer: {answer}"
    return [
        {"role": "system", "content": system_prompt(version)},
        {"role": "user", "content": user},
    ]


def parse_verdict(text: str) -> dict[str, float] | None:
    """{"groundedness": G, "relevance": R} from {"grounded": G, "relevant": R} (possibly
    inside prose or a code fence), each 0 to 1; None when no such object is found."""
    for candidate in _OBJECT.findall(text):
        try:
            data = json.loads(candidate)
            grounded, relevant = float(data["grounded"]), float(data["relevant"])
        except (ValueError, KeyError, TypeError):
            continue
        if 0 <= grounded <= 1 and 0 <= relevant <= 1:
            return {"groundedness": grounded, "relevance": relevant}
    return None
