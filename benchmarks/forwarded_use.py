"""What a use of a test's object costs when it is forwarded from the student's kernel to the judge.

A test that passes a model (a `make_model` factory, a stand-in) keeps it in the judge; the student's
function in the kernel gets a stub, and every `fit` / `predict` / `score` travels to the judge and back as
plain data. This measures, on the digits data that `cross_validate` is tested with, one student call that
builds a model with make_model(), fits it and scores it:
- with the model made in the kernel itself (what the call costs without forwarding), and
- with a make_model that the judge keeps (three forwarded uses: make_model(), fit, score),
and prints the medians and their difference per forwarded use.

Run by hand:  .venv/bin/python benchmarks/forwarded_use.py [--repeats 30]
It starts an ordinary kernel (no sandbox: the cost of the channel is the same) with one BLAS thread.
"""

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")  # before numpy

import measured  # noqa: E402
import nbformat  # noqa: E402
from jupyter_client import KernelManager  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

from coursetools.grading.judge import Judge  # noqa: E402

STUDENT = '''
def fit_and_score(make_model, features, labels):
    model = make_model()
    model.fit(features, labels)
    return model.score(features, labels)


def local_fit_and_score(features, labels):
    from sklearn.neighbors import KNeighborsClassifier  # noqa: E402

    return fit_and_score(lambda: KNeighborsClassifier(n_neighbors=3), features, labels)
'''


def notebook():
    cell = nbformat.v4.new_code_cell(STUDENT)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "grade_id": "answer", "locked": False,
                                 "schema_version": 3, "task": False}
    return nbformat.v4.new_notebook(cells=[cell])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1257)  # the digits training rows of the lesson
    arguments = parser.parse_args()
    repeats, rows = arguments.repeats, arguments.rows
    digits = load_digits(as_frame=True)
    features, labels = digits.data.iloc[:rows], digits.target.iloc[:rows]
    km = KernelManager()
    km.start_kernel()
    judge = Judge(notebook(), Path(__file__).parent.parent / "coursetools" / "student" / "checks.py")
    try:
        judge.connect(km)
        judge.kernel.run(STUDENT)
        timings = {"model made in the kernel": [], "model kept in the judge (3 forwarded uses)": []}
        for _ in range(repeats):
            for way, timing in timings.items():
                started = time.perf_counter()
                if way.startswith("model made"):
                    judge.ask("local_fit_and_score", "local_fit_and_score", (features, labels), {}, seed=0)
                else:
                    judge.ask("fit_and_score", "fit_and_score",
                              (lambda: KNeighborsClassifier(n_neighbors=3), features, labels), {}, seed=0)
                timing.append(time.perf_counter() - started)
    finally:
        judge.close()
        km.shutdown_kernel(now=True)
    medians = {way: statistics.median(timing) for way, timing in timings.items()}
    print(f"one call on {rows} rows x 64 columns, median of {repeats}:")
    for way, median in medians.items():
        print(f"  {way:45s} {1000 * median:8.1f} ms")
    local, forwarded = medians.values()
    print(f"  a forwarded use costs {1000 * (forwarded - local) / 3:.1f} ms more than the same use in the "
          "kernel (its data crosses as .npy in JSON)")


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
