# The two set-up commands of the README. Each creates the local environment (.venv) when it is missing
# or older than pyproject.toml, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

demo: $(VENV)/installed  ## build the release, autograde the example submissions, feedback, grades.csv
	$(BIN)/course demo

test: $(VENV)/installed  ## the grader tests (ruff included)
	$(BIN)/pytest

lint: $(VENV)/installed
	$(BIN)/ruff check .

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:  ## remove what grading made (not the gradebook: it may hold real grades)
	rm -rf submitted feedback grades.csv autograded/*/
