"""docs/writing-tests.md, followed on a scratch course: the page's cells (its blocks marked `cell=...`) are
added to a copy of `activations` as the page says, its corpus block becomes the corpus file, the page's own
commands build, check and grade it, and a right and a wrong student answer get what the page says they get.

The cells, the corpus and the commands are read from the page, so the page and this test cannot drift."""

import ast
import copy
import html
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import CLASSES_GROUP, ROOT
from nbgrader.api import Gradebook

from coursetools import corpus
from coursetools.course import copy_course, grade_id, gradebook_url, notebook_path
from coursetools.examples import Answer, fill_answers
from coursetools.messages import failure_messages

pytestmark = CLASSES_GROUP  # see conftest.py

PAGE = ROOT / "docs" / "writing-tests.md"
ASSIGNMENT = "activations"
AFTER = "tanh_stable"  # the page puts the new cells after this test cell
FUNCTION = "leaky_relu"
# a fenced block at the start of a line: its language, its marks (cell=answer id=... points=...), its body
FENCE = re.compile(r"^```(?P<language>\w+)(?P<marks>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
STUDENTS = {  # student id -> the corpus answer they hand in (by its label)
    "asmith": "np.maximum, right for every slope below 1",
    "jdoe": "ignores the slope it is given",
}
BUILD = ".venv/bin/course build activations"
GRADE = ".venv/bin/course grade activations"
STUDENT_CHECK = "course check activations/activations.ipynb"


def page():
    return PAGE.read_text()


def marked_blocks(mark):
    """[(marks, language, body)] of the page's fenced blocks that carry `mark`, in page order."""
    blocks = []
    for match in FENCE.finditer(page()):
        marks = dict(word.split("=", 1) for word in match["marks"].split() if "=" in word)
        if mark in marks:
            blocks.append((marks, match["language"], match["body"].rstrip("\n")))
    return blocks


def page_metadata():
    """{cell kind: nbgrader metadata} of the page's examples of what the Create Assignment toolbar writes."""
    return {marks["metadata"]: json.loads(body) for marks, _, body in marked_blocks("metadata")}


def page_cells():
    """The new cells, as the page shows them: its text, answer and test cells, with their metadata."""
    templates, cells = page_metadata(), []
    for marks, language, body in marked_blocks("cell"):
        if marks["cell"] == "text":
            assert language == "markdown"
            cells.append(nbformat.v4.new_markdown_cell(body))
            continue
        metadata = copy.deepcopy(templates[marks["cell"]])
        metadata["nbgrader"]["grade_id"] = marks["id"]
        if "points" in marks:
            metadata["nbgrader"]["points"] = json.loads(marks["points"])
        cells.append(nbformat.v4.new_code_cell(body, metadata=metadata))
    return cells


def corpus_file():
    """(path, text) of the page's corpus block."""
    [(marks, _, body)] = marked_blocks("file")
    return marks["file"], body + "\n"


def documented(command, cwd):
    """Run a command that the page shows (.venv/bin/course ..., .venv/bin/nbgrader ..., course ...) in `cwd`,
    with this environment's programs: its exit code and what it printed."""
    assert command in page(), f"the page does not show {command!r}"
    program, *args = shlex.split(command)
    executable = Path(sys.executable).parent / Path(program).name
    done = subprocess.run([str(executable), *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def add_question(root):
    """The page's cells in the scratch course's source notebook, after the cell the page names."""
    path = notebook_path(root, "source", ASSIGNMENT)
    notebook = nbformat.read(path, as_version=4)
    index = [grade_id(cell) for cell in notebook.cells].index(AFTER) + 1
    notebook.cells[index:index] = page_cells()
    nbformat.write(notebook, path)
    name, text = corpus_file()
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def corpus_entries(root):
    name, _ = corpus_file()
    return corpus.read_entries(root / name, ASSIGNMENT)


def student_copy(root, folder, answer):
    """A student's copy of the release in `folder` (the notebook and checks.py, as downloaded), with the
    reference answers of the other functions and `answer` as leaky_relu; the notebook's path."""
    shutil.copytree(root / "release" / ASSIGNMENT, folder / ASSIGNMENT)
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    answers = [Answer(grade_id(cell), cell.source) for cell in solution.cells
               if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code"]
    answers = [a for a in answers if a.cell != FUNCTION] + [Answer(FUNCTION, answer)]
    path = folder / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(fill_answers(nbformat.read(path, as_version=4), answers), path)
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course of `activations` alone, with the page's question added and built as the page says."""
    root = tmp_path_factory.mktemp("writing-tests") / "course"
    copy_course(ROOT, root, parts=("nbgrader_config.py", f"source/{ASSIGNMENT}"))
    add_question(root)
    code, printed = documented(BUILD, root)
    assert code == 0, printed[-3000:]
    return root


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    """Each student checked a copy with `course check` in their own folder and handed it in where the page
    says; then the page's `course grade`. {student: (exit code of course check, what it printed)}."""
    answers = {entry.label: entry.answer.source for entry in corpus_entries(course)}
    checked = {}
    for student, label in STUDENTS.items():
        downloads = tmp_path_factory.mktemp(f"{student}-downloads")
        path = student_copy(course, downloads, answers[label])
        checked[student] = documented(STUDENT_CHECK, downloads)
        handed_in = notebook_path(course, "submitted", ASSIGNMENT, student)  # the notebook alone
        handed_in.parent.mkdir(parents=True)
        shutil.copy(path, handed_in)
    code, printed = documented(GRADE, course)
    assert code == 0, printed[-3000:]
    return checked


def question_scores(root, student):
    """{test cell of leaky_relu: (score, max score)} of a graded submission."""
    with Gradebook(gradebook_url(root)) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return {grade.name: (grade.score, grade.max_score) for notebook in submission.notebooks
                for grade in notebook.grades if grade.name.startswith(f"{FUNCTION}_")}


def page_text_of(line_start):
    """The page's text from a line that starts with `line_start` to the end of its paragraph, on one line."""
    paragraph = rf"^\s*{re.escape(line_start)}.*?(?=\n\s*\n|\n\s*```)"
    match = re.search(paragraph, page(), re.MULTILINE | re.DOTALL)
    assert match, f"the page has no line that starts with {line_start!r}"
    return " ".join(match[0].split())


def test_the_page_says_what_it_is_for_and_shows_a_whole_question():
    lines = page().splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2] and lines[3] == "", lines[:4]
    kinds = [(marks["cell"], marks.get("id")) for marks, _, _ in marked_blocks("cell")]
    assert kinds == [("text", None), ("answer", FUNCTION), ("tests", f"{FUNCTION}_values"),
                     ("tests", f"{FUNCTION}_hidden")]
    answer, visible, hidden = (cell.source for cell in page_cells()[1:])
    assert "### BEGIN SOLUTION" in answer and "### END SOLUTION" in answer
    assert "BEGIN HIDDEN TESTS" not in visible and "hint=" in visible
    assert hidden.startswith('"""') and "### BEGIN HIDDEN TESTS" in hidden and "inputs_rng(" in hidden
    last = ast.parse(hidden).body[-1]  # partial credit: a cases(...) call ends the cell
    assert isinstance(last, ast.Expr) and last.value.func.id == "cases", ast.dump(last)
    assert f"(the cell `{AFTER}`)" in page()
    assert corpus_file()[0] == f"grader_tests/corpus/{ASSIGNMENT}/{FUNCTION}.py"


def test_the_metadata_the_page_shows_is_that_of_the_notebooks_cells():
    source = nbformat.read(notebook_path(ROOT, "source", ASSIGNMENT), as_version=4)
    cells = {grade_id(cell): cell.metadata for cell in source.cells}
    shown = page_metadata()
    assert set(shown) == {"answer", "tests"}
    for metadata in shown.values():
        assert cells[metadata["nbgrader"]["grade_id"]]["nbgrader"] == metadata["nbgrader"]


@pytest.mark.slow
def test_the_reference_passes_its_tests_in_jupyter_and_in_course_check(course):
    code, printed = documented(".venv/bin/nbgrader validate source/activations/activations.ipynb", course)
    assert code == 0 and "Success! Your notebook passes all the tests." in printed, printed[-3000:]
    code, printed = documented(".venv/bin/course check solutions/activations/activations.ipynb", course)
    assert code == 0 and f"{FUNCTION}: 1 of 1 visible checks pass" in printed, printed


@pytest.mark.slow
def test_the_release_holds_the_tests_docstring_but_no_solution_or_hidden_line(course):
    release = nbformat.read(notebook_path(course, "release", ASSIGNMENT), as_version=4)
    cells = {grade_id(cell): cell.source for cell in release.cells}
    answer, _, hidden = (cell.source for cell in page_cells()[1:])
    signature = answer.split("### BEGIN SOLUTION")[0]
    assert cells[FUNCTION] == f"{signature}# YOUR CODE HERE\n    raise NotImplementedError()"
    assert cells[f"{FUNCTION}_hidden"].splitlines()[0] == hidden.splitlines()[0]  # the docstring stays
    assert "_reference_leaky_relu" not in json.dumps(release)


@pytest.mark.slow
def test_both_answers_pass_the_visible_tests_in_course_check(graded):
    """Passing the visible tests does not guarantee full marks: the wrong answer passes them too."""
    for student, (code, printed) in graded.items():
        assert code == 0, (student, printed)
        assert f"{FUNCTION}: 1 of 1 visible checks pass" in printed, (student, printed)


@pytest.mark.slow
def test_the_right_answer_gets_the_questions_full_points(course, graded):
    scores = question_scores(course, "asmith")
    assert scores == {f"{FUNCTION}_values": (1.0, 1.0), f"{FUNCTION}_hidden": (2.0, 2.0)}


@pytest.mark.slow
def test_the_wrong_answer_loses_the_hidden_points_and_is_told_what_was_wrong(course, graded):
    scores = question_scores(course, "jdoe")
    assert scores[f"{FUNCTION}_values"] == (1.0, 1.0)
    assert scores[f"{FUNCTION}_hidden"][0] < 2.0
    autograded = nbformat.read(notebook_path(course, "autograded", ASSIGNMENT, "jdoe"), as_version=4)
    message = failure_messages(autograded)[f"{FUNCTION}_hidden"]
    [says] = [e.says for e in corpus_entries(course) if e.label == STUDENTS["jdoe"]]
    assert says in message and "got" in message, message
    assert "expected" not in message, message  # the default level shows no expected value of hidden inputs
    # the page shows this student's message as it is
    assert page_text_of("2 of 4 cases fail; the first:") in " ".join(message.split()), message
    feedback = (course / "feedback" / "jdoe" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", feedback)).split())
    assert page_text_of("2 of 4 cases fail; the first:") in text
    assert "_reference_leaky_relu" not in feedback and "inputs_rng" not in feedback


@pytest.mark.slow
def test_the_mutation_score_grades_the_pages_corpus_as_declared(course):
    entries = corpus_entries(course)
    correct = sum(entry.correct for entry in entries)
    wrong = len(entries) - correct
    code, printed = documented(".venv/bin/course mutation-score", course)
    assert code == 0, printed[-3000:]
    row = next(line for line in printed.splitlines() if line.startswith(f"{ASSIGNMENT}.{FUNCTION} "))
    assert row.split()[1:] == [f"{correct}/{correct}", f"{wrong}/{wrong}"], row
    assert f"with {correct}/{correct} and {wrong}/{wrong}" in " ".join(page().split())
