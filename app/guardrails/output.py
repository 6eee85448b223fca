"""Output checks on the stream, run incrementally, holding back only what could still
become a violation.

A violation is found before any of it is sent: a secret, markup the page must never render,
a citation of a source that was not given, a run of the system prompt (leakage), or a run
of an instruction planted in a source. After each piece, text is released up to the
earliest position where a violation could still be starting (`holdback.py`): the start of
a partial pattern match running into the end of the text, or of a trailing word run that
begins a forbidden run. Ordinary text leaves at once, but for a last word still being
written when it could begin one. The stream's owner stops the upstream on a block and sends
a `retract` event instead of the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import regex

from app.guardrails.holdback import PatternWatch, RunPrefixes, RunWatch, partial_pattern
from app.guardrails.patterns import CITATION, MARKUP, SECRET
from app.guardrails.verdict import Mode, Verdict

LEAK_WORDS = 7  # a run of this many system-prompt words in a row is a leak
PLANTED_WORDS = 6  # a run of this many words of a planted instruction is obeying it
_WORD = re.compile(r"[a-z0-9']+")
_ANY_CASE_WORD = re.compile(r"[a-z0-9']+", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"\n]*"')
_SECRET = partial_pattern(SECRET)
_MARKUP = partial_pattern(MARKUP)
_CITATION = partial_pattern(CITATION)


def shingles(text: str, size: int) -> set[tuple[str, ...]]:
    """Every run of `size` consecutive lower-cased words of `text`."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}


@lru_cache(maxsize=8)
def prompt_runs(system_prompt: str) -> tuple[frozenset[tuple[str, ...]], RunPrefixes]:
    """The system prompt's runs of LEAK_WORDS words, and their prefixes (built once per
    prompt: the prompt is the same for every request of a deployment)."""
    # Quoted text in the prompt is what the model is told to say ("I don't know ...").
    said = " … ".join(_QUOTED.split(system_prompt))
    runs = frozenset(shingles(said, LEAK_WORDS))
    return runs, RunPrefixes(runs, LEAK_WORDS)


class OutputGuard:
    """Feed it the streamed text piece by piece; it says what may be sent and when to stop.

    `feed(piece)` returns (text now safe to send, a blocking verdict or None); after a
    block, nothing more is released. `finish()` checks the end and releases the rest.
    Flags (rules in flag mode) are collected in `flags` and never stop the stream; only
    rules that block hold text back.
    """

    def __init__(
        self,
        *,
        system_prompt: str,
        n_sources: int,
        planted: Iterable[str] = (),
        sources: Iterable[str] = (),
        modes: dict[str, Mode] | None = None,
    ) -> None:
        self.modes = modes or {}
        self.n_sources = n_sources
        said, prefixes = prompt_runs(system_prompt)
        # A run the sources also contain is quoting a document, not leaking the prompt.
        leak = set(said - shingles(" ".join(sources), LEAK_WORDS))
        planted_runs: set[tuple[str, ...]] = set()
        for sentence in planted:
            planted_runs |= shingles(sentence, PLANTED_WORDS)
        patterns = (
            PatternWatch("secret", _SECRET),
            PatternWatch("markup", _MARKUP),
            PatternWatch("citation", _CITATION, allowed=self._cited_source_exists),
        )
        runs = (
            RunWatch("prompt_leak", leak, LEAK_WORDS, prefixes),
            RunWatch("planted_instruction", planted_runs, PLANTED_WORDS),
        )
        self.patterns = [w for w in patterns if self._mode(w.rule) != "off"]
        self.runs = [w for w in runs if self._mode(w.rule) != "off" and w.runs]
        # Only rules that block hold text back.
        rules = [w.rule for w in self.patterns] + [w.rule for w in self.runs]
        self.holding = {rule for rule in rules if self._mode(rule) == "on"}
        self.text = ""
        self.sent = 0  # characters of `text` released so far
        self.words: list[str] = []  # completed words, lower-cased, for the run checks
        self.starts: list[int] = []  # where each of `words` starts in `text`
        self.word_end = 0  # characters of `text` whose words are in `words`
        self.unfinished = ""  # the word touching the end of `text`, lower-cased, or ""
        self.unfinished_at = 0  # where it starts
        self.flags: list[Verdict] = []
        self.blocked: Verdict | None = None

    def feed(self, piece: str) -> tuple[str, Verdict | None]:
        if self.blocked is not None:
            return "", self.blocked
        self.text += piece
        verdict = self._check(final=False)
        if verdict is not None:
            return "", verdict
        return self._release(self._hold()), None

    def finish(self) -> tuple[str, Verdict | None]:
        if self.blocked is not None:
            return "", self.blocked
        verdict = self._check(final=True)
        if verdict is not None:
            return "", verdict
        return self._release(len(self.text)), None

    def _mode(self, rule: str) -> Mode:
        return self.modes.get(rule, "on")

    def _cited_source_exists(self, match: regex.Match[str]) -> bool:
        return 1 <= int(match.group(1)) <= self.n_sources

    def _hold(self) -> int:
        """Where the earliest possible start of a blocking violation is (`len(text)`: none)."""
        hold = len(self.text)
        for pattern in self.patterns:
            if pattern.rule in self.holding and pattern.hold < hold:
                hold = pattern.hold
        for watch in self.runs:
            if watch.rule in self.holding:
                at = watch.hold(self.unfinished, self.unfinished_at)
                hold = hold if at is None or at > hold else at
        return hold

    def _release(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        out, self.sent = self.text[self.sent : upto], upto
        return out

    def _check(self, *, final: bool) -> Verdict | None:
        """Scan each rule from its own hold point (patterns) or new words (runs); a rule in
        flag mode is dropped once it has flagged, since it flags once per answer."""
        found: list[Verdict] = []
        for pattern in self.patterns:
            if (excerpt := pattern.scan(self.text, final=final)) is not None:
                found.append(Verdict(pattern.rule, "block", excerpt))
        self._add_words(final=final)
        for watch in self.runs:
            if (run := watch.scan(self.words, self.starts)) is not None:
                found.append(Verdict(watch.rule, "block", run))
        for verdict in found:
            applied = verdict.under(self._mode(verdict.rule))
            if applied is None:
                continue
            if applied.action == "block":
                self.blocked = applied
                return applied
            self.flags.append(applied)
            self.patterns = [w for w in self.patterns if w.rule != applied.rule]
            self.runs = [w for w in self.runs if w.rule != applied.rule]
        return None

    def _add_words(self, *, final: bool) -> None:
        """Append the words completed since the last check; a word touching the end of the
        text may go on in the next piece, so it waits as `unfinished` (unless this is the
        end)."""
        fresh = self.text[self.word_end :]
        consumed = len(fresh)  # up to the unfinished word, or all of it
        self.unfinished = ""
        for match in _ANY_CASE_WORD.finditer(fresh):
            if match.end() == len(fresh) and not final:
                self.unfinished = match.group(0).lower()
                self.unfinished_at = self.word_end + match.start()
                consumed = match.start()
                break
            self.words.append(match.group(0).lower())
            self.starts.append(self.word_end + match.start())
        self.word_end += consumed
