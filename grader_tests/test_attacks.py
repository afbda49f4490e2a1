"""Hostile submissions (grader_tests/attacks.py), autograded for real through the sandbox and the judge.

All of them are graded in one `course grade` run beside honest examples, and a few again with a plain
`nbgrader autograde`. Each must end the same way: no point above what its answers earn without the
trick, no line of a hidden test in anything a student sees (nor in anything the kernel was sent), the
instructor's files and the gradebook's instructor data unchanged, nothing reaching the host (network,
processes, scratch space), and the honest examples graded as always. What needs a TA is flagged with its
reason; what only tells something about the student's intent is a note; a trick that the judge makes
harmless may leave no trace at all.
"""

import base64
import csv
import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from html import unescape
from pathlib import Path

import nbformat
import pytest
from attacks import ATTACKS, submit_attack
from conftest import (
    CLASSES_GROUP,
    course_command,
    grades,
    new_course,
    private_uids,
    secret_lines,
    with_answer_prefix,
)
from nbgrader.api import Gradebook

from coursetools import findings
from coursetools.course import gradebook_url, is_test_cell, nbgrader, notebook_path
from coursetools.examples import submit
from coursetools.grading.kernel import GradingKernelManager

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "linear_network"  # of most attacks
ASSIGNMENTS = sorted({attack.assignment for attack in ATTACKS})
BY_STUDENT = {attack.student: attack for attack in ATTACKS}
# what grading says of an attack that needs a TA: the reason (the first match of several is enough)
FLAGGED = {
    "skip-execution": "tags of test cells changed",
    "ipython-exit": "the kernel died",
    "os-exit": "the kernel died",
    "dies-in-test": "the kernel died",
    "notebook-link": "linear_network.ipynb is not a regular file",
    "file-link": "is not a regular file",
    "escaping-path": "is not a regular file",
    "memory-bomb": "ran out of memory",
    "fork-bomb": "running after its notebook ended",
    "forked-memory-bomb": "running after its notebook ended",
    "runaway-cpu": "running after its notebook ended",
    "daemon": "running after its notebook ended",
    "stdout-flood": "characters in a cell: the rest was cut",
    "shadow-module": "handed in code files, which the kernel did not get: ipykernel_launcher.py, numpy.py",
    "own-checks": "handed in its own checks.py: the course's copy replaces it",
}
# what grading notes for TAs about attacks that can change no score
NOTED = {
    "read-source": "suspicious code: reads course or system files",
    "write-gradebook": "suspicious code: reads course or system files",
    "read-hidden-tests": "suspicious code: reads course or system files",
    "network": "suspicious code: opens network connections",
    "print-history": "suspicious code: reads the notebook's history",
    "custom-exception-handler": "suspicious code: changes how the notebook runs",
    "input-transformer": "suspicious code: changes how the notebook runs",
    "watch-profile": "suspicious code: traces or inspects the interpreter",
    "watch-trace": "suspicious code: traces or inspects the interpreter",
    "call-reference-frames": "suspicious code: traces or inspects the interpreter",
    "print-frames": "suspicious code: traces or inspects the interpreter",
    "detect-grading": "suspicious code: looks for the grader",
}
# attacks graded again with a plain `nbgrader autograde`: what it must record, and whether it flags
PLAIN = {
    "read-source": ("suspicious code: reads course or system files", False),
    "skip-execution": ("tags of test cells changed", True),
    "custom-exception-handler": ("suspicious code: changes how the notebook runs", False),
    "os-exit": ("the kernel died", True),
    "notebook-link": ("was a link: moved to quarantine/", True),
}
HONEST = {"release": "example-untouched", "solution": "example-correct"}  # what an attack's base earns
CELL_TIMEOUT, NOTEBOOK_TIME_LIMIT = 10, 40  # seconds; the floods and spinners would last longer
TRANSCRIPT = "kernel-transcript.txt"  # everything the judge sent to the students' kernels
KERNEL_WORD = "(as your kernel reports it)"  # what the docstring of a check on the kernel's word says


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
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"c.JudgedExecute.transcript = {str(root / TRANSCRIPT)!r}\n")
    listener = Listener()
    for attack in ATTACKS:
        submit_attack(root, attack, listener.port)
    before = fingerprints(root)
    run = course_command(root, "grade", *ASSIGNMENTS, "--student", "*", "--workers", "2", "--quiet")
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
    baselines = sum(attack.baseline is not None for attack in ATTACKS)
    graded = len(ATTACKS) + baselines + 2 * len(ASSIGNMENTS)  # and two examples per assignment
    assert f"graded {graded} submissions" in run.stdout, run.stdout + run.stderr


def found(root, attack):
    """Every finding recorded in the attack's autograded notebook (flags and notes)."""
    path = notebook_path(root, "autograded", attack.assignment, attack.student)
    return findings.read(nbformat.read(path, as_version=4)) if path.exists() else []


@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_attack_that_needs_a_ta_is_flagged_with_its_reason(attacked, name):
    root, run, _, _ = attacked
    attack = BY_STUDENT["attack-" + name]
    assert FLAGGED[name] in flags(root).get(attack.student, ""), flags(root).get(attack.student)
    rows = grades(root, [attack.student], [attack.assignment])
    assert rows[(attack.student, attack.assignment, "flagged")] is True
    comments = [value[2] for key, value in rows.items() if key[2] != "flagged"]
    assert any(str(comment).startswith("Needs a TA") for comment in comments), comments


@pytest.mark.parametrize("name", sorted(NOTED))
def test_attack_that_changes_no_score_is_noted_for_tas(attacked, name):
    root, *_ = attacked
    attack = BY_STUDENT["attack-" + name]
    notes = [finding.detail for finding in found(root, attack) if not finding.needs_ta]
    assert any(NOTED[name] in note for note in notes), notes


def on_the_kernels_word(root, assignment):
    """The test cells whose check rests on what the kernel reports (the inputs after a call): their
    docstrings say so."""
    source = nbformat.read(notebook_path(root, "source", assignment), as_version=4)
    cells = [cell for cell in source.cells
             if cell.cell_type == "code" and KERNEL_WORD in cell.source.split("\n")[0]]
    return {cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"] for cell in cells}


@pytest.mark.parametrize("name", [attack.name for attack in ATTACKS])
def test_attack_earns_no_point_it_did_not_earn(attacked, name):
    """Not a point above what the same answers earn without the trick: the untouched release (or the
    correct solution, for attacks on the machine), or the attack's own baseline; but in a check that
    rests on the kernel's word, a known limit (the next test)."""
    root, _, _, _ = attacked
    attack = BY_STUDENT["attack-" + name]
    honest = attack.baseline_student or HONEST[attack.base]
    got = grades(root, [attack.student], [attack.assignment])
    deserved = grades(root, [honest], [attack.assignment])
    limits = on_the_kernels_word(root, attack.assignment)
    for (_, assignment, cell), value in deserved.items():
        if cell != "flagged" and value[0] is not None and cell not in limits:
            score, earned = value[0], got[(attack.student, assignment, cell)][0]
            assert earned <= score, f"{attack.student} earned {earned} in {cell}; {honest} earns {score}"
    if attack.base == "release" and not attack.baseline:
        assert all(value[0] in (0, None) for key, value in got.items() if key[2] != "flagged")


def test_a_wrapped_shim_passes_a_check_on_the_kernels_word_and_nothing_else(attacked):
    """The known limit, written down: a check of the inputs after a call rests on what the kernel reports,
    so a shim wrapped to report the inputs from before passes it (one point at most per such cell), while
    the same mutating answer without the wrapper fails it."""
    root, *_ = attacked
    attack = BY_STUDENT["attack-forged-inputs"]
    limits = on_the_kernels_word(root, attack.assignment)
    assert "add_bias_input_unchanged" in limits and max(limits.values()) <= 1
    for assignment in ASSIGNMENTS:
        assert all(points <= 1 for points in on_the_kernels_word(root, assignment).values())
    got = grades(root, [attack.student], [attack.assignment])
    control = grades(root, [attack.baseline_student], [attack.assignment])
    cell = (attack.assignment, "add_bias_input_unchanged")
    assert got[(attack.student, *cell)][0] == 1 and control[(attack.baseline_student, *cell)][0] == 0


@pytest.mark.parametrize("name", ["forged-notes", "decoy-model"])
def test_the_activation_check_rests_on_what_the_judge_saw(attacked, name):
    """Notes added to the kernel's answers are ignored; a logistic MLP fitted for show does not answer for
    the relu MLP that gave the accuracy: the check of compare_models fails as for the control."""
    root, *_ = attacked
    attack = BY_STUDENT["attack-" + name]
    got = grades(root, [attack.student], [attack.assignment])
    control = grades(root, [attack.baseline_student], [attack.assignment])
    cell = (attack.assignment, "compare_models_hidden")
    assert got[(attack.student, *cell)][0] == 0 == control[(attack.baseline_student, *cell)][0]


def test_bombs_fail_their_calls_and_the_rest_is_judged(attacked):
    """Each answer that would decode to many times the budget fails its own call with its size."""
    root, *_ = attacked
    attack = BY_STUDENT["attack-bomb-answers"]
    path = notebook_path(root, "autograded", attack.assignment, attack.student)
    notebook = nbformat.read(path, as_version=4)
    errors = [output["evalue"] for cell in notebook.cells if cell.get("outputs") and is_test_cell(cell)
              for output in cell.outputs if output.get("output_type") == "error"]
    assert len(errors) >= 10, errors
    assert all("answered a value of" in error or "is not data" in error or "of text" in error
               for error in errors), errors
    assert any(re.search(r"answered a value of [\d.]+ GB; at most 64 MB", error) for error in errors), errors


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


def hidden_lines(root, assignment):
    """The hidden tests' lines of an assignment, as they are and in the encodings an attack might print
    them in: reversed, base64."""
    source = nbformat.read(notebook_path(root, "source", assignment), as_version=4)
    lines = set(secret_lines(source, regions=("HIDDEN TESTS",)))
    encoded = {base64.b64encode(line.encode()).decode() for line in lines}
    return lines | {line[::-1] for line in lines} | encoded


def student_visible_text(root, attack):
    """The attack's feedback page, and every output of its autograded notebook (test cells included)."""
    page = root / "feedback" / attack.student / attack.assignment / f"{attack.assignment}.html"
    text = unescape(page.read_text()) if page.exists() else ""
    path = notebook_path(root, "autograded", attack.assignment, attack.student)
    if path.exists():
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                text += "".join(str(output.get(key, "")) for key in ("text", "evalue", "data"))
    return text


@pytest.mark.parametrize("name", [attack.name for attack in ATTACKS])
def test_no_attack_shows_a_line_of_a_hidden_test(attacked, name):
    root, *_ = attacked
    attack = BY_STUDENT["attack-" + name]
    shown = student_visible_text(root, attack)
    leaked = [line for line in hidden_lines(root, attack.assignment) if line in shown]
    assert not leaked, leaked[:3]


def test_the_hidden_line_check_bites(attacked):
    """The check above finds a hidden line, printed as it is, reversed or in base64."""
    root, *_ = attacked
    lines = hidden_lines(root, ASSIGNMENT)
    source = nbformat.read(notebook_path(root, "source", ASSIGNMENT), as_version=4)
    some = sorted(line for line in secret_lines(source, regions=("HIDDEN TESTS",)) if line in lines)[0]
    for shown in (some, some[::-1], base64.b64encode(some.encode()).decode()):
        assert any(line in f"printed: {shown} (end)" for line in lines)


def test_no_hidden_test_or_reference_reaches_the_kernel(attacked):
    """What the judge sent to every kernel of the run (its transcript; honest, wrong and hostile
    submissions of every assignment): the shim's installation, whose code is the public checks.py, wire.py
    and shim.py, and then only JSON data (calls, and the replies to the stubs' uses); no instructor code at
    all, so not a line of a hidden test, nor a reference function's name."""
    from coursetools.grading import judge

    root, *_ = attacked
    sent = (root / TRANSCRIPT).read_text()
    installation = set(judge._bootstrap().splitlines())
    public = "\n".join(Path(module.__file__).read_text() for module in judge.STUDENT_SIDE)
    data = [line for line in sent.splitlines() if line and line not in installation]
    assert sent.count("install()") >= len(ATTACKS) and len(data) > 1000  # the transcript is complete
    for line in data:
        message = json.loads(line)
        assert type(message) is dict and set(message) in ({"call"}, {"return"}, {"raise"}), line[:200]
    assert any('"$judge"' in line for line in data)  # the tests' objects went as references
    for assignment in ASSIGNMENTS:
        source = nbformat.read(notebook_path(root, "source", assignment), as_version=4)
        # a line of the public modules is no secret ("@reference" is in checks.py's docstring too)
        reached = [line for line in hidden_lines(root, assignment) if line in sent and line not in public]
        assert not reached, (assignment, reached[:3])
        names = set(re.findall(r"def (_\w*)", "\n".join(cell.source for cell in source.cells)))
        assert names and not [name for name in names if name in sent]


def test_the_kernel_sees_no_sign_of_grading_in_its_environment(attacked):
    root, *_ = attacked
    attack = BY_STUDENT["attack-detect-grading"]
    printed = student_visible_text(root, attack)
    seen = re.search(r"the kernel sees: (\{.*\})", printed)
    assert seen, printed[:500]
    seen = seen.group(1)
    assert "NBGRADER" not in seen and "autograded" not in seen and "/dev/shm" not in seen, seen
    assert "'home': '/home/student'" in seen and "'cwd': '/home/student/logistic_network'" in seen, seen


def test_scratch_space_is_the_kernels_own(attacked):
    """The runtime folder, where a kernel's sockets are, holds a few files; home, /tmp and /dev/shm are
    private and capped: the honest notebooks graded beside the attack grade as always (below)."""
    root, *_ = attacked
    printed = student_visible_text(root, BY_STUDENT["attack-fill-scratch"])
    made = {folder: int(count) for folder, count in re.findall(r"files made in (\S+) : (\d+)", printed)}
    assert made, printed[:500]
    assert made["/home/student/.local/share/jupyter/runtime"] < 64
    written = re.search(r"megabytes written to /tmp: (\d+)", printed)
    assert written and int(written.group(1)) < 600


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_nbgrader_autograde_uses_the_defences(plain, name):
    root, before = plain
    student = BY_STUDENT["attack-" + name].student
    autograded = nbformat.read(notebook_path(root, "autograded", ASSIGNMENT, student), as_version=4)
    reason, flagged = PLAIN[name]
    assert any(reason in finding.detail for finding in findings.read(autograded))
    got = grades(root, [student], [ASSIGNMENT])
    assert got[(student, ASSIGNMENT, "flagged")] is flagged
    assert all(value[0] in (0, None) for key, value in got.items() if key[2] != "flagged")
    assert fingerprints(root) == before
