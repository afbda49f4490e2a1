"""What runs where the student's code runs: the test helpers students import beside their notebook
(checks.py), and, inside the grading kernel, the shim that answers the judge's calls (shim.py) with the
plain-data format both sides speak (wire.py). Nothing here decides a grade."""
