"""Hostile submissions (grader_tests/attacks.py), autograded for real through the sandbox.

All of them are graded in one `course grade` run beside the honest examples, and a few again with a plain
`nbgrader autograde`. Each must end the same way: no point it did not earn, the instructor's files and
the gradebook's instructor data unchanged, nothing reaching the host (network, processes), a reason for
TAs in grading_flags.csv and the gradebook; and the honest examples graded as always.
"""

import csv
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from html import escape as html_escape
from pathlib import Path

import nbformat
import pytest
from attacks import ATTACKS, submit_attack
from conftest import CLASSES_GROUP, course_command, grades, new_course, private_uids, secret_lines
from nbgrader.api import Gradebook
from test_batch import with_answer_prefix

from coursetools import findings
from coursetools.course import gradebook_url, nbgrader, notebook_path
from coursetools.examples import submit
from coursetools.kernel import GradingKernelManager

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "linear_network"  # of most attacks
ASSIGNMENTS = sorted({attack.assignment for attack in ATTACKS})
BY_STUDENT = {attack.student: attack for attack in ATTACKS}
# what the reason of each attack must say (the first match of several problems is enough)
REASONS = {
    "read-source": "suspicious code: reads course or system files",
    "write-gradebook": "suspicious code: reads course or system files",
    "read-hidden-tests": "suspicious code: reads course or system files",
    "skip-execution": "tags of test cells changed",
    "patched-numpy": "tampering detected",
    "patched-checks": "tampering detected",
    "always-equal": "suspicious code",
    "custom-exception-handler": "tampering detected",
    "input-transformer": "tampering detected",
    "sys-exit": "suspicious code: ends the kernel",
    "ipython-exit": "the kernel died",
    "os-exit": "the kernel died",
    "notebook-link": "linear_network.ipynb is not a regular file",
    "file-link": "is not a regular file",
    "escaping-path": "is not a regular file",
    "memory-bomb": "ran out of memory",
    "fork-bomb": "running after its notebook ended",
    "forked-memory-bomb": "running after its notebook ended",
    "runaway-cpu": "running after its notebook ended",
    "network": "suspicious code: opens network connections",
    "daemon": "running after its notebook ended",
    "stdout-flood": "characters in a cell: the rest was cut",
    "print-history": "suspicious code: reads the notebook's history",
    "shadow-module": "handed in code files, which the kernel did not get: ipykernel_launcher.py, numpy.py",
    "dies-in-test": "the kernel died",
    "own-checks": "handed in its own checks.py: the course's copy replaces it",
    "selective-transformer": "score zero until a TA has read its code",
    "fake-canary": "score zero until a TA has read its code",
    "always-equal-scalar": "suspicious code: defines comparisons or conversions",
}
# attacks graded again with a plain `nbgrader autograde`, the reason it must write into the notebook
PLAIN = {
    "read-source": "suspicious code: reads course or system files",
    "skip-execution": "tags of test cells changed",
    "custom-exception-handler": "tampering detected",
    "os-exit": "the kernel died",
    "notebook-link": "was a link: moved to quarantine/",
}
CELL_TIMEOUT, NOTEBOOK_TIME_LIMIT = 10, 40  # seconds; the floods and spinners would last longer


class Listener:
    """A TCP listener on the host's 127.0.0.1 that records every connection it accepts."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.received, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    self.received.append(connection.recv(1024) or b"<connected>")
                except OSError:
                    self.received.append(b"<connected>")

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()


def fingerprints(root):
    """sha256 of every file of the instructor's folders, and the instructor's rows of the gradebook."""
    files = {}
    for folder in ("source", "solutions", "release"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    files["nbgrader_config.py"] = hashlib.sha256((root / "nbgrader_config.py").read_bytes()).hexdigest()
    with sqlite3.connect(root / "gradebook.db") as db:
        for table in ("assignment", "notebook", "base_cell", "grade_cells", "solution_cells", "source_cell"):
            files[f"gradebook.db:{table}"] = sorted(map(repr, db.execute(f"SELECT * FROM {table}")))
    return files


_FIRST_UID = GradingKernelManager.first_uid.default_value
DEFAULT_UIDS = range(_FIRST_UID, _FIRST_UID + GradingKernelManager.uid_count.default_value)


def sandbox_processes(users):
    """Processes of the machine that run as one of these users (a course's sandbox users)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid in users:
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
        except OSError:
            continue
    return found


def flags(root):
    with open(root / "grading_flags.csv") as file:
        return {r["student"]: r["reason"] for r in csv.DictReader(file)}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory, course_template):
    root = new_course(course_template, tmp_path_factory.mktemp("attacked"), ASSIGNMENTS, NOTEBOOK_TIME_LIMIT,
                      CELL_TIMEOUT, own_users=True, examples=["correct", "untouched"])
    listener = Listener()
    for attack in ATTACKS:
        submit_attack(root, attack, listener.port)
    before = fingerprints(root)
    run = course_command(root, "grade", *ASSIGNMENTS, "--workers", "2", "--quiet")
    listener.close()
    return root, run, before, listener


@pytest.fixture(scope="module")
def plain(tmp_path_factory, course_template):
    """A few attacks graded with a plain `nbgrader autograde` in the course folder."""
    root = new_course(course_template, tmp_path_factory.mktemp("plain"), [], NOTEBOOK_TIME_LIMIT,
                      CELL_TIMEOUT, own_users=True)
    for attack in ATTACKS:
        if attack.name in PLAIN:
            submit_attack(root, attack, 9)  # port 9: nothing listens (these attacks use no network)
    before = fingerprints(root)
    nbgrader(root, "autograde", ASSIGNMENT, "--force")
    return root, before


def test_grading_run_reports_every_attack(attacked):
    root, run, _, _ = attacked
    assert run.returncode == 1, run.stdout + run.stderr  # 1: submissions need a TA
    graded = len(ATTACKS) + 2 * len(ASSIGNMENTS)  # and two examples per assignment
    assert f"graded {graded} submissions" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("name", [attack.name for attack in ATTACKS])
def test_attack_is_flagged_with_its_reason(attacked, name):
    root, run, _, _ = attacked
    attack = BY_STUDENT["attack-" + name]
    assert REASONS[name] in flags(root).get(attack.student, ""), flags(root).get(attack.student)
    rows = grades(root, [attack.student], [attack.assignment])
    assert rows[(attack.student, attack.assignment, "flagged")] is True
    comments = [value[2] for key, value in rows.items() if key[2] != "flagged"]
    assert any(str(comment).startswith("Needs a TA") for comment in comments), comments


@pytest.mark.parametrize("name", [attack.name for attack in ATTACKS])
def test_attack_earns_no_point_it_did_not_earn(attacked, name):
    root, _, _, _ = attacked
    attack = BY_STUDENT["attack-" + name]
    honest = "example-untouched" if attack.base == "release" else "example-correct"
    got = grades(root, [attack.student], [attack.assignment])
    deserved = grades(root, [honest], [attack.assignment])
    for (_, assignment, cell), value in deserved.items():
        if cell != "flagged" and value[0] is not None:
            score, earned = value[0], got[(attack.student, assignment, cell)][0]
            assert earned <= score, f"{attack.student} earned {earned} in {cell}; {honest} earns {score}"
    if attack.base == "release":
        assert all(value[0] in (0, None) for key, value in got.items() if key[2] != "flagged")


def test_instructor_files_and_gradebook_are_unchanged(attacked):
    root, _, before, _ = attacked
    assert fingerprints(root) == before
    with sqlite3.connect(root / "gradebook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM grade WHERE manual_score IS NOT NULL").fetchone()[0] == 0


def test_no_connection_reaches_the_host(attacked):
    *_, listener = attacked
    assert listener.received == []


def test_no_process_outlives_grading(attacked):
    assert sandbox_processes(private_uids()) == []


def test_process_check_sees_only_its_own_courses_kernels(attacked, course_template, tmp_path):
    """While another course is being graded on the machine (its kernels run as the default sandbox users),
    the check above still sees only this test session's kernels: a check of every grading kernel of the
    machine would fail here."""
    other = new_course(course_template, tmp_path / "other", [], notebook_time_limit=120)
    solution = nbformat.read(notebook_path(other, "solutions", ASSIGNMENT), as_version=4)
    sleeper = with_answer_prefix(solution, "add_bias", "import time\ntime.sleep(10)")
    submit(other, ASSIGNMENT, "sleeper", sleeper)
    command = [str(Path(sys.executable).parent / "course"), "grade", ASSIGNMENT, "--workers=1", "--quiet"]
    grading = subprocess.Popen(command, cwd=other, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not sandbox_processes(DEFAULT_UIDS) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sandbox_processes(DEFAULT_UIDS), "the other course's kernel never started"
        assert sandbox_processes(private_uids()) == []
        assert grading.wait(timeout=180) == 0
    finally:
        if grading.poll() is None:
            os.killpg(grading.pid, signal.SIGKILL)


def test_a_cell_posing_as_a_canary_stays_in_the_autograded_notebook(attacked):
    root, *_ = attacked
    path = notebook_path(root, "autograded", ASSIGNMENT, "attack-fake-canary")
    autograded = nbformat.read(path, as_version=4)
    assert any("a fake canary" in cell.source for cell in autograded.cells)


def test_a_flood_is_cut(attacked):
    root, *_ = attacked
    autograded = root / "autograded" / "attack-stdout-flood" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert autograded.stat().st_size < 5_000_000


def test_honest_examples_grade_as_always(attacked):
    root, *_ = attacked
    with Gradebook(gradebook_url(root)) as gradebook:
        for assignment in ASSIGNMENTS:
            for student, full in (("example-correct", True), ("example-untouched", False)):
                notebook = gradebook.find_submission(assignment, student).notebooks[0]
                assert not notebook.flagged
                for grade in notebook.grades:
                    if grade.cell.cell_type == "code":
                        expected = grade.max_score if full else 0
                        assert grade.auto_score == expected, (student, assignment, grade.name)
    assert not {student for student in flags(root) if student.startswith("example-")}


def test_feedback_never_shows_a_hidden_test(attacked):
    root, *_ = attacked
    student = "attack-print-history"
    nbgrader(root, "generate_feedback", ASSIGNMENT, f"--student={student}", "--force")
    html = (root / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    autograded = nbformat.read(notebook_path(root, "autograded", ASSIGNMENT, student), as_version=4)
    printed = "".join(o.get("text", "") for c in autograded.cells for o in c.get("outputs", []))
    hidden = secret_lines(nbformat.read(notebook_path(root, "source", ASSIGNMENT), as_version=4),
                          regions=("HIDDEN TESTS",))
    assert any(line in printed for line in hidden)  # the attack did print hidden tests...
    leaked = [line for line in hidden if html_escape(line) in html]
    assert not leaked, leaked  # ...and the feedback shows none of them


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_nbgrader_autograde_uses_the_defences(plain, name):
    root, before = plain
    student = BY_STUDENT["attack-" + name].student
    autograded = nbformat.read(notebook_path(root, "autograded", ASSIGNMENT, student), as_version=4)
    assert any(PLAIN[name] in finding.detail for finding in findings.read(autograded))
    got = grades(root, [student], [ASSIGNMENT])
    assert got[(student, ASSIGNMENT, "flagged")] is True
    assert all(value[0] in (0, None) for key, value in got.items() if key[2] != "flagged")
    assert fingerprints(root) == before
