"""Tools for the Lesson 24 nbgrader course: what nbgrader lacks, on top of nbgrader's own commands.

Modules, in the order a grading run uses them:
- course: the course directory, its assignments, and running nbgrader's commands in it
- examples: example submissions built from the release and small answer files
- release: release notebooks whose hidden-test cells display nothing
- kernel: the sandbox and limits of every grading kernel
- autograde: nbgrader preprocessors that make a grade rest on trusted code
- findings: what grading found, for TAs and for the student
- batch: grading a whole class, several submissions at once, one gradebook writer
- feedback: feedback for students
- scores, report: the score table and the class report
- corpus: the answer corpus and its mutation score
- cli: the `course` command
- checks: the comparison helpers that the notebooks' test cells import (copied next to each notebook)
"""

import sys

# nbformat imports jsonschema, whose format checkers import rfc3987-syntax, which compiles an IRI grammar
# at import time: 1.8 s of CPU on the 2-core machine, in every process that reads a notebook, for a format
# that no notebook schema uses (python-jsonschema/jsonschema#1428). Without it jsonschema skips that check.
sys.modules.setdefault("rfc3987_syntax", None)
