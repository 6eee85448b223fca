"""The apps `python -m bench gateway` compares side by side (`GATEWAY_VARIANTS`): each a
label and the environment its `python -m app` gets on top of the bench's."""

from __future__ import annotations

import os

VARIANTS: dict[str, tuple[str, dict[str, str]]] = {  # name: (label, app environment)
    "torch": ("ragship (torch, 1 worker)", {"EMBEDDING_BACKEND": "torch"}),
    "onnx": ("ragship (onnx, 1 worker)", {"EMBEDDING_BACKEND": "onnx"}),
    # The same with a query embedding alone on two threads (EMBED_IDLE_THREADS, off by default).
    "onnxidle": (
        "ragship (onnx, 1 worker, idle threads 2)",
        {"EMBEDDING_BACKEND": "onnx", "EMBED_IDLE_THREADS": "2"},
    ),
    "onnx2": ("ragship (onnx, 2 workers)", {"EMBEDDING_BACKEND": "onnx", "WEB_CONCURRENCY": "2"}),
    "onnx8": (
        "ragship (onnx int8, 1 worker)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8"},
    ),
    "onnx8x2": (
        "ragship (onnx int8, 2 workers)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8", "WEB_CONCURRENCY": "2"},
    ),
    # onnx8 and onnx8x2 with CPython's default thread switch interval (GIL_SWITCH_INTERVAL_MS).
    "onnx8gil5": (
        "ragship (onnx int8, 1 worker, GIL 5 ms)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8",
         "GIL_SWITCH_INTERVAL_MS": "5"},
    ),
    "onnx8x2gil5": (
        "ragship (onnx int8, 2 workers, GIL 5 ms)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8", "WEB_CONCURRENCY": "2",
         "GIL_SWITCH_INTERVAL_MS": "5"},
    ),
    # onnx8 and onnx8x2 reserving after retrieval, in a round trip of its own (EARLY_RESERVATION).
    "onnx8exact": (
        "ragship (onnx int8, 1 worker, exact reservation)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8",
         "EARLY_RESERVATION": "false"},
    ),
    "onnx8x2exact": (
        "ragship (onnx int8, 2 workers, exact reservation)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8", "WEB_CONCURRENCY": "2",
         "EARLY_RESERVATION": "false"},
    ),
    # onnx8 and onnx8x2 with every round trip in turn, even on an idle worker (IDLE_OVERLAP).
    "onnx8serial": (
        "ragship (onnx int8, 1 worker, no idle overlap)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8",
         "IDLE_OVERLAP": "false"},
    ),
    "onnx8x2serial": (
        "ragship (onnx int8, 2 workers, no idle overlap)",
        {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_PRECISION": "int8", "WEB_CONCURRENCY": "2",
         "IDLE_OVERLAP": "false"},
    ),
}  # fmt: skip
# The temporary PostgreSQL's max_connections (pgserver's default), less a margin for the
# bench's own connections: every worker of every app side by side keeps its pool open.
MAX_CONNECTIONS = 100 - 10


def variants() -> list[str]:
    names = [n.strip() for n in os.environ.get("GATEWAY_VARIANTS", ",".join(VARIANTS)).split(",")]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"GATEWAY_VARIANTS: unknown {unknown}; known: {', '.join(VARIANTS)}")
    return names


def workers_of(name: str) -> int:
    """The worker processes variant ``name`` runs (its WEB_CONCURRENCY)."""
    return int(VARIANTS[name][1].get("WEB_CONCURRENCY", "1"))
