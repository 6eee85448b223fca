"""Torch's thread count for query embeddings in the server (onnxruntime's is set per
session: `OnnxEmbedder.use_threads`; the lifespan calls `use_threads` on either).

Torch defaults to one intra-op thread per core for every `encode`. The server embeds one
question per request, several requests at once (each in its own worker thread), so the
default has N requests × N threads fight for N cores: measured on 2 busy cores, two
concurrent `embed_one` calls took p50 92 / p95 713 ms with the default against 16.5 /
24.8 ms with one thread each (issue 17). `EMBED_THREADS` (default 1) sets it; batch
ingest (`python -m ingest`) keeps the runtime's default.
"""

from __future__ import annotations


def size_torch_threads(threads: int) -> None:
    """Set torch's intra-op threads for this process (inter-op is left alone: changing it
    after torch started work raises)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
