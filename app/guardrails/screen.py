"""Input screening: the checks a question passes before retrieval, in order.

1. `injection`: instruction-override and jailbreak phrasing (patterns);
2. `secrets_request`: asking for the system prompt, keys, passwords or `.env` (patterns);
3. `attack_similarity`: closeness in meaning to a known attack (`attacks.py`);
4. `moderation`: the provider's moderation endpoint, when GUARDRAIL_MODERATION is on.

Runs inside the cap chain's `prepare` step (after input bounds and the rate limit, before
the reservation), so a blocked question costs nothing upstream.
"""

from __future__ import annotations

import logging

from openai import AsyncOpenAI

from app.guardrails.attacks import AttackIndex
from app.guardrails.patterns import INJECTION, SECRETS_REQUEST
from app.guardrails.verdict import Mode, Verdict
from app.settings import Settings

log = logging.getLogger("ragship.guardrails")


def pattern_verdicts(question: str) -> list[Verdict]:
    """The pattern checks alone (no I/O): for the attack corpus run and the bench."""
    found = []
    for rule, pattern in (("injection", INJECTION), ("secrets_request", SECRETS_REQUEST)):
        match = pattern.search(question)
        if match:
            found.append(Verdict(rule, "block", match.group(0)[:200]))
    return found


async def screen_question(
    question: str,
    embedding: list[float],
    *,
    settings: Settings,
    attacks: AttackIndex | None,
    moderation: AsyncOpenAI | None,
) -> list[Verdict]:
    """Every verdict on `question`, each already under its rule's mode (off rules dropped).
    The caller blocks on the first `block`. Moderation errors never block (logged)."""
    verdicts = pattern_verdicts(question)
    if attacks is not None:
        similarity, attack = attacks.nearest(embedding)
        if similarity >= settings.guardrail_attack_similarity:
            verdicts.append(Verdict("attack_similarity", "block", f"{similarity:.2f}: {attack}"))
    if moderation is not None and settings.guardrail_moderation:
        verdicts += await _moderate(moderation, question, settings.guardrail_moderation_model)
    modes: dict[str, Mode] = settings.guardrail_modes
    return [v for v in (x.under(modes.get(x.rule, "on")) for x in verdicts) if v is not None]


async def _moderate(client: AsyncOpenAI, text: str, model: str) -> list[Verdict]:
    try:
        result = await client.moderations.create(model=model, input=text)
    except Exception as err:  # the upstream being down must not block every question
        log.warning("moderation unavailable, question not screened by it: %r", err)
        return []
    flagged = [r for r in result.results if r.flagged]
    if not flagged:
        return []
    categories = sorted(k for k, v in flagged[0].categories.model_dump().items() if v)
    return [Verdict("moderation", "block", ", ".join(categories)[:200])]
