"""Hidden tests as students meet them: a test of several cases gives partial credit, every student's hidden
inputs are their own (stable at a regrade, recorded with the grade, of no use to another student), and a
failed hidden test tells as much as the course chooses.

One small course of the `activations` assignment, graded by `course grade` and by `nbgrader autograde`."""

import csv
import hashlib
import json

import nbformat
import numpy as np
import pytest
from conftest import CLASSES_GROUP, course_command, new_course
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from coursetools import messages
from coursetools.course import gradebook_url, load_config, nbgrader, notebook_path
from coursetools.examples import Answer, fill_answers, submit
from coursetools.grading.judge import hidden_seed
from coursetools.student import wire

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "activations"
RELU = {
    "right": "def relu(x):\n    return np.maximum(0, x)",
    # right for numbers and 1-D float arrays; for 2-D and integer arrays an answer of the wrong shape: 2 of
    # the 4 cases of relu_hidden pass
    "half": (
        "def relu(x):\n"
        "    values = np.asarray(x)\n"
        "    if values.ndim == 2 or values.dtype.kind == 'i' and values.ndim == 1:\n"
        "        return np.zeros(3)\n"
        "    return np.maximum(0, x)"
    ),
    "wrong": "def relu(x):\n    return np.zeros(3)",  # no case passes
}
HALF = 1.0  # relu_hidden: 2 points, 2 of 4 cases
# tanh that is right only on the inputs whose digests it holds, else 0.5 everywhere
KEYED_TANH = """import hashlib

SEEN = {seen!r}


def tanh(x):
    values = np.asarray(x, dtype=float)
    key = hashlib.sha256(repr(values.shape).encode() + values.tobytes()).hexdigest()
    return np.tanh(x) if key in SEEN else np.full(np.shape(x), 0.5)"""
HALF_TANH = "def tanh(x):\n    return 0.5 * np.tanh(x)"  # wrong everywhere but at 0


def digest(value):
    values = np.asarray(value, dtype=float)
    return hashlib.sha256(repr(values.shape).encode() + values.tobytes()).hexdigest()


def hand_in(root, student, answers):
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    submit(root, ASSIGNMENT, student, fill_answers(solution, [Answer(name, code) for name, code in answers]))


def autograde(root, student, *options):
    nbgrader(root, "autograde", ASSIGNMENT, f"--student={student}", "--force", *options)


def cell_scores(root, student):
    with Gradebook(gradebook_url(root)) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return {grade.name: grade.score for notebook in submission.notebooks for grade in notebook.grades}


def outputs(root, student, cell):
    notebook = nbformat.read(notebook_path(root, "autograded", ASSIGNMENT, student), as_version=4)
    return next(c.outputs for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell)


def error_text(root, student, cell):
    return " ".join(o.evalue for o in outputs(root, student, cell) if o.output_type == "error")


def sent_calls(transcript, function):
    """The inputs of every call of `function` that the judge sent to the kernel, as the kernel got them."""
    calls = []
    for line in transcript.read_text().splitlines():
        if line.startswith('{"call"'):
            call = json.loads(line)["call"]
            if call["function"] == function:
                calls.append([wire.decode(arg) for arg in call["args"]])
    return calls


@pytest.fixture(scope="module")
def graded(course_template, tmp_path_factory):
    """Three students' relu (right, half right, wrong), graded by `course grade`; their cell scores, and
    the seeds recorded then."""
    root = new_course(course_template, tmp_path_factory.mktemp("hidden"), [], notebook_time_limit=300)
    for kind, code in RELU.items():
        hand_in(root, f"relu-{kind}", [("relu", code)])
    done = course_command(root, "grade", ASSIGNMENT, "--student", "relu-*", "--quiet")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scores = {kind: cell_scores(root, f"relu-{kind}") for kind in RELU}
    with Gradebook(gradebook_url(root)) as gradebook:
        seeds = messages.seeds(gradebook.db)
    return root, scores, seeds


def test_a_test_of_several_cases_gives_points_in_proportion_to_the_cases_that_pass(graded):
    root, scores, _ = graded
    assert [scores[kind]["relu_hidden"] for kind in RELU] == [2.0, HALF, 0.0]
    half = outputs(root, "relu-half", "relu_hidden")  # the message of the first failing case, and the points
    assert [o.output_type for o in half] == ["stream", "execute_result"]
    first = "2 of 4 cases fail; the first: relu on ndarray of shape (8, 4) returned shape (3,); expected " \
            "(8, 4)"
    assert half[0].text.strip() == first
    assert half[1].data["text/plain"] == f"{HALF:g}"
    assert error_text(root, "relu-wrong", "relu_hidden").startswith("4 of 4 cases fail; the first:")
    page = (root / "feedback" / "relu-half" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert f"{HALF} / 2.0" in page and first in page


def test_partial_scores_reach_formgrader_and_the_export_and_both_grading_paths_agree(graded):
    root, scores, _ = graded
    config = load_config(root)
    api = NbGraderAPI(CourseDirectory(config=config, root=str(root)), config=config)
    half = api.get_student_notebook_submissions("relu-half", ASSIGNMENT)[0]  # what formgrader lists
    assert round(half["score"] - sum(s for s in scores["half"].values() if s), 6) == 0
    nbgrader(root, "export", f"--to={root / 'partial.csv'}")
    with open(root / "partial.csv", newline="") as file:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(file)
                    if row["assignment"] == ASSIGNMENT}
    assert exported["relu-half"] == pytest.approx(half["score"])
    autograde(root, "relu-*")  # the other grading path, over the same gradebook
    for kind in RELU:
        assert cell_scores(root, f"relu-{kind}") == scores[kind], kind


def test_each_student_has_hidden_inputs_of_their_own_recorded_with_the_grade(graded, tmp_path):
    root, _, seeds = graded
    course_id = load_config(root).CourseDirectory.course_id
    for kind in RELU:
        student = f"relu-{kind}"
        assert seeds[(ASSIGNMENT, student, ASSIGNMENT)] == str(hidden_seed(course_id, ASSIGNMENT, student))
    assert len({seeds[(ASSIGNMENT, f"relu-{kind}", ASSIGNMENT)] for kind in RELU}) == len(RELU)
    sent = {}
    for student in ("relu-right", "relu-half", "relu-right"):  # the first one twice: a regrade
        transcript = tmp_path / f"{student}-{len(sent)}.txt"
        autograde(root, student, f"--JudgedExecute.transcript={transcript}")
        sent[transcript.stem] = {digest(args[0]) for args in sent_calls(transcript, "relu")}
    first, other, again = sent.values()
    assert first == again  # a regrade sends the same inputs
    assert first - other and other - first  # two students: some inputs differ...
    assert len(first & other) > 10  # ...the visible tests' and the fixed edge cases are shared
    with Gradebook(gradebook_url(root)) as gradebook:
        assert messages.seeds(gradebook.db) == seeds  # the regrade recorded the same seeds


def test_an_answer_keyed_on_another_students_inputs_gains_nothing(graded, tmp_path):
    """A tanh that answers right only the inputs that the judge sent to one student (all that student's
    feedback could show, and more): for that student it passes every test; for another, it fails the
    hidden test of seeded inputs as a plain wrong answer does."""
    root, *_ = graded
    transcript = tmp_path / "seen.txt"
    hand_in(root, "keyed-seen", [])
    autograde(root, "keyed-seen", f"--JudgedExecute.transcript={transcript}")
    seen = {digest(args[0]) for args in sent_calls(transcript, "tanh")}
    keyed = KEYED_TANH.format(seen=sorted(seen))
    for student in ("keyed-seen", "keyed-other"):
        hand_in(root, student, [("tanh", keyed)])
        autograde(root, student)
    assert cell_scores(root, "keyed-seen")["tanh_hidden"] == 1.0  # keyed right where it was made
    other = cell_scores(root, "keyed-other")
    assert other["tanh_hidden"] < 1.0, error_text(root, "keyed-other", "tanh_hidden")
    assert other["tanh_values"] == 1.0  # the same visible inputs for everyone: those it did know


@pytest.mark.parametrize("level", ["message", "full", "pass/fail"])
def test_a_failed_hidden_test_tells_what_the_course_chooses(graded, level):
    root, *_ = graded
    student = f"levels-{level.replace('/', '-')}"
    hand_in(root, student, [("tanh", HALF_TANH)])
    config = (root / "nbgrader_config.py").read_text()
    try:
        with open(root / "nbgrader_config.py", "a") as file:
            file.write(f"\nc.JudgedExecute.hidden_feedback = {{{ASSIGNMENT!r}: {level!r}}}\n")
        autograde(root, student)
    finally:
        (root / "nbgrader_config.py").write_text(config)
    visible, hidden = error_text(root, student, "tanh_values"), error_text(root, student, "tanh_hidden")
    assert "expected -0.7615941" in visible  # visible tests always show everything
    if level == "full":
        assert "(input -20): expected -1, got -0.5" in hidden, hidden
    elif level == "message":  # what was wrong and where, not the expected values of the student's inputs
        first = "4 of 4 cases fail; the first: tanh on ndarray of shape (161,) is wrong at 160 of 161"
        assert hidden.startswith(first), hidden
        assert "(input -20): got -0.5" in hidden and "expected" not in hidden, hidden
    else:
        assert hidden == "this hidden test failed (the course shows no detail of hidden tests)"
    assert cell_scores(root, student)["tanh_hidden"] == 0.0
