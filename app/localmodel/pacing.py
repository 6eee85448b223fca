"""Pacing the built-in model's stream: when each piece is due."""

from __future__ import annotations


def pause_until(started: float, n: int, delay_s: float, now: float) -> float:
    """Seconds to wait before piece `n` (from 0) of a stream begun at `started` (event-loop
    clock), paced at `delay_s` a piece: piece n is due at ``started + (n + 1) * delay_s``,
    so a late wake-up (a busy loop holding 1,000 streams) is made up on the next piece
    instead of adding to every piece after it, as a real upstream generates at its own
    rate whoever reads. 0 when the piece is already due."""
    return max(started + (n + 1) * delay_s - now, 0.0)
