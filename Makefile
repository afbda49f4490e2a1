# The two set-up commands of the README. Each installs the Debian packages it needs when they are missing
# (as root; otherwise it stops with the one command to run), creates the local environment (.venv) when it
# is missing or older than pyproject.toml, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# $(call require,PACKAGE...): install missing Debian packages as root, or stop with the command to run
require = $(eval missing := $(shell PYTHON=$(PYTHON) sh scripts/require-system-packages $(1)))$(if \
	$(missing),$(error $(missing)))

.PHONY: demo test test-fast lint clean

demo: $(VENV)/installed  ## build the release, autograde the example submissions, feedback, report
	$(call require,bubblewrap)
	$(BIN)/course demo

test: $(VENV)/installed  ## every grader test (ruff included); the report in Chromium, a gradebook in PostgreSQL
	$(call require,bubblewrap chromium postgresql)
	$(BIN)/pytest

test-fast: $(VENV)/installed  ## the tests that grade nothing: a quick loop for development
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/installed
	$(BIN)/ruff check .

$(VENV)/installed: pyproject.toml
	$(call require,python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:  ## remove what grading made (not the gradebook: it may hold real grades)
	rm -rf submitted feedback grades.csv grades_detail.csv grading_flags.csv class_report* similarity_* autograded/*/
