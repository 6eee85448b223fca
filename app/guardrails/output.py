"""Output checks on the stream, run incrementally with a hold-back buffer.

Text reaches the browser only once it is `hold_chars` behind the newest text, so a
violation is found before any of it is sent: a secret, markup the page must never render,
a citation of a source that was not given, a run of the system prompt (leakage), or a run
of an instruction planted in a source. The stream's owner stops the upstream on a block
and sends a `retract` event instead of the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.guardrails.patterns import CITATION, MARKUP, MARKUP_HINTS, SECRET, SECRET_HINTS
from app.guardrails.verdict import Mode, Verdict

HOLD_CHARS = 64  # default hold-back: longer than the start of any pattern needs
LOOKBACK = 80  # characters re-scanned before new text: the longest pattern prefix
LEAK_WORDS = 7  # a run of this many system-prompt words in a row is a leak
PLANTED_WORDS = 6  # a run of this many words of a planted instruction is obeying it
_WORD = re.compile(r"[a-z0-9']+")
_ANY_CASE_WORD = re.compile(r"[a-z0-9']+", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"\n]*"')


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """Every run of `size` consecutive lower-cased words of `text`."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


class OutputGuard:
    """Feed it the streamed text piece by piece; it says what may be sent and when to stop.

    `feed(piece)` returns (text now safe to send, a blocking verdict or None); after a
    block, nothing more is released. `finish()` checks the end and releases the rest.
    Flags (rules in flag mode) are collected in `flags` and never stop the stream.
    """

    def __init__(
        self,
        *,
        system_prompt: str,
        n_sources: int,
        planted: Iterable[str] = (),
        sources: Iterable[str] = (),
        modes: dict[str, Mode] | None = None,
        hold_chars: int = HOLD_CHARS,
    ) -> None:
        self.modes = modes or {}
        self.hold = hold_chars
        self.n_sources = n_sources
        # Quoted text in the prompt is what the model is told to say ("I don't know ...").
        said = " … ".join(_QUOTED.split(system_prompt))
        # A run the sources also contain is quoting a document, not leaking the prompt.
        shown = " ".join(" ".join(_WORD.findall(text.lower())) for text in sources)
        self.leak = {run for run in shingles(said, LEAK_WORDS) if " ".join(run) not in shown}
        self.planted: set[tuple[str, ...]] = set()
        for sentence in planted:
            self.planted |= shingles(sentence, PLANTED_WORDS)
        self.text = ""
        self.sent = 0  # characters of `text` released so far
        self.checked = 0  # characters of `text` scanned by the patterns so far
        self.words: list[str] = []  # completed words, lower-cased, for the run checks
        self.word_end = 0  # characters of `text` whose words are in `words`
        self.flags: list[Verdict] = []
        self.blocked: Verdict | None = None
        self._flagged: set[str] = set()

    def feed(self, piece: str) -> tuple[str, Verdict | None]:
        if self.blocked is not None:
            return "", self.blocked
        self.text += piece
        verdict = self._check(final=False)
        if verdict is not None:
            return "", verdict
        return self._release(len(self.text) - self.hold), None

    def finish(self) -> tuple[str, Verdict | None]:
        if self.blocked is not None:
            return "", self.blocked
        verdict = self._check(final=True)
        if verdict is not None:
            return "", verdict
        return self._release(len(self.text)), None

    def _release(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out, self.sent = self.text[self.sent : upto], upto
        return out

    def _check(self, *, final: bool) -> Verdict | None:
        """Scan only what is new (plus `LOOKBACK` characters, so a pattern that started in
        an earlier piece is still seen) and only the word runs that end in new words."""
        window = self.text[max(self.checked - LOOKBACK, 0) :]
        found: list[Verdict] = []
        for rule, pattern, hints in (
            ("secret", SECRET, SECRET_HINTS),
            ("markup", MARKUP, MARKUP_HINTS),
        ):
            # A substring test first: the regexes are costly and rarely needed.
            if any(hint in window for hint in hints) and (match := pattern.search(window)):
                found.append(Verdict(rule, "block", match.group(0)[:200]))
        for match in CITATION.finditer(window) if "[" in window else ():
            if not 1 <= int(match.group(1)) <= self.n_sources:
                found.append(Verdict("citation", "block", match.group(0)))
                break
        before = len(self.words)
        self._add_words(final=final)
        for rule, runs, size in (
            ("prompt_leak", self.leak, LEAK_WORDS),
            ("planted_instruction", self.planted, PLANTED_WORDS),
        ):
            for end in range(max(before, size - 1), len(self.words)) if runs else ():
                run = tuple(self.words[end - size + 1 : end + 1])
                if run in runs:
                    found.append(Verdict(rule, "block", " ".join(run)))
                    break
        for verdict in found:
            applied = verdict.under(self.modes.get(verdict.rule, "on"))
            if applied is None:
                continue
            if applied.action == "block":
                self.blocked = applied
                return applied
            if applied.rule not in self._flagged:
                self._flagged.add(applied.rule)
                self.flags.append(applied)
        return None

    def _add_words(self, *, final: bool) -> None:
        """Append the words completed since the last check; a word touching the end of the
        text may go on in the next piece, so it waits (unless this is the end)."""
        fresh = self.text[self.word_end :]
        consumed = 0
        for match in _ANY_CASE_WORD.finditer(fresh):
            if match.end() == len(fresh) and not final:
                break
            self.words.append(match.group(0).lower())
            consumed = match.end()
        self.word_end += consumed
        self.checked = len(self.text)
