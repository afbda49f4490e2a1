"""`course check`, a student's self-check: the visible tests of a notebook, one line per question, from any
folder; and `nbgrader validate` from the course folder of a student's copy wherever it lies, which gets the
course's checks.py and no other handed-in code file."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import CLASSES_GROUP, ROOT, new_course
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from coursetools.check import questions_of
from coursetools.course import grade_id, notebook_path
from coursetools.examples import Answer, fill_answers, read_answers

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "activations"  # the quickest to run
MISSING_CHECKS = "checks.py must sit next to this notebook: download it with the notebook"
PASSED = "Success! Your notebook passes all the tests."
LEFT_OUT = "code files kept out of the grading kernel (not the instructor's): checks.py"


@pytest.fixture(scope="module")
def copies(course_template, tmp_path_factory):
    """A course, and in it a student's copies of the release (checks.py beside each) under
    submitted/<student>/activations/: "right" with the reference answers, "wrong" with the example
    mistakes too; and "alone", the right one in a folder outside the course without its checks.py."""
    root = new_course(course_template, tmp_path_factory.mktemp("check"), [], notebook_time_limit=600)
    release = root / "release" / ASSIGNMENT
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    reference = [Answer(grade_id(cell), cell.source) for cell in solution.cells
                 if cell.metadata.get("nbgrader", {}).get("solution")]
    right = fill_answers(nbformat.read(release / f"{ASSIGNMENT}.ipynb", as_version=4), reference)
    wrong = fill_answers(right, read_answers(ROOT / "examples" / "mistakes" / f"{ASSIGNMENT}.py"))
    paths = {}
    for student, notebook in (("right", right), ("wrong", wrong)):
        paths[student] = notebook_path(root, "submitted", ASSIGNMENT, student)
        shutil.copytree(release, paths[student].parent)
        nbformat.write(notebook, paths[student])
    paths["alone"] = tmp_path_factory.mktemp("downloads") / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    paths["alone"].parent.mkdir()
    nbformat.write(right, paths["alone"])
    return root, paths


def course_check(cwd, *notebooks, timeout=None):
    """`course check NOTEBOOK...` run in `cwd`: its exit code and what it printed."""
    options = ["--timeout", str(timeout)] if timeout else []
    command = [str(Path(sys.executable).parent / "course"), "check", *options, *map(str, notebooks)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def validate(cwd, notebook):
    command = [str(Path(sys.executable).parent / "nbgrader"), "validate", str(notebook)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def lines_of(printed):
    return [line.strip() for line in printed.splitlines()]


@pytest.mark.parametrize("where", ["course folder", "notebook folder", "unrelated folder"])
def test_course_check_passes_right_answers_and_names_the_first_failing_test(copies, where, tmp_path):
    root, paths = copies
    for student, code in (("right", 0), ("wrong", 1)):
        notebook = paths[student]
        cwd = {"course folder": root, "notebook folder": notebook.parent, "unrelated folder": tmp_path}[where]
        relative = notebook.relative_to(cwd) if cwd in notebook.parents else notebook
        returned, printed = course_check(cwd, relative)
        assert returned == code, printed
        lines = lines_of(printed)
        # the release's hidden-only test cells are no visible checks: relu's 2 and tanh's 4
        total = "5 of 5" if student == "right" else "4 of 5"
        assert f"{relative}: {total} visible checks pass (6 hidden checks run when it is graded)" in lines
        assert "tanh: 2 of 2 visible checks pass" in lines, printed
        assert "nonlinear_question: a written answer, graded by a TA" in lines, printed
        relu = next(line for line in lines if line.startswith("relu: "))
        if student == "right":
            assert relu == "relu: 3 of 3 visible checks pass", printed
        else:  # the mistake changes relu's input in place: its test says so, in the checks' words
            assert relu.startswith("relu: 2 of 3 visible checks pass; relu_input_unchanged: relu "), printed
            assert "changed its input" in relu, printed
        assert "NameError" not in printed and "Traceback" not in printed, printed


def test_course_check_says_that_checks_py_is_missing(copies, tmp_path):
    _, paths = copies
    returned, printed = course_check(tmp_path, paths["alone"])
    assert returned == 1, printed
    assert lines_of(printed) == [f"{paths['alone']}: cannot run its checks: cell setup raised "
                                 f"ModuleNotFoundError: {MISSING_CHECKS}"], printed


def test_course_check_counts_errors_timeouts_and_partial_scores(tmp_path):
    """Any kernel the notebook names; a test that runs too long, shows a partial score or writes to
    stderr fails; an answer cell that raises is named; a notebook that cannot be read, or holds no
    questions, fails."""

    def nbgrader(cell_id, **flags):
        return {"nbgrader": {"grade_id": cell_id, "schema_version": 3, "grade": False, "solution": False,
                             "locked": False, **flags}}

    def test(cell_id, source):
        return new_code_cell(source, metadata=nbgrader(cell_id, grade=True, points=2, locked=True))

    notebook = new_notebook(metadata={"kernelspec": {"name": "not-installed-here", "display_name": "x"}},
                            cells=[
        new_code_cell("import sys, time", metadata=nbgrader("setup", locked=True)),
        new_code_cell("def slow(:", metadata=nbgrader("broken", solution=True)),
        test("broken_runs", "1 + 1"),
        new_code_cell("def slow():\n    time.sleep(60)", metadata=nbgrader("slow", solution=True)),
        test("slow_fast", "slow()"),
        test("slow_partial", "1.5"),
        new_code_cell("def fine():\n    return 1", metadata=nbgrader("fine", solution=True)),
        test("fine_full", "2"),
        test("fine_hidden", '"""only hidden tests"""\npass'),
        test("fine_stderr", "print('careful', file=sys.stderr)"),
    ])
    nbformat.write(notebook, tmp_path / "made.ipynb")
    (tmp_path / "bad.ipynb").write_text("{not json")
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), tmp_path / "other.ipynb")
    returned, printed = course_check(tmp_path, "made.ipynb", "bad.ipynb", "other.ipynb", timeout=2)
    assert returned == 1, printed
    lines = lines_of(printed)
    assert len(lines) == 6, printed
    assert lines[0] == "made.ipynb: 2 of 5 visible checks pass (1 hidden check runs when it is graded)"
    assert lines[1].startswith("broken: 1 of 1 visible checks pass; your answer cell raised SyntaxError: ")
    assert lines[2] == ("slow: 0 of 2 visible checks pass; slow_fast: TimeoutError: the cell ran longer "
                        "than 2 s")
    assert lines[3] == "fine: 1 of 2 visible checks pass; fine_stderr: printed to stderr: careful"
    assert lines[4].startswith("bad.ipynb: cannot be read: "), printed
    assert lines[5] == "other.ipynb: holds no questions of the course (no cells with nbgrader's metadata)"


def test_a_partial_score_is_no_pass():
    """What `course check` makes of executed cells: nbgrader's verdict, and less than full is no pass."""

    def test(cell_id, output):
        meta = {"nbgrader": {"grade_id": cell_id, "grade": True, "solution": False, "points": 2}}
        return new_code_cell("check()", metadata=meta, outputs=[output])

    answer = new_code_cell("", metadata={"nbgrader": {"grade_id": "f", "solution": True, "grade": False}})
    written = new_markdown_cell("", metadata={"nbgrader": {"grade_id": "why", "solution": True, "grade": True,
                                                          "points": 1}})
    cells = [answer,
             test("full", new_output("execute_result", {"text/plain": "2"}, execution_count=1)),
             test("partial", new_output("execute_result", {"text/plain": "1.5"}, execution_count=2)),
             test("failed", new_output("error", ename="CheckFailed", evalue="f(2) is 3, expected 4\nmore",
                                       traceback=[])),
             written]
    questions, broken = questions_of(cells)
    assert broken == []
    assert [question.line() for question in questions] == [
        "f: 1 of 3 visible checks pass; partial: scored 1.5 of 2 points",
        "why: a written answer, graded by a TA",
    ]
    assert questions[0].problems[1] == "failed: f(2) is 3, expected 4"


def test_validate_passes_a_students_copy_with_the_courses_checks_py_wherever_it_lies(copies, tmp_path):
    root, paths = copies
    printed = validate(root, paths["right"])  # submitted/right/activations/, checks.py beside it
    assert PASSED in printed and "WARNING" not in printed, printed
    elsewhere = tmp_path / ASSIGNMENT
    shutil.copytree(paths["right"].parent, elsewhere)
    printed = validate(root, elsewhere / f"{ASSIGNMENT}.ipynb")
    assert PASSED in printed and "WARNING" not in printed, printed


def test_validate_leaves_out_a_changed_checks_py(copies):
    """A checks.py that is not the course's never reaches the grading kernel, in the course or not: the
    notebook then fails for the helpers it lacks (nbgrader validate shows the test cells' NameErrors)."""
    root, paths = copies
    student = notebook_path(root, "submitted", ASSIGNMENT, "changed")
    shutil.copytree(paths["right"].parent, student.parent)
    with open(student.parent / "checks.py", "a") as checks:
        checks.write("\ndef expect_close(*args, **kwargs):  # every value is right\n    pass\n")
    printed = validate(root, student)
    assert LEFT_OUT in printed, printed
    assert "VALIDATION FAILED" in printed and PASSED not in printed, printed
