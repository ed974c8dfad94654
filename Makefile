# omnifuse: `make demo` runs the pipeline end to end, `make test` runs the tests. Both install what they need.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench backfill airflow warehouse-down clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.txt
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/omnifuse demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check dags include plugins tests bench
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/ingest.py
	$(PY) bench/identity.py
	$(PY) bench/quality.py
	$(PY) bench/models.py
	$(PY) bench/publish.py
	$(PY) bench/backfill.py
	$(PY) bench/load_order.py

# History through the real DAGs: make backfill FROM=2024-01-01 TO=2024-12-31 [RETRAIN=last|every|none]
backfill: install
	$(VENV)/bin/omnifuse backfill --from $(FROM) --to $(TO) --retrain $(or $(RETRAIN),last)

# Airflow's UI on the embedded setup (same metadata database as `make demo`): http://localhost:8080
airflow: install
	eval "$$($(VENV)/bin/omnifuse airflow-env)" && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/airflow standalone

warehouse-down: install
	$(VENV)/bin/omnifuse warehouse down

clean:
	-test -x $(VENV)/bin/omnifuse && $(VENV)/bin/omnifuse warehouse down
	rm -rf .omnifuse
