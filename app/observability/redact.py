"""Mask personal data and secrets in text before it is stored in the call log."""

from __future__ import annotations

import re

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Keys and tokens first, so their digits are not mistaken for card numbers.
    (re.compile(r"\b(?:sk|pk|rk)-(?:proj-|live-|test-)?[A-Za-z0-9_-]{16,}\b"), "[key]"),
    (re.compile(r"\b(?:ghp|gho|ghs|github_pat|xox[abpr])_?[A-Za-z0-9_-]{16,}\b"), "[key]"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[key]"),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/-]{16,}=*", re.IGNORECASE), "Bearer [key]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]"),
    (
        re.compile(r"(?<![\w+])\+?\d{1,3}?[ .-]?\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}\b"),
        "[phone]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def for_call_log(text: str, *, policy: str) -> str | None:
    """What CONTENT_LOGGING keeps of a question or answer: all, masked, or nothing."""
    if policy == "none":
        return None
    return text if policy == "full" else redact(text)
