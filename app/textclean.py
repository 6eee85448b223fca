"""Make outside text safe to store and to echo: PostgreSQL text cannot hold NUL, and JSON
(UTF-8) cannot carry a lone surrogate.

Used wherever text enters from outside: request bodies, paths, queries and headers
(`app/http/hostile.py`), and every document's extracted text (`ingest/`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

# C0 controls except tab, newline and carriage return; DEL. NUL is the one PostgreSQL
# refuses outright; the rest have no business in a question or a document's text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# In a Python str a surrogate code point is always unpaired: decoders join valid pairs.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """`value` without C0 controls (tab, LF and CR kept) and with each lone surrogate
    replaced by U+FFFD. Idempotent; returns the same object when nothing changes."""
    if _CONTROLS.search(value):
        value = _CONTROLS.sub("", value)
    if _SURROGATES.search(value):
        value = _SURROGATES.sub(REPLACEMENT, value)
    return value


def is_clean(value: str) -> bool:
    """True when `clean_text` would return `value` unchanged."""
    return not (_CONTROLS.search(value) or _SURROGATES.search(value))


def _clean_input(value: object) -> object:
    return clean_text(value) if isinstance(value, str) else value


# A request-body string field, cleaned before validation (so length limits see clean text).
CleanStr = Annotated[str, BeforeValidator(_clean_input)]
