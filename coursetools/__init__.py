"""Tools for the Lesson 24 nbgrader course: what nbgrader lacks, on top of nbgrader's own commands.

Split by trust: `student/` holds what runs in (or is handed to) the student's kernel, `grading/` what makes
a grade and never reaches it. In the order a grading run uses them:
- course: the course directory, its assignments, and running nbgrader's commands in it
- build: release/ and solutions/ built beside the old ones and swapped in; regrades
- lms, collect: the roster, hand-ins from Canvas or Moodle, due dates, late penalties, grades back
- examples: example submissions built from the release and small answer files
- grading.release: release notebooks whose hidden-test cells display nothing
- grading.intake, grading.limits: one reading of a submission for both grading paths, what it may hold
- grading.sandbox, grading.warm_kernels, grading.kernel: the sandbox of every grading kernel (bubblewrap,
  uid, limits), kernels forked from a template that imported the libraries once, the kernel manager
- grading.judge, grading.student_kernel, grading.references: the test cells, run outside the student's
  kernel with each student's own hidden inputs; the judge's line to that kernel; reference results
- grading.autograde: nbgrader preprocessors that make a grade rest on trusted code
- student.checks, student.shim, student.wire: the tests' helpers (copied next to each notebook), and what
  answers the judge's calls in the kernel
- findings, messages: what grading found and said, for TAs and for the student, kept in the gradebook
- batch: grading a whole class, several submissions at once
- record: the results recorded in the course's gradebook in batches; only the coordinator writes
- grading.feedback: feedback for students
- scores, report, similarity: the score table, the class report, similar answers
- check: a student's self-check of a notebook's visible tests
- corpus: the answer corpus and its mutation score
- cli: the `course` command
"""

import sys

# nbformat imports jsonschema, whose format checkers import rfc3987-syntax, which compiles an IRI grammar
# at import time: 1.8 s of CPU on the 2-core machine, in every process that reads a notebook, for a format
# that no notebook schema uses (python-jsonschema/jsonschema#1428). Without it jsonschema skips that check.
sys.modules.setdefault("rfc3987_syntax", None)
