# Two commands do everything on a fresh machine:
#   make run    environment + data + the main experiment (residual MLP: fit, then test)
#   make test   environment + data + the whole test suite
# Offline, datasets come from the archives in $DLA_DATA_ARCHIVES (default: ../shared/data);
# `make data` decodes them into data/ and copies the pretrained weights to data/weights/, so every
# documented command then runs in the activated venv without exporting anything.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export DLA_DATA_ARCHIVES ?= $(abspath ../shared/data)

.PHONY: env data browser postgres run test sweep benchmark lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	# the tests' independent attack reference, without its pins (see pyproject's `test` extra)
	$(PY) -m pip install --quiet --no-deps 'torchattacks==3.5.1'
	touch $@

env: $(VENV)/.installed

data: env
	$(PY) -m common.data mnist cifar10 imagenette
	$(PY) -c 'from lab2.data import DANTE, read_text; read_text(DANTE)'  # Lab 2's text

run: data
	$(PY) -m lab1 fit --config configs/lab1/residual_mlp_mnist.yaml --ckpt_path last
	$(PY) -m lab1 test --config configs/lab1/residual_mlp_mnist.yaml --ckpt_path best

# the web apps' tests drive Debian's Chromium (Playwright's own browser download is offline here)
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "the app tests need Chromium: sudo apt-get install chromium"; exit 1; }

# the PostgreSQL sweep tests start a throwaway server of Debian's (tests/test_sweep_postgres.py)
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
		{ echo "the PostgreSQL sweep tests need its server: sudo apt-get install postgresql"; exit 1; }

test: data browser postgres
	$(PY) -m pytest

sweep: data
	$(PY) -m lab1 sweep --config configs/lab1/sweeps/mlp_depth.yaml

benchmark: data
	$(PY) benchmarks/data_throughput.py

lint: env
	$(VENV)/bin/ruff check .
