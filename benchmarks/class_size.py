"""What grading a few new submissions costs as the class grows: the same 8 new submissions of
linear_network graded in a course whose gradebook already holds 0, 300 and 3000 graded students.

Run by hand:  .venv/bin/python benchmarks/class_size.py [--sizes 0 300 3000] [--workers 1]
The students already graded are made with nbgrader's own Gradebook API, with failure messages for the
report (no notebook is executed). For each
size it prints the seconds of grading per new submission, of the grades export and of the class report,
the size of the gradebook and of one grading job (what a Dask worker receives), and the ratios to the
empty course.
"""

import argparse
import os
import pickle
import tempfile
import time
from pathlib import Path

import measured
import nbformat

from coursetools import batch, messages, report
from coursetools.course import (
    assignments,
    copy_course,
    export_grades,
    find_root,
    gradebook_url,
    load_config,
    nbgrader,
    notebook_path,
)
from coursetools.examples import fill_answers, read_answers, submit

ASSIGNMENT = "linear_network"
NEW = 8  # new submissions graded at every size


def past_students(root, count):
    """`count` students with a graded submission of ASSIGNMENT, written straight into the gradebook."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory

    course_id = CourseDirectory(config=load_config(root), root=str(root)).course_id
    with Gradebook(gradebook_url(root), course_id) as gradebook:
        for number in range(count):
            student = f"past-{number:05d}"
            gradebook.add_student(student)
            submission = gradebook.add_submission(ASSIGNMENT, student)
            for notebook in submission.notebooks:
                failed = {}
                for grade in notebook.grades:
                    passed = (number + len(grade.name)) % 3
                    grade.auto_score = grade.max_score if passed else 0.0
                    if not passed and grade.cell_type == "code":
                        failed[grade.name] = f"AssertionError: {grade.name} is wrong (case {number % 7})"
                messages.save(gradebook.db, ASSIGNMENT, student, notebook.name, failed, [])
            gradebook.db.commit()


def their_files(root, count):
    """The past students' autograded notebooks and feedback pages: links to a new student's, as the
    report lists them (it does not read them)."""
    for kind in ("autograded", "feedback"):
        model = root / kind / "new-0" / ASSIGNMENT
        for number in range(count):
            folder = root / kind / f"past-{number:05d}" / ASSIGNMENT
            folder.mkdir(parents=True)
            for path in model.iterdir():
                os.link(path, folder / path.name)


def new_submissions(root):
    solution = nbformat.read(notebook_path(root, "solutions", ASSIGNMENT), as_version=4)
    mistakes = fill_answers(solution, read_answers(root / "examples" / "mistakes" / f"{ASSIGNMENT}.py"))
    for number in range(NEW):
        submit(root, ASSIGNMENT, f"new-{number}", solution if number % 2 else mistakes)


def timed(action):
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def measure(root, size, workers):
    copy_course(find_root(Path(__file__).parent), root)
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(root, "generate_solution", ASSIGNMENT, "--force")
    made, _ = timed(lambda: past_students(root, size))
    new_submissions(root)
    submissions, _ = batch.survey(root, [ASSIGNMENT], assignments(root), "new-*")
    job = next(batch.make_jobs(root, submissions[:1]))
    grading, results = timed(lambda: batch.grade_class(root, [ASSIGNMENT], assignments(root), "new-*",
                                                       workers=workers, quiet=True))
    assert len(results) == NEW and not [r for r in results if r.reason], [r.reason for r in results]
    their_files(root, size)
    export, _ = timed(lambda: export_grades(root))
    written, _ = timed(lambda: report.write_report(root))
    gradebook = (root / "gradebook.db").stat().st_size
    print(f"  {size:>5} students: made in {made:6.1f} s; grading {grading / NEW:5.2f} s per new submission, "
          f"export {export:5.2f} s, report {written:5.2f} s; gradebook {gradebook / 1e6:5.1f} MB, "
          f"one job {len(pickle.dumps(job)) / 1e3:5.0f} kB", flush=True)
    return {"grading": grading / NEW, "export": export, "report": written, "job": len(pickle.dumps(job))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 300, 3000])
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    print(f"{NEW} new submissions of {ASSIGNMENT}, {args.workers} worker(s), {os.cpu_count()} cores")
    figures = {}
    with tempfile.TemporaryDirectory(prefix="class-size-") as folder:
        for size in args.sizes:
            root = Path(folder) / f"course-{size}"
            root.mkdir()
            figures[size] = measure(root, size, args.workers)
    base = figures[args.sizes[0]]
    for size in args.sizes[1:]:
        ratios = ", ".join(f"{key} {figures[size][key] / base[key]:.2f}" for key in base)
        print(f"{size} students / {args.sizes[0]}: {ratios}"
              + ("   (target: grading at most 1.10)" if size >= 3000 else ""))


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
