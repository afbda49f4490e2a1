"""Submissions that would exhaust the grader: a data set or a sparse file of gigabytes, a notebook of
hundreds of MB of outputs, thousands of files. The grader's own memory (coordinator, workers, kernels)
stays bounded whatever they hold; what is over the limits of a submission is left out unread and the
student flagged with the files and their sizes; the honest student beside them keeps full marks; and
plain `nbgrader autograde` leaves the same files out."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import CLASSES_GROUP, new_course
from test_batch import automatic_scores, flags

from coursetools.course import notebook_path, put_environment_on_path
from coursetools.examples import submit

pytestmark = CLASSES_GROUP  # see conftest.py

ASSIGNMENT = "linear_network"
FULL_MARKS = 13
PEAK_BOUND = 1.5 * 2**30  # bytes: the largest process the grader made
BIN = Path(sys.executable).parent
GRADE = [BIN / "course", "grade", ASSIGNMENT, "--workers", "2", "--quiet"]
# what each bad submission holds beside the reference solution, and what its flag must say
HEAVY = {
    "sparse-1g": "data.bin (1 GB)",
    "huge-outputs": "linear_network.ipynb (200",
    "many-files": "and 4496 more",  # 5 files named, 4501 left out
}
# runs the command given and prints (on stderr, last line) the largest resident size of its processes
PEAK = ("import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)\n"
        "sys.exit(code)")


def hand_in(root, student):
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
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
    """Run `command` in `root`; return (its completed process, the largest resident size in bytes of the
    processes it made)."""
    put_environment_on_path()
    done = subprocess.run([sys.executable, "-c", PEAK, *map(str, command)], cwd=root, capture_output=True,
                          text=True, check=False)
    return done, int(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def heavy(tmp_path_factory, course_template):
    """The HEAVY submissions and the correct example, graded by `course grade`; the same class by a plain
    `nbgrader autograde`; and a 1 GB and a 10 GB sparse file, each alone in a class of its own."""
    runs = {}
    for way in ("grade", "autograde"):
        root = new_course(course_template, tmp_path_factory.mktemp(way), [ASSIGNMENT], 300,
                          examples=["correct"])
        for student in HEAVY:
            hand_in(root, student)
        command = GRADE if way == "grade" else [BIN / "nbgrader", "autograde", ASSIGNMENT, "--force"]
        runs[way] = (root, *peak_of(root, *command))
    for student in ("sparse-1g", "sparse-10g"):
        root = new_course(course_template, tmp_path_factory.mktemp(student), [], 300)
        hand_in(root, student)
        runs[student] = (root, *peak_of(root, *GRADE))
    return runs


def test_the_graders_memory_stays_bounded_whatever_is_handed_in(heavy):
    for way, (_, done, peak) in heavy.items():
        print(f"{way}: largest process {peak / 2**20:.0f} MB")
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert peak < PEAK_BOUND, f"{way}: a process of the grader reached {peak / 2**20:.0f} MB"
    one, ten = heavy["sparse-1g"][2], heavy["sparse-10g"][2]
    assert abs(one - ten) < 0.25 * max(one, ten), (one, ten)  # the size of a file does not matter


@pytest.mark.parametrize("student", sorted(HEAVY))
def test_what_is_over_the_limits_is_left_out_and_said_both_ways(heavy, student):
    root, _, _ = heavy["grade"]
    assert HEAVY[student] in flags(root)[(student, ASSIGNMENT)]
    plain, _, _ = heavy["autograde"]
    scores = [automatic_scores(way, student) for way in (root, plain)]
    assert scores[0] == scores[1]
    assert scores[0]["flagged"] is True
    points = sum(score for cell, score in scores[0].items() if cell != "flagged")
    assert points == (0 if student == "huge-outputs" else FULL_MARKS)  # a notebook over the limit: release
    autograded = root / "autograded" / student / ASSIGNMENT
    assert sum(path.stat().st_size for path in autograded.rglob("*") if path.is_file()) < 60 * 2**20
    if student == "many-files":
        assert len(list((autograded / "data").iterdir())) == 499  # 500 files, the notebook first


def test_the_honest_student_beside_them_keeps_full_marks(heavy):
    for way in ("grade", "autograde"):
        root, _, _ = heavy[way]
        scores = automatic_scores(root, "example-correct")
        assert sum(score for cell, score in scores.items() if cell != "flagged") == FULL_MARKS
        assert scores["flagged"] is False
