"""What runs where the student's code runs, all of it public: the test helpers students import beside
their notebook, which are also the one definition of a call, of its failure messages and of plain data
(checks.py); and, inside the grading kernel, the shim that answers the judge's calls and forwards the uses
of the tests' objects (shim.py), with the plain-data format both sides speak (wire.py). Nothing here
decides a grade."""
