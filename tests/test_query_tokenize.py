"""A query's embedding tokenises on its own thread: no tokenizer thread pool spinning
beside the event loop (app/rag/onnx_embedder.py, `OnnxEmbedder.embed`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# Run in a fresh interpreter: the tokenizer's pool (rayon) is made once per process, on the
# first batch call, so any earlier batch in the test process would hide it.
_COUNT_THREADS = """
import json, os, sys
from pathlib import Path
from app.rag.onnx_embedder import OnnxEmbedder

def threads():
    return len(os.listdir("/proc/self/task"))

embedder = OnnxEmbedder(Path(sys.argv[1]), precision="fp32")
embedder.use_threads(1)  # as the server runs query embeddings
before = threads()
one = [embedder.embed_one(f"How do I deploy to Fly.io? ({i})") for i in range(3)]
after_one = threads()
two = embedder.embed(["How do I deploy?", "What does a reservation hold?"])
after_batch = threads()
# Either call gives the same token ids (so the same vector), truncation included.
texts = ["How do I deploy?", "", "ragship streams answers through Caddy. " * 80]
same = all(
    embedder.tokenizer.encode(t).ids == embedder.tokenizer.encode_batch([t])[0].ids
    for t in texts
)
print(json.dumps({"before": before, "after_one": after_one, "after_batch": after_batch,
                  "same": same}))
"""


def test_one_text_starts_no_tokenizer_threads_and_a_batch_does(onnx_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_THREADS, str(onnx_dir)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["after_one"] == counts["before"], counts  # tokenised on the calling thread
    # The check can see the pool: a batch of two starts it (one thread per core here).
    assert counts["after_batch"] > counts["after_one"], counts
    assert counts["same"] is True
