"""The gradebook in a real PostgreSQL server (grader_tests/postgres.py), as several TAs would share it:
nbgrader's commands and this package's read and write the database at CourseDirectory.db_url and nothing
else, and `course grade` leaves there what a serial `nbgrader autograde` leaves."""

import csv

import pytest
from conftest import CLASSES_GROUP, course_command, grades, new_course
from nbgrader.api import Gradebook
from postgres import postgres_server

from coursetools import messages
from coursetools.course import gradebook_url, nbgrader

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "linear_network"
STUDENTS = ["example-correct", "example-mistakes"]


@pytest.fixture(scope="module")
def on_postgres(course_template, tmp_path_factory):
    """Two copies of a course, each with its gradebook in a database of one PostgreSQL server: one graded
    by `course grade` with two workers, one by a plain, serial `nbgrader autograde`. Each copy keeps the
    SQLite gradebook.db of the template, which nothing may touch."""
    with postgres_server() as new_database:
        roots = {}
        for way in ("parallel", "serial"):
            root = new_course(course_template, tmp_path_factory.mktemp(way), [ASSIGNMENT], 300,
                              examples=[student.removeprefix("example-") for student in STUDENTS])
            with open(root / "nbgrader_config.py", "a") as config:
                config.write(f"c.CourseDirectory.db_url = {new_database(way)!r}\n")
            nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
            roots[way] = root
        sqlite = {way: (root / "gradebook.db").read_bytes() for way, root in roots.items()}
        run = course_command(roots["parallel"], "grade", ASSIGNMENT, "--student", "*", "--workers", "2",
                             "--quiet")
        nbgrader(roots["serial"], "autograde", ASSIGNMENT, "--force")
        yield roots["parallel"], roots["serial"], run, sqlite


def test_course_grade_on_postgresql_leaves_what_serial_nbgrader_leaves(on_postgres):
    parallel, serial, run, _ = on_postgres
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"graded {len(STUDENTS)} submissions" in run.stdout
    assert gradebook_url(parallel).startswith("postgresql+psycopg://")
    ours, theirs = grades(parallel, STUDENTS, [ASSIGNMENT]), grades(serial, STUDENTS, [ASSIGNMENT])
    assert ours == theirs
    scores = [value[0] for (student, _, cell), value in ours.items()
              if student == "example-mistakes" and cell != "flagged"]
    assert 0 in scores and any(scores)  # some points lost, some earned


def test_every_command_reads_and_writes_the_database_at_db_url(on_postgres, tmp_path):
    parallel, serial, _, sqlite = on_postgres
    for way, root in (("parallel", parallel), ("serial", serial)):
        assert (root / "gradebook.db").read_bytes() == sqlite[way], f"{way}: the SQLite gradebook changed"
    listed = nbgrader(parallel, "db", "student", "list", capture=True)
    assert all(student in listed for student in STUDENTS), listed
    scores = course_command(parallel, "scores")
    assert scores.returncode == 0 and all(student in scores.stdout for student in STUDENTS), scores.stdout
    (parallel / "class_report.csv").unlink()
    report = course_command(parallel, "report")
    assert report.returncode == 0, report.stdout + report.stderr
    with open(parallel / "class_report.csv") as file:
        questions = list(csv.DictReader(file))
    assert {row["submissions"] for row in questions} == {str(len(STUDENTS))}
    assert any(row["most_common_failures"] for row in questions)  # recorded in PostgreSQL at grading
    nbgrader(parallel, "export", f"--to={tmp_path / 'grades.csv'}")
    assert (tmp_path / "grades.csv").read_bytes() == (parallel / "grades.csv").read_bytes()
    with Gradebook(gradebook_url(serial)) as gradebook:
        failed, _ = messages.read(gradebook.db)
    assert set(failed["student"]) == {"example-mistakes"}  # recorded by nbgrader autograde, too
