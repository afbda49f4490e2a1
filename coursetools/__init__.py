"""Tools for the Lesson 24 nbgrader course: what nbgrader lacks, on top of nbgrader's own commands.

Modules, in the order a grading run uses them:
- course: the course directory, its assignments, and running nbgrader's commands in it
- examples: example submissions built from the release and small answer files
- scores: the per-student score table read from the gradebook
- cli: the `course` command
- checks: the comparison helpers that the notebooks' test cells import (copied next to each notebook)
"""
