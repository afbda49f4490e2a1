"""Throw-away copies of the course, graded for real, and what the tests share.

`course`: a copy that runs the main command (`course demo`) twice, as an instructor would, then grades the
test students: the source notebook itself and a solution whose visible test was edited, with a plain
`nbgrader autograde` (whose log is kept), and the packed submissions of the answer corpus
(grader_tests/corpus, see coursetools/corpus.py) with `course grade`.

`new_course(template, root, ...)`: a course with its release built and the example students handed in,
copied from `course_template` (built once per session), for the batch and attack tests.

Tests that grade are marked `slow` (by the fixtures they use): `pytest -m "not slow"` runs the others. The
two kinds of grading tests form two groups that pytest-xdist runs side by side.
"""

import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from coursetools import corpus
from coursetools.course import assignments, copy_course, grade_id, gradebook_url, nbgrader, notebook_path
from coursetools.examples import submit, submit_examples

REGION = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.DOTALL)
ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = assignments(ROOT)
TEST_STUDENT_PREFIX = "test-"
CORPUS_SEEDS = 20  # the seeds of hidden inputs under which every answer of the corpus must grade as declared
EDITED_TEST_CELL = ("linear_network", "add_bias_columns")  # test-edited changes this visible test
GRADING_FIXTURES = {"course", "course_template", "graded", "attacked", "plain", "validated"}


def pytest_collection_modifyitems(items):
    for item in items:
        if GRADING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# pytest-xdist runs each group of tests in one worker process (a session fixture is made once per worker):
# the tests of the main command's course, and those of the courses made by new_course, side by side
COURSE_GROUP = pytest.mark.xdist_group("course")
CLASSES_GROUP = pytest.mark.xdist_group("classes")


@dataclass
class Course:
    root: Path
    demo_outputs: list  # stdout of each run of the main command
    corpus_entries: list  # every answer of the corpus, with the cells where it lost points
    autograde_log: str  # what a plain `nbgrader autograde` of honest submissions printed

    @property
    def db_url(self):
        return gradebook_url(self.root)

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
    for assignment in ASSIGNMENTS:  # (the untouched release is the example student example-untouched)
        notebook = nbformat.read(notebook_path(root, "source", assignment), as_version=4)
        submit(root, assignment, TEST_STUDENT_PREFIX + "source", notebook)
    assignment, cell = EDITED_TEST_CELL
    submit(root, assignment, TEST_STUDENT_PREFIX + "edited", edited_test(root, assignment, cell))
    log = nbgrader(root, "autograde", "*", f"--student={TEST_STUDENT_PREFIX}*", "--force", quiet=False,
                   capture=True)
    prefix = TEST_STUDENT_PREFIX + "corpus-"
    entries = corpus.submit_corpus(root, corpus.read_corpus(ROOT), prefix=prefix)
    # every test that draws hidden inputs from the student's seed judges each answer under 20 seeds
    config = (root / "nbgrader_config.py").read_text()
    (root / "nbgrader_config.py").write_text(f"{config}\nc.JudgedExecute.other_seeds = {CORPUS_SEEDS - 1}\n")
    graded = course_command(root, "grade", "--student", f"{prefix}*", "--workers", "2", "--quiet")
    (root / "nbgrader_config.py").write_text(config)
    assert graded.returncode == 0, f"corpus flagged:\n{graded.stdout[-3000:]}\n{graded.stderr[-3000:]}"
    return Course(root, outputs, corpus.record_results(root, entries), log)


def edited_test(root, assignment, cell_id):
    """The reference solution, with one of its visible test cells changed as a student might."""
    notebook = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == cell_id:
            cell.source += "\nprint('my own check')"
    return notebook


def run_main_command(root):
    """`course demo` in `root`, as the README's main command runs it; its standard output."""
    done = course_command(root, "demo")
    assert done.returncode == 0, f"course demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def course_command(root, *args):
    command = [str(Path(sys.executable).parent / "course"), *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def course_template(tmp_path_factory):
    """A course with release/ and solutions/ built by nbgrader, as in the repository: every assignment's
    checks.py a link to one shared file."""
    root = tmp_path_factory.mktemp("template")
    copy_course(ROOT, root)
    shared = root / "shared_checks.py"
    shutil.copy(root / "source" / ASSIGNMENTS[0] / "checks.py", shared)
    for checks in (root / "source").glob("*/checks.py"):
        checks.unlink()
        checks.symlink_to(os.path.relpath(shared, checks.parent))
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")
    return root


def new_course(template, root, assignments, notebook_time_limit, cell_time_limit=None, own_users=False,
               examples=None):
    """A course in `root`, copied from `template`, with the example students' submissions of `assignments`
    handed in (those of `examples`, e.g. ["correct"], or all).

    own_users: its kernels run under a range of user ids of their own (else the default range), so that
    a test can tell its kernels' processes from those of any other course graded on the machine.
    """
    shutil.copytree(template, root, symlinks=True, dirs_exist_ok=True)
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.GradingKernelManager.notebook_timeout = {notebook_time_limit}\n")
        if cell_time_limit:
            config.write(f"c.Execute.timeout = {cell_time_limit}\n")
        if own_users:
            config.write(f"c.GradingKernelManager.first_uid = {private_uids().start}\n")
    for assignment in assignments:
        submit_examples(root, assignment, examples)
    return root


def private_uids(_chosen=[]):  # noqa: B006 (chosen once per test session)
    """A range of 64 user ids for this test session's own kernels, away from the default range."""
    if not _chosen:
        start = 1_750_000_000 + 64 * random.SystemRandom().randrange(500_000)
        _chosen.append(range(start, start + 64))
    return _chosen[0]


def grades(root, students, assignments):
    """{(student, assignment, cell): (auto score, needs manual grade, comment)} from a gradebook."""
    rows = {}
    with Gradebook(gradebook_url(root)) as gradebook:
        for assignment in assignments:
            for student in students:
                submission = gradebook.find_submission(assignment, student)
                for notebook in submission.notebooks:
                    comments = {c.name: c.auto_comment for c in notebook.comments}
                    for grade in notebook.grades:
                        rows[(student, assignment, grade.name)] = (
                            grade.auto_score, grade.needs_manual_grade, comments.get(grade.name))
                    rows[(student, assignment, "flagged")] = notebook.flagged
    return rows


def automatic_scores(root, student, assignment="linear_network"):
    """{test cell: automatic score, "flagged": flagged} of one submission."""
    rows = grades(root, [student], [assignment])
    return {cell: value if cell == "flagged" else value[0] for (_, _, cell), value in rows.items()
            if cell == "flagged" or value[0] is not None}


def flags(root):
    """{(student, assignment): reason} of grading_flags.csv."""
    with open(root / "grading_flags.csv") as file:
        return {(r["student"], r["assignment"]): r["reason"] for r in csv.DictReader(file)}


def with_answer_prefix(solution, cell_id, code):
    """The notebook `solution` with `code` put before the answer of the cell `cell_id`."""
    notebook = nbformat.from_dict(json.loads(json.dumps(solution)))
    for cell in notebook.cells:
        if grade_id(cell) == cell_id:
            cell.source = f"{code}\n{cell.source}"
    return notebook


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
