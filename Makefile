# lmops: `make run` sets up .venv and runs the pipeline on embedded defaults;
# `make test` sets up .venv and runs the tests. Nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU wheel of torch 2.13.0 is what this project is tested with. On a GPU
# machine use e.g. `make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= cpu
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: install run test test-services test-all lint format ui services services-down clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/lmops run --config $(CONFIG) $(ARGS)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Needs the real services: `make services` and their variables in the environment.
test-services: install
	$(BIN)/python -m pytest -m services $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: install
	$(BIN)/lmops ui

services: install
	$(BIN)/lmops services up

services-down: install
	$(BIN)/lmops services down

clean:
	rm -rf .lmops
