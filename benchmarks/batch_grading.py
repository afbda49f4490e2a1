"""How fast a class is graded: plain notebook execution (the lower bound), serial `nbgrader autograde`,
and `course grade` at 1 and at N workers, and at 1 worker without the sandbox, on the same synthetic
class, in one run; then what the sandbox costs per notebook.

Run by hand:  .venv/bin/python benchmarks/batch_grading.py [--copies 4] [--workers 2]
The class: every assignment, handed in by the example students (correct and with mistakes), `copies`
times each: 5 assignments x 2 examples x 4 copies = 40 submissions. Every kernel runs with one BLAS thread.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from coursetools.course import assignments, copy_course, find_root, nbgrader, notebook_path
from coursetools.examples import fill_answers, read_answers, submit


def make_class(root, copies):
    """A fresh course in `root` with the synthetic class handed in; return [(assignment, student)]."""
    copy_course(find_root(Path(__file__).parent), root)
    nbgrader(root, "generate_assignment", "*", "--force")
    nbgrader(root, "generate_solution", "*", "--force")
    handed_in = []
    for assignment in assignments(root):
        solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
        mistakes = fill_answers(solution, read_answers(root / "examples" / "mistakes" / f"{assignment}.py"))
        for copy in range(copies):
            for kind, notebook in (("correct", solution), ("mistakes", mistakes)):
                student = f"student-{kind}-{copy}"
                submit(root, assignment, student, notebook)
                handed_in.append((assignment, student))
    return handed_in


def plain_execution(root, handed_in):
    """Execute every submitted notebook with nbclient, one after another: no grading at all."""
    for assignment, student in handed_in:
        folder = root / "submitted" / student / assignment
        shutil.copy(root / "source" / assignment / "checks.py", folder / "checks.py")
        notebook = nbformat.read(folder / f"{assignment}.ipynb", as_version=4)
        NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(folder)}}).execute()


def timed(label, action):
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {seconds:8.1f} s", flush=True)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    course = [str(Path(sys.executable).parent / "course")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        names = ("plain", "serial", "ours-1", f"ours-{args.workers}", "ours-1-no-sandbox")
        roots = {name: Path(folder) / name for name in names}
        for root in roots.values():
            root.mkdir()
            handed_in = make_class(root, args.copies)
        print(f"{len(handed_in)} submissions, {os.cpu_count()} cores")
        results["plain"] = timed("plain nbclient execution",
                                 lambda: plain_execution(roots["plain"], handed_in))
        results["serial"] = timed("serial nbgrader autograde",
                                  lambda: nbgrader(roots["serial"], "autograde", "*", "--force"))
        for workers in (1, args.workers):
            results[f"ours-{workers}"] = timed(
                f"course grade --workers {workers}",
                lambda w=workers: subprocess.run([*course, "grade", "--workers", str(w), "--quiet"],
                                                 cwd=roots[f"ours-{w}"], capture_output=True, check=True),
            )
        results["ours-1-no-sandbox"] = timed(
            "course grade --workers 1 --no-sandbox",
            lambda: subprocess.run([*course, "grade", "--workers", "1", "--quiet", "--no-sandbox"],
                                   cwd=roots["ours-1-no-sandbox"], capture_output=True, check=True),
        )
    plain, serial, one, many = (results[k] for k in ("plain", "serial", "ours-1", f"ours-{args.workers}"))
    bare = results["ours-1-no-sandbox"]
    print(f"sandbox: {(one - bare) / len(handed_in) * 1000:+.0f} ms per notebook "
          f"(course grade at 1 worker with / without it: {one / bare:.3f})")
    print(f"course grade at 1 worker / plain execution:        {one / plain:.3f}  (target: at most 1.05)")
    print(f"serial nbgrader / plain execution:                 {serial / plain:.3f}")
    print(f"serial nbgrader / course grade at {args.workers} workers:       {serial / many:.2f}  "
          "(target: at least 1.8)")


if __name__ == "__main__":
    main()
