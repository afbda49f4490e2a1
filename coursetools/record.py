"""Storing graded submissions in the course: the coordinator of a grading run is the gradebook's one writer.

A result's files (autograded notebooks, feedback pages) are written as soon as it comes back. Its grades
are written with nbgrader's own steps (SaveAutoGrades, then AssignLatePenalties' late penalty), so the
gradebook ends as a serial `nbgrader autograde` would leave it; but nbgrader opens the gradebook anew for
each step and commits after every cell, each commit a disk sync. Here one gradebook, opened once per run,
takes the grades of the results that came back close together in one transaction: every BATCH results,
or once the oldest waiting result is BATCH_SECONDS old, and whenever the run ends, however it ends (Ctrl-C,
an error): a result that came back is never lost with the run.
"""

import shutil
import time

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

from coursetools import findings, messages
from coursetools.course import assignment_folder, grade_id, write_tree
from coursetools.grading import intake
from coursetools.messages import NOT_GRADED, failure_messages

BATCH = 8  # results whose grades share a transaction, at most
BATCH_SECONDS = 2.0  # a result's grades wait no longer than this for others


def record(root, result, config):
    """Store one result in the course: its files, and its grades in the gradebook in a transaction of
    their own. Sets result.findings to every finding of the submission."""
    with Recorder(root, config, batch=1) as recorder:
        recorder.add(result)


class _OneTransaction:
    """The gradebook's session, whose commits only send the changes: nbgrader's Gradebook and
    preprocessors commit after each change; the Recorder commits once per batch. What nbgrader reads after
    a commit is read anew, as after a real one."""

    def __init__(self, session):
        self._session = session

    def commit(self):
        self._session.flush()
        self._session.expire_all()

    def __getattr__(self, name):
        return getattr(self._session, name)


class Recorder:
    """Writes the results of a grading run to the course, the grades in batches (see the module's
    docstring). Use as a context manager: leaving it writes what waits, whatever the reason."""

    def __init__(self, root, config, batch=BATCH, seconds=BATCH_SECONDS):
        self.root, self.config, self.batch, self.seconds = root, config, batch, seconds
        self.coursedir = CourseDirectory(config=config, root=str(root))
        self.waiting, self._since = [], None
        self._gradebook = None

    def __enter__(self):
        return self

    def __exit__(self, *_):
        try:
            self.flush()
        finally:
            if self._gradebook is not None:
                self._gradebook.close()

    def add(self, result):
        """Write the result's files now, its grades with the next batch; return the results whose grades
        were written now (their findings complete)."""
        for step, files in (("autograded", result.autograded), ("feedback", result.feedback)):
            target = assignment_folder(self.coursedir, step, result.assignment, result.student)
            if target.exists():
                shutil.rmtree(target)
            write_tree(target, files)
        result.autograded, result.feedback = {}, {}  # written: the files need not stay in memory
        self.waiting.append(result)
        self._since = self._since or time.monotonic()
        if len(self.waiting) >= self.batch or time.monotonic() - self._since >= self.seconds:
            return self.flush()
        return []

    def flush(self):
        """Write the grades of the waiting results in one transaction; return those results. If one
        cannot be written, the others are, each in a transaction of its own, and its error is raised."""
        waiting, self.waiting, self._since = self.waiting, [], None
        if not waiting:
            return []
        gradebook = self._open()
        try:
            found = [self._grades(gradebook, result) for result in waiting]
            gradebook.db._session.commit()
        except BaseException:
            gradebook.db._session.rollback()
            found, failure = [], None
            for result in waiting:  # one at a time: all but the one that fails
                try:
                    found.append(self._grades(gradebook, result))
                    gradebook.db._session.commit()
                except BaseException as error:
                    gradebook.db._session.rollback()
                    found.append(result.findings)
                    failure = failure or error
            if failure:
                raise failure from None
        for result, its_findings in zip(waiting, found, strict=True):
            result.findings = its_findings
        return waiting

    def _open(self):
        if self._gradebook is None:
            self._gradebook = Gradebook(self.coursedir.db_url, self.coursedir.course_id)
            self._gradebook.db = _OneTransaction(self._gradebook.db)
        return self._gradebook

    def _grades(self, gradebook, result):
        """Record one result's grades, flags and messages in the open transaction; return its findings."""
        assignment, student, db_url = result.assignment, result.student, self.coursedir.db_url
        gradebook.update_or_create_student(student)
        submitted = assignment_folder(self.coursedir, "submitted", assignment, student)
        timestamp = self.coursedir.get_existing_timestamp(str(submitted))
        if timestamp:
            gradebook.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gradebook.update_or_create_submission(assignment, student)
        notebooks = [nb.name for nb in gradebook.find_assignment(assignment).notebooks]
        target = assignment_folder(self.coursedir, "autograded", assignment, student)
        graded, found, failed, seeds = set(), list(result.findings), {}, {}
        for name in notebooks:
            path = target / f"{name}.ipynb"
            if not path.exists():
                continue
            # written by the worker after nbgrader validated it: read without validating it again
            notebook = nbformat.from_dict(nbformat.reader.reads(path.read_text(encoding="utf-8")))
            resources = {"nbgrader": {"notebook": name, "assignment": assignment, "student": student,
                                      "db_url": db_url}}
            save_auto_grades(SaveAutoGrades(config=self.config), gradebook, notebook, resources)
            assign_late_penalty(AssignLatePenalties(config=self.config), gradebook, resources)
            graded |= {(name, grade_id(cell)) for cell in notebook.cells if utils.is_grade(cell)}
            found += [finding for finding in findings.read(notebook) if finding not in found]
            failed[name], seeds[name] = failure_messages(notebook), findings.seed(notebook)
        submission = gradebook.find_submission(assignment, student)
        missing = [(nb.name, grade.name) for nb in submission.notebooks for grade in nb.grades
                   if (nb.name, grade.name) not in graded]
        if missing and not findings.reason(found):
            found.append(intake.cells_missing([cell for _, cell in missing]))
        reason = findings.reason(found)
        for nb in submission.notebooks:
            nb.flagged = bool(reason)
            for grade in nb.grades:
                if (nb.name, grade.name) in missing:
                    grade.auto_score = 0.0  # never an old score, never points for a cell that did not run
                    grade.needs_manual_grade = True
            for comment in nb.comments:
                if reason:
                    comment.auto_comment = findings.TA_NOTE_PREFIX + reason  # formgrader; not in feedback
            not_run = {grade.name: NOT_GRADED for grade in nb.grades if (nb.name, grade.name) in missing
                       and grade.cell_type == "code"}
            messages.save(gradebook.db, assignment, student, nb.name, {**not_run, **failed.get(nb.name, {})},
                          found, seeds.get(nb.name, ""))
        gradebook.db.commit()
        return found


def save_auto_grades(saver, gradebook, notebook, resources):
    """nbgrader's SaveAutoGrades on `notebook`, in the open `gradebook` (SaveAutoGrades.preprocess opens
    one of its own)."""
    info = resources["nbgrader"]
    saver.notebook_id, saver.assignment_id = info["notebook"], info["assignment"]
    saver.student_id, saver.db_url, saver.gradebook = info["student"], info["db_url"], gradebook
    for index, cell in enumerate(notebook.cells):
        saver.preprocess_cell(cell, resources, index)


def assign_late_penalty(penalties, gradebook, resources):
    """nbgrader's AssignLatePenalties, its plugin and checks, in the open `gradebook`
    (AssignLatePenalties.preprocess opens one of its own)."""
    info = resources["nbgrader"]
    penalties.init_plugin()
    submission = gradebook.find_submission(info["assignment"], info["student"])
    notebook = gradebook.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
    notebook.late_submission_penalty = None
    if submission.total_seconds_late > 0:
        penalty = penalties.plugin_inst.late_submission_penalty(info["student"], notebook.score,
                                                                submission.total_seconds_late)
        if penalty is not None:
            notebook.late_submission_penalty = penalties._check_late_penalty(notebook, penalty)
    gradebook.db.commit()
