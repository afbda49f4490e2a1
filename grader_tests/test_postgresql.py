"""The gradebook in a real PostgreSQL server (grader_tests/postgres.py), as several TAs would share it:
nbgrader's commands and this package's read and write the database at CourseDirectory.db_url and nothing
else, and `course grade` leaves there what a serial `nbgrader autograde` leaves."""

import csv
import zipfile

import pytest
from conftest import CLASSES_GROUP, course_command, grades, new_course
from nbgrader.api import Gradebook
from postgres import postgres_server

from coursetools import collect, lms, messages
from coursetools.course import gradebook_url, nbgrader, notebook_path

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


def test_the_roster_and_collected_submissions_live_in_the_database_at_db_url(on_postgres, tmp_path):
    parallel, _, _, sqlite = on_postgres
    (tmp_path / "roster.csv").write_text('Student,ID,SIS User ID,SIS Login ID,Section\n'
                                         '"Doe, Jane",1001,S1001,jdoe,A\n"Roe, Rick",1002,S1002,rroe,B\n')
    (tmp_path / "bad.csv").write_text('Student,ID,SIS User ID,SIS Login ID,Section\n"Poe, Al",1003,,apoe,A\n'
                                      '"Bad, Row",x,,bad,A\n')
    assert course_command(parallel, "roster", "import", str(tmp_path / "bad.csv")).returncode == 1
    assert course_command(parallel, "roster", "import", str(tmp_path / "roster.csv")).returncode == 0
    with zipfile.ZipFile(tmp_path / "download.zip", "w") as download:
        download.writestr(f"doejane_1001_501_{ASSIGNMENT}-1.ipynb",
                          notebook_path(parallel, "release", ASSIGNMENT).read_bytes())
    assert course_command(parallel, "collect", ASSIGNMENT, str(tmp_path / "download.zip")).returncode == 0
    assert notebook_path(parallel, "submitted", ASSIGNMENT, "jdoe").exists()
    assert (parallel / "gradebook.db").read_bytes() == sqlite["parallel"]
    with Gradebook(gradebook_url(parallel)) as gradebook:
        assert {"jdoe", "rroe"} <= {s.id for s in gradebook.students}
        assert "apoe" not in {s.id for s in gradebook.students}  # the bad file imported nothing
    assert lms.lms_ids(parallel)["rroe"][("canvas", "user_id")] == "1002"
    assert collect.late_marks(parallel, ASSIGNMENT) == {"jdoe": False}
