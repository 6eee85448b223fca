"""Make it yours: the bot's name, welcome line, example questions, contact and privacy text
(BOT_NAME, BOT_WELCOME, BOT_EXAMPLES, CONTACT_TEXT, PRIVACY_TEXT) filled into the pages.

The pages stay plain HTML a forker can open and edit (static/): an element marked
``data-brand="<slot>"`` has its text replaced by the setting's, escaped, when served, so
the page shows the right name before any script runs. Slots: ``name``, ``welcome``,
``examples`` (a list: one ``<li>`` per question), ``contact``, ``privacy``; the
``<title>``'s "ragship" becomes the name, and an element with ``data-brand-placeholder``
gets the placeholder "Ask <name>…". A slot whose setting is unset keeps the page's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any

from app.settings import Settings

_SLOT = re.compile(
    r'(?P<open><(?P<tag>[a-z0-9]+)\b[^>]*\bdata-brand="(?P<slot>[a-z]+)"[^>]*>)'
    r"(?P<body>.*?)(?P<close></(?P=tag)>)",
    re.DOTALL,
)
_PLACEHOLDER = re.compile(r'(<[^>]*\bdata-brand-placeholder\b[^>]*\bplaceholder=")[^"]*(")')
_TITLE = re.compile(r"(<title>)(.*?)(</title>)", re.DOTALL)


@dataclass(frozen=True)
class Branding:
    name: str
    welcome: str
    examples: tuple[str, ...]
    contact: str | None
    privacy: str | None

    @classmethod
    def of(cls, settings: Settings) -> Branding:
        return cls(
            name=settings.bot_name,
            welcome=settings.bot_welcome,
            examples=tuple(settings.bot_examples),
            contact=settings.contact_text,
            privacy=settings.privacy_text,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "welcome": self.welcome,
            "examples": list(self.examples),
            "contact": self.contact,
            "privacy": self.privacy,
        }


def brand_page(html: str, branding: Branding) -> str:
    """``html`` with its ``data-brand`` slots, placeholder and title filled in."""
    values = {
        "name": escape(branding.name),
        "welcome": escape(branding.welcome),
        "examples": "".join(f"<li>{escape(q)}</li>" for q in branding.examples) or None,
        "contact": escape(branding.contact) if branding.contact else None,
        "privacy": escape(branding.privacy) if branding.privacy else None,
    }

    def slot(match: re.Match[str]) -> str:
        value = values.get(match["slot"])
        if value is None:
            return match.group(0)
        return f"{match['open']}{value}{match['close']}"

    html = _SLOT.sub(slot, html)
    html = _PLACEHOLDER.sub(
        lambda m: f"{m.group(1)}{escape(f'Ask {branding.name}…')}{m.group(2)}", html
    )
    return _TITLE.sub(
        lambda m: m.group(1) + m.group(2).replace("ragship", escape(branding.name)) + m.group(3),
        html,
        count=1,
    )
