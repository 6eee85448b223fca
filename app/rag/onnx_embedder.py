"""Sentence embeddings on onnxruntime: the torch path's vectors without torch.

The model folder is written by `python -m app.rag.onnx_export` (the image does it at build
time) from the same all-MiniLM-L6-v2 weights as the torch path. Here the text is
tokenised by the model's own `tokenizer.json` (`tokenizers`), truncated to the model's
`max_seq_length` (256 for MiniLM, from its sentence_bert_config.json) and padded to the
longest text of its batch; the token vectors are mean-pooled over the attention mask and
scaled to unit length, which is what sentence-transformers' Pooling (mean tokens) and
Normalize modules do. tests/test_onnx_embedder.py holds the two paths to the same vectors.

`precision="int8"` loads `model.int8.onnx` instead, written next to `model.onnx` by the
export (app/rag/onnx_quantize.py): about half the time per query on one thread, vectors
within cosine 0.98 of the float32 ones (tests/test_onnx_int8.py). Its name is the same
model's, so switching precision re-embeds nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnxruntime

METADATA = "ragship-onnx.json"  # written by app.rag.onnx_export
Precision = Literal["fp32", "int8"]
MODELS: dict[Precision, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


class OnnxEmbedder:
    """Turns text into unit-length vectors (cosine similarity == dot product) with onnxruntime.

    `precision` picks the model file (`MODELS`). Raises FileNotFoundError, naming the
    export command, when `model_dir` lacks a file.
    """

    def __init__(
        self, model_dir: Path, *, batch_size: int = 64, precision: Precision = "fp32"
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        files = (MODELS[precision], "tokenizer.json", METADATA)
        missing = [name for name in files if not (model_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"no ONNX embedding model at {model_dir} (missing {', '.join(missing)}): "
                f"export it with `python -m app.rag.onnx_export {model_dir}` (needs torch), "
                "or set EMBEDDING_BACKEND=torch"
            )
        metadata = json.loads((model_dir / METADATA).read_text())
        self.name = str(metadata["name"])
        self.dimension = int(metadata["dimension"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(metadata["max_seq_length"]))
        self.tokenizer.no_padding()  # padded here, per batch, to its longest text
        # No usage telemetry, and only errors on stderr: as the runtime user, onnxruntime
        # otherwise warns on every start that it cannot store a telemetry device id.
        onnxruntime.disable_telemetry_events()
        onnxruntime.set_default_logger_severity(3)
        self.precision = precision
        self.model_path = model_dir / MODELS[precision]
        self.threads: int | None = None  # onnxruntime's default: one per core
        self.session = self._session(None)
        # A second session on more threads, for a call with no other in flight (`use_threads`).
        self.idle_threads: int | None = None
        self._idle_session: onnxruntime.InferenceSession | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self.last_threads: int | None = None  # the last call's session's (None: the default)

    def _session(self, threads: int | None, *, spin: bool = True) -> onnxruntime.InferenceSession:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not spin:  # idle pool threads sleep at once instead of spinning on a core
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )

    def use_threads(self, threads: int, *, idle: int | None = None) -> None:
        """Run each call on `threads` intra-op threads (the server's query embeddings:
        app/rag/threads.py says why one each), or on `idle` threads when no other call is
        in flight in this process: one request alone gets the idle cores (an fp32 query in
        about 5 instead of 8 ms on two cores), concurrent ones one thread each, which is
        what keeps them fast. Off unless asked: one benchmark run showed a throughput cost
        under load and a second did not (docs/configuration.md, `EMBED_IDLE_THREADS`).
        The `idle` session does not spin its threads between calls. onnxruntime fixes a
        session's threads when it is built, so this builds sessions again (about 0.1 s
        each, once at start); the second one adds about 15 MB for fp32, 25 MB for int8."""
        if threads != self.threads:
            self.session = self._session(threads)
            self.threads = threads
        wanted = idle if idle is not None and idle > threads else None
        if wanted != self.idle_threads:
            self._idle_session = self._session(wanted, spin=False) if wanted else None
            self.idle_threads = wanted

    @contextmanager
    def in_flight(self) -> Iterator[onnxruntime.InferenceSession]:
        """Count one call as in flight while it runs, and pick its session: the idle one
        when it is the only call (and there is one), the `threads` one otherwise."""
        with self._lock:
            self._in_flight += 1
            idle = self._idle_session if self._in_flight == 1 else None
            session = idle if idle is not None else self.session
            self.last_threads = self.idle_threads if idle is not None else self.threads
        try:
            yield session
        finally:
            with self._lock:
                self._in_flight -= 1

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One 384-float unit vector per text (for MiniLM), in the order given.

        Even one text (a query) is tokenised by the batch call, which gives the GIL up
        while it runs. `Tokenizer.encode` (the same ids) keeps it: an embedding beside a
        thread computing in Python was faster with it (p50 2.60 against 3.84 ms), but it
        held the GIL 1.3 ms for the longest question the input bounds allow, and through
        the whole app the difference was within the run-to-run spread (`python -m bench
        tokenize_pool`; docs/architecture.md, "The query embedding at one request at a
        time")."""
        if not texts:
            return []
        encodings = self.tokenizer.encode_batch(texts)
        # Longest first, as sentence-transformers batches: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        with self.in_flight() as session:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                vectors[batch] = self._run(session, [encodings[i].ids for i in batch])
        return [v.tolist() for v in vectors]

    def embed_one(self, text: str) -> list[float]:
        return self.embed([text])[0]

    def _run(
        self, session: onnxruntime.InferenceSession, token_ids: list[list[int]]
    ) -> npt.NDArray[np.float32]:
        width = max(len(ids) for ids in token_ids)
        input_ids = np.zeros((len(token_ids), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros_like(input_ids)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        (tokens,) = session.run(["last_hidden_state"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
