# `make run` and `make test` set everything up themselves (idempotent) and then run.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test lint fmt bench setup browser office clean

run: setup office
	$(VPY) -m dotsocr_site.launcher run

# Lint first: a format, lint or type violation fails `make test` (and so CI) before the suite.
test: setup browser office lint
	$(VPY) -m dotsocr_site.launcher test $(PYTEST_ARGS)

# Form and types, configured in pyproject.toml: ruff's format check, ruff's lint rules, mypy
# (strict for workers/pdf.py and workers/ocr/). `make fmt` applies ruff's fixes.
lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fmt: setup
	sh tools/lint_fix.sh

# Benchmarks of the queue on a scratch database (bench/__main__.py), about 7 minutes,
# the Markdown fidelity benchmark beside pymupdf4llm (bench/fidelity.py, about 3),
# then the slow test suites (load, the largest corpus file) that `make test` leaves out.
# Needs PostgreSQL as `make test` does (DATABASE_URL or 127.0.0.1:5432).
bench: setup
	$(VPY) -m bench $(BENCH_ARGS)
	$(VPY) -m bench.fidelity
	$(VPY) -m dotsocr_site.launcher test -m slow

setup: $(STAMP)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dotsocr needs Python 3.11 or newer"'
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# The browser test drives Debian's chromium (playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "The browser test needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# Office and text inputs are converted to PDF by LibreOffice headless (Debian's -nogui
# packages: no X11, no Java). Without it the service still runs; those uploads then fail
# their job naming the missing program (README, "Inputs").
OFFICE_PACKAGES := libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
office:
	@command -v $${SOFFICE_BINARY:-soffice} >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(OFFICE_PACKAGES); \
	  else echo "Office and text inputs need LibreOffice: sudo apt-get install $(OFFICE_PACKAGES)" \
	    "(without it the service runs, and those conversions fail naming the missing program)" >&2; fi; }

clean:
	rm -rf $(VENV)
