# ragship: `make dev` runs it, `make test` tests it. `make help` lists the rest.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CHROMIUM ?= /usr/bin/chromium
# Where `make install` takes CPU PyTorch from (the Dockerfile's export stage uses the same).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Debian packages the deploy tests run: proxy, validators (command -> package).
INFRA_TOOLS := caddy:caddy nginx:nginx-light shellcheck:shellcheck docker-compose:docker-compose
# What the image test runs (rootful podman with runc: apt would pick crun, which fails here).
IMAGE_TOOLS := podman:podman buildah:buildah mmdebstrap:mmdebstrap runc:runc tini-static:tini docker-compose:docker-compose

.DEFAULT_GOAL := help
.PHONY: help install dev test lint fmt ingest migrate browser infra-tools image-test deploy lock bench eval eval-attacks eval-corpus mutation mutation-db clean onnx stop preflight reset-corpus

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install ragship with its dev tools

$(STAMP): Makefile pyproject.toml infra/requirements.lock infra/torch.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU PyTorch first, from PyTorch's CPU index: on Linux, PyPI's torch is the multi-GB CUDA
	# build, which sentence-transformers would pull. The index's version (+cpu) outranks PyPI's;
	# --no-deps keeps torch's dependencies on PyPI, installed with the rest below; --upgrade
	# replaces a CUDA 2.13.0 an older install left (its nvidia-* packages stay: a new .venv drops them).
	$(PY) -m pip install --quiet --upgrade --no-deps --extra-index-url $(TORCH_INDEX) torch==2.13.0
	# The locks as constraints: the same versions as the image, whatever PyPI released since
	# (torch's own pin names the CPU index's local version, +cpu: the line above installs it).
	grep -v '^torch==' infra/torch.lock > $(VENV)/torch-constraints.txt
	$(PY) -m pip install --quiet -e '.[dev,torch]' -c infra/requirements.lock -c $(VENV)/torch-constraints.txt
	rm -f $(VENV)/.installed-*
	touch $@

dev: install ## Start ragship at http://127.0.0.1:8000 (embedded PostgreSQL + local model)
	$(PY) -m app

stop: ## Stop an embedded PostgreSQL left running (the app stops its own on exit)
	$(PY) -m app.embedded_db stop

browser: ## Install Debian's Chromium for the browser tests when it is missing
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "Chromium not found at $(CHROMIUM): installing it with apt-get"; \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  fi; \
	  test -x $(CHROMIUM) || { echo "error: could not install Chromium; install Debian's 'chromium' package or set CHROMIUM=/path/to/chromium"; exit 1; }; \
	fi

infra-tools: ## Install Caddy, nginx, shellcheck and docker-compose for the deploy tests when missing
	@missing=""; for pair in $(INFRA_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || PATH="$$PATH:/usr/sbin" command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get (deploy tests)"; \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	  for pair in $(INFRA_TOOLS); do \
	    PATH="$$PATH:/usr/sbin" command -v $${pair%%:*} >/dev/null || { echo "error: could not install $${pair#*:}; install Debian's '$${pair#*:}' package"; exit 1; }; \
	  done; \
	fi

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: install ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install browser infra-tools lint ## Lint, then the whole test suite (browser tests included)
	$(PY) -m pytest

migrate: install ## Apply database migrations (DATABASE_URL, or the embedded server)
	$(PY) -c "from app.db import database_url; from app.migrate import upgrade_to_head; from app.settings import get_settings; upgrade_to_head(database_url(get_settings()))"

ingest: install ## Ingest DOCS_DIR (default docs/) incrementally: it is the whole corpus
	$(PY) -m ingest $${DOCS_DIR:-docs} --only

reset-corpus: install ## Delete every ingested document (the next start or `make ingest` refills it)
	$(PY) -m ingest --reset

eval: install ## Run the eval suite and the attack corpus, gated on evals/baseline.json (MODELS=A,B: two tiers)
ifdef MODELS
	$(PY) -m evals --models $(MODELS)
else
	$(PY) -m evals
	$(PY) -m evals.attacks
endif

eval-attacks: install ## Measure the input guardrails on the attack corpus and gate (evals/attacks/)
	$(PY) -m evals.attacks

eval-corpus: install ## Retrieval on Python's HTML manual (fetched into .data/corpus/; minutes)
	$(PY) -m evals.corpus

preflight: install ## The pre-launch checklist: make preflight [URL=https://your.site] (JSON: preflight.json)
	$(PY) -m app.preflight --json preflight.json $(if $(URL),--url $(URL))

bench: install ## Run the benchmarks in bench/
	$(PY) -m bench

# Mutants (mutmut globs) of the modules whose fast tests are in pyproject's [tool.mutmut]
# selection; docs/mutation.md lists the other modules and how to run them.
MODULES ?= app.llm.breaker* app.observability.redact* evals.gate* app.caps.bounds* \
	app.caps.refusal* app.caps.store* app.auth.csrf*
MUTATION_JOBS ?= 2

mutation: install ## Mutation-test the money and safety paths, list survivors (MODULES=... for some)
	rm -rf mutants
	mkdir -p /tmp/ragship-mutation
	PYTEST_DEBUG_TEMPROOT=/tmp/ragship-mutation $(VENV)/bin/mutmut run \
	  --max-children $(MUTATION_JOBS) $(foreach m,$(MODULES),'$(m)')
	$(PY) -m tools.mutation_report

mutation-db: install ## Mutation-test one database-backed group (GROUP=budget|settle|chain|killswitch|retry|auth|alerts|stores...)
	mkdir -p /tmp/ragship-mutation
	PYTEST_DEBUG_TEMPROOT=/tmp/ragship-mutation $(PY) -m tools.mutation_db $(GROUP)
	$(PY) -m tools.mutation_report

image-test: install infra-tools ## Build the image from a local base and boot it (podman; minutes)
	@missing=""; for pair in $(IMAGE_TOOLS); do \
	  PATH="$$PATH:/usr/sbin" command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get (image test)"; \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  fi; \
	  for pair in $(IMAGE_TOOLS); do \
	    PATH="$$PATH:/usr/sbin" command -v $${pair%%:*} >/dev/null || { echo "error: could not install $${pair#*:}; install Debian's '$${pair#*:}' package"; exit 1; }; \
	  done; \
	fi
	$(PY) -m pytest tests_image -s

deploy: ## Deploy: make deploy TARGET=modal|fly|vps (see docs/deploy.md)
	@infra/deploy.sh "$(TARGET)"

lock: install ## Pin the dependencies (infra/requirements.lock, infra/torch.lock)
	$(PY) infra/lock.py

onnx: install ## Export the embedding model to ONNX for EMBEDDING_BACKEND=onnx (EMBEDDING_ONNX_DIR)
	$(PY) -m app.rag.onnx_export $${EMBEDDING_ONNX_DIR:-.data/onnx/all-MiniLM-L6-v2}

clean: ## Remove the virtual environment and caches (keeps .data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
