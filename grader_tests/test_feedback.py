"""What a student's feedback page says about each graded cell: a test named by its docstring's first line,
a written answer that no TA has graded yet pending (not 0), then the TA's score once given, and partial
scores as nbgrader holds them, on pages written by `course grade` and by plain `nbgrader generate_feedback`.
"""

import ast
import html
import re
import shutil

import bs4
import nbconvert.exporters.html
import nbformat
import pytest
from conftest import ASSIGNMENTS, COURSE_GROUP, ROOT, TEST_STUDENT_PREFIX
from nbgrader.api import Gradebook
from nbgrader.converters import GenerateFeedback

from coursetools.course import EXAMPLE_STUDENT_PREFIX, gradebook_url, nbgrader, notebook_path
from coursetools.examples import example_students
from coursetools.grading import feedback
from coursetools.grading.feedback import FeedbackForStudents, docstring_line, graded_cell_name

pytestmark = COURSE_GROUP  # see conftest.py

SUMMARY_ENTRY = re.compile(r'<li><a href="#([^"]+)">(.*?)</a> — (.*?)</li>')
CELL_HEADING = re.compile(r'<a name="([^"]+)"></a><div class="panel-heading">'
                          r'<span class="nbgrader-label">(.*?)</span>'
                          r'\s*<span class="pull-right">(.*?) <a href="#top">')
WRITTEN = "nonlinear_question"  # the written answer of activations, 2 points


def source_cells(assignment):
    notebook = nbformat.read(notebook_path(ROOT, "source", assignment), as_version=4)
    return [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")]


def expected_names(assignment):
    """{grade id: name} of the source notebook's test cells, read here from the instructor's source (hidden
    tests included) with nothing but ast."""
    names = {}
    for cell in source_cells(assignment):
        if cell.cell_type == "code" and not cell.metadata.nbgrader.get("solution"):
            names[cell.metadata.nbgrader.grade_id] = ast.get_docstring(ast.parse(cell.source)).splitlines()[0]
    return names


def read_page(root, student, assignment):
    return (root / "feedback" / student / assignment / f"{assignment}.html").read_text()


def summary(page):
    """{grade id: (name, score)} of the summary at the top of a feedback page, as the student reads them."""
    top = page[page.index('<div id="toc">'):page.index("</ol>")]
    return {cell: (html.unescape(name), html.unescape(score))
            for cell, name, score in SUMMARY_ENTRY.findall(top)}


def headings(page):
    """{grade id: (name, score)} of the graded cells' headings."""
    return {cell: (html.unescape(name), " ".join(html.unescape(score).split()))
            for cell, name, score in CELL_HEADING.findall(page)}


def notebook_line(page):
    """The notebook's name and score, above the summary."""
    line = re.search(r"<h4>(.*?)</h4>", page, re.S)[1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", line)).split())


def assert_tests_named(page, assignment):
    names = expected_names(assignment)
    assert "Test cell" not in page and "Grade cell" not in page
    listed, shown = summary(page), headings(page)
    assert {cell: name for cell, (name, _) in listed.items() if cell in names} == names
    assert {cell: name for cell, (name, _) in shown.items() if cell in names} == names
    for cell in names:
        assert re.fullmatch(r"Score: \d+\.\d{1,2} / \d+\.\d{1,2}", listed[cell][1]), listed[cell]
        assert shown[cell][1] == listed[cell][1]


# --- the names, without grading


def test_a_test_is_named_by_its_docstrings_first_line_even_with_its_hidden_tests_removed():
    source = ('"""relu keeps positive values\n\n    and more words"""\nexpect_close("relu(1)", 1)\n'
              "### BEGIN HIDDEN TESTS\nassert relu(-1) == 0\n### END HIDDEN TESTS")
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"grade": True, "grade_id": "relu_values",
                                                                    "points": 1}})
    FeedbackForStudents().preprocess_cell(cell, {}, 0)
    assert "relu(-1)" not in cell.source
    assert cell.metadata.nbgrader["test_name"] == "relu keeps positive values"
    assert cell.metadata.nbgrader["pending"] is False


@pytest.mark.parametrize(("source", "name"), [
    ('"""sigmoid is 0.5 at 0"""\n%time assert sigmoid(0) == 0.5', "sigmoid is 0.5 at 0"),  # a magic
    ("# a comment first\n'''single quotes'''", "single quotes"),
    ("assert relu(1) == 1", ""),  # no docstring
    ('"""broken"""\nassert (', ""),  # not Python: the grade id instead
    ('x = """not a docstring"""', ""),
])
def test_docstring_line(source, name):
    assert docstring_line(source) == name


def test_a_cell_without_docstring_and_a_written_answer_get_their_grade_id():
    test = nbformat.v4.new_code_cell("assert f(1) == 2",
                                     metadata={"nbgrader": {"grade": True, "grade_id": "t1"}})
    written = nbformat.v4.new_markdown_cell("why", metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "why_question"}})
    code = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "free"}})
    assert graded_cell_name(test) == "t1"
    assert graded_cell_name(written) == "Written answer (why_question)"
    assert graded_cell_name(code) == "Coding free-response (free)"


def test_images_carry_alt_text_without_a_second_pass_over_the_page(monkeypatch):
    """nbconvert's HTMLExporter parses each page again (BeautifulSoup) to add the alt text of images; the
    feedback template writes it itself, and keeps the alt text a notebook gives."""
    def parsed_again(*args, **kwargs):
        raise AssertionError("the feedback page was parsed again")

    monkeypatch.setattr(bs4, "BeautifulSoup", parsed_again)
    monkeypatch.setattr(nbconvert.exporters.html, "BeautifulSoup", parsed_again)
    monkeypatch.setattr(nbconvert.exporters.HTMLExporter, "from_notebook_node", parsed_again)
    image = "iVBORw0KGgo="
    plots = nbformat.v4.new_code_cell("plot()", outputs=[
        nbformat.v4.new_output("display_data", {"image/png": image}),
        nbformat.v4.new_output("display_data", {"image/png": image},
                               metadata={"image/png": {"alt": "a curve"}}),
        nbformat.v4.new_output("display_data", {"image/jpeg": image}),
        nbformat.v4.new_output("display_data", {"image/svg+xml": "<svg></svg>"}),
    ])
    resources = {"nbgrader": {"notebook": "plots", "score": 0, "max_score": 0, "late_penalty": 0}}
    # configured as nbgrader's generate_feedback configures it
    exporter = feedback.FeedbackExporter(config=GenerateFeedback().config)
    page, _ = exporter.from_notebook_node(nbformat.v4.new_notebook(cells=[plots]), resources)
    images = re.findall(r"<img\b[^>]*>", page)
    assert len(images) == 4
    assert [re.search(r'alt="([^"]*)"', image)[1] for image in images] == [
        "No description has been provided for this image", "a curve",
        "No description has been provided for this image", "No description has been provided for this image"]


# --- pages written by `course grade` (the main command graded the example students)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_course_grade_feedback_names_every_test_by_its_docstring(course, assignment):
    for student in example_students(ROOT, assignment):
        assert_tests_named(read_page(course.root, student, assignment), assignment)


def test_course_grade_feedback_shows_an_ungraded_written_answer_as_pending(course):
    assignment = "activations"
    page = read_page(course.root, EXAMPLE_STUDENT_PREFIX + "correct", assignment)
    assert summary(page)[WRITTEN] == (f"Written answer ({WRITTEN})", "pending (2 points, graded by a TA)")
    assert headings(page)[WRITTEN] == (f"Written answer ({WRITTEN})", "pending (2 points, graded by a TA)")
    scores = course.test_cell_scores(assignment, EXAMPLE_STUDENT_PREFIX + "correct").values()
    assert scores and all(score == most for score, most in scores)
    tests = sum(score for score, _ in scores)
    assert notebook_line(page) == (f"{assignment} (Score: {tests:.1f} / {tests + 2:.1f} so far, "
                                   "2 points pending a TA)")
    assert "0.0 / 2.0" not in page
    # an answer left as released scores 0 without a TA: nothing pending
    untouched = read_page(course.root, EXAMPLE_STUDENT_PREFIX + "untouched", assignment)
    assert summary(untouched)[WRITTEN][1] == "Score: 0.0 / 2.0"
    assert "pending" not in notebook_line(untouched)


def test_the_mistaken_examples_feedback_names_tests_keeps_hints_and_shows_pending_points(course):
    """What the bundled mistaken student reads: tests by name, the instructor's hint of a test whose call
    warned before its check could run, the type of a changed argument, pending points, and for a failed
    hidden test what was wrong without the expected value."""
    student = EXAMPLE_STUDENT_PREFIX + "mistakes"
    page = read_page(course.root, student, "activations")
    assert_tests_named(page, "activations")
    text = html.unescape(page)
    assert ("tanh warned RuntimeWarning: overflow encountered in exp. e^1000 overflows to inf and inf/inf is "
            "nan: use np.tanh") in text
    assert "relu (argument 1) changed its input, a numpy array; work on a copy instead" in text
    assert "frame.copy()" not in text
    assert summary(page)[WRITTEN][1] == "pending (2 points, graded by a TA)"
    models = html.unescape(read_page(course.root, student, "hidden_layers"))
    failed = 'compare_models(...)["logistic"] on other moons is wrong at 1 of 1 positions; first at'
    assert f"{failed} position 0: got 0.8" in models
    hidden = models[models.index(failed):][:200]
    assert "expected" not in hidden, hidden


# --- pages written by plain `nbgrader generate_feedback`, in a copy of the graded course


@pytest.fixture
def feedback_course(course, tmp_path):
    """The gradebook and one autograded submission of the graded course (test-source, activations: the
    reference notebook, graded by plain `nbgrader autograde`), copied: the test changes its scores."""
    student, assignment = TEST_STUDENT_PREFIX + "source", "activations"
    shutil.copy(course.root / "nbgrader_config.py", tmp_path)
    shutil.copy(course.root / "gradebook.db", tmp_path)
    shutil.copytree(course.root / "source" / assignment, tmp_path / "source" / assignment)
    shutil.copytree(course.root / "autograded" / student / assignment,
                    tmp_path / "autograded" / student / assignment)
    assert gradebook_url(tmp_path).endswith(str(tmp_path / "gradebook.db"))
    return tmp_path, student, assignment


def generate_feedback(root, student, assignment):
    nbgrader(root, "generate_feedback", assignment, f"--student={student}", "--force")
    return read_page(root, student, assignment)


def notebook_score(root, student, assignment):
    with Gradebook(gradebook_url(root)) as gradebook:
        notebook = gradebook.find_submission_notebook(assignment, assignment, student)
        return notebook.score, notebook.max_score


def test_nbgrader_feedback_shows_pending_then_the_tas_score_and_partial_scores(feedback_course):
    root, student, assignment = feedback_course
    page = generate_feedback(root, student, assignment)
    assert_tests_named(page, assignment)
    assert summary(page)[WRITTEN][1] == "pending (2 points, graded by a TA)"
    assert headings(page)[WRITTEN][1] == "pending (2 points, graded by a TA)"
    score, most = notebook_score(root, student, assignment)
    assert (score, most) == (12, 14)  # the reference passes every test; the written answer waits
    assert notebook_line(page) == f"{assignment} (Score: 12.0 / 14.0 so far, 2 points pending a TA)"

    # a TA grades the answer; a test earns part of its points
    with Gradebook(gradebook_url(root)) as gradebook:
        written = gradebook.find_grade(WRITTEN, assignment, assignment, student)
        assert written.auto_score is None and written.manual_score is None and written.needs_manual_grade
        written.manual_score, written.needs_manual_grade = 1.5, False
        partial = gradebook.find_grade("relu_hidden", assignment, assignment, student)
        assert partial.max_score == 2
        partial.auto_score = 7 / 6
        gradebook.db.commit()
    page = generate_feedback(root, student, assignment)
    assert_tests_named(page, assignment)
    assert summary(page)[WRITTEN] == (f"Written answer ({WRITTEN})", "Score: 1.5 / 2.0")
    assert headings(page)[WRITTEN][1] == "Score: 1.5 / 2.0"
    assert summary(page)["relu_hidden"][1] == headings(page)["relu_hidden"][1] == "Score: 1.17 / 2.0"
    assert notebook_score(root, student, assignment) == (pytest.approx(12 - 2 + 7 / 6 + 1.5), 14)
    assert notebook_line(page) == f"{assignment} (Score: 12.67 / 14.0)"
    assert "pending" not in page
