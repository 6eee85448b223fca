"""The query vector's text (`vector_text`) gives PostgreSQL the same vector as pgvector's own
`Vector.to_text`, for real embeddings and for edge values, checked by the server itself."""

from __future__ import annotations

import numpy as np
import pytest
from pgvector import Vector
from sqlalchemy import Engine, text

from app.rag.retrieve import vector_text

_SAME = text("SELECT CAST(:a AS vector) = CAST(:b AS vector), CAST(:a AS vector)::text")


def _vectors() -> list[list[float]]:
    rng = np.random.default_rng(7)
    unit = rng.standard_normal((20, 384)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    edges = np.array(
        [0.0, -0.0, 1.0, -1.0, 1e-30, -3.4e38, 1.1754944e-38, 1.4e-45, 0.1, 1 / 3], np.float32
    )
    wide = rng.standard_normal(384)  # float64 values, not float32 ones: rounded alike
    return [*unit.tolist(), np.resize(edges, 384).tolist(), wide.tolist()]


def test_the_server_reads_the_same_vector_as_from_pgvectors_text(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        for vector in _vectors():
            same, stored = conn.execute(
                _SAME, {"a": vector_text(vector), "b": Vector(vector).to_text()}
            ).one()
            assert same, stored
            assert np.array_equal(
                np.array(stored[1:-1].split(","), dtype=np.float32),
                np.asarray(vector, dtype=np.float32),
            )


def test_text_already_made_is_passed_through_and_nan_is_refused(db_engine: Engine) -> None:
    made = vector_text([0.5] * 384)
    assert vector_text(made) is made
    bad = vector_text([float("nan")] * 384)
    with db_engine.connect() as conn, pytest.raises(Exception, match="NaN not allowed"):
        conn.execute(text("SELECT CAST(:a AS vector)"), {"a": bad})
