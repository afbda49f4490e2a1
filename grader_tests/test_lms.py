"""A term beside an LMS: the roster, hand-in from Canvas's and Moodle's "download all submissions" zips,
grades back in the CSV each gradebook imports. The zips are built here as the LMSs name their files; a
class of 30 goes the whole way (roster, collect, grade, export) in one slow test."""

import contextlib
import csv
import io
import json
import os
import shutil
import zipfile
from datetime import datetime, timezone
from types import SimpleNamespace

import nbformat
import pytest
from conftest import CLASSES_GROUP, ROOT, course_command, nbgrader, new_course
from nbgrader.api import Gradebook
from sqlalchemy import select

from coursetools import cli, collect, lms
from coursetools.course import gradebook_url, notebook_path, put_environment_on_path
from coursetools.examples import fill_answers, read_answers, submit_examples

RELEASE = notebook_path(ROOT, "release", "activations").read_bytes()
SOLUTION = notebook_path(ROOT, "solutions", "activations").read_bytes()

CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section
    Points Possible,,,,
"Doe, Jane",1001,S1001,jdoe,Section A
"García-López, María",1002,S1002,mgarcia,Section A
"Müller, Jürgen",1003,S1003,jmuller,Section B
"Student, Test",9999,,,
"""
MOODLE_WORKSHEET = """\ufeffIdentifier,Full name,Email address,ID number,Status,Grade,Maximum Grade
Participant 70001,Jane Doe,jane@uni.example,jdoe,Submitted for grading,,14.00
Participant 70002,Ana Lúcia Pérez-Gómez,ana@uni.example,aperez,Submitted for grading,,14.00
"""
MOODLE_PARTICIPANTS = """First name,Last name,ID number,Email address,Roles,Groups,Last access to course
Zoë,Van der Berg,zvdberg,zoe@uni.example,Student,No groups,Never
"""


def scratch_course(tmp_path):
    """A course folder with the committed release: enough to collect and to import rosters (no grading)."""
    put_environment_on_path()  # a new gradebook is made with alembic, from this Python's bin folder
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", root)
    for name in ("source", "release"):
        shutil.copytree(ROOT / name, root / name)  # links (checks.py) become files
    return root


def course(root, *args):
    """`course ARGS...` run in this process (a new process costs seconds of imports): its exit code, standard
    output and error."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    here = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main(list(args))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
        if isinstance(stop.code, str):
            err.write(stop.code + "\n")
    finally:
        os.chdir(here)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def write_zip(path, files):
    """A zip as an LMS's download makes it: {entry name: (bytes, (y, m, d, H, M, S))}."""
    with zipfile.ZipFile(path, "w") as download:
        for name, (data, when) in files.items():
            download.writestr(zipfile.ZipInfo(name, when), data)
    return path


def student_zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        for name, data in files.items():
            inner.writestr(name, data)
    return buffer.getvalue()


NOV_1 = (2026, 11, 1, 10, 0, 0)
NOV_3 = (2026, 11, 3, 10, 0, 0)


def flags(root):
    with open(root / "grading_flags.csv") as file:
        return list(csv.DictReader(file))


def test_roster_import_reads_what_canvas_and_moodle_export(tmp_path):
    root = scratch_course(tmp_path)
    (tmp_path / "canvas.csv").write_text(CANVAS_ROSTER)
    (tmp_path / "worksheet.csv").write_text(MOODLE_WORKSHEET)
    (tmp_path / "participants.csv").write_text(MOODLE_PARTICIPANTS)
    for name, expected in (("canvas.csv", "3 students of a canvas roster recorded (3 new)"),
                           ("worksheet.csv", "2 students of a moodle worksheet roster recorded (1 new)"),
                           ("participants.csv", "1 students of a moodle roster recorded (1 new)"),
                           ("canvas.csv", "3 students of a canvas roster recorded (0 new)")):
        run = course(root, "roster", "import", str(tmp_path / name))
        assert run.returncode == 0, run.stderr
        assert expected in run.stdout
    with Gradebook(gradebook_url(root)) as gradebook:
        students = {s.id: (s.first_name, s.last_name, s.email) for s in gradebook.students}
    # the Points Possible row and Canvas's test student are no students; Jane is one student in both LMSs
    assert students == {"jdoe": ("Jane", "Doe", "jane@uni.example"),
                        "mgarcia": ("María", "García-López", None), "jmuller": ("Jürgen", "Müller", None),
                        "aperez": ("Ana", "Lúcia Pérez-Gómez", "ana@uni.example"),
                        "zvdberg": ("Zoë", "Van der Berg", "zoe@uni.example")}
    ids = lms.lms_ids(root)
    assert ids["jdoe"] == {("canvas", "user_id"): "1001", ("canvas", "sis_user_id"): "S1001",
                           ("canvas", "sis_login_id"): "jdoe", ("canvas", "section"): "Section A",
                           ("moodle", "participant_id"): "70001", ("moodle", "id_number"): "jdoe"}
    assert ids["zvdberg"] == {("moodle", "id_number"): "zvdberg"}


def test_a_roster_with_bad_rows_imports_nothing_and_names_every_bad_line(tmp_path):
    root = scratch_course(tmp_path)
    bad = CANVAS_ROSTER.replace('"Müller, Jürgen",1003', '"Müller, Jürgen",x1003') + '"Roe, Rick",1001,,,\n'
    (tmp_path / "bad.csv").write_text(bad)
    run = course(root, "roster", "import", str(tmp_path / "bad.csv"))
    assert run.returncode == 1
    assert "nothing imported, 2 bad rows" in run.stderr
    assert "line 5: Canvas user ID 'x1003' is not a number" in run.stderr
    assert "line 7: canvas user_id '1001' is also on line 3" in run.stderr
    with Gradebook(gradebook_url(root)) as gradebook:
        assert gradebook.students == []
    (tmp_path / "other.csv").write_text("name,grade\nann,3\n")
    run = course(root, "roster", "import", str(tmp_path / "other.csv"))
    assert run.returncode == 1 and "not a roster that Canvas, Moodle or nbgrader exports" in run.stderr


def canvas_download(path, extra=None):
    notebook = {"doejane_1001_501_activations.ipynb": (SOLUTION, NOV_1),
                # a resubmission that Canvas renamed, marked late
                "garcia-lopezmaria_LATE_1002_502_activations-1.ipynb": (RELEASE, NOV_3),
                # a student's own zip, with the notebook inside a folder
                "müllerjürgen_1003_503_my work.zip": (student_zip({"work/activations.ipynb": SOLUTION,
                                                                    "__MACOSX/._x": b""}), NOV_1),
                # nobody of the roster
                "roerick_1004_504_activations.ipynb": (SOLUTION, NOV_1)}
    return write_zip(path, {**notebook, **(extra or {})})


def test_collect_files_a_canvas_download_and_reports_what_it_cannot_place(tmp_path):
    root = scratch_course(tmp_path)
    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    assert course(root, "roster", "import", str(tmp_path / "roster.csv")).returncode == 0
    download = canvas_download(tmp_path / "submissions.zip", {
        "doejane_1001_501_notes.pdf": (b"%PDF", NOV_1)})
    run = course(root, "collect", "activations", str(download))
    assert run.returncode == 1, run.stdout
    assert "3 students' notebooks collected (3 new); 1 marked late by the LMS" in run.stdout
    for student, data in (("jdoe", SOLUTION), ("mgarcia", RELEASE), ("jmuller", SOLUTION)):
        assert notebook_path(root, "submitted", "activations", student).read_bytes() == data
    stamp = (root / "submitted" / "mgarcia" / "activations" / "timestamp.txt").read_text()
    assert datetime.fromisoformat(stamp) == datetime(*NOV_3, tzinfo=timezone.utc)
    assert collect.late_marks(root, "activations") == {"jdoe": False, "mgarcia": True, "jmuller": False}
    with Gradebook(gradebook_url(root)) as gradebook:
        rows = gradebook.db.execute(select(lms.LMS_SUBMISSIONS.c.student, lms.LMS_SUBMISSIONS.c.file_name,
                                           lms.LMS_SUBMISSIONS.c.submission_id)).all()
    assert ("jmuller", "müllerjürgen_1003_503_my work.zip/work/activations.ipynb", "503") in rows
    reported = {row["student"]: row["reason"] for row in flags(root)}
    assert set(reported) == {"canvas 1004", "jdoe"}
    assert "Canvas user 1004 (roerick) is not in the roster" in reported["canvas 1004"]
    assert "doejane_1001_501_notes.pdf: not a notebook" in reported["jdoe"]
    assert "Canvas user 1004 (roerick) is not in the roster" in run.stderr


def test_collect_files_a_moodle_download(tmp_path):
    root = scratch_course(tmp_path)
    (tmp_path / "worksheet.csv").write_text(MOODLE_WORKSHEET)
    (tmp_path / "participants.csv").write_text(MOODLE_PARTICIPANTS)
    for roster in ("worksheet.csv", "participants.csv"):
        assert course(root, "roster", "import", str(tmp_path / roster)).returncode == 0
    download = write_zip(tmp_path / "moodle.zip", {
        "Jane Doe_70001_assignsubmission_file_/activations.ipynb": (SOLUTION, NOV_1),
        # a copy the browser renamed, and a second notebook: the newest is filed, the other named
        "Ana Lúcia Pérez-Gómez_70002_assignsubmission_file_/activations (1).ipynb": (RELEASE, NOV_1),
        "Ana Lúcia Pérez-Gómez_70002_assignsubmission_file_/old/activations.ipynb": (SOLUTION, (2026, 10, 30,
                                                                                             9, 0, 0)),
        # not in the worksheet (another assignment's participant id): found by the roster's name
        "Zoë Van der Berg_70003_assignsubmission_file_/Homework 3.ipynb": (SOLUTION, NOV_1),
        "Nobody Known_70004_assignsubmission_file_/activations.ipynb": (SOLUTION, NOV_1),
        "Jane Doe_70001_assignsubmission_onlinetext_/onlinetext.html": (b"<p>see file</p>", NOV_1),
    })
    run = course(root, "collect", "activations", str(download))
    assert run.returncode == 1
    assert "3 students' notebooks collected (3 new)" in run.stdout
    assert notebook_path(root, "submitted", "activations", "aperez").read_bytes() == RELEASE
    assert notebook_path(root, "submitted", "activations", "zvdberg").read_bytes() == SOLUTION
    assert "'Zoë Van der Berg' is zvdberg by name" in run.stdout
    assert "handed in Homework 3.ipynb, filed as activations.ipynb" in run.stdout
    reported = {row["student"]: row["reason"] for row in flags(root)}
    assert set(reported) == {"moodle 70004", "aperez", "jdoe"}
    assert "old/activations.ipynb: a second notebook of aperez" in reported["aperez"]
    assert "onlinetext.html: not a notebook" in reported["jdoe"]


def test_collecting_again_is_safe(tmp_path):
    root = scratch_course(tmp_path)
    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    assert course(root, "roster", "import", str(tmp_path / "roster.csv")).returncode == 0
    first = canvas_download(tmp_path / "first.zip")
    course(root, "collect", "activations", str(first))
    target = notebook_path(root, "submitted", "activations", "jdoe")
    before = target.stat().st_mtime_ns
    again = course(root, "collect", "activations", str(first))
    assert "3 unchanged" in again.stdout and target.stat().st_mtime_ns == before
    assert [row["student"] for row in flags(root)] == ["canvas 1004"]  # reported once, not twice
    newer = write_zip(tmp_path / "newer.zip", {"doejane_1001_601_activations.ipynb": (RELEASE, NOV_3),
                                                "müllerjürgen_1003_603_activations.ipynb": (RELEASE, (
                                                    2026, 10, 1, 0, 0, 0))})
    run = course(root, "collect", "activations", str(newer))
    assert run.returncode == 0, run.stderr
    assert target.read_bytes() == RELEASE  # newer: replaced
    assert notebook_path(root, "submitted", "activations", "jmuller").read_bytes() == SOLUTION  # older
    assert "older than the notebook collected before" in run.stdout
    assert not flags(root)  # this collect placed everything: the old report of the assignment is gone


def test_nothing_to_collect_is_an_error(tmp_path):
    root = scratch_course(tmp_path)
    empty = write_zip(tmp_path / "empty.zip", {"readme.txt": (b"", NOV_1)})
    run = course(root, "collect", "activations", str(empty))
    assert run.returncode == 1 and "0 students' notebooks collected" in run.stdout
    assert "readme.txt: not a file name of a Canvas or Moodle download" in run.stderr
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    run = course(root, "collect", "activations", str(tmp_path / "broken.zip"))
    assert run.returncode == 1 and "not a zip file that can be read" in run.stderr


def test_nbgrader_zip_collect_reads_a_canvas_download(tmp_path):
    """nbgrader's own command, configured for Canvas in nbgrader_config.py: no regular expression to write."""
    root = scratch_course(tmp_path)
    (tmp_path / "roster.csv").write_text(CANVAS_ROSTER)
    assert course(root, "roster", "import", str(tmp_path / "roster.csv")).returncode == 0
    archive = root / "downloaded" / "activations" / "archive"
    archive.mkdir(parents=True)
    write_zip(archive / "submissions.zip", {"doejane_1001_501_activations.ipynb": (SOLUTION, NOV_1),
                                            "garcia-lopezmaria_LATE_1002_502_activations-1.ipynb": (
                                                RELEASE, NOV_3)})
    nbgrader(root, "zip_collect", "activations")
    assert notebook_path(root, "submitted", "activations", "jdoe").read_bytes() == SOLUTION
    assert notebook_path(root, "submitted", "activations", "mgarcia").read_bytes() == RELEASE


def test_late_penalty_is_a_share_per_started_day():
    plugin = lms.LatePenalty(percent_per_day=10)
    assert plugin.late_submission_penalty("s", 10.0, 0) == 0
    assert plugin.late_submission_penalty("s", 10.0, 60) == pytest.approx(1.0)
    assert plugin.late_submission_penalty("s", 10.0, 86400 + 1) == pytest.approx(2.0)
    assert plugin.late_submission_penalty("s", 10.0, 30 * 86400) == 10.0  # never more than the score


def test_the_course_file_names_every_bad_row(tmp_path):
    root = scratch_course(tmp_path)
    (root / lms.COURSE_FILE).write_text("assignment,due,canvas_id\nactivation,,1\nactivations,next week,2\n")
    with pytest.raises(SystemExit, match="line 2: 'activation' is no assignment.*line 3: due 'next week'"):
        lms.read_course_file(root)


# ------------------------------------------------------------------------------- a class of 30, slow

CLASS = 30
DUE = "2026-11-02 00:00"
LATE = {3, 11, 19, 27}  # these hand in on 3 November, 10:00: two started days late


def class_roster(size):
    canvas = ["Student,ID,SIS User ID,SIS Login ID,Section", "    Points Possible,,,,"]
    moodle = ["Identifier,Full name,Email address,ID number,Status"]
    for n in range(size):
        first, last = f"Émile{n}", f"Dupont-Durand{n}"
        canvas.append(f'"{last}, {first}",{2000 + n},S{n},s{n:02d},Section {"AB"[n % 2]}')
        moodle.append(f"Participant {80000 + n},{first} {last},s{n:02d}@uni.example,s{n:02d},Submitted")
    return "\n".join(canvas) + "\n", "\n".join(moodle) + "\n"


def class_notebooks(root, assignment):
    solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    mistakes = fill_answers(solution, read_answers(ROOT / "examples" / "mistakes" / f"{assignment}.py"))
    release = notebook_path(root, "release", assignment).read_bytes()
    return [nbformat.writes(solution).encode(), nbformat.writes(mistakes).encode(), release]


@pytest.fixture(scope="module")
def term(course_template, tmp_path_factory):
    """A class of 30 through a term's steps: roster import, collect from Canvas and from Moodle, grade."""
    root = new_course(course_template, tmp_path_factory.mktemp("term"), [], notebook_time_limit=300)
    (root / lms.COURSE_FILE).write_text(f"assignment,due,canvas_id,moodle_item\nactivations,{DUE},7001,"
                                        f"Activations\nlinear_network,{DUE},7002,Linear network\n")
    canvas, moodle = class_roster(CLASS)
    (root / "canvas.csv").write_text(canvas)
    (root / "moodle.csv").write_text(moodle)
    runs = {"roster canvas": course_command(root, "roster", "import", "canvas.csv"),
            "roster moodle": course_command(root, "roster", "import", "moodle.csv")}
    kinds = class_notebooks(root, "activations")
    write_zip(root / "canvas.zip", {
        f"dupont-durand{n}émile{n}_{'LATE_' if n in LATE else ''}{2000 + n}_{9000 + n}_activations"
        f"{'-1' if n % 5 == 0 else ''}.ipynb": (kinds[n % 3], NOV_3 if n in LATE else NOV_1)
        for n in range(CLASS)})
    kinds = class_notebooks(root, "linear_network")
    write_zip(root / "moodle.zip", {
        f"Émile{n} Dupont-Durand{n}_{80000 + n}_assignsubmission_file_/linear_network.ipynb": (
            kinds[n % 3], NOV_3 if n in LATE else NOV_1) for n in range(CLASS)})
    runs["collect canvas"] = course_command(root, "collect", "activations", "canvas.zip")
    runs["collect moodle"] = course_command(root, "collect", "linear_network", "moodle.zip")
    submit_examples(root, "activations", ["correct"])  # handed in, but graded only when asked for
    runs["grade"] = course_command(root, "grade", "--workers", "2", "--quiet")
    runs["grade examples"] = course_command(root, "grade", "activations", "--student", "example-*",
                                            "--quiet")
    return root, runs


@CLASSES_GROUP
def test_a_class_of_30_goes_from_the_lms_to_the_gradebook(term):
    root, runs = term
    for step in ("roster canvas", "roster moodle", "collect canvas", "collect moodle"):
        assert runs[step].returncode == 0, f"{step}:\n{runs[step].stdout}\n{runs[step].stderr}"
    assert f"{CLASS} students' notebooks collected ({CLASS} new); {len(LATE)} marked late" in \
        runs["collect canvas"].stdout
    assert "graded 60 submissions" in runs["grade"].stdout, runs["grade"].stdout[-2000:]
    with Gradebook(gradebook_url(root)) as gradebook:
        for assignment in ("activations", "linear_network"):
            assert gradebook.find_assignment(assignment).duedate == datetime(2026, 11, 2)
            for n in range(CLASS):
                submission = gradebook.find_submission(assignment, f"s{n:02d}")
                if n in LATE:
                    assert submission.total_seconds_late > 86400
                    # two started days: 20 % of every notebook's score
                    assert submission.late_submission_penalty == pytest.approx(0.2 * submission.score)
                else:
                    assert submission.total_seconds_late == 0 and submission.late_submission_penalty == 0
        correct_late = gradebook.find_submission("activations", "s27")  # 27 % 3 == 0: the solution
        assert correct_late.score > 0 and correct_late.late_submission_penalty > 0
        # the example was not graded by the plain `course grade`, but when asked for
        assert "graded 1 submission" in runs["grade examples"].stdout
    # the class handed in ten identical copies of each notebook: the similarity section says so
    page = (root / "class_report.html").read_text()
    assert 'id="similarity"' in page and "similarity_activations.html" in page
    record = json.loads((root / "similarity_linear_network.json").read_text())
    assert record["students"] == CLASS and len(record["pairs"]) >= 2 * 45  # correct and mistaken copies


@CLASSES_GROUP
def test_grades_go_back_to_canvas_and_moodle_as_their_imports_read_them(term, tmp_path):
    root, _ = term
    with Gradebook(gradebook_url(root)) as gradebook:  # a TA grades one written answer, as formgrader does
        grade = gradebook.find_grade("nonlinear_question", "activations", "activations", "s00")
        grade.manual_score, grade.needs_manual_grade = 2, False
        gradebook.db.commit()
        expected, pending = {}, set()
        for n in range(CLASS):
            for assignment in ("activations", "linear_network"):
                submission = gradebook.find_submission(assignment, f"s{n:02d}")
                expected[(f"s{n:02d}", assignment)] = submission.score - submission.late_submission_penalty
                if any(grade.needs_manual_grade for notebook in submission.notebooks
                       for grade in notebook.grades):
                    pending.add((f"s{n:02d}", assignment))
    # a written answer left as released needs no TA (nbgrader scores it 0); the others wait for one
    assert ("s00", "activations") not in pending and ("s01", "activations") in pending
    assert ("s02", "activations") not in pending
    run = course_command(root, "export", "--to", "canvas", str(tmp_path / "canvas.csv"))
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "canvas.csv", newline="") as file:
        rows = list(csv.reader(file))
    # Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then "<name> (<id>)"
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "activations (7001)",
                       "linear_network (7002)"]
    assert rows[1][0].strip() == "Points Possible" and float(rows[1][5]) > 0
    students = rows[2:]
    assert len(students) == CLASS and not any("example" in ",".join(row) for row in students)
    by_login = {row[3]: row for row in students}
    for n in range(CLASS):
        row = by_login[f"s{n:02d}"]
        assert row[:5] == [f"Dupont-Durand{n}, Émile{n}", str(2000 + n), f"S{n}", f"s{n:02d}",
                           f"Section {'AB'[n % 2]}"]
        # a written answer that waits for a TA leaves the assignment blank, not 0
        for column, assignment in ((5, "activations"), (6, "linear_network")):
            score = expected[(f"s{n:02d}", assignment)]
            assert row[column] == ("" if (f"s{n:02d}", assignment) in pending else f"{score:g}")
    assert f"{len(pending)} left blank" in run.stderr
    assert "s01 / activations: hand-graded points pending" in run.stderr
    run = course_command(root, "export", "--to", "canvas", str(tmp_path / "all.csv"), "--allow-pending")
    with open(tmp_path / "all.csv", newline="") as file:
        rows = list(csv.DictReader(file))[1:]
    for row in rows:
        for assignment, column in (("activations", "activations (7001)"),
                                   ("linear_network", "linear_network (7002)")):
            assert float(row[column]) == pytest.approx(expected[(row["SIS Login ID"], assignment)])
    run = course_command(root, "export", "--to", "moodle", str(tmp_path / "moodle.csv"), "--allow-pending")
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "moodle.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    # Moodle's grade import maps users on one identifier column, and grade items on the other columns
    assert list(rows[0]) == ["ID number", "Email address", "First name", "Last name", "Activations",
                             "Linear network"]
    assert len(rows) == CLASS
    for row in rows:
        assert row["Email address"] == f"{row['ID number']}@uni.example"
        assert float(row["Linear network"]) == pytest.approx(expected[(row["ID number"], "linear_network")])
