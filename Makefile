# `make demo` and `make test` each set up .venv (once; the stamp makes a second
# install a no-op) and then run. Torch comes first and pinned so pip takes the
# local CPU wheel instead of pulling a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export FLWR_DISABLE_UPDATE_CHECK=1
export FLWR_TELEMETRY_ENABLED=0
export RAY_USAGE_STATS_ENABLED=0
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-assets.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-assets.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ray_jobs.spry --config configs/spry/laptop.yaml

# Unit tests first (minutes), then the slow end-to-end ones; the slowest 15 of each are listed.
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15 -m "not slow" tests
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=15 -m slow tests

bench: $(STAMP)
	$(PY) -m bench.memory

clean:
	rm -rf $(VENV) runs .pytest_cache
