"""What one late submission costs, end to end: `course grade --student NAME` in a course whose class is
already graded, against the plain nbclient execution of the same notebook (no grading at all).

Run by hand:  .venv/bin/python benchmarks/late_submission.py [--repeat 3] [--keep FOLDER]
The course: a scratch copy with every assignment handed in by the example students (correct and with
mistakes) and graded with `course grade`; then one student hands in linear_network a day after its due
date. Each repeat times, one after the other, `course grade --student late-student --quiet` (the
command's whole run: its start, grading, late penalty, feedback, grades.csv, similarity and class report)
and the plain execution of the handed-in notebook in a new kernel, with checks.py beside it; the ratio
divides the medians. The command's run is also cut at moments, read in its own process: the kernel
template started, the first job handed to grading (a worker, or the coordinator itself for a single
submission), and the first result back in the coordinator. Every kernel runs with one BLAS thread.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import measured
import nbformat
from nbclient import NotebookClient

from coursetools.course import assignments, copy_course, find_root, gradebook_url, nbgrader, notebook_path
from coursetools.examples import submit, submit_examples

ASSIGNMENT = "linear_network"
STUDENT = "late-student"
DUE = "2026-01-10 12:00"
HANDED_IN = "2026-01-11 15:30:00.000000 UTC"  # a day and a bit late: a penalty of two started days
TARGET = 1.5

# `course grade` in a process of its own that also says when it handed the first job to grading (a worker,
# or the coordinator itself) and when the first result came back to be recorded (seconds since the
# benchmark started the process); the grading modules are patched once the command imports them
TIMED_GRADE = """
import json, sys, time
launched = float(sys.argv[1])
moments = {}
moments["imports of the command"] = -time.time()
from coursetools import cli
moments["imports of the command"] += time.time()
grade_and_report = cli.grade_and_report
def timed_grade_and_report(*args, **kwargs):
    moments.setdefault("kernel template started", time.time() - launched)
    from coursetools import batch, record
    make_jobs, add = batch.make_jobs, record.Recorder.add
    def first_job(*args, **kwargs):
        for job in make_jobs(*args, **kwargs):
            moments.setdefault("first job handed to grading", time.time() - launched)
            yield job
    def first_result(self, result):
        moments.setdefault("first result back", time.time() - launched)
        return add(self, result)
    batch.make_jobs, record.Recorder.add = first_job, first_result
    return grade_and_report(*args, **kwargs)
cli.grade_and_report = timed_grade_and_report
try:
    cli.main(sys.argv[2:])
finally:
    moments["whole run"] = time.time() - launched
    print("MOMENTS " + json.dumps(moments), file=sys.stderr)
"""


def make_course(root):
    """A scratch course with a graded class, the due date of ASSIGNMENT past, and the late notebook handed
    in; return the late notebook's path."""
    copy_course(find_root(Path(__file__).parent), root)
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")
    for assignment in assignments(root):
        submit_examples(root, assignment, kinds=["correct", "mistakes"])
    with open(root / "assignments.csv", "w") as course_file:
        course_file.write("assignment,due,canvas_id,moodle_item\n"
                          + "".join(f"{name},{DUE if name == ASSIGNMENT else ''},,\n"
                                    for name in assignments(root)))
    print("grading the class: course grade --student 'example-*'", flush=True)
    started = time.perf_counter()
    course = str(Path(sys.executable).parent / "course")
    subprocess.run([course, "grade", "--student", "example-*", "--quiet"], cwd=root, capture_output=True,
                   check=False)  # exit code 1: the mistakes are flagged
    print(f"  {time.perf_counter() - started:.1f} s", flush=True)
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    late = submit(root, ASSIGNMENT, STUDENT, solution)
    (late.parent / "timestamp.txt").write_text(HANDED_IN)
    return late


def course_grade(root):
    """Seconds of `course grade --student STUDENT`, and the moments of its run."""
    launched = time.time()
    completed = subprocess.run([sys.executable, "-c", TIMED_GRADE, repr(launched), "grade", "--student",
                                STUDENT, "--quiet"], cwd=root, capture_output=True, text=True, check=False)
    seconds = time.time() - launched
    marker = [line for line in completed.stderr.splitlines() if line.startswith("MOMENTS ")]
    if completed.returncode != 0 or not marker:
        raise SystemExit(f"course grade failed ({completed.returncode}):\n"
                         f"{completed.stdout}{completed.stderr}")
    return seconds, json.loads(marker[-1].removeprefix("MOMENTS "))


def plain_execution(late, work):
    """Seconds of executing the handed-in notebook with nbclient in a new kernel, checks.py beside it."""
    folder = Path(work) / "plain"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    shutil.copy(late, folder)
    shutil.copy(find_root(Path(__file__).parent) / "source" / ASSIGNMENT / "checks.py", folder)
    started = time.perf_counter()
    notebook = nbformat.read(folder / late.name, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - started


def late_score(root):
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(root)) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, STUDENT)
        return submission.score, submission.late_submission_penalty, submission.max_score


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="FOLDER", help="make the course here and leave it (else a "
                        "temporary folder); a folder that holds one already is used as it is")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    with tempfile.TemporaryDirectory(prefix="late-") as folder:
        root = Path(args.keep or folder).resolve()
        root.mkdir(parents=True, exist_ok=True)
        late = (notebook_path(root, "submitted", ASSIGNMENT, STUDENT) if (root / "gradebook.db").exists()
                else make_course(root))
        print(f"one late submission of {ASSIGNMENT} in a class of "
              f"{len(list((root / 'autograded').glob('*/*')))} graded submissions, {os.cpu_count()} cores")
        graded, plain, moments = [], [], []
        for _ in range(args.repeat):
            seconds, moment = course_grade(root)
            graded.append(seconds)
            moments.append(moment)
            plain.append(plain_execution(late, folder))
            print(f"  course grade --student {STUDENT}: {seconds:5.2f} s   "
                  f"plain execution: {plain[-1]:5.2f} s", flush=True)
        score, penalty, most = late_score(root)
    print(f"\nmedians of {args.repeat}: course grade {statistics.median(graded):.2f} s, plain execution "
          f"{statistics.median(plain):.2f} s")
    for name in moments[0]:
        print(f"  {name + ':':<32} {statistics.median(moment[name] for moment in moments):5.2f} s")
    print(f"late submission scored {score:g} of {most:g} (late penalty {penalty:g})")
    ratio = statistics.median(graded) / statistics.median(plain)
    print(f"course grade --student / plain execution: {ratio:.2f}   (target: at most {TARGET})")


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
