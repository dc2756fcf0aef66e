# Two entry points, both from a fresh clone: `make quickstart` and `make test`.
# The venv gets the CPU build of torch that lies on disk on CPU machines (pip install torch==2.13.0);
# on a CUDA machine the same pin resolves to PyPI's CUDA wheel.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.orthosweep-installed

.PHONY: venv quickstart test lint browser

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/orthosweep submit studies/quickstart.yaml

# Headless Chromium for the report's screenshot test (Debian package; root on these machines).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the report screenshot test will fail"

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/pytest
