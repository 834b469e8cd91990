# fartrack developer targets.
#   make setup   create .venv (if missing) and install requirements + the package (editable); quick when done
#   make test    run the test suite (what .ci/run runs)
#   make demo    synthetic data -> train stages 1, 2, 3 -> evaluate pico against baselines, all under
#                DEMO_DIR (default output/demo); a second run reuses what is finished

PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV ?= .venv
VENV_PYTHON := $(VENV)/bin/python
# The setup stamp records a checksum of these files; setup reinstalls only when one of them changes.
SETUP_INPUTS := requirements.txt requirements-test.txt setup.py
SETUP_STAMP := $(VENV)/.fartrack-setup-stamp
PYTEST_ARGS ?=
DEMO_DIR ?= output/demo

.PHONY: setup test demo

setup:
	@set -e; \
	if [ ! -x "$(VENV_PYTHON)" ]; then \
		echo "setup: creating $(VENV) with $(PYTHON)"; \
		"$(PYTHON)" -m venv "$(VENV)"; \
	fi; \
	sum="$$(cat $(SETUP_INPUTS) | cksum)"; \
	if [ -f "$(SETUP_STAMP)" ] && [ "$$(cat "$(SETUP_STAMP)")" = "$$sum" ]; then \
		echo "setup: $(VENV) is up to date"; \
	else \
		echo "setup: installing requirements into $(VENV)"; \
		if "$(VENV_PYTHON)" -m pip show -q opencv-python-headless >/dev/null 2>&1; then \
			echo "setup: replacing opencv-python-headless by opencv-contrib-python-headless (same OpenCV, adds CSRT/KCF)"; \
			"$(VENV_PYTHON)" -m pip uninstall --disable-pip-version-check -y -q opencv-python-headless opencv-contrib-python-headless; \
		fi; \
		"$(VENV_PYTHON)" -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-test.txt; \
		"$(VENV_PYTHON)" -m pip install --disable-pip-version-check -q --no-deps -e .; \
		echo "$$sum" > "$(SETUP_STAMP)"; \
		echo "setup: done"; \
	fi

test: setup
	"$(VENV_PYTHON)" -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests

demo: setup
	"$(VENV_PYTHON)" tracking/demo.py --out "$(DEMO_DIR)"
