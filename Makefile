# Two commands do all set-up on a fresh machine:
#   make demo   -> local virtual environment + the built-in demo
#   make test   -> local virtual environment + the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean bench browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch first (a plain `torch` requirement would pull a multi-GB CUDA build)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# the fused CPU ops (C++, about a minute): tri-plane sampling and the fast renderer's MLPs; nerfw falls back
	# to grid_sample and torch's layers where they cannot be built
	$(BIN)/python -m nerfw.fields.fused_planes
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nerfw demo --out demo_out

# The viewer's browser test needs Chromium: install Debian's package when it is missing and we are root (it is
# skipped, with the reason, where that is not possible).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && \
	   apt-get install -y -q chromium >/dev/null 2>&1)); } || echo "note: no /usr/bin/chromium; the browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 -q tests

# Everything but the end-to-end tests (those that train a model): a quick check while editing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "not e2e" tests

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_out
