# The two commands of the README. Both create .venv on first use and install the project into it
# from this repository's own files (pyproject.toml); nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.starnode-installed

.PHONY: demo test test-latest lock lint bench clean

# Installs are reproducible: requirements.lock pins every package to an exact version and hash
# (made by 'make lock' from pyproject.toml's ranges); the project itself goes in without deps.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml's ranges (needs uv; review the diff, then commit it).
lock:
	$(PYTHON) -m pip install --quiet 'uv>=0.9'
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --extra solve --extra hub --extra web \
	  --extra telescope --python-version 3.11 --generate-hashes --no-header -o requirements.lock

# The same tests against the newest releases that pyproject.toml's ranges allow, in a venv of its
# own, so upstream drift is seen on purpose and never turns a fresh clone red by surprise.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip
	.venv-latest/bin/python -m pip install --quiet -e '.[test,solve,hub,web,telescope]'
	.venv-latest/bin/python -m pytest -q

demo: $(STAMP)
	$(BIN)/starnode demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/watcher.py
	$(BIN)/python bench/photometry.py
	$(BIN)/python bench/starlist_depth.py
	$(BIN)/python bench/astrometry.py
	$(BIN)/python bench/node.py
	$(BIN)/python bench/longnight.py
	$(BIN)/python bench/poison.py
	$(BIN)/python bench/errors.py
	$(BIN)/python bench/colour_transform.py
	$(BIN)/python bench/hub.py
	$(BIN)/python bench/plan.py

clean:
	rm -rf $(VENV) .venv-latest build src/*.egg-info .pytest_cache .ruff_cache
