# The two commands of the README. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/amlscore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: install test lint demo bench
install: $(BIN)/amlscore

test: install
	$(BIN)/ruff check shared stream batch amlscore tests
	$(BIN)/pytest

demo: install
	$(BIN)/amlscore demo

bench: install
	$(BIN)/python -m tests.benchmarks.run
