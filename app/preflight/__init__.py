"""`make preflight` / `python -m app.preflight`: the pre-launch checklist as code
(docs/deploy.md#pre-launch-checklist-make-preflight)."""
