"""Grading for real through nbgrader: what each kind of submission scores, cell by cell."""

import csv
import html
import re

import nbformat
import pytest
from conftest import (
    ASSIGNMENTS,
    COURSE_GROUP,
    EDITED_TEST_CELL,
    ROOT,
    TEST_STUDENT_PREFIX,
    lines_of,
    secret_lines,
)
from nbconvert import HTMLExporter

from coursetools import corpus
from coursetools.course import EXAMPLE_STUDENT_PREFIX, nbgrader, notebook_path
from coursetools.examples import example_students, read_answers, submit
from coursetools.scores import format_table, score_table

pytestmark = COURSE_GROUP  # see conftest.py


def declared_failures(path):
    return {cell for answer in read_answers(path) for cell in answer.fails}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_autogrades_to_full_marks(course, assignment):
    """The reference solution and the hidden tests' reference agree."""
    assert course.failed_cells(assignment, TEST_STUDENT_PREFIX + "source") == set()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_example_gets_full_marks_and_untouched_example_zero(course, assignment):
    correct = course.test_cell_scores(assignment, EXAMPLE_STUDENT_PREFIX + "correct")
    assert all(score == most for score, most in correct.values()), correct
    untouched = course.test_cell_scores(assignment, EXAMPLE_STUDENT_PREFIX + "untouched")
    assert all(score == 0 for score, _ in untouched.values()), untouched


def mistake_cases():
    return [
        pytest.param(assignment, student, path, id=f"{assignment}-{student}")
        for assignment in ASSIGNMENTS
        for student, path in example_students(ROOT, assignment).items()
        if path is not None
    ]


@pytest.mark.parametrize(("assignment", "student", "path"), mistake_cases())
def test_example_mistakes_lose_exactly_the_points_of_their_cells(course, assignment, student, path):
    """Each bundled mistake fails the test cells that its answer file names, and no other."""
    assert course.failed_cells(assignment, student) == declared_failures(path)
    scores = course.test_cell_scores(assignment, student)
    lost = sum(most - score for score, most in scores.values())
    assert lost == sum(scores[cell][1] for cell in declared_failures(path))


CORPUS = corpus.read_corpus(ROOT)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_corpus_has_three_correct_and_four_wrong_answers_per_graded_function(assignment):
    source = nbformat.read(notebook_path(ROOT, "source", assignment), as_version=4)
    functions = corpus.grade_cells_by_answer(source)
    assert set(CORPUS.get(assignment, {})) == set(functions), "a corpus file for every answer cell"
    for function, entries in CORPUS[assignment].items():
        assert sum(e.correct for e in entries) >= 3, f"{function}: fewer than 3 correct answers"
        assert sum(not e.correct for e in entries) >= 4, f"{function}: fewer than 4 wrong answers"
        for entry in entries:
            names_only_its_cells = set(entry.answer.fails) <= set(functions[function])
            assert names_only_its_cells, f"{entry.label}: names cells of another function"


def corpus_cases():
    return [
        pytest.param(assignment, function, index, id=f"{function}-{index}-{entry.label}")
        for assignment, functions in CORPUS.items()
        for function, entries in functions.items()
        for index, entry in enumerate(entries)
    ]


@pytest.mark.parametrize(("assignment", "function", "index"), corpus_cases())
def test_corpus_answer_grades_as_declared(course, assignment, function, index):
    """A correct answer gets full marks on its function; a wrong one loses exactly the cells it names."""
    entry = [e for e in course.corpus_entries if (e.assignment, e.function) == (assignment, function)][index]
    if entry.correct:
        assert entry.lost == set(), f"a correct answer lost points in {sorted(entry.lost)}"
    else:
        assert entry.lost, "a wrong answer got full marks"
        assert entry.lost == set(entry.answer.fails)
        if entry.says:  # the message names the cause
            assert any(entry.says in message for message in entry.messages), entry.messages


def test_corpus_submissions_lose_points_only_where_their_answers_say(course):
    """No answer costs points in the cells of another function of the same submission."""
    by_student = {}
    for entry in course.corpus_entries:
        by_student.setdefault((entry.assignment, entry.student), set()).update(entry.answer.fails)
    for (assignment, student), declared in by_student.items():
        assert course.failed_cells(assignment, student) == declared, student


def test_mutation_score_is_complete(course):
    lines = corpus.score_lines(course.corpus_entries)
    assert lines[-1].split() == ["100", "%", "100", "%"], "\n".join(lines)
    assert corpus.problem_lines(course.corpus_entries) == []


def test_correct_answers_that_write_to_stderr_keep_full_marks(course):
    """The ConvergenceWarning of a correct answer really reached stderr, and cost nothing."""
    noisy = [e for e in course.corpus_entries if "ConvergenceWarning" in e.label]
    assert noisy, "the corpus should hold a correct answer that warns"
    for entry in noisy:
        assert entry.correct and entry.lost == set()
        notebook = course.autograded(entry.assignment, entry.student)
        streams = [
            output.text
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
            if output.output_type == "stream" and output.name == "stderr"
        ]
        assert any("ConvergenceWarning" in text for text in streams), "no ConvergenceWarning was printed"


def test_main_command_writes_feedback_for_every_example_student(course):
    for assignment in ASSIGNMENTS:
        for student in example_students(ROOT, assignment):
            page = course.root / "feedback" / student / assignment / f"{assignment}.html"
            assert page.is_file() and page.stat().st_size > 0, page


def test_score_table_and_grades_csv_agree_with_the_gradebook(course):
    """grades.csv and the printed table of the main command say what the gradebook holds."""
    table = score_table(course.db_url)
    table = table[table["student"].str.startswith(EXAMPLE_STUDENT_PREFIX)]  # test students came later
    with open(course.root / "grades.csv") as file:
        exported = {(row["student_id"], row["assignment"]): row for row in csv.DictReader(file)
                    if row["student_id"].startswith(EXAMPLE_STUDENT_PREFIX)}
    assert set(exported) == set(zip(table["student"], table["assignment"], strict=True))
    for row in table.itertuples():
        line = exported[(row.student, row.assignment)]
        assert float(line["score"]) == row.score and float(line["max_score"]) == row.max_score
        assert row.auto + row.manual == row.score
    assert format_table(table).strip() in course.demo_outputs[-1]


def test_rerunning_the_main_command_gives_the_same_result(course):
    first, second = course.demo_outputs
    table = lambda output: output[output.index("student"):]  # noqa: E731 (the score table at the end)
    assert table(first) == table(second)
    students = set(score_table(course.db_url)["student"])
    examples = {s for s in students if s.startswith(EXAMPLE_STUDENT_PREFIX)}
    assert examples == {s for a in ASSIGNMENTS for s in example_students(ROOT, a)}


def page_lines(html_page):
    """The lines of text a student reads on an HTML page (tags removed, entities decoded), stripped."""
    return {line.strip() for line in html.unescape(re.sub(r"<[^>]+>", "", html_page)).splitlines()}


def failure_messages(notebook):
    """'ExceptionName: message' of every failed test cell of an autograded notebook."""
    return [
        f"{output.ename}: {output.evalue}"
        for cell in notebook.cells
        if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_shows_failure_messages_and_no_hidden_test_source(course, assignment):
    hidden = secret_lines(nbformat.read(notebook_path(ROOT, "source", assignment), as_version=4),
                          regions=("HIDDEN TESTS",))
    for student in example_students(ROOT, assignment):
        page = course.root / "feedback" / student / assignment / f"{assignment}.html"
        lines = page_lines(page.read_text())
        submitted = notebook_path(course.root, "submitted", assignment, student)
        own = lines_of(nbformat.read(submitted, as_version=4))
        leaked = sorted(hidden & lines - own)  # a student's own answer may share a line with the reference
        assert not leaked, f"hidden test source in the feedback of {student}: {leaked[:3]}"
        messages = failure_messages(course.autograded(assignment, student))
        assert student.endswith("correct") or messages, f"{student} should have failed some tests"
        for message in messages:
            assert message.strip() in lines, f"feedback of {student} lacks the failure message {message!r}"


def test_hidden_source_check_finds_what_plain_nbgrader_feedback_shows(course):
    """The check above bites: rendering the autograded notebook as it is leaks hidden test lines."""
    assignment = ASSIGNMENTS[0]
    notebook = course.autograded(assignment, EXAMPLE_STUDENT_PREFIX + "mistakes")
    lines = page_lines(HTMLExporter().from_notebook_node(notebook)[0])
    hidden = secret_lines(nbformat.read(notebook_path(ROOT, "source", assignment), as_version=4),
                          regions=("HIDDEN TESTS",))
    assert hidden & lines


def test_plain_nbgrader_autograde_of_honest_submissions_prints_no_warning(course):
    """No SQLAlchemy warning, no "checksum has changed" for the hidden tests that nbgrader restores; a test
    cell that a student edited is reported once, in words."""
    log = course.autograde_log
    assert "SAWarning" not in log and "has changed" not in log, log
    warnings = [line for line in log.splitlines() if "WARNING" in line and "Removing existing" not in line]
    assignment, cell = EDITED_TEST_CELL
    student = TEST_STUDENT_PREFIX + "edited"
    said = f"{student}/{assignment}: the student edited cell {cell}: graded as the instructor wrote it"
    assert warnings == [f"[AutogradeApp | WARNING] {said}"], warnings
    assert course.failed_cells(assignment, TEST_STUDENT_PREFIX + "edited") == set()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_holds_no_ta_note_and_no_grader_path(course, assignment):
    for student in example_students(ROOT, assignment):
        page = (course.root / "feedback" / student / assignment / f"{assignment}.html").read_text()
        for leak in ("Needs a TA", "/dev/shm", "site-packages", str(course.root)):
            assert leak not in page, f"{student}: {leak!r} in the feedback"


def run_here(notebook):
    """Each test cell's failure message when the notebook runs in this process, as in a student's own
    Jupyter (`call` calls the student's functions directly), with the hidden inputs of the seed recorded
    in the graded notebook, and a failed hidden test's message as grading words it by default (brief):
    {grade id: message, or None}."""
    import contextlib
    import io
    import sys
    import warnings

    from coursetools import findings
    from coursetools.student import checks

    namespace, said = {"__name__": "__main__"}, {}
    saved = sys.modules.get("checks")
    sys.modules["checks"] = checks
    checks.seed = int(findings.seed(notebook))
    try:
        for cell in notebook.cells:
            if cell.cell_type != "code" or "skip-execution" in cell.metadata.get("tags", []):
                continue
            meta = cell.metadata.get("nbgrader", {})
            error = None
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    exec(compile(cell.source, "<cell>", "exec"), namespace)
                except Exception as failed:
                    error = failed
            if meta.get("grade") and not meta.get("solution"):
                message = None if error is None else str(error)
                if error is not None and "BEGIN HIDDEN TESTS" in cell.source:
                    message = getattr(error, "brief", message)  # how grading words a failed hidden test
                said[meta["grade_id"]] = message
    finally:
        sys.modules["checks"] = saved
        checks.seed = None
    return said


def graded_messages(notebook):
    said = {}
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            errors = [output["evalue"] for output in cell.outputs if output.get("output_type") == "error"]
            streams = [output["text"] for output in cell.outputs if output.get("output_type") == "stream"]
            partial = any(output.get("output_type") == "execute_result" for output in cell.outputs)
            # a test that earned partial credit says its first failing case on stdout
            said[meta["grade_id"]] = errors[0] if errors else streams[-1].strip() if partial else None
    return said


@pytest.mark.parametrize("assignment", ["linear_network", "logistic_network", "activations"])
def test_a_mistake_reads_the_same_in_a_students_own_jupyter_and_in_the_graded_notebook(course, assignment):
    """One definition of a call (checks.run and checks.failure_message, which the kernel's shim and the
    judge use too): every example and corpus submission's failure messages, run in this process as in a
    student's own Jupyter, are the graded notebook's, word for word."""
    compared = failed = 0
    for path in sorted((course.root / "autograded").glob(f"*/{assignment}/{assignment}.ipynb")):
        if not path.parts[-3].startswith((EXAMPLE_STUDENT_PREFIX, TEST_STUDENT_PREFIX + "corpus-")):
            continue
        notebook = nbformat.read(path, as_version=4)
        graded, here = graded_messages(notebook), run_here(notebook)
        assert here == graded, path.parts[-3]
        compared += 1
        failed += sum(message is not None for message in graded.values())
    assert compared >= 4 and failed >= 10, (compared, failed)


def test_the_floor_is_the_cpu_of_the_students_own_code(course):
    """Each graded notebook records the CPU that the student's own code used in the kernel: the hidden-layer
    notebook's set-up fits a network there, which is not the student's; a cell of the student's that
    keeps the CPU busy for a second is."""
    root = course.root
    release = nbformat.read(notebook_path(root, "release", "hidden_layers"), as_version=4)
    busy = "import time\nstarted = time.process_time()\nwhile time.process_time() - started < 1.0:\n    pass"
    release.cells.append(nbformat.v4.new_code_cell(busy))
    student = TEST_STUDENT_PREFIX + "busy"
    submit(root, "hidden_layers", student, release)
    nbgrader(root, "autograde", "hidden_layers", f"--student={student}", "--force")

    def floor(student):
        notebook = nbformat.read(notebook_path(root, "autograded", "hidden_layers", student), as_version=4)
        return notebook.metadata["grading"]["student_cpu_seconds"]

    assert floor("example-untouched") < 0.5
    assert 0.9 <= floor(student) < 2.5
