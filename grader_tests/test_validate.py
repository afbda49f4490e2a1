"""`nbgrader validate` from anywhere: the instructor's notebooks and a student's right answers pass, from the
course folder (in the sandbox, which must find the course's checks.py) and from the notebook's own folder,
with no warning; a notebook fails only for real mistakes."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENTS, CLASSES_GROUP, new_course

from coursetools.course import notebook_path
from coursetools.examples import Answer, fill_answers

pytestmark = CLASSES_GROUP  # see conftest.py

PASSED = "Success! Your notebook passes all the tests."


@pytest.fixture(scope="module")
def validated(course_template, tmp_path_factory):
    """A course, and in it every release notebook answered with the reference answers, as a student has
    it: answered/<assignment>/ (release files and all)."""
    root = new_course(course_template, tmp_path_factory.mktemp("validate"), [], notebook_time_limit=600)
    for assignment in ASSIGNMENTS:
        shutil.copytree(root / "release" / assignment, root / "answered" / assignment)
        solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
        answers = [Answer(cell.metadata["nbgrader"]["grade_id"], cell.source) for cell in solution.cells
                   if cell.metadata.get("nbgrader", {}).get("solution")]  # the written answers too
        path = notebook_path(root, "answered", assignment)
        nbformat.write(fill_answers(nbformat.read(path, as_version=4), answers), path)
    return root


def validate(cwd, *notebooks):
    command = [str(Path(sys.executable).parent / "nbgrader"), "validate", *map(str, notebooks)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def test_answered_release_notebooks_validate_without_warnings(validated):
    """What students validate: every release notebook with right answers, from the course folder."""
    printed = validate(validated, *(notebook_path(validated, "answered", a) for a in ASSIGNMENTS))
    assert printed.count(PASSED) == len(ASSIGNMENTS), printed
    assert "WARNING" not in printed and "Warning" not in printed, printed


@pytest.mark.parametrize(("kind", "where"), [
    ("source", "course folder"), ("source", "notebook folder"),
    ("solutions", "course folder"), ("answered", "notebook folder"),
])
def test_notebooks_validate_from_the_course_folder_and_their_own(validated, kind, where):
    notebook = notebook_path(validated, kind, "activations")
    printed = validate(validated if where == "course folder" else notebook.parent, notebook)
    assert PASSED in printed, printed
    assert "cannot be converted to a float" not in printed, printed


def test_validate_fails_only_for_real_mistakes(validated):
    """The untouched release fails for the answers it lacks, not for a test helper that went missing."""
    printed = validate(validated, notebook_path(validated, "release", "activations"))
    assert "VALIDATION FAILED" in printed and "NotImplementedError" in printed
    assert "NameError" not in printed, printed
