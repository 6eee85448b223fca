"""Guardrails: input screening before retrieval, output checks around the stream.

The order lives in one place, `chain.py`; each check is its own module and returns
`Verdict`s (allow, flag or block, with a rule id). See docs/guardrails.md.
"""
