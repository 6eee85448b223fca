"""Constants and types the settings sections share."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import SecretStr
from pydantic_settings import NoDecode

GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"
EmailList = Annotated[list[str], NoDecode]
GuardrailModes = Annotated[dict[str, Literal["on", "flag", "off"]], NoDecode]
GUARDRAIL_RULES = (  # app/guardrails/verdict.py lists them by layer
    "injection",
    "attack_similarity",
    "secrets_request",
    "moderation",
    "instruction_in_source",
    "prompt_leak",
    "secret",
    "citation",
    "markup",
    "planted_instruction",
)
# Lower-case; includes the examples in .env.example, which get copied as they are.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "secret",
        "password",
        "local",
        "sk-...",
        "gocspx-...",
        "...",
        "xxx",
    }
)
# A prod SESSION_SECRET needs this many characters, this many of them different: catches
# short or patterned values; `secrets.token_urlsafe(32)` gives 43 characters, ~30 different.
MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT_CHARS = 10
GENERATE_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
LOCAL_MODEL_ID = "ragship-local-1"
LOCAL_MODEL_IDS = (LOCAL_MODEL_ID, "ragship-local-1-mini")  # the second serves as a fallback


def is_placeholder(secret: SecretStr | str | None) -> bool:
    """True for an empty or example value (PLACEHOLDER_SECRETS), case-insensitive."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret or ""
    return value.strip().lower() in PLACEHOLDER_SECRETS
