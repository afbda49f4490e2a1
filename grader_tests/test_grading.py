"""Grading for real through nbgrader: what each kind of submission scores, cell by cell."""

import csv

import pytest
from conftest import ASSIGNMENTS, ROOT, TEST_STUDENT_PREFIX, answer_files

from coursetools.course import EXAMPLE_STUDENT_PREFIX
from coursetools.examples import example_students, read_answers
from coursetools.scores import format_table, score_table


def declared_failures(path):
    return {cell for answer in read_answers(path) for cell in answer.fails}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_autogrades_to_full_marks(course, assignment):
    """The reference solution and the hidden tests' reference agree."""
    assert course.failed_cells(assignment, TEST_STUDENT_PREFIX + "source") == set()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_autogrades_to_zero(course, assignment):
    scores = course.test_cell_scores(assignment, TEST_STUDENT_PREFIX + "release")
    assert scores and all(score == 0 for score, _ in scores.values()), scores


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_correct_example_gets_full_marks_and_untouched_example_zero(course, assignment):
    correct = course.test_cell_scores(assignment, EXAMPLE_STUDENT_PREFIX + "correct")
    assert all(score == most for score, most in correct.values()), correct
    untouched = course.test_cell_scores(assignment, EXAMPLE_STUDENT_PREFIX + "untouched")
    assert all(score == 0 for score, _ in untouched.values()), untouched


def answer_cases():
    return [
        pytest.param(assignment, student, path, id=f"{assignment}-{student}")
        for assignment in ASSIGNMENTS
        for files in (example_students(ROOT, assignment), answer_files(assignment))
        for student, path in files.items()
        if path is not None
    ]


@pytest.mark.parametrize(("assignment", "student", "path"), answer_cases())
def test_answers_lose_exactly_the_points_of_their_cells(course, assignment, student, path):
    """Each answer file fails the test cells that it declares, and no other."""
    assert course.failed_cells(assignment, student) == declared_failures(path)
    scores = course.test_cell_scores(assignment, student)
    lost = sum(most - score for score, most in scores.values())
    assert lost == sum(scores[cell][1] for cell in declared_failures(path))


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS if (f"{TEST_STUDENT_PREFIX}noisy-correct"
                                                                      in answer_files(a))])
def test_noisy_correct_answers_did_write_to_stderr(course, assignment):
    """The full marks of the noisy answers mean something: their notebook really wrote to stderr."""
    notebook = course.autograded(assignment, TEST_STUDENT_PREFIX + "noisy-correct")
    streams = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
               if o.output_type == "stream" and o.name == "stderr"]
    assert any("ConvergenceWarning" in o.text for o in streams), "no ConvergenceWarning was printed"


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
        exported = {(row["student_id"], row["assignment"]): row for row in csv.DictReader(file)}
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
