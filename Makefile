# The two set-up commands of the README. Each installs the Debian packages it needs when they are missing
# (as root; otherwise it stops with the one command to run), creates the local environment (.venv) from the
# lock file when it is missing or older than the lock or pyproject.toml, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The lock files (docs/environment.md): exact versions with their hashes, made from pyproject.toml by
# `make lock`. Graders' (runtime and test extra) builds .venv; students' (runtime) is its subset.
LOCK := requirements-test.lock
STUDENT_LOCK := requirements.lock
# uv, which makes them, in an environment of its own (a fixed version, so that the files read the same)
UV_VERSION := 0.13.9
LOCK_TOOLS := .venv-lock
UV := $(LOCK_TOOLS)/bin/uv
# one resolution from PyPI for every platform and every Python from requires-python's 3.10 on
UV_COMPILE = $(UV) pip compile --quiet --universal --python-version 3.10 --generate-hashes \
	--custom-compile-command "make lock"

# $(call require,PACKAGE...): install missing Debian packages as root, or stop with the command to run
require = $(eval missing := $(shell PYTHON=$(PYTHON) sh scripts/require-system-packages $(1)))$(if \
	$(missing),$(error $(missing)))

ifeq ($(filter lock,$(MAKECMDGOALS)),)
ifneq ($(shell [ pyproject.toml -nt $(LOCK) ] && echo newer),)
$(warning pyproject.toml is newer than $(LOCK): if its dependencies changed, run make lock)
endif
endif

.PHONY: demo test test-fast lint lock clean

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

$(VENV)/installed: $(LOCK) pyproject.toml
	$(call require,python3-venv)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

lock: $(UV)  ## remake both lock files from pyproject.toml; pins it still allows stay (UPGRADE=1: newest ones)
	$(UV_COMPILE) $(if $(UPGRADE),--upgrade) pyproject.toml --extra test -o $(LOCK)
	$(UV_COMPILE) pyproject.toml -c $(LOCK) -o $(STUDENT_LOCK)
	touch $(LOCK) $(STUDENT_LOCK)

$(UV):
	$(call require,python3-venv)
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

clean:  ## remove what grading made (not the gradebook: it may hold real grades)
	rm -rf submitted feedback grades.csv grades_detail.csv grading_flags.csv class_report* similarity_* autograded/*/
