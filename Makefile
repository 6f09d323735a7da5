# Two commands do everything on a fresh machine with Python 3.11+:
#   make run   - set up, migrate, load demo data, print the admin login, start web + worker
#   make test  - lint and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export HOST PORT

.PHONY: install run test lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py loaddemo
	$(BIN)/python manage.py ensureadmin
	$(BIN)/python manage.py runconsole

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/admin.py
	$(BIN)/python bench/regex.py
	$(BIN)/python bench/breaker.py
	$(BIN)/python bench/config_propagation.py
	$(BIN)/python bench/alerting.py

clean:
	rm -rf $(VENV) var
