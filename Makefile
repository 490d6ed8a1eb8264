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

# One stamp per extra set, so that `make run` after `make test` (or the reverse) installs
# what is missing. setuptools says "Editable installation." as a warning on every editable
# install of a project with a package-dir mapping: information, not a problem, so it is
# silenced here and the daemon's first line is the first thing `make run` shows.
INSTALL = PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install --quiet

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "pip install -e . (into $(VENV))"
	@$(INSTALL) -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "pip install -e '.[test]' (into $(VENV))"
	@$(INSTALL) -e '.[test]'
	@touch $@

## What running needs (no test extras: libtorrent is only for the tests).
venv: $(VENV)/.installed-run

## Start the daemon in the foreground on the built-in defaults (Ctrl+C stops it).
run: $(VENV)/.installed-run
	$(BIN)/btd

## Run the whole test suite.
test: $(VENV)/.installed-test
	$(BIN)/pytest

## Loopback benchmark against libtorrent (not a test).
bench: $(VENV)/.installed-test
	$(BIN)/python bench/swarm.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
