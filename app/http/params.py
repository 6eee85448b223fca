"""Path parameters bounded to what the database can hold: a number past BIGINT is a 422,
not a database error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

BIGINT_MAX = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX, description="A row id.")]
