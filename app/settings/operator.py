"""The operator's side: start-up probing, API tokens, branding, pre-launch checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode

DEFAULT_BOT_NAME = "ragship"
DEFAULT_WELCOME = "Ask a question about ragship: how to run it, configure it, deploy it."


class OperatorSettings(BaseSettings):
    # --- the operator's side ----------------------------------------------------------
    status_probe_on_start: bool = Field(
        True, description="Probe every component once at start, before serving."
    )
    provider_hard_cap_usd: Decimal | None = Field(
        None,
        ge=0,
        description="The monthly hard limit you set at the provider (make preflight checks it).",
    )
    preflight_token: SecretStr | None = Field(
        None, description="An API token for `make preflight URL=...` to chat with."
    )
    ingest_keep_others: bool = Field(
        False,
        description="Keep documents outside DOCS_DIR when ingesting at start (default: "
        "DOCS_DIR is the whole corpus).",
    )

    # --- make it yours (docs/make-it-yours.md) -------------------------------------------
    bot_name: str = Field(
        DEFAULT_BOT_NAME,
        min_length=1,
        max_length=60,
        description="The bot's name: page titles, the chat page, and the prompt's persona.",
    )
    bot_welcome: str = Field(
        DEFAULT_WELCOME, max_length=500, description="The line a new chat opens with."
    )
    bot_examples: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Example questions under the welcome line, separated by '|'.",
    )
    contact_text: str | None = Field(
        None, max_length=1000, description="How to reach the operator (about page)."
    )
    privacy_text: str | None = Field(
        None, max_length=4000, description="Extra privacy notice for the about page."
    )

    @field_validator("bot_examples", mode="before")
    @classmethod
    def _split_examples(cls, value: object) -> object:
        if isinstance(value, str):
            return [q.strip() for q in value.split("|") if q.strip()]
        return value
