# `make run` and `make test` set everything up themselves (idempotent) and then run.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: run test setup clean

run: setup
	$(VPY) -m dotsocr_site.launcher run

test: setup
	$(VPY) -m dotsocr_site.launcher test $(PYTEST_ARGS)

setup: $(STAMP)

# Reinstall only when requirements.txt changes.
$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dotsocr needs Python 3.11 or newer"'
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV)
