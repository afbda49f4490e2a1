"""Grade a whole class: nbgrader's own autograde on several submissions at once, one gradebook writer.

nbgrader grades one submission after another, and a submission that breaks it can leave that
student's old scores in the gradebook. Here every submission is a job, graded by nbgrader's
NbGraderAPI.autograde in a private scratch course by a worker process, locally or on a Dask cluster,
which also writes the student's feedback. Jobs and results are plain data (file contents), so workers
need no access to the course directory; a job's gradebook holds the assignment's definition alone,
never the class's grades, so its size does not grow with the class. The coordinator alone
writes the gradebook (coursetools.record): it stores each autograded notebook and records its grades with
nbgrader's own SaveAutoGrades and AssignLatePenalties, a few submissions per transaction, so the gradebook
ends as a serial `nbgrader autograde` would leave it.
A submission that cannot be graded (broken notebook, missing or renamed notebook, deleted grade cells,
time limit, dead kernel) gets zero automatic points in every cell that did not run, a comment and a flag
for TAs, a line in grading_flags.csv and a feedback page that tells the student why; the others are
graded all the same. What is handed in where no assignment can be found (a misspelt assignment folder,
a notebook outside any folder) is reported the same way.
"""

import contextlib
import difflib
import fnmatch
import os
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import forkserver, get_context
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy import text
from sqlalchemy.orm import scoped_session, sessionmaker

from coursetools import findings
from coursetools.course import (
    EXAMPLE_STUDENT_PREFIX,
    ONE_BLAS_THREAD,
    assignment_folder,
    load_config,
    read_tree,
    write_tree,
)
from coursetools.findings import Finding
from coursetools.grading import intake, kernel, references
from coursetools.grading.feedback import notice_page
from coursetools.grading.limits import SubmissionLimits
from coursetools.record import Recorder

JOB_GRADEBOOK = "job_gradebook.db"  # in a worker's scratch course: the assignment's definition alone
IN_PROCESS_JOBS = 1  # submissions as few as this are graded in the coordinator (grade_in_process)


@dataclass
class Job:
    """One submission to grade, with everything a worker needs."""

    assignment: str
    student: str
    submission: dict  # relative path -> bytes, the student's files
    course: dict  # relative path -> bytes: nbgrader_config.py, source/<assignment>/*, and JOB_GRADEBOOK
    findings: list = field(default_factory=list)  # found while reading the submission


@dataclass
class Result:
    assignment: str
    student: str
    autograded: dict  # relative path -> bytes, nbgrader's autograded folder (empty when it failed)
    feedback: dict = field(default_factory=dict)  # relative path -> bytes, the student's feedback pages
    findings: list = field(default_factory=list)  # [Finding]: all of them, once recorded
    seconds: float = 0.0
    graded: bool = True  # False: nothing to grade (no such assignment); nothing goes to the gradebook

    @property
    def reason(self):
        """Why the submission needs a TA's attention; empty when it graded cleanly."""
        return findings.reason(self.findings)


def survey(root, assignments, known, students=None):
    """(assignment, student) of every folder submitted/<student>/<assignment> of `assignments`, in order,
    and a Result for everything under submitted/ that cannot be graded as an assignment of `known`; only
    for students whose id matches the glob pattern `students` (None: every student but the examples,
    which are graded when asked for, e.g. with "example-*")."""
    found, strays = [], []
    submitted = root / "submitted"
    for student in sorted(submitted.iterdir()) if submitted.is_dir() else []:
        if not (fnmatch.fnmatchcase(student.name, students) if students
                else not student.name.startswith(EXAMPLE_STUDENT_PREFIX)):
            continue
        if student.is_symlink() or not student.is_dir():
            strays.append(_stray("", student.name, "not-in-a-folder",
                                 f"submitted/{student.name} is not a student's folder: expected "
                                 "submitted/<student>/<assignment>/; not graded"))
            continue
        for folder in sorted(student.iterdir()):
            where = f"submitted/{student.name}/{folder.name}"
            if folder.name in known and folder.is_dir() and not folder.is_symlink():
                if folder.name in assignments:
                    found.append((folder.name, student.name))
            elif folder.is_symlink() or not folder.is_dir():
                name = Path(folder.name).stem
                expected = (f"submitted/{student.name}/{name}/{folder.name}" if name in known
                            else f"submitted/{student.name}/<assignment>/")
                strays.append(_stray(student.name, folder.name, "not-in-a-folder",
                                     f"found {where}, which is not an assignment folder; expected "
                                     f"{expected}; not graded"))
            else:
                close = difflib.get_close_matches(folder.name, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                strays.append(_stray(student.name, folder.name, "unknown-assignment",
                                     f"found {where}/, which is not an assignment of this course{hint}; "
                                     f"expected one of {', '.join(known)}; not graded"))
    return found, strays


def _stray(student, name, kind, detail):
    return Result(name, student, {}, findings=[Finding(kind, detail)], graded=False)


def make_jobs(root, submissions):
    """A Job per (assignment, student) of `submissions`, made one at a time as they are asked for: a job
    holds its submission's files, so a class is never in memory at once. What grading leaves out of a
    submission (links, files beyond the course's SubmissionLimits) stays unread (grading/intake.py)."""
    config = load_config(root)
    coursedir = CourseDirectory(config=config, root=str(root))
    limits = SubmissionLimits(config=config)
    course_files, instructor, releases = {}, {}, {}

    def read(assignment):  # what every job of an assignment carries: read when its first job is made
        # the instructor's files are trusted: links among them (checks.py) are followed
        source = assignment_folder(coursedir, "source", assignment)
        instructor[assignment], _ = read_tree(source, follow_links=True)
        course_files[assignment] = {f"{source.relative_to(coursedir.root).as_posix()}/{name}": data
                                    for name, data in instructor[assignment].items()}
        course_files[assignment]["nbgrader_config.py"] = (root / "nbgrader_config.py").read_bytes()
        course_files[assignment][JOB_GRADEBOOK] = definition_gradebook(coursedir.db_url, coursedir.course_id,
                                                                      assignment)
        release = assignment_folder(coursedir, "release", assignment)
        releases[assignment] = {path.name: path for path in release.glob("*.ipynb")}

    for assignment, student in submissions:
        if assignment not in course_files:
            read(assignment)
        folder = assignment_folder(coursedir, "submitted", assignment, student)
        try:
            submission, taken = intake.read_submission(folder, releases[assignment], limits)
        except OSError as error:  # changed or removed while it was read: this submission alone fails
            yield Job(assignment, student, {}, course_files[assignment], [intake.unreadable_submission(
                folder.relative_to(coursedir.root).as_posix(), error)])
            continue
        found = taken.findings() + intake.own_course_files(submission, instructor[assignment])
        yield Job(assignment, student, submission, course_files[assignment], found)


def definition_gradebook(db_url, course_id, assignment):
    """The bytes of a new SQLite gradebook that holds `assignment`'s definition alone (its notebooks and
    cells, as nbgrader generate_assignment recorded them), no student and no grade: what nbgrader's
    autograde in a worker needs, a few kilobytes for a class of any size."""
    # in memory where the machine has a tmpfs: nbgrader commits each cell it adds
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="job-gradebook-", dir=memory) as folder:
        path = Path(folder) / JOB_GRADEBOOK
        with Gradebook(db_url, course_id) as course:
            # the course's schema version, written first: nbgrader then sees a gradebook that exists and
            # does not start `alembic heads` to learn it (seconds on a busy machine, every `course grade`)
            version = course.db.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            with contextlib.closing(sqlite3.connect(path)) as new, new:
                new.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
                new.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (version,))
            with Gradebook(f"sqlite:///{path}", course_id) as job:
                try:
                    defined = course.find_assignment(assignment)
                except MissingEntry:  # never released: nbgrader's autograde will say so, for every job
                    return path.read_bytes()
                job.add_assignment(assignment, duedate=defined.duedate)
                for notebook in defined.notebooks:
                    job.add_notebook(notebook.name, assignment, kernelspec=notebook.kernelspec)
                    for cell in notebook.grade_cells:
                        job.add_grade_cell(cell.name, notebook.name, assignment, max_score=cell.max_score,
                                           cell_type=cell.cell_type)
                    for cell in notebook.task_cells:
                        job.add_task_cell(cell.name, notebook.name, assignment, max_score=cell.max_score,
                                          cell_type=cell.cell_type)
                    for cell in notebook.solution_cells:
                        job.add_solution_cell(cell.name, notebook.name, assignment)
                    for cell in notebook.source_cells:
                        job.add_source_cell(cell.name, notebook.name, assignment, cell_type=cell.cell_type,
                                            locked=cell.locked, source=cell.source, checksum=cell.checksum)
        return path.read_bytes()


def grade_one(job):
    """Grade one submission with nbgrader in a scratch course and write its feedback; runs in a worker."""
    started = time.perf_counter()
    # in memory where the machine has a tmpfs: the scratch gradebook's commits then cost no disk syncs
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="grade-", dir=memory) as scratch:
        scratch = Path(scratch)
        write_tree(scratch, job.course)
        config = load_config(scratch)
        coursedir = CourseDirectory(config=config, root=str(scratch))
        submitted = assignment_folder(coursedir, "submitted", job.assignment, job.student)
        write_tree(submitted, job.submission)
        source = assignment_folder(coursedir, "source", job.assignment)
        expected = sorted(path.stem for path in source.glob("*.ipynb"))
        unreadable = intake.notebook_findings(expected, job.submission)
        found = list(job.findings) + unreadable + intake.drop_duplicated_grade_cells(submitted)
        # the job's own gradebook, whatever db_url the course uses: a worker never opens the course's
        config.CourseDirectory.db_url = f"sqlite:///{scratch / JOB_GRADEBOOK}"
        config.RecordMessages.enabled = False  # record() keeps the messages, in the course's gradebook
        api = NbGraderAPI(config=config)
        with one_engine(config.CourseDirectory.db_url):
            outcome = api.autograde(job.assignment, job.student, force=True, create=True)
        if not outcome["success"] and not unreadable:
            found.append(failure_finding(f"{outcome.get('error') or ''}\n{outcome.get('log') or ''}"))
        autograded_folder = assignment_folder(coursedir, "autograded", job.assignment, job.student)
        if outcome["success"]:
            # the autograded notebooks carry every finding, for the coordinator, TAs and the feedback
            for path in autograded_folder.glob("*.ipynb"):  # nbgrader validated it as it wrote it
                notebook = nbformat.reader.reads(path.read_text(encoding="utf-8"))
                for finding in found:
                    findings.add(notebook, finding)
                path.write_text(nbformat.v4.writes(notebook), encoding="utf-8")
            with one_engine(config.CourseDirectory.db_url):
                api.generate_feedback(job.assignment, job.student, force=True)
            autograded, _ = read_tree(autograded_folder)
        else:
            autograded = {}
        feedback, _ = read_tree(assignment_folder(coursedir, "feedback", job.assignment, job.student))
    for name in expected:  # a notebook that could not be graded gets a page that says why
        if f"{name}.html" not in feedback:
            feedback[f"{name}.html"] = notice_page(job.assignment, f"{name}.ipynb", found).encode()
    return Result(job.assignment, job.student, autograded, feedback, found, time.perf_counter() - started)


_engines = {}  # the db_url of a job's gradebook -> its engine (None until the first Gradebook opens it)
_gradebook_init, _gradebook_close = Gradebook.__init__, Gradebook.close


def _init_on_shared_engine(self, db_url, course_id="default_course", authenticator=None):
    engine = _engines.get(db_url)
    if engine is None:  # not a job's gradebook, or its first opening: nbgrader's own
        _gradebook_init(self, db_url, course_id, authenticator)
        if db_url in _engines:
            _engines[db_url] = self.engine
        return
    self.engine = engine
    self.db = scoped_session(sessionmaker(autoflush=True, bind=engine, future=True))
    self.check_course(course_id=course_id)
    self.course_id, self.authenticator = course_id, authenticator


def _close_keeping_a_shared_engine(self):
    if self.engine in tuple(_engines.values()):  # a copy: other threads of a Dask worker change it
        self.db.remove()
    else:
        _gradebook_close(self)


@contextlib.contextmanager
def one_engine(db_url):
    """Inside, every nbgrader Gradebook of `db_url` (a job's own gradebook) shares one database engine, and
    the schema is checked once: nbgrader's autograde and feedback open a Gradebook for each step (a dozen
    per job), and each made an engine, read the schema and created the missing tables anew."""
    Gradebook.__init__, Gradebook.close = _init_on_shared_engine, _close_keeping_a_shared_engine
    _engines[db_url] = None
    try:
        yield
    finally:
        engine = _engines.pop(db_url, None)
        if engine is not None:
            engine.dispose()


def failure_finding(text):
    """Why nbgrader failed, in one line, from its error and log."""
    if "DeadKernelError" in text or "Kernel died" in text:
        return Finding("kernel-died", "the kernel died while running the notebook (a crash, os._exit or "
                       "memory): it scores zero",
                       student="Python stopped while your notebook ran, so it scored zero.")
    errors = [line.strip() for line in text.splitlines()
              if "Error" in line and "NbGraderException" not in line]
    error = (errors[-1] if errors else "unknown error")[:200]
    return Finding("not-graded", f"nbgrader could not grade it: {error}",
                   student="Your notebook could not be graded, so it scored zero: a TA will look at it.")


def run_jobs(jobs, workers, scheduler=None):
    """Yield a Result per job as workers finish them: local worker processes, or a Dask cluster. Jobs are
    taken from `jobs` as workers free up, at most two per worker in flight, so the coordinator's memory
    does not grow with the class."""
    if scheduler:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            finished, job_of = dask_completed(), {}
            for job in jobs:
                while finished.count() >= 2 * max(sum(client.nthreads().values()), 1):
                    future = next(finished)
                    yield _result_or_failure(future, job_of.pop(future.key))
                future = client.submit(grade_one, job, pure=False)
                job_of[future.key] = job
                finished.add(future)
            for future in finished:
                yield _result_or_failure(future, job_of.pop(future.key))
        return
    # forkserver: the coordinator has threads (the progress bar), so forking it is unsafe; workers are
    # forked from a server process that imports the grading modules once for all of them
    context = start_worker_server()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(_shared_with_workers(),)) as pool:
        running = {}
        for job in jobs:
            while len(running) >= 2 * workers:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield _result_or_failure(future, running.pop(future))
            try:
                running[pool.submit(grade_one, job)] = job
            except BrokenProcessPool as error:  # a worker died (killed, out of memory): no job starts
                yield _worker_failed(job, error)
        for future in as_completed(running):
            yield _result_or_failure(future, running[future])


def grade_in_process(jobs):
    """Yield a Result per job, graded one after another in this process: for a single submission (a late
    one), which then waits for no worker server's imports. The kernels are still separate, sandboxed
    processes; a grading that fails becomes a finding, as a failed worker does."""
    os.environ.update(ONE_BLAS_THREAD)  # as a worker has it
    for job in jobs:
        try:
            result = grade_one(job)
        except Exception as error:  # as _result_or_failure: report this job, go on
            result = _worker_failed(job, error)
        yield result


def _result_or_failure(future, job):
    try:
        return future.result()
    except Exception as error:  # the worker itself failed: report this job, go on with the others
        return _worker_failed(job, error)


def _worker_failed(job, error):
    failed = Finding("worker-failed", f"the grading worker failed: {error!r}"[:300],
                     student="Your notebook could not be graded, so it scored zero: a TA will look at it.")
    return Result(job.assignment, job.student, {}, findings=[failed])


def start_worker_server():
    """Start the server process that forks the local workers (it imports the grading modules meanwhile);
    return its multiprocessing context. A worker asked for before the server's imports end waits for them."""
    context = get_context("forkserver")
    context.set_forkserver_preload(["coursetools.batch"])
    os.environ.update(ONE_BLAS_THREAD)  # before the server imports numpy
    forkserver.ensure_running()
    return context


# what a grading run tells its workers (the server that forks them may be older than this run)
WORKER_VARIABLES = (kernel.NO_SANDBOX_VARIABLE, kernel.TEMPLATE_VARIABLE, references.REFERENCES_VARIABLE)


def _shared_with_workers():
    return {name: os.environ.get(name) for name in WORKER_VARIABLES}


def _start_worker(variables):
    os.environ.update(ONE_BLAS_THREAD)
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def grade_class(root, assignments, known, students=None, workers=None, scheduler=None, quiet=False,
                template=None):
    """Grade every submission of `assignments` (of the course's `known` assignments) by the students whose
    id matches `students` (None: all but the examples); return the results, those of what could not be
    graded as an assignment included (flagged ones have a reason). `template`: a kernel template already
    started for this run (kernel.start_shared_template), stopped at the end; else one is started here
    (none for a Dask scheduler: each worker starts its own)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    config = load_config(root)
    # one kernel template for every worker of this machine, importing the libraries while the rest starts
    if template is None and not scheduler:  # a Dask worker starts its own, where it runs
        template = kernel.start_shared_template(config)
    submissions, results = survey(root, assignments, known, students)
    # a single submission is graded here: a worker server would import the grading modules anew first
    in_process = not scheduler and len(submissions) <= IN_PROCESS_JOBS
    if not scheduler and not in_process:
        # after the template: on a busy machine its imports come first, they are the longest wait; the
        # server's imports overlap with the template's and with reading the class
        start_worker_server()
    # reference results computed once for the whole run, not once per worker
    memory = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    shared_references = tempfile.mkdtemp(prefix="references-", dir=memory)
    os.environ[references.REFERENCES_VARIABLE] = shared_references
    jobs = make_jobs(root, submissions)  # made as workers free up
    workers = workers or os.cpu_count() or 1
    failed = len(results)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]}"), TimeRemainingColumn()]
    with Progress(*columns, disable=quiet) as progress, contextlib.ExitStack() as stack:
        if template:
            stack.callback(template.stop)
        stack.callback(shutil.rmtree, shared_references, ignore_errors=True)
        stack.callback(os.environ.pop, references.REFERENCES_VARIABLE, None)
        # the one writer of the gradebook; leaving the stack, however, writes the grades still waiting
        recorder = stack.enter_context(Recorder(root, config))
        task = progress.add_task("grading", total=len(submissions), failed=0)
        for result in grade_in_process(jobs) if in_process else run_jobs(jobs, workers, scheduler):
            results.append(result)
            written = recorder.add(result)
            failed += sum(bool(result.reason) for result in written)
            progress.update(task, advance=1, failed=failed)
        failed += sum(bool(result.reason) for result in recorder.flush())
        progress.update(task, failed=failed)
    findings.update_flags(root, {(result.student, result.assignment): result.reason for result in results})
    return results
