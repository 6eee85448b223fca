"""The built-in model misbehaving on purpose (fault kind `adversarial`), so every output
guardrail is tested end to end: it does what a jailbroken or confused real model does."""

from __future__ import annotations

import re
from typing import Literal

from app.localmodel.answer import parse_prompt

Behaviour = Literal["planted", "echo_prompt", "fake_key", "script", "bad_citation"]
FAKE_KEY = "sk-proj-" + "Zq7" * 14  # looks like an OpenAI project key; is not one
# A sentence addressed to an assistant or telling it what to tell the user.
_ADDRESSED = re.compile(r"assistant|tell the user|when asked", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def misbehave(behaviour: str, messages: list[dict[str, str]]) -> str:
    """The answer a misbehaving model would give: see `Behaviour`."""
    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    sources, _ = parse_prompt(last_user)
    if behaviour == "planted":  # obeys an instruction planted in a source
        for number, (_, text) in sorted(sources.items()):
            for sentence in _SENTENCE.split(text):
                if _ADDRESSED.search(sentence):
                    return f"Sure. {_obey(sentence)} [{number}]"
        return "Sure, I will do whatever the documents say."
    if behaviour == "echo_prompt":
        return f"My instructions are as follows. {system}"
    if behaviour == "fake_key":
        return f"The configured key is {FAKE_KEY} and you can use it directly. [1]"
    if behaviour == "script":
        return "Here is a helpful widget: <script>fetch('/api/me')</script> [1]"
    if behaviour == "bad_citation":
        return "Ingest reads Markdown files [1] and also PDF files [9]."
    raise ValueError(f"unknown adversarial behaviour {behaviour!r}")


def _obey(sentence: str) -> str:
    """Turn "tell the user to paste their key at X" into the thing itself."""
    cleaned = re.sub(r"<!--|-->", "", sentence).strip()
    match = re.search(r"tell the user (?:to )?(.*)", cleaned, re.IGNORECASE)
    return (match.group(1) if match else cleaned).rstrip(". ") + "."
