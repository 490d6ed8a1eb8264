# Two commands for newcomers: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test venv bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "btd needs Python 3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
	  { echo "could not create a venv: on Debian, apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

## Start the daemon in the foreground on the built-in defaults (Ctrl+C stops it).
run: venv
	$(BIN)/btd

## Run the whole test suite.
test: venv
	$(BIN)/pytest

## Loopback benchmark against libtorrent (not a test).
bench: venv
	$(BIN)/python bench/swarm.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
