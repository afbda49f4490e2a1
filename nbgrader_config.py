"""nbgrader configuration of the Lesson 24 course: read by every nbgrader command run in this folder."""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    IncludeHeaderFooter,
    InstantiateTests,
    LimitOutput,
    LockCells,
    OverwriteKernelspec,
    SaveAutoGrades,
    SaveCells,
)

from coursetools.course import ONE_BLAS_THREAD, silence_known_warnings
from coursetools.grading.autograde import JudgedExecute, RecordMessages, RestoreInstructorCells
from coursetools.grading.feedback import FeedbackExporter, FeedbackForStudents
from coursetools.grading.intake import refuse_links
from coursetools.grading.release import ClearHiddenTestsQuietly

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)

silence_known_warnings()  # SQLAlchemy's about nbgrader's gradebook writes: nothing is wrong

# Grading kernels inherit this environment: one BLAS/OpenMP thread each (coursetools.course.ONE_BLAS_THREAD).
os.environ.update(ONE_BLAS_THREAD)

c.CourseDirectory.course_id = "lesson24-deep-learning-fundamentals-1"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.solution_directory = "solutions"

# Student code is untrusted. Every grading kernel runs in a sandbox (coursetools/grading/sandbox.py: no course
# files, no network, its own user, bounded memory, processes and CPU; needs bubblewrap). nbgrader's own
# autograde steps, with three changes (coursetools/grading/autograde.py): a submission's links are moved
# aside before nbgrader copies it; cells get the instructor's source and metadata back (a student's
# `skip-execution` tag on a test has no effect, an edited test is reported once, in words); and the test
# cells run in the judge, outside the student's kernel (coursetools/grading/judge.py), so that no code of
# the student's can reach a verdict; tests that did not run score zero; kernel output is capped.
c.Autograde.pre_convert_hook = refuse_links
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    RestoreInstructorCells,
    CheckCellMetadata,
]
c.Autograde.autograde_preprocessors = [
    JudgedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    AssignLatePenalties,
    RecordMessages,
    CheckCellMetadata,
]

# Seconds one cell may run before nbgrader interrupts it and scores it as failed.
c.Execute.timeout = 60
# Seconds an interrupted cell has to stop before its kernel is stopped (nbclient waits 4 s, which a loaded
# machine can miss even for a cell that does stop).
c.Execute.iopub_timeout = 15
# Every kernel of every nbgrader command run here is a sandboxed one (coursetools/grading/kernel.py).
c.Execute.kernel_manager_class = "coursetools.grading.kernel.GradingKernelManager"
# Seconds a whole notebook may run: then its kernel is killed and the submission flagged for a TA.
c.GradingKernelManager.notebook_timeout = 600
# Bytes of address space a kernel may use: beyond, the student's cell fails with a MemoryError.
c.GradingKernelManager.memory_limit = 4 * 1024**3
# What a submission may hold, its notebooks first: files beyond are left out unread (a notebook beyond is
# graded as the release) and the submission is flagged with their names and sizes.
c.SubmissionLimits.max_bytes = 50 * 1024**2
c.SubmissionLimits.max_files = 500

# Late work: a notebook handed in after its assignment's due date (assignments.csv, or `nbgrader db assignment
# add --duedate`) loses this share of its score per started day late.
c.AssignLatePenalties.plugin_class = "coursetools.lms.LatePenalty"
c.LatePenalty.percent_per_day = 10.0

# `nbgrader zip_collect ASSIGNMENT` reads Canvas's "download submissions" zip (put in
# downloaded/<assignment>/archive/): students are named through the roster (`course roster import`).
# `course collect ASSIGNMENT ZIPFILE` does the same for Canvas and Moodle, and reports what it cannot place.
c.ZipCollectApp.collector_plugin = "coursetools.collect.CanvasCollector"

# Release notebooks as nbgrader makes them, but a test cell of hidden tests alone shows nothing when run
# (nbgrader validate would read its docstring as a partial score); the same in published solutions.
c.GenerateAssignment.preprocessors = [
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    ClearSolutions,
    ClearOutput,
    CheckCellMetadata,
    ComputeChecksums,
    SaveCells,
    ClearHiddenTestsQuietly,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadata,
]

# Published solutions show the reference answers but neither the hidden tests (they are reused every
# term) nor the TAs' mark scheme, and carry no outputs, so regenerating them is repeatable.
c.GenerateSolution.preprocessors = [
    IncludeHeaderFooter,
    LockCells,
    ClearOutput,
    ClearHiddenTestsQuietly,
    ClearMarkScheme,
]

# Feedback shows every test cell's points and failure message, and the student's grading notes; no
# hidden-test source (plain nbgrader would copy the hidden tests into every student's feedback), no TA
# notes and no paths of the grading machine. Each test is named by its docstring's first line, and a
# written answer that no TA has graded yet shows as pending (FeedbackForStudents reads the gradebook after
# GetGrades).
c.GenerateFeedback.preprocessors = [GetGrades, FeedbackForStudents, CSSHTMLHeaderPreprocessor]
# nbconvert's HTML export with coursetools/templates/feedback.html.j2 (nbgrader's feedback template, with
# the names and pending points), its templates compiled once per process instead of once per notebook
c.GenerateFeedback.exporter_class = FeedbackExporter
