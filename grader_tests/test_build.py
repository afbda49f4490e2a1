"""`course build`: release/ and solutions/ are swapped in only when they built, so they never go missing and
a failed build leaves them and the gradebook as they were, with one line that says why; `course build
ASSIGNMENT --regrade` changes an assignment whose submissions were graded, grades them all again and keeps
the TAs' scores and comments on the cells that did not change."""

import csv
import json
import shutil
import threading
import time

import nbformat
import pytest
from conftest import CLASSES_GROUP, course_command, flags, new_course
from nbgrader.api import Gradebook

from coursetools.build import BACKUP_FOLDER, BUILD_FOLDER, cell_definitions, forget_submissions, hand_grading
from coursetools.course import assignments, gradebook_url, notebook_path, read_tree
from coursetools.examples import submit_examples

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "activations"
STUDENTS = ["example-correct", "example-mistakes", "example-untouched"]
NOTEBOOK_TIME_LIMIT = 120  # seconds; an activations notebook takes a few
# the TAs' grading of the written answers: (student, cell) -> (score, comment)
HAND_GRADED = {
    ("example-correct", "nonlinear_question"): (2.0, None),
    ("example-mistakes", "nonlinear_question"): (1.5, "the second part is missing"),
    ("example-mistakes", "relu_question"): (1.0, "right"),
}


def nbgrader_metadata(name, points=None, solution=False):
    grade = points is not None
    metadata = {"grade": grade, "grade_id": name, "locked": not solution, "schema_version": 3,
                "solution": solution, "task": False}
    return {"nbgrader": {**metadata, "points": points} if grade else metadata}


def written_answer(name, points):
    return nbformat.v4.new_markdown_cell("A model answer: it keeps positive values as they are.",
                                         metadata=nbgrader_metadata(name, points, solution=True))


def edit_source(root, change):
    """Change the source notebook of the assignment with change(cells, index of a grade id)."""
    path = notebook_path(root, "source", ASSIGNMENT)
    notebook = nbformat.read(path, as_version=4)
    index = {cell.metadata.get("nbgrader", {}).get("grade_id"): i for i, cell in enumerate(notebook.cells)}
    change(notebook.cells, index)
    nbformat.write(notebook, path)


def gradebook_state(root):
    """The assignment's cells in the gradebook, and every grade and comment of its submissions."""
    with Gradebook(gradebook_url(root)) as gradebook:
        grades = {(s.student.id, g.name): (g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                  for s in gradebook.find_assignment(ASSIGNMENT).submissions
                  for nb in s.notebooks for g in nb.grades}
        comments = {(s.student.id, c.name): (c.auto_comment, c.manual_comment)
                    for s in gradebook.find_assignment(ASSIGNMENT).submissions
                    for nb in s.notebooks for c in nb.comments}
        return cell_definitions(gradebook, ASSIGNMENT), grades, comments


def built_files(root):
    return {kind: read_tree(root / kind)[0] for kind in ("release", "solutions")}


@pytest.fixture(scope="module")
def graded(course_template, tmp_path_factory):
    """A course whose activations (with a second written answer, relu_question) was handed in by the three
    example students, graded, and graded by hand by TAs."""
    root = new_course(course_template, tmp_path_factory.mktemp("build") / "course", [], NOTEBOOK_TIME_LIMIT)
    edit_source(root, lambda cells, index: cells.insert(index["plot"], written_answer("relu_question", 1)))
    built = course_command(root, "build", ASSIGNMENT)
    assert built.returncode == 0, built.stdout + built.stderr
    submit_examples(root, ASSIGNMENT)
    done = course_command(root, "grade", ASSIGNMENT, "--student", "example-*", "--workers", "2", "--quiet")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with Gradebook(gradebook_url(root)) as gradebook:
        for (student, cell), (score, comment) in HAND_GRADED.items():
            grade = gradebook.find_grade(cell, ASSIGNMENT, ASSIGNMENT, student)
            grade.manual_score, grade.needs_manual_grade = score, False
            gradebook.find_comment(cell, ASSIGNMENT, ASSIGNMENT, student).manual_comment = comment
        gradebook.db.commit()
    return root


@pytest.fixture
def course(graded, tmp_path):
    return shutil.copytree(graded, tmp_path / "course", symlinks=True)


def add_question(cells, index):
    """A new question: an answer cell and its test cell, after the tanh tests."""
    answer = nbformat.v4.new_code_cell(
        'def leaky_relu(x):\n    """x for x > 0, else 0.01 x."""\n    ### BEGIN SOLUTION\n'
        "    return np.where(np.asarray(x) > 0, x, 0.01 * np.asarray(x))\n    ### END SOLUTION",
        metadata=nbgrader_metadata("leaky_relu", solution=True))
    test = nbformat.v4.new_code_cell(
        '"""leaky_relu keeps positive values and scales negative ones by 0.01"""\n'
        'expect_close("leaky_relu(np.array([-2.0, 3.0]))", call(leaky_relu, np.array([-2.0, 3.0])), '
        "[-0.02, 3.0])", metadata=nbgrader_metadata("leaky_relu_values", 1))
    cells[index["plot"]:index["plot"]] = [answer, test]


def test_a_build_that_nbgrader_refuses_keeps_release_solutions_and_gradebook(course):
    before, state = built_files(course), gradebook_state(course)
    edit_source(course, add_question)

    done = course_command(course, "build")

    assert done.returncode != 0
    printed = done.stdout + done.stderr
    assert "Traceback" not in printed
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{ASSIGNMENT}: nbgrader cannot change the cells of an assignment with graded "
                           "submissions (Cannot add or remove cells"), last
    assert last.endswith(f"run `course build {ASSIGNMENT} --regrade`"), last
    assert built_files(course) == before  # every assignment's release and solutions, byte for byte
    assert gradebook_state(course) == state
    assert not (course / BUILD_FOLDER).exists()


def test_a_cell_that_nbgrader_cannot_clear_changes_nothing(course):
    """nbgrader records a notebook's cells before it clears its hidden tests: the build stops first."""
    before, state = built_files(course), gradebook_state(course)

    def break_hidden_tests(cells, index):
        cell = cells[index["relu_hidden"]]
        cell.source = cell.source.replace("### END HIDDEN TESTS", "")
        cell.metadata["nbgrader"]["points"] = 5  # a change nbgrader would record

    edit_source(course, break_hidden_tests)

    done = course_command(course, "build", ASSIGNMENT)

    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"{ASSIGNMENT}: nbgrader generate_assignment failed: No end hidden tests statement found")
    assert built_files(course) == before
    assert gradebook_state(course) == state


def test_a_build_of_a_graded_course_never_takes_the_release_away_and_keeps_the_grades(course):
    before, state = built_files(course), gradebook_state(course)
    watched = [notebook_path(course, kind, name) for kind in ("release", "solutions")
               for name in assignments(course)]
    missing, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            missing.update(path for path in watched if not path.exists())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        done = course_command(course, "build")
    finally:
        stop.set()
        watcher.join()

    assert done.returncode == 0, done.stdout + done.stderr
    assert not missing, f"missing while building: {sorted(str(p.relative_to(course)) for p in missing)}"
    assert built_files(course) == before
    assert gradebook_state(course) == state


def test_regrade_changes_a_graded_assignment_and_keeps_the_hand_grading_of_unchanged_cells(course):
    def change(cells, index):  # from the end of the notebook up: an insertion moves the cells after it
        cells[index["relu_question"]].metadata["nbgrader"]["points"] = 2  # graded by hand on 1 point
        add_question(cells, index)
        # more hidden tests (and points) in a test cell, and a new cell of hidden tests
        hidden = cells[index["relu_hidden"]]
        hidden.source = hidden.source.replace(
            "### END HIDDEN TESTS",
            'expect_close("relu(-5)", call(relu, -5.0), 0.0, rtol=0, atol=0)\n### END HIDDEN TESTS')
        hidden.metadata["nbgrader"]["points"] = 3
        cells.insert(index["relu_properties"], nbformat.v4.new_code_cell(
            '"""relu on more arrays"""\n### BEGIN HIDDEN TESTS\n'
            'expect_close("relu(np.array([-3.0, 3.0]))", call(relu, np.array([-3.0, 3.0])), [0.0, 3.0])\n'
            "### END HIDDEN TESTS", metadata=nbgrader_metadata("relu_more_hidden", 1)))

    edit_source(course, change)

    done = course_command(course, "build", ASSIGNMENT, "--regrade")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "regrade: 3 submissions graded again, 2 hand-graded scores kept, 1 to grade again by hand" in (
        done.stdout), done.stdout
    added = f"{ASSIGNMENT}: new graded cells relu_more_hidden, leaky_relu_values: new test cells were put"
    assert added in done.stdout, done.stdout
    definitions, grades, comments = gradebook_state(course)
    assert {"leaky_relu", "leaky_relu_values", "relu_more_hidden"} <= {cell for _, cell in definitions}
    assert definitions[(ASSIGNMENT, "relu_hidden")]["max_score"] == 3
    graded_cells = {cell for (_, cell), d in definitions.items() if d["max_score"] is not None}
    for student in STUDENTS:
        assert {cell for (who, cell) in grades if who == student} == graded_cells
    # the changed test cell ran with its new hidden tests, and the new one was put back into every notebook
    assert grades[("example-correct", "relu_hidden")][0] == 3
    assert grades[("example-correct", "relu_more_hidden")][0] == 1
    assert grades[("example-untouched", "relu_more_hidden")][0] == 0
    assert grades[("example-correct", "leaky_relu_values")][0] == 0  # a question added after the hand-in
    assert grades[("example-untouched", "relu_hidden")][0] == 0
    # hand grading of the unchanged written answer is back; that of the changed one is not, and says so
    for (student, cell), (score, comment) in HAND_GRADED.items():
        if cell == "nonlinear_question":
            assert grades[(student, cell)][1:] == (score, None, False)
            assert comments[(student, cell)][1] == comment
    assert grades[("example-mistakes", "relu_question")][1:] == (None, None, True)
    assert comments[("example-mistakes", "relu_question")][1] is None
    with Gradebook(gradebook_url(course)) as gradebook:
        assert gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "example-mistakes").flagged
        submissions = gradebook.find_assignment(ASSIGNMENT).submissions
        scores = {s.student.id: (s.score, s.max_score) for s in submissions}
    with open(course / "grades.csv") as file:  # exported once the TAs' scores were back
        exported = {row["student_id"]: (float(row["score"]), float(row["max_score"]))
                    for row in csv.DictReader(file) if row["assignment"] == ASSIGNMENT}
    assert exported == scores
    assert ("written answer relu_question changed since it was graded by hand (was 1/1 and a comment): "
            "grade it again") in flags(course)[("example-mistakes", ASSIGNMENT)]
    # the new release and solutions, and the backup of what the TAs had graded
    for kind in ("release", "solutions"):
        notebook = nbformat.read(notebook_path(course, kind, ASSIGNMENT), as_version=4)
        assert "leaky_relu" in {cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells}
    (backup,) = (course / BACKUP_FOLDER).glob(f"{ASSIGNMENT}-*.json")
    saved = json.loads(backup.read_text())
    assert saved["restored"] and {s["student"] for s in saved["submissions"]} == set(STUDENTS)
    assert {(s["student"], c["cell"]): (c["manual_score"], c["manual_comment"])
            for s in saved["submissions"] for c in s["cells"]} == HAND_GRADED


def test_a_regrade_that_stopped_is_finished_by_running_it_again(course):
    """A regrade that stopped once the submissions had left the gradebook: the next one takes the TAs'
    grading from the backup."""
    forget_submissions(course, hand_grading(course, [ASSIGNMENT]))
    with Gradebook(gradebook_url(course)) as gradebook:
        assert not gradebook.find_assignment(ASSIGNMENT).submissions

    done = course_command(course, "build", ASSIGNMENT, "--regrade")

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "regrade: 3 submissions graded again, 3 hand-graded scores kept, 0 to grade again by hand" in (
        done.stdout), done.stdout
    _, grades, comments = gradebook_state(course)
    for (student, cell), (score, comment) in HAND_GRADED.items():
        assert grades[(student, cell)][1] == score
        assert comments[(student, cell)][1] == comment
    assert all(json.loads(path.read_text())["restored"] for path in (course / BACKUP_FOLDER).glob("*.json"))
