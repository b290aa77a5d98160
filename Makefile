# The two commands of the README. Both create .venv on first use and install the project into it
# from this repository's own files (pyproject.toml); nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.starnode-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,solve,hub,web]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/starnode demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/watcher.py
	$(BIN)/python bench/photometry.py
	$(BIN)/python bench/astrometry.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/longnight.py
	$(BIN)/python bench/poison.py
	$(BIN)/python bench/errors.py
	$(BIN)/python bench/colour_transform.py
	$(BIN)/python bench/hub.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
