"""The built-in local model as a judge: deterministic grades, so quality scoring is tested
offline. A request is a judge request when its system prompt is app/prompts/judge-v*.txt.

- grounded: the share of the answer's claims (its sentences, citation markers left out)
  whose content words are at least ``SUPPORTED`` in the passages' words; an answer that
  says it does not know scores 1, as the prompt says.
- relevant: the share of the question's content words the answer holds, 0 for "I don't
  know".
"""

from __future__ import annotations

import json
import re

from app.localmodel.answer import _terms

MARKER = "You grade a documentation assistant's answer"  # app/prompts/judge-v*.txt
SUPPORTED = 0.6
_CLAIM_END = re.compile(r"(?<=[.!?])\s+")
_MARKERS = re.compile(r"\[\d+\]")
_DONT_KNOW = re.compile(r"\bI don'?t know\b", re.IGNORECASE)


def is_judge_request(messages: list[dict[str, str]]) -> bool:
    return bool(messages) and messages[0].get("content", "").startswith(MARKER)


def grade(messages: list[dict[str, str]]) -> str:
    """The verdict, as the prompt asks: {"grounded": G, "relevant": R}."""
    content = messages[-1].get("content", "")
    head, _, answer = content.rpartition("\n\nAnswer: ")
    question, _, sources = head.partition("\n\nSources:\n")
    question = question.removeprefix("Question: ")
    if _DONT_KNOW.search(answer):
        return json.dumps({"grounded": 1.0, "relevant": 0.0})
    known = _terms(sources)
    claims = [c for c in _CLAIM_END.split(_MARKERS.sub(" ", answer)) if _terms(c)]
    supported = sum(len(_terms(c) & known) >= SUPPORTED * len(_terms(c)) for c in claims)
    grounded = supported / len(claims) if claims else 0.0
    wanted = _terms(question)
    relevant = len(wanted & _terms(answer)) / len(wanted) if wanted else 0.0
    return json.dumps({"grounded": round(grounded, 2), "relevant": round(relevant, 2)})
