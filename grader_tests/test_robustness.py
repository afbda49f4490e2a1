"""Submissions that would exhaust the grader: a data set or a sparse file of gigabytes, a notebook of
hundreds of MB of outputs, thousands of files; and every other kind of odd or broken submission. The
grader's own memory (coordinator, workers; kernels have their own limit) stays bounded whatever they
hold; what is over the limits of a submission is left out unread and the student flagged with the files
and their sizes; plain `nbgrader autograde` leaves the same files out; every odd submission ends graded
or flagged with a reason; and the honest student beside them keeps full marks. (Broken notebooks, time
limits and hostile code are in test_batch.py and test_attacks.py.)"""

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import psutil
import pytest
from attacks import BOMB_ANSWERS
from conftest import COURSE_GROUP, ROOT, automatic_scores, flags, new_course, with_answer_prefix
from nbgrader.api import Gradebook

from coursetools import findings, messages
from coursetools.course import gradebook_url, notebook_path, put_environment_on_path
from coursetools.examples import submit

pytestmark = COURSE_GROUP  # see conftest.py (it evens out the two groups)

ASSIGNMENT = "linear_network"
FULL_MARKS = 13
PEAK_BOUND = 1.5 * 2**30  # bytes: the grader's own processes together, at their largest
MEMORY_LOG = ROOT / ".ci" / "artifacts" / "grader_memory.txt"
BIN = Path(sys.executable).parent
GRADE = [BIN / "course", "grade", ASSIGNMENT, "--student", "*", "--workers", "2", "--quiet"]
# what each bad submission holds beside the reference solution, and what its flag must say
HEAVY = {
    "sparse-1g": "data.bin (1 GB)",
    "huge-outputs": "linear_network.ipynb (200",
    "many-files": "and 4496 more",  # 5 files named, 4501 left out
}
BOMB = "bomb-answers"  # a wrapped shim answers each call with a value of 10 or 1000 times the answer budget


def hand_in(root, student):
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    if student == BOMB:
        solution = with_answer_prefix(solution, "add_bias", BOMB_ANSWERS)
    folder = submit(root, ASSIGNMENT, student, solution).parent
    if student.startswith("sparse-"):  # gigabytes on paper, no byte on disk
        with open(folder / "data.bin", "wb") as file:
            file.truncate({"sparse-1g": 2**30, "sparse-10g": 10 * 2**30}[student])
    elif student == "huge-outputs":
        flood = nbformat.v4.new_output("stream", name="stdout", text="x" * 200 * 2**20)
        next(cell for cell in solution.cells if cell.cell_type == "code").outputs = [flood]
        (folder / f"{ASSIGNMENT}.ipynb").write_text(json.dumps(solution))
    elif student == "many-files":
        (folder / "data").mkdir()
        for number in range(5000):
            (folder / "data" / f"{number:04d}.txt").write_text(f"{number}\n")


def peak_of(root, *command):
    """Run `command` in `root`; return (the completed process, the most memory that the grader's own
    processes held at once, in bytes): the resident sizes of the command and its descendants, sampled
    every 50 ms, but the sandboxes (bubblewrap and what runs in it: kernels have a limit of their own)."""
    put_environment_on_path()
    process = subprocess.Popen(list(map(str, command)), cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        top = psutil.Process(process.pid)
        while not done.wait(0.05):
            with contextlib.suppress(psutil.Error):
                tree = [top, *top.children(recursive=True)]
                sandboxed = set()
                for member in tree:
                    with contextlib.suppress(psutil.Error):
                        if member.name() == "bwrap":
                            sandboxed |= {member.pid, *(c.pid for c in member.children(recursive=True))}
                total = 0
                for member in tree:
                    if member.pid not in sandboxed:
                        with contextlib.suppress(psutil.Error):
                            total += member.memory_info().rss
                peak = max(peak, total)

    sampler = threading.Thread(target=sample)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), peak


@pytest.fixture(scope="module")
def heavy(tmp_path_factory, course_template):
    """The HEAVY submissions and the correct example, graded by `course grade`; the same class by a plain
    `nbgrader autograde`; and a 1 GB and a 10 GB sparse file, each alone in a class of its own."""
    runs = {}
    for way in ("grade", "autograde"):
        root = new_course(course_template, tmp_path_factory.mktemp(way), [ASSIGNMENT], 300,
                          examples=["correct"])
        for student in [*HEAVY, BOMB]:
            hand_in(root, student)
        command = GRADE if way == "grade" else [BIN / "nbgrader", "autograde", ASSIGNMENT, "--force"]
        runs[way] = (root, *peak_of(root, *command))
    for student in ("sparse-1g", "sparse-10g"):
        root = new_course(course_template, tmp_path_factory.mktemp(student), [], 300)
        hand_in(root, student)
        runs[student] = (root, *peak_of(root, *GRADE))
    return runs


def report_memory(run, peak, mode="a"):
    """Print the peak, and keep it for the CI log."""
    line = f"{run}: the grader's processes held at most {peak / 2**20:.0f} MB (bound {PEAK_BOUND / 2**30} GB)"
    print(line)
    MEMORY_LOG.parent.mkdir(parents=True, exist_ok=True)
    with MEMORY_LOG.open(mode) as log:
        log.write(line + "\n")


def test_the_graders_memory_stays_bounded_whatever_is_handed_in(heavy):
    for index, (way, (_, done, peak)) in enumerate(heavy.items()):
        report_memory(way, peak, "w" if index == 0 else "a")
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert peak < PEAK_BOUND, f"{way}: the grader's processes reached {peak / 2**20:.0f} MB"
    one, ten = heavy["sparse-1g"][2], heavy["sparse-10g"][2]
    assert abs(one - ten) < 0.25 * max(one, ten), (one, ten)  # the size of a file does not matter


@pytest.mark.parametrize("student", sorted(HEAVY))
def test_what_is_over_the_limits_is_left_out_and_said_both_ways(heavy, student):
    root, _, _ = heavy["grade"]
    assert HEAVY[student] in flags(root)[(student, ASSIGNMENT)]
    plain, _, _ = heavy["autograde"]
    with Gradebook(gradebook_url(plain)) as gradebook:
        _, recorded = messages.read(gradebook.db)
    said = recorded[(recorded["student"] == student) & (recorded["assignment"] == ASSIGNMENT)]
    assert HEAVY[student] in findings.reason(messages.as_findings(said))  # plain nbgrader says the same
    scores = [automatic_scores(way, student) for way in (root, plain)]
    assert scores[0] == scores[1]
    assert scores[0]["flagged"] is True
    points = sum(score for cell, score in scores[0].items() if cell != "flagged")
    assert points == (0 if student == "huge-outputs" else FULL_MARKS)  # a notebook over the limit: release
    autograded = root / "autograded" / student / ASSIGNMENT
    assert sum(path.stat().st_size for path in autograded.rglob("*") if path.is_file()) < 60 * 2**20
    if student == "many-files":
        assert len(list((autograded / "data").iterdir())) == 499  # 500 files, the notebook first


@pytest.mark.parametrize("way", ["grade", "autograde"])
def test_answers_that_would_decode_to_gigabytes_fail_their_calls_both_ways(heavy, way):
    """Each of the bomb's answers fails its own call with its size (the peak above stays under the bound),
    every test cell of the notebook is judged, and the student scores nothing."""
    root, _, _ = heavy[way]
    notebook = nbformat.read(notebook_path(root, "autograded", ASSIGNMENT, BOMB), as_version=4)
    errors = [output["evalue"] for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    tests = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")
             and cell.cell_type == "code" and not cell.metadata["nbgrader"].get("solution")]
    assert len(errors) == len(tests), errors
    assert any("GB; at most 64 MB" in error for error in errors), errors
    assert all("answered a value of" in error or "of text" in error or "not data" in error
               for error in errors), errors
    scores = automatic_scores(root, BOMB)
    assert sum(score for cell, score in scores.items() if cell != "flagged") == 0


def test_the_honest_student_beside_them_keeps_full_marks(heavy):
    for way in ("grade", "autograde"):
        root, _, _ = heavy[way]
        scores = automatic_scores(root, "example-correct")
        assert sum(score for cell, score in scores.items() if cell != "flagged") == FULL_MARKS
        assert scores["flagged"] is False


# every other kind of odd submission of linear_network, graded in one run, and what must come of it: None
# (graded, any points, flagged with a reason or not) or (words of the flag, "" for none; automatic points)
ODD = {
    "empty-file": ("not a readable notebook", 0),
    "json-not-a-notebook": ("not a readable notebook", 0),
    "unknown-nbformat": ("not a readable notebook", 0),
    "deep-json": ("not a readable notebook", 0),
    "invalid-utf8": ("not a readable notebook", 0),
    "odd-file-names": ("", FULL_MARKS),
    "link-loop-and-fifo": ("not a regular file", FULL_MARKS),
    "unknown-kernelspec": ("", FULL_MARKS),
    "20000-cells": ("", FULL_MARKS),
    "print-50-mb": ("printed more than", FULL_MARKS),
    "2000-threads": None,
    "array-3-gb": None,  # within the kernel's 4 GiB of address space, or a MemoryError
    "closed-stdout": None,
    "zoë ñ": ("", FULL_MARKS),
    "with space": ("", FULL_MARKS),
    "loop-variable-_i": ("", FULL_MARKS),  # a name IPython's history also uses: no score changes for it
}
# code put before the add_bias answer
ODD_CODE = {
    "print-50-mb": "import sys\n\nfor _ in range(50):\n    sys.stdout.write('x' * 2**20)",
    "2000-threads": "import threading\nimport time\n\nfor _ in range(2000):\n"
                    "    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
    "array-3-gb": "import numpy as np\n\nkept = np.ones(3 * 2**30 // 8)",
    "closed-stdout": "import os\n\nos.close(1)\nos.close(2)",
    "loop-variable-_i": "total = 0\nfor _i in range(3):\n    total += _i",
}


def hand_in_odd(root, student, solution):
    if student in ODD_CODE:
        submit(root, ASSIGNMENT, student, with_answer_prefix(solution, "add_bias", ODD_CODE[student]))
        return
    if student == "20000-cells":  # the solution, notes up to 19 500 cells, and 500 code cells that pass
        solution = nbformat.from_dict(json.loads(json.dumps(solution)))
        notes = 19_500 - len(solution.cells)
        solution.cells += [nbformat.v4.new_markdown_cell(f"note {n}") for n in range(notes)]
        solution.cells += [nbformat.v4.new_code_cell("pass") for _ in range(500)]
    path = submit(root, ASSIGNMENT, student, solution)
    folder, text = path.parent, path.read_text()
    if student == "empty-file":
        path.write_bytes(b"")
    elif student == "json-not-a-notebook":
        path.write_text('{"cells": 3}')
    elif student == "unknown-nbformat":
        path.write_text('{"nbformat": 99, "nbformat_minor": 0, "cells": [], "metadata": {}}')
    elif student == "deep-json":
        path.write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif student == "invalid-utf8":
        path.write_bytes(text.encode().replace(b"import", b"\xff\xfeimport", 1))
    elif student == "odd-file-names":
        (folder / "new\nline.txt").write_text("1")
        (folder / os.fsdecode(b"caf\xe9.txt")).write_text("2")
    elif student == "link-loop-and-fifo":
        (folder / "a").symlink_to("b")
        (folder / "b").symlink_to("a")
        os.mkfifo(folder / "pipe")
    elif student == "unknown-kernelspec":
        path.write_text(text.replace('"name": "python3"', '"name": "no-such-kernel"'))


@pytest.fixture(scope="module")
def odd(tmp_path_factory, course_template):
    """The ODD submissions, a notebook of 20 000 cells and the correct example, graded by `course grade`
    in one run; the run's peak memory."""
    root = new_course(course_template, tmp_path_factory.mktemp("odd"), [ASSIGNMENT], 300,
                      examples=["correct"])
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    for student in ODD:
        hand_in_odd(root, student, solution)
    done, peak = peak_of(root, *GRADE)
    return root, done, peak


def test_every_odd_submission_ends_graded_or_flagged_with_a_reason(odd):
    root, done, peak = odd
    report_memory("odd submissions", peak)
    assert done.returncode == 1, done.stdout + done.stderr  # some need a TA
    assert peak < PEAK_BOUND
    reasons = flags(root)
    for student, expected in ODD.items():
        scores = automatic_scores(root, student)
        reason = reasons.get((student, ASSIGNMENT), "")
        assert bool(reason) == scores["flagged"], student
        if expected:
            flag, points = expected
            assert (flag in reason) if flag else not reason, (student, reason)
            assert points_of(scores) == points, (student, scores)
    assert points_of(automatic_scores(root, "example-correct")) == FULL_MARKS


def points_of(scores):
    return sum(score for cell, score in scores.items() if cell != "flagged")
