"""What each reference notebook costs to grade: execution time of the whole source notebook and of its
hidden-test cells, in a kernel with one BLAS/OpenMP thread, as at grading time.

Run by hand:  .venv/bin/python benchmarks/notebook_costs.py [--repeat N]
Budget per notebook: 15 s for the whole notebook, of which 2 s for the hidden tests.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import measured
import nbformat
from nbclient import NotebookClient

from coursetools.course import assignments, find_root

NOTEBOOK_BUDGET, HIDDEN_BUDGET = 15.0, 2.0


def cell_seconds(cell):
    """Seconds from the kernel starting the cell to its reply (nbclient records both)."""
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def run_once(root, assignment):
    """(wall seconds of the whole run, seconds in hidden-test cells) for one execution of the source."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(root / "source" / assignment, folder, dirs_exist_ok=True)
        notebook = nbformat.read(Path(folder) / f"{assignment}.ipynb", as_version=4)
        client = NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": folder}})
        started = time.perf_counter()
        client.execute()
        wall = time.perf_counter() - started
    hidden = sum(cell_seconds(c) for c in notebook.cells if "BEGIN HIDDEN TESTS" in c.source)
    return wall, hidden


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per notebook (the median is shown)")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    root = find_root(Path(__file__).parent)
    print(f"{'assignment':<18} {'notebook s':>10} {'hidden tests s':>14}   budget ({NOTEBOOK_BUDGET:g} s / "
          f"{HIDDEN_BUDGET:g} s), median of {args.repeat}")
    for assignment in assignments(root):
        runs = [run_once(root, assignment) for _ in range(args.repeat)]
        wall = statistics.median(r[0] for r in runs)
        hidden = statistics.median(r[1] for r in runs)
        verdict = "ok" if wall <= NOTEBOOK_BUDGET and hidden <= HIDDEN_BUDGET else "OVER BUDGET"
        print(f"{assignment:<18} {wall:>10.2f} {hidden:>14.2f}   {verdict}")
    print("notebook s includes starting the kernel; cells tagged skip-execution are skipped, as in grading")


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main()
