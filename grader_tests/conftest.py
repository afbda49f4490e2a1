"""A throw-away copy of the course, graded once per test session with nbgrader's own commands.

The copy runs the main command (`course demo`) twice, as an instructor would, and then autogrades
the test students: the source notebook itself, the untouched release, and the reference solution with
the answer cells of each file grader_tests/answers/<student>/<assignment>.py, all in one nbgrader run.
"""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursetools.course import assignments, nbgrader, notebook_path
from coursetools.examples import fill_answers, read_answers, submit

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = Path(__file__).resolve().parent / "answers"
ASSIGNMENTS = assignments(ROOT)
TEST_STUDENT_PREFIX = "test-"


@dataclass
class Course:
    root: Path
    demo_outputs: list  # stdout of each run of the main command

    @property
    def db_url(self):
        return f"sqlite:///{self.root / 'gradebook.db'}"

    def test_cell_scores(self, assignment, student):
        """{test cell: (score, max score)} of one autograded submission (written answers left out)."""
        with Gradebook(self.db_url) as gradebook:
            submission = gradebook.find_submission(assignment, student)
            return {
                grade.name: (grade.score, grade.max_score)
                for notebook in submission.notebooks
                for grade in notebook.grades
                if grade.cell.cell_type == "code"
            }

    def failed_cells(self, assignment, student):
        scores = self.test_cell_scores(assignment, student)
        return {cell for cell, (score, most) in scores.items() if score < most}

    def autograded(self, assignment, student):
        return nbformat.read(notebook_path(self.root, "autograded", assignment, student), as_version=4)


def answer_files(assignment):
    """{test student id: answer file} for one assignment."""
    return {
        TEST_STUDENT_PREFIX + path.parent.name: path for path in sorted(ANSWERS.glob(f"*/{assignment}.py"))
    }


def copy_course(target):
    for name in ("nbgrader_config.py", "source", "examples"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)  # symlinks (checks.py) become real files
        else:
            shutil.copy(source, target / name)


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    copy_course(root)
    command = [str(Path(sys.executable).parent / "course"), "demo"]
    outputs = [
        subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout for _ in range(2)
    ]
    for assignment in ASSIGNMENTS:
        source = nbformat.read(notebook_path(root, "source", assignment), as_version=4)
        release = nbformat.read(notebook_path(root, "release", assignment), as_version=4)
        solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
        submit(root, assignment, TEST_STUDENT_PREFIX + "source", source)
        submit(root, assignment, TEST_STUDENT_PREFIX + "release", release)
        for student, path in answer_files(assignment).items():
            submit(root, assignment, student, fill_answers(solution, read_answers(path)))
    nbgrader(root, "autograde", "*", f"--student={TEST_STUDENT_PREFIX}*", "--force")
    return Course(root, outputs)


def load_json(path):
    return json.loads(Path(path).read_text())
