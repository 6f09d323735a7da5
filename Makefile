# Two commands do everything on a fresh machine with Python 3.11+:
#   make run   - install what running needs (pinned in uv.lock), migrate, load demo data, print the admin
#                login, start web + worker
#   make test  - install the dev group too, lint and the whole test suite (PYTEST_ARGS to narrow it)
#   make test-fast - the suite without the `live` tests, which start real processes
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# uv installs from uv.lock; it lives in a directory of its own, so that syncing .venv never removes it.
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
CHROMIUM := /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
export HOST PORT
# This machine's Python only: uv never downloads one.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install install-dev run test test-fast chromium lint format bench lock-upgrade clean

$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	rm -rf $(TOOLS)
	PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip install -q --disable-pip-version-check --target $(TOOLS) uv==$(UV_VERSION)

# The venv on the interpreter $(PYTHON) names (resolved, so that a pyenv shim is not what the venv links to).
$(BIN)/python: | $(UV)
	$(UV) venv -q --clear --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')" $(VENV)

# The stamps make a second start skip uv altogether. --locked refuses a uv.lock that no longer matches
# pyproject.toml instead of quietly installing something else. The dev group includes the runtime, so
# after `make test`, `make run` finds the runtime stamp fresh and leaves the dev tools installed.
$(VENV)/.runtime-synced: uv.lock pyproject.toml | $(BIN)/python
	$(UV) sync -q --locked --no-dev
	@touch $@

$(VENV)/.dev-synced: uv.lock pyproject.toml | $(BIN)/python
	$(UV) sync -q --locked
	@touch $@ $(VENV)/.runtime-synced

install: $(VENV)/.runtime-synced

install-dev: $(VENV)/.dev-synced

# migrate, loaddemo and ensureadmin in one process: a Django start costs 1.5 s here, and a second `make run`
# must serve within 10 s.
define PREPARE
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
from django.core.management import call_command
django.setup()
call_command("migrate", interactive=False, skip_checks=False)
call_command("loaddemo")
call_command("ensureadmin")
endef
export PREPARE

run: install
	@echo '$(BIN)/python -c "$$PREPARE"  # manage.py migrate --noinput; loaddemo; ensureadmin'
	@$(BIN)/python -c "$$PREPARE"
	$(BIN)/python manage.py runconsole

# The browser tests drive Debian's chromium: installed here when that is possible (root, apt-get); otherwise
# they are skipped saying how to install it, or fail under REQUIRE_BROWSER=1 (tests/browser_requirement.py).
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "$(CHROMIUM) is missing: installing it for the browser tests (apt-get install -y chromium)"; \
		(apt-get update -q && apt-get install -y -q chromium) || echo "could not install chromium"; \
	fi

# With DATABASE_URL set (PostgreSQL), the tests marked sqlite_too run a second time on the embedded SQLite.
test: install-dev chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$DATABASE_URL" ]; then \
		echo 'DATABASE_URL= $(BIN)/pytest -m sqlite_too $(PYTEST_ARGS)  # again on SQLite'; \
		DATABASE_URL= $(BIN)/pytest -m sqlite_too $(PYTEST_ARGS); \
	fi

# Without the tests marked `live` (those that start real servers, workers or probe processes), for the
# edit-test loop. `make test` still runs everything.
test-fast: install-dev
	$(BIN)/pytest -m "not live" $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/admin.py
	$(BIN)/python bench/regex.py
	$(BIN)/python bench/breaker.py
	$(BIN)/python bench/config_propagation.py
	$(BIN)/python bench/alerting.py

# Newest releases within pyproject.toml's ranges into uv.lock; the next make run / make test installs them.
lock-upgrade: $(UV)
	$(UV) lock --upgrade

clean:
	rm -rf $(VENV) $(TOOLS) var
