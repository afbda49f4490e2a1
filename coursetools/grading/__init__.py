"""Trusted grading: the reading of a submission (intake.py), the sandbox every grading kernel runs in
(sandbox.py, warm_kernels.py, kernel.py), the judge that runs the tests outside it (judge.py,
student_kernel.py, references.py), nbgrader's preprocessors of this course (autograde.py, release.py,
feedback.py)."""
