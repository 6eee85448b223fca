"""Cheap pattern checks on text: prompt injection, jailbreaks, requests for secrets or the
system prompt, secrets in output, and markup the page must never render.

Patterns are deliberately narrow (imperative phrasing, "your"/"the system" as the object):
questions that merely mention prompts, keys or passwords must pass; the attack corpus run
(`python -m evals.attacks`) measures both rates.
"""

from __future__ import annotations

import re

_I = re.IGNORECASE
_NOUNS = (
    r"(instructions?|prompts?|rules?|guidelines?|directions?|constraints?|guardrails?|"
    r"polic(?:y|ies))\b"
)
INJECTION = re.compile(
    r"\b(ignore|disregard|forget)\b[^.?!\n]{0,40}?\b(previous|prior|above|earlier|all|any|"
    r"your|the|these|those|system)\b[^.?!\n]{0,30}?\b"
    + _NOUNS
    # "override the default prompt" is a configuration question; "override your rules" is not.
    + r"|\b(override|bypass|skip)\b[^.?!\n]{0,40}?\b(previous|prior|above|earlier|all|any|"
    r"your|these|those)\b[^.?!\n]{0,30}?\b"
    + _NOUNS
    + r"|\b(you are|you're|act as|pretend (?:to be|you are)|roleplay as)\b[^.?!\n]{0,40}?"
    r"\b(DAN|jailbr(?:oken|eak)|developer mode|unfiltered|uncensored|without (?:any )?"
    r"(?:restrictions|rules|filters|limits))\b"
    r"|\b(?:play|be|become|simulate)\s+(?:an?|the)\s+(?:ai|assistant|model|bot|chatbot)\b"
    r"[^.?!\n]{0,50}?\b(?:no|without(?: any)?)\s+(?:restrictions|rules|filters|limits|"
    r"guidelines|censorship)\b"
    r"|\b(do anything now|developer mode (?:enabled|on)|jailbreak(?:ed)? mode|"
    r"\[(?:system|admin)\]|<\|?(?:im_start|system)\|?>|new instructions:|system override)",
    _I,
)
_SECRET_NOUNS = (
    r"(system prompt|prompt|instructions|rules|initial prompt|api[ _-]?keys?|secret(?: key)?s?|"
    r"passwords?|credentials|tokens?|environment variables|\.env)\b"
)
SECRETS_REQUEST = re.compile(
    # An imperative at the start of a sentence (or after "please", "and" ...): asking the
    # assistant to do it, not asking whether something can happen.
    r"(?:^|[.!?,;:]\s*|\b(?:please|now|just|and|then|kindly|so)\s+)(reveal|show|print|repeat|"
    r"output|display|dump|leak|tell me|give me|write out|spell out|list)\b[^.?!\n]{0,30}?"
    r"\b(your|the (?:system|hidden|initial|original|secret)|ragship's|the server's|"
    r"the operator's)\s+(?:[a-z]+\s+)?"
    + _SECRET_NOUNS
    + r"|\bwhat (?:is|are|were)\s+your\s+(?:[a-z]+\s+)?"
    + _SECRET_NOUNS
    + r"|\b(contents? of|cat|print|show|dump)\s+(?:the\s+|your\s+)?(?:\.env|/etc/passwd|"
    r"environment variables)\b"
    r"|\bverbatim\b[^.?!\n]{0,40}\b(system prompt|instructions above|prompt above)\b"
    r"|\b(recite|repeat|print|output|reproduce)\b[^.?!\n]{0,40}\b(word for word|verbatim)\b"
    r"[^.?!\n]{0,60}\b(given|told|instructions|prompt|above|before)\b"
    r"|\b(text|instructions|message|prompt)s? (?:that )?you were (?:given|told)\b",
    _I,
)
SECRET = re.compile(
    r"\b(?:sk|rk)-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"
    r"|\bxox[abpr]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{35}\b"
    r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"
)
# Substrings every SECRET (MARKUP) match contains one of: a cheap filter before the regex.
SECRET_HINTS = (
    *("sk-", "rk-", "ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "xox", "AKIA", "AIza"),
    "-----BEGIN",
)
MARKUP_HINTS = ("<", "=", ":")  # every MARKUP alternative has one of them
MARKUP = re.compile(
    r"<\s*(script|iframe|object|embed|style|form|meta|link|svg)\b|\bjavascript\s*:"
    r"|\bon(?:error|load|click|mouseover|focus)\s*=",
    _I,
)
INSTRUCTION = re.compile(
    r"\b(note|message|instructions?) (?:for|to) (?:ai|llm|the)? ?(?:assistants?|models?|bots?|"
    r"chatbots?|language models?)\b"
    r"|\b(tell|instruct|ask) the user to\b"
    r"|\bwhen (?:asked|answering)\b[^.\n]{0,60}\b(tell|say|reply|respond|answer)\b",
    _I,
)
CITATION = re.compile(r"\[(\d{1,4})\]")
