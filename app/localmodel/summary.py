"""The built-in local model's summaries: extractive, so history summarisation is tested
offline. A request is a summary when its system prompt is app/prompts/summary-v*.txt.

Kept, in this order of priority and within the request's ``max_tokens``: the lines of the
previous summary and every statement the user made (sentences not ending in "?"), oldest
first; then the user's questions as "Asked: ...", newest first. Answers are left out.
"""

from __future__ import annotations

import re

from app.tokens import count_tokens

MARKER = "You summarise conversations"  # the first words of app/prompts/summary-v*.txt
PREVIOUS = "Summary so far:"
TURN = re.compile(r"^(User|Assistant): (.*)$", re.MULTILINE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def is_summary_request(messages: list[dict[str, str]]) -> bool:
    return bool(messages) and messages[0].get("content", "").startswith(MARKER)


def summarise(messages: list[dict[str, str]], *, max_tokens: int | None) -> str:
    """The extractive summary of the conversation in the last user message (the format
    app/rag/summarise.py writes), at most `max_tokens` tokens when given."""
    content = messages[-1].get("content", "")
    previous, _, turns = content.partition("\n\nTurns:\n")
    kept = [
        line.strip()
        for line in previous.removeprefix(PREVIOUS).splitlines()
        if line.strip() and not line.startswith("Asked: ")
    ]
    asked = [line.strip() for line in previous.splitlines() if line.strip().startswith("Asked: ")]
    for role, text in TURN.findall(turns):
        if role != "User":
            continue
        for sentence in _SENTENCE.split(text.strip()):
            if sentence.endswith("?"):
                asked.append(f"Asked: {sentence}")
            elif sentence:
                kept.append(sentence)
    lines = list(dict.fromkeys(kept))
    for question in reversed(list(dict.fromkeys(asked))):
        if max_tokens is not None and count_tokens("\n".join([*lines, question])) > max_tokens:
            break
        lines.append(question)
    return "\n".join(lines)
