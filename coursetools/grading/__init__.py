"""Trusted grading: the sandbox every grading kernel runs in (kernel.py), the judge that runs the tests
outside it (judge.py), nbgrader's preprocessors of this course (autograde.py, release.py, feedback.py)."""
