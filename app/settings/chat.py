"""Chat."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ChatSettings(BaseSettings):
    # --- chat ----------------------------------------------------------------------
    history_messages: int = Field(6, ge=0, le=50, description="Prior messages sent along.")
    max_message_chars: int = Field(4000, ge=1, description="Longest accepted question.")
