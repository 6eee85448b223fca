"""Layer 1 (input bounds) and the refusal it raises, on their own: no I/O, so every edge
is checked exactly (the HTTP tests in test_caps_http.py check the same layer end to end)."""

from __future__ import annotations

import pytest

from app.caps.bounds import check_input_bounds
from app.caps.refusal import INPUT_BOUNDS, CapRefused
from tests.conftest import make_settings

SETTINGS = make_settings(max_message_chars=10, llm_max_tokens=300)


def test_a_message_at_the_limit_passes_and_one_past_it_is_refused() -> None:
    assert check_input_bounds(SETTINGS, message="x" * 10, max_tokens=None) == 300
    with pytest.raises(CapRefused) as refused:
        check_input_bounds(SETTINGS, message="x" * 11, max_tokens=None)
    assert (refused.value.layer, refused.value.status) == (INPUT_BOUNDS, 413)
    assert refused.value.message == "Your message is too long: at most 10 characters, please."


def test_max_tokens_at_the_limit_passes_and_one_past_it_is_refused() -> None:
    assert check_input_bounds(SETTINGS, message="hi", max_tokens=300) == 300
    assert check_input_bounds(SETTINGS, message="hi", max_tokens=7) == 7
    with pytest.raises(CapRefused) as refused:
        check_input_bounds(SETTINGS, message="hi", max_tokens=301)
    assert (refused.value.layer, refused.value.status) == (INPUT_BOUNDS, 413)
    assert refused.value.message == "max_tokens may be at most 300."


def test_retry_after_is_a_whole_second_at_least_and_keeps_the_other_headers() -> None:
    plain = CapRefused("rate_limit", 429, "wait", headers={"RateLimit-Limit": "5"})
    assert plain.response_headers() == {"RateLimit-Limit": "5"}
    later = CapRefused("rate_limit", 429, "wait", retry_after_s=42, headers={"A": "b"})
    assert later.response_headers() == {"A": "b", "Retry-After": "42"}
    assert CapRefused("x", 429, "m", retry_after_s=0).response_headers() == {"Retry-After": "1"}
    assert CapRefused("x", 429, "m", retry_after_s=1).response_headers() == {"Retry-After": "1"}
    assert CapRefused("x", 429, "m", retry_after_s=2).response_headers() == {"Retry-After": "2"}
    assert later.headers == {"A": "b"}  # the response's copy, not the refusal's own dict
