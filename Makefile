# The whole set-up on a fresh machine is `make run` or `make test`; every other
# target is a step of those two.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint format lock messages migrate demo clean

help:
	@echo "make run    install, migrate, load demo data, start web + worker + beat"
	@echo "make test   install and run the whole test suite"
	@echo "make lint   ruff check, format check and the import contracts"
	@echo "make lock   re-resolve requirements/*.lock from pyproject.toml"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when a lock file or pyproject.toml changes.
$(STAMP): $(PY) requirements/dev.lock pyproject.toml client/pyproject.toml
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	# The Python client and its `tokenworks` command; its dependencies are in the lock
	# already (tests/client/test_packaging.py keeps it so).
	$(PY) -m pip install --quiet --no-deps -e ./client
	@touch $(STAMP)

install: $(STAMP)

messages: install
	$(PY) manage.py compile_translations

migrate: messages
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

WEB_BIND ?= 127.0.0.1:8000

# honcho runs the Procfile (web, worker, beat): Ctrl-C stops all three, and
# when one of them exits it stops the others.
run: demo
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo ""
	@echo "Tokenworks: http://$(WEB_BIND)/  (admin: /admin/, API docs: /api/docs/, health: /healthz)"
	@echo "Ctrl-C stops the web server, the worker and beat together."
	@echo ""
	@trap 'interrupted=1' INT TERM; \
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHONPATH="$(CURDIR):$(CURDIR)/platform" WEB_BIND=$(WEB_BIND) $(BIN)/honcho start --procfile Procfile; \
	status=$$?; \
	if [ -n "$$interrupted" ]; then \
		echo "tokenworks: stopped."; status=0; \
	elif [ $$status -ne 0 ]; then \
		echo "tokenworks: a process exited (status $$status), so all of them were stopped; its output is above." >&2; \
	fi; \
	exit $$status

# Which app may import which (.importlinter); both source roots on the path.
LINT_IMPORTS := PYTHONPATH="$(CURDIR):$(CURDIR)/platform" $(BIN)/lint-imports --no-cache

test: messages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LINT_IMPORTS)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LINT_IMPORTS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(PY)
	$(PY) -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 --quiet -o requirements/main.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --quiet -o requirements/dev.lock

clean:
	rm -rf $(VENV) var/static
