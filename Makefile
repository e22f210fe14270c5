# The two commands a newcomer types: `make quickstart` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
QUICKSTART_OUT ?= quickstart
QUICKSTART_ARGS ?=

.PHONY: setup quickstart test test-all smoke lint

setup:
	@bash scripts/setup.sh

quickstart: setup
	$(VENV)/bin/twistlm quickstart --out $(QUICKSTART_OUT) $(QUICKSTART_ARGS)

smoke: setup
	$(VENV)/bin/twistlm quickstart --smoke --out $(QUICKSTART_OUT)-smoke

# default suite + the demo's real-browser test (headless Debian chromium); slow tests: make test-all
test: export APT_EXTRA = chromium
test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow or browser"

test-all: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m ""

lint:
	$(VENV)/bin/ruff check twistlm tests benchmarks
