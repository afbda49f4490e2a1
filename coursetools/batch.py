"""Grade a whole class: nbgrader's own autograde on several submissions at once, one gradebook writer.

nbgrader grades one submission after another, and a submission that breaks it can leave that
student's old scores in the gradebook. Here every submission is a job, graded by nbgrader's
NbGraderAPI.autograde in a private scratch course (its own copy of the gradebook) by a worker
process, locally or on a Dask cluster. Jobs and results are plain data (file contents), so workers
need no access to the course directory. The coordinator alone writes the gradebook: it stores each
autograded notebook and records its grades with nbgrader's own SaveAutoGrades and AssignLatePenalties,
one submission at a time, so the gradebook ends as a serial `nbgrader autograde` would leave it.
A submission that cannot be graded (broken notebook, missing notebook, deleted grade cells, time
limit, dead kernel) gets zero automatic points in every cell that did not run, a comment and a flag
for TAs, and a line in grading_flags.csv; the others are graded all the same.
"""

import csv
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
from traitlets.config.loader import PyFileConfigLoader

from coursetools.course import read_tree, write_tree

FLAGS_FILE = "grading_flags.csv"


@dataclass
class Job:
    """One submission to grade, with everything a worker needs."""

    assignment: str
    student: str
    submission: dict  # relative path -> bytes, the student's files
    course: dict  # relative path -> bytes: nbgrader_config.py, source/<assignment>/*, gradebook.db
    problems: list = field(default_factory=list)  # found while reading the submission


@dataclass
class Result:
    assignment: str
    student: str
    autograded: dict  # relative path -> bytes, nbgrader's autograded folder (empty when it failed)
    reason: str = ""  # why the submission needs a TA's attention; empty when it graded cleanly
    seconds: float = 0.0


def load_config(root):
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def find_submissions(root, assignments):
    """(assignment, student) of every folder submitted/<student>/<assignment>, in order."""
    return sorted(
        (folder.name, folder.parent.name)
        for folder in (root / "submitted").glob("*/*")
        if folder.name in assignments and folder.is_dir() and not folder.is_symlink()
        and not folder.parent.is_symlink()
    )


def make_jobs(root, assignments):
    gradebook = (root / "gradebook.db").read_bytes()
    course_files = {}
    instructor = {}
    for assignment in assignments:
        # the instructor's files are trusted: links among them (checks.py) are followed
        instructor[assignment], _ = read_tree(root / "source" / assignment, follow_links=True)
        course_files[assignment] = {f"source/{assignment}/{name}": data
                                    for name, data in instructor[assignment].items()}
        course_files[assignment]["nbgrader_config.py"] = (root / "nbgrader_config.py").read_bytes()
        course_files[assignment]["gradebook.db"] = gradebook
    jobs = []
    for assignment, student in find_submissions(root, assignments):
        submission, problems = read_tree(root / "submitted" / student / assignment)
        problems += [f"handed in its own {name}: the course's copy replaces it" for name, data
                     in submission.items() if name in instructor[assignment] and not name.endswith(".ipynb")
                     and data != instructor[assignment][name]]
        jobs.append(Job(assignment, student, submission, course_files[assignment], problems))
    return jobs


def grade_one(job):
    """Grade one submission with nbgrader in a scratch course; runs in a worker process."""
    started = time.perf_counter()
    # in memory where the machine has a tmpfs: the scratch gradebook's commits then cost no disk syncs
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="grade-", dir=memory) as scratch:
        scratch = Path(scratch)
        write_tree(scratch, job.course)
        write_tree(scratch / "submitted" / job.student / job.assignment, job.submission)
        unreadable = notebook_problems(scratch, job)
        problems = list(job.problems) + unreadable + drop_duplicated_grade_cells(scratch, job)
        api = NbGraderAPI(config=load_config(scratch))
        outcome = api.autograde(job.assignment, job.student, force=True, create=True)
        if not outcome["success"] and not unreadable:
            problems.append(failure_reason(f"{outcome.get('error') or ''}\n{outcome.get('log') or ''}"))
        autograded, _ = read_tree(scratch / "autograded" / job.student / job.assignment)
    return Result(job.assignment, job.student, autograded if outcome["success"] else {}, "; ".join(problems),
                  time.perf_counter() - started)


def notebook_problems(scratch, job):
    """Notebooks missing from the submission, and submitted notebooks that nbformat cannot read."""
    problems = []
    expected = {p.name for p in (scratch / "source" / job.assignment).glob("*.ipynb")}
    submitted = {Path(name).name for name in job.submission if name.endswith(".ipynb") and "/" not in name}
    for name in sorted(expected - submitted):
        problems.append(f"{name} is missing (renamed or not handed in): it scores zero")
    for name in sorted(expected & submitted):
        try:
            nbformat.reads(job.submission[name].decode("utf-8"), as_version=4)
        except Exception as error:  # any reason to be unreadable is the student's, and is reported
            problems.append(f"{name} is not a readable notebook ({type(error).__name__}): it scores zero")
    return problems


def drop_duplicated_grade_cells(scratch, job):
    """Keep the first cell of every grade id: nbgrader cannot grade a notebook with duplicated grade
    cells, and the first one is the cell that nbgrader restores from the gradebook anyway."""
    problems = []
    for path in sorted((scratch / "submitted" / job.student / job.assignment).glob("*.ipynb")):
        try:
            notebook = nbformat.read(path, as_version=4)
        except Exception:  # unreadable notebooks are reported by notebook_problems
            continue
        seen, kept = set(), []
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id and grade_id in seen:
                problems.append(f"{path.name}: a second cell {grade_id!r} was removed before grading")
                continue
            seen.add(grade_id)
            kept.append(cell)
        if len(kept) < len(notebook.cells):
            notebook.cells = kept
            nbformat.write(notebook, path)
    return problems


def failure_reason(text):
    """Why nbgrader failed, in one line, from its error and log."""
    if "DeadKernelError" in text or "Kernel died" in text:
        return "the kernel died while running the notebook (a crash, os._exit or memory): it scores zero"
    errors = [line.strip() for line in text.splitlines()
              if "Error" in line and "NbGraderException" not in line]
    return f"nbgrader could not grade it: {(errors[-1] if errors else 'unknown error')[:200]}"


def record(root, result, config):
    """Store one result in the course: the autograded files, and the grades in the gradebook."""
    target = root / "autograded" / result.student / result.assignment
    if target.exists():
        shutil.rmtree(target)
    write_tree(target, result.autograded)
    coursedir = CourseDirectory(config=config, root=str(root))
    db_url = coursedir.db_url
    with Gradebook(db_url, coursedir.course_id) as gradebook:
        gradebook.update_or_create_student(result.student)
        submitted = root / "submitted" / result.student / result.assignment
        timestamp = coursedir.get_existing_timestamp(str(submitted))
        if timestamp:
            gradebook.update_or_create_submission(result.assignment, result.student, timestamp=timestamp)
        else:
            gradebook.update_or_create_submission(result.assignment, result.student)
        notebooks = [nb.name for nb in gradebook.find_assignment(result.assignment).notebooks]
    graded, found = set(), []
    for name in notebooks:
        path = target / f"{name}.ipynb"
        if not path.exists():
            continue
        notebook = nbformat.read(path, as_version=4)
        resources = {"nbgrader": {"notebook": name, "assignment": result.assignment,
                                  "student": result.student, "db_url": db_url}}
        SaveAutoGrades(config=config).preprocess(notebook, resources)
        AssignLatePenalties(config=config).preprocess(notebook, resources)
        graded |= {(name, cell.metadata["nbgrader"]["grade_id"]) for cell in notebook.cells
                   if cell.metadata.get("nbgrader", {}).get("grade")}
        errors = {output.get("ename") for cell in notebook.cells for output in cell.get("outputs", [])}
        if "MemoryError" in errors:
            found.append(f"{name}.ipynb ran out of memory (MemoryError at the kernel's memory limit)")
        found += notebook.metadata.get("grading", {}).get("problems", [])  # see coursetools.autograde
    reason = "; ".join(r for r in (result.reason, *found) if r)
    with Gradebook(db_url, coursedir.course_id) as gradebook:
        submission = gradebook.find_submission(result.assignment, result.student)
        missing = [(nb.name, grade.name) for nb in submission.notebooks for grade in nb.grades
                   if (nb.name, grade.name) not in graded]
        if missing and not reason:
            reason = f"grade cells deleted or not run: {', '.join(cell for _, cell in missing[:5])}"
        for nb in submission.notebooks:
            nb.flagged = bool(reason)
            for grade in nb.grades:
                if (nb.name, grade.name) in missing:
                    grade.auto_score = 0.0  # never an old score, never points for a cell that did not run
                    grade.needs_manual_grade = True
            for comment in nb.comments:
                if reason:
                    comment.auto_comment = f"Needs a TA: {reason}"
        gradebook.db.commit()
    return reason


def write_flags(root, results):
    """grading_flags.csv, next to grades.csv: every flagged submission with its reason (kept across runs
    for submissions that were not graded this time)."""
    path = root / FLAGS_FILE
    rows = {}
    if path.exists():
        with path.open() as file:
            rows = {(r["student"], r["assignment"]): r["reason"] for r in csv.DictReader(file)}
    for result in results:
        rows.pop((result.student, result.assignment), None)
        if result.reason:
            rows[(result.student, result.assignment)] = result.reason
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "assignment", "reason"])
        for (student, assignment), reason in sorted(rows.items()):
            writer.writerow([student, assignment, reason])


def run_jobs(jobs, workers, scheduler=None):
    """Yield a Result per job as workers finish them: local worker processes, or a Dask cluster."""
    if scheduler:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            futures = client.map(grade_one, jobs, pure=False)
            job_of = {future.key: job for future, job in zip(futures, jobs, strict=True)}
            for future in dask_completed(futures):
                yield _result_or_failure(future, job_of[future.key])
        return
    # spawn: the coordinator has threads (the progress bar); forking a threaded process is unsafe
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_one_blas_thread) as pool:
        futures = {pool.submit(grade_one, job): job for job in jobs}
        for future in as_completed(futures):
            yield _result_or_failure(future, futures[future])


def _result_or_failure(future, job):
    try:
        return future.result()
    except Exception as error:  # the worker itself failed: report this job, go on with the others
        return Result(job.assignment, job.student, {}, f"the grading worker failed: {error!r}"[:300])


def _one_blas_thread():
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def grade_class(root, assignments, workers=None, scheduler=None, quiet=False):
    """Grade every submission of `assignments`; return the results (flagged ones have a reason)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    config = load_config(root)
    jobs = make_jobs(root, assignments)
    workers = workers or os.cpu_count() or 1
    results, failed = [], 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=quiet) as progress:
        task = progress.add_task("grading", total=len(jobs), failed=0)
        for result in run_jobs(jobs, workers, scheduler):
            result.reason = record(root, result, config)
            failed += bool(result.reason)
            results.append(result)
            progress.update(task, advance=1, failed=failed)
    write_flags(root, results)
    return results
