# Two commands matter: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test tools lint bench schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ltvcac dev

test: $(STAMP) tools lint
	$(BIN)/python -m pytest tests

# Prometheus, Alertmanager, promtool and amtool for tests/e2e (Debian packages; sudo unless root)
tools:
	@command -v promtool >/dev/null && command -v amtool >/dev/null \
	  && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null \
	  || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	       $$SUDO apt-get update -qq \
	       && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
	            prometheus prometheus-alertmanager; }

lint: $(STAMP)
	$(BIN)/ruff check stream schemas tests bench deploy
	$(BIN)/ruff format --check stream schemas tests bench deploy
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
