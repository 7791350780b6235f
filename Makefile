# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench bench-ledger bench-signup bench-preferences \
	bench-dashboard bench-import bench-api bench-append bench-tracking bench-peer worker beat clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# HOST and PORT reach the settings too: emailed links and recorded collection points use them
# (SITE_URL, when it is not set). demo_data prints the addresses to open.
run: export HOST := $(HOST)
run: export PORT := $(PORT)
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_data
	@echo
	@echo "  Assent is starting on http://$(HOST):$(PORT)/ (health: /healthz)"
	@echo
	$(PY) manage.py runserver $(HOST):$(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The benchmarks (bench/*.md): PostgreSQL and Redis on 127.0.0.1; numbers in bench/out/.
bench: bench-ledger bench-signup bench-preferences bench-dashboard

bench-ledger: install
	$(PY) bench/ledger_bench.py

bench-signup: install
	$(PY) bench/signup_bench.py

bench-preferences: install
	$(PY) bench/preferences_bench.py

# Reads the 1,000,000-contact dataset that bench-ledger builds.
bench-dashboard: install
	$(PY) bench/dashboard_bench.py

# A 1,000,000-row Mailchimp export through manage.py import_contacts (bench/README.md).
bench-import: install
	$(PY) bench/import_bench.py

# The integration API over the dataset of bench-ledger: 1,000 decisions, the audience stream.
bench-api: install
	$(PY) bench/api_bench.py

# One contact's 2,000th event against its 10th (bench/README.md).
bench-append: install
	$(PY) bench/append_bench.py

# Email-service webhooks accepted per second, and the inbox drained (bench/README.md).
bench-tracking: install
	$(PY) bench/tracking_bench.py

# Sign-up and preference pages against django-newsletter 1.2.1, in one run (bench/README.md).
bench-peer: install
	$(PY) bench/peer_bench.py

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
