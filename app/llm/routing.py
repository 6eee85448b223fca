"""Which model and prompt version answer a request: the canary, then the routing rule.

One mechanism, two uses (docs/routing.md):

1. **Canary** (``LLM_CANARY_PERCENT`` > 0): a user whose bucket is below the canary share
   is on the canary side for every question: ``LLM_CANARY_MODEL`` (else ``LLM_MODEL``)
   with ``LLM_CANARY_PROMPT_VERSION`` (else the current prompt). The bucket is the first
   8 bytes of ``sha256(LLM_CANARY_SALT + ":" + user id)`` modulo 10,000, so a user always
   lands on the same side, and 1 % of the setting is 100 buckets.
2. **Short route** (``LLM_ROUTE_SHORT_MODEL`` set): on the main side, a question that
   opens a conversation and counts at most ``LLM_ROUTE_SHORT_MAX_TOKENS`` tokens (a lookup
   such as "What does DOCS_DIR configure?") goes to the cheaper model. Follow-ups and
   longer questions stay on ``LLM_MODEL``: they need the history or more reasoning.
3. Everything else: ``LLM_MODEL`` with the current prompt (arm ``main``).

``LLM_FALLBACK_MODEL`` backs up whichever model was chosen. Each call row records the
arm, the model that answered and the prompt version.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.rag.prompt import PROMPT_VERSION, PROMPTS_DIR
from app.settings import Settings
from app.tokens import count_tokens

ARM_MAIN = "main"
ARM_CANARY = "canary"
ARM_SHORT = "route:short"
BUCKETS = 10_000  # a canary share is set to 0.01 % at the finest


class RoutingError(ValueError):
    """Raised at start when the routing or canary settings cannot work."""


@dataclass(frozen=True)
class Route:
    """The arm a request is on, the model asked first, the models that may answer it (that
    one, then ``LLM_FALLBACK_MODEL``) and the system prompt's version."""

    arm: str
    model: str
    prompt_version: str
    models: tuple[str, ...]


def chain_of(model: str, fallback: str | None) -> tuple[str, ...]:
    """The models tried for a request whose first choice is `model`, in order."""
    return (model,) if not fallback or fallback == model else (model, fallback)


def canary_bucket(user_id: uuid.UUID | str, salt: str) -> int:
    """The user's bucket, 0..9999: stable for a user and salt, uniform over users."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def on_canary(settings: Settings, user_id: uuid.UUID | str) -> bool:
    """True when `user_id` is on the canary side: its bucket is below the canary share
    (``LLM_CANARY_PERCENT`` of 10,000 buckets)."""
    share = round(settings.llm_canary_percent * BUCKETS / 100)
    return share > 0 and canary_bucket(user_id, settings.llm_canary_salt) < share


def is_short(settings: Settings, question: str, *, first_turn: bool) -> bool:
    """The short-route rule: a first-turn question of at most LLM_ROUTE_SHORT_MAX_TOKENS
    tokens (cl100k, app/tokens.py)."""
    return first_turn and count_tokens(question) <= settings.llm_route_short_max_tokens


def choose_route(
    settings: Settings, *, user_id: uuid.UUID | str, question: str, first_turn: bool
) -> Route:
    """The route of one chat request (module docstring: canary first, then short route)."""
    fallback = settings.llm_fallback_model
    if on_canary(settings, user_id):
        model = settings.llm_canary_model or settings.llm_model
        prompt = settings.llm_canary_prompt_version or PROMPT_VERSION
        return Route(ARM_CANARY, model, prompt, chain_of(model, fallback))
    short = settings.llm_route_short_model
    if short and is_short(settings, question, first_turn=first_turn):
        return Route(ARM_SHORT, short, PROMPT_VERSION, chain_of(short, fallback))
    model = settings.llm_model
    return Route(ARM_MAIN, model, PROMPT_VERSION, chain_of(model, fallback))


def routable_models(settings: Settings) -> list[str]:
    """Every model a chat request may be sent to, main first, each once."""
    wanted = [
        settings.llm_model,
        settings.llm_fallback_model,
        settings.llm_route_short_model,
        settings.llm_canary_model if settings.llm_canary_percent > 0 else None,
    ]
    return list(dict.fromkeys(m for m in wanted if m))


def check_routing(settings: Settings, prompts: Path = PROMPTS_DIR) -> None:
    """Refuse, at start, a canary that names a prompt version with no prompt file, or one
    that changes nothing (same model, same prompt). Raises `RoutingError`."""
    version = settings.llm_canary_prompt_version
    if version is not None and not (prompts / f"{version}.txt").is_file():
        raise RoutingError(
            f"LLM_CANARY_PROMPT_VERSION={version} has no prompt file app/prompts/{version}.txt"
        )
    if settings.llm_canary_percent > 0:
        model = settings.llm_canary_model or settings.llm_model
        if model == settings.llm_model and (version or PROMPT_VERSION) == PROMPT_VERSION:
            raise RoutingError(
                "the canary changes nothing: LLM_CANARY_MODEL or LLM_CANARY_PROMPT_VERSION "
                "must differ from the main model and prompt"
            )
