"""What a guardrail check says, and how a rule's mode (on, flag, off) turns it into action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.caps.refusal import CapRefused
from app.settings.base import GUARDRAIL_RULES

Action = Literal["flag", "block"]
Mode = Literal["on", "flag", "off"]
GUARDRAIL_LAYER = "guardrail"

# Every rule id, by layer. A rule's mode comes from GUARDRAIL_MODES (default: on).
INPUT_RULES = ("injection", "attack_similarity", "secrets_request", "moderation")
RETRIEVAL_RULES = ("instruction_in_source",)
OUTPUT_RULES = ("prompt_leak", "secret", "citation", "markup", "planted_instruction")
RULES = INPUT_RULES + RETRIEVAL_RULES + OUTPUT_RULES
assert set(RULES) == set(GUARDRAIL_RULES), "app/settings/base.py must list the same rules"

BLOCKED_INPUT_MESSAGE = (
    "This question looks like an attempt to change or reveal how the assistant works, so it "
    "was not sent. Ask about the documents instead."
)
RETRACTED_MESSAGE = (
    "This answer was withdrawn because it broke a safety rule. Please ask again or rephrase."
)


@dataclass(frozen=True)
class Verdict:
    """One check's finding: `rule` (an id in RULES), the action wanted, and the matched
    text (at most 200 characters; stored redacted under the content-logging policy)."""

    rule: str
    action: Action
    excerpt: str = ""

    def under(self, mode: Mode) -> Verdict | None:
        """The verdict as the rule's mode allows: off drops it, flag turns block into flag."""
        if mode == "off":
            return None
        if mode == "flag" and self.action == "block":
            return Verdict(self.rule, "flag", self.excerpt)
        return self


class GuardrailBlocked(CapRefused):
    """Input blocked by a guardrail: a 400 with a clear message, recorded like a refusal."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(GUARDRAIL_LAYER, 400, BLOCKED_INPUT_MESSAGE)
        self.verdict = verdict
