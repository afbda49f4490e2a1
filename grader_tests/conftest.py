"""A throw-away copy of the course, graded once per test session with nbgrader's own commands.

The copy runs the main command (`course demo`) twice, as an instructor would, and then autogrades
the test students in one nbgrader run: the source notebook itself, the untouched release, and the
packed submissions of the answer corpus (grader_tests/corpus, see coursetools/corpus.py).
"""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursetools import corpus
from coursetools.course import assignments, copy_course, nbgrader, notebook_path
from coursetools.examples import submit

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)
ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = assignments(ROOT)
TEST_STUDENT_PREFIX = "test-"


@dataclass
class Course:
    root: Path
    demo_outputs: list  # stdout of each run of the main command
    corpus_entries: list  # every answer of the corpus, with the cells where it lost points

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


@pytest.fixture(scope="session")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    copy_course(ROOT, root)
    outputs = [run_main_command(root) for _ in range(2)]
    for assignment in ASSIGNMENTS:
        for kind in ("source", "release"):
            notebook = nbformat.read(notebook_path(root, kind, assignment), as_version=4)
            submit(root, assignment, TEST_STUDENT_PREFIX + kind, notebook)
    entries = corpus.submit_corpus(root, corpus.read_corpus(ROOT), prefix=TEST_STUDENT_PREFIX + "corpus-")
    nbgrader(root, "autograde", "*", f"--student={TEST_STUDENT_PREFIX}*", "--force")
    return Course(root, outputs, corpus.record_results(root, entries))


def run_main_command(root):
    """`course demo` in `root`, as the README's main command runs it; its standard output."""
    command = [str(Path(sys.executable).parent / "course"), "demo"]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"course demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def load_json(path):
    return json.loads(Path(path).read_text())


def lines_of(notebook):
    return {line.strip() for cell in notebook.cells for line in cell.source.splitlines()}


def secret_lines(notebook, regions=("SOLUTION", "HIDDEN TESTS")):
    """Lines of these regions that appear nowhere else in the notebook, other regions included."""
    inside, outside = set(), set()
    for cell in notebook.cells:
        for kind, body in REGION.findall(cell.source):
            (inside if kind in regions else outside).update(body.splitlines())
        outside.update(REGION.sub("", cell.source).splitlines())
    outside = {line.strip() for line in outside}
    inside = {line.strip() for line in inside}
    return {line for line in inside - outside if len(re.findall(r"\w", line)) >= 4}
