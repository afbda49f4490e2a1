"""What the similarity report costs for a class: `course similarity` on synthetic classes of the digits_cv
notebook (each student's answers drawn from the answer corpus, right and wrong), against copydetect's own
pairwise comparison (compare_files on every pair) of the same fingerprints.

    .venv/bin/python benchmarks/similarity_cost.py [students ...]   (default: 50 100 200)
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

import measured
import nbformat
import numpy as np
from copydetect import compare_files

from coursetools import corpus, similarity
from coursetools.course import notebook_path
from coursetools.examples import fill_answers, submit

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = 300  # pairs that copydetect compares one by one; its cost per pair is extrapolated


def synthetic_class(root, size):
    answers = corpus.read_corpus(ROOT)["digits_cv"]
    release = nbformat.read(notebook_path(root, "release", "digits_cv"), as_version=4)
    rng = np.random.default_rng(0)
    for k in range(size):
        chosen = [entries[rng.integers(len(entries))].answer for entries in answers.values()]
        submit(root, "digits_cv", f"student-{k:03d}", fill_answers(release, chosen))


def main(sizes):
    print(f"{'students':>8} {'pairs':>7} {'course similarity':>18} {'copydetect per pair':>20} {'ratio':>6}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            for name in ("source", "release"):
                shutil.copytree(ROOT / name, root / name)
            synthetic_class(root, size)
            started = time.perf_counter()
            pairs = similarity.compare(root, "digits_cv")
            ours = time.perf_counter() - started
            release = nbformat.read(notebook_path(root, "release", "digits_cv"), as_version=4)
            answers, _ = similarity.read_submissions(root, "digits_cv", release)
            prints = [similarity.fingerprint(cells, similarity.boilerplate_hashes(release))
                      for cells in list(answers.values())[:30]]
            chosen = [(i, j) for i in range(len(prints)) for j in range(i + 1, len(prints))][:SAMPLE]
            started = time.perf_counter()
            for i, j in chosen:
                compare_files(prints[i], prints[j])
            theirs = (time.perf_counter() - started) / len(chosen) * pairs.compared
            print(f"{size:>8} {pairs.compared:>7} {ours:>16.1f} s {theirs:>18.1f} s {theirs / ours:>5.1f}x",
                  flush=True)


if __name__ == "__main__":
    with measured.recorded(__file__, __doc__):
        main([int(size) for size in sys.argv[1:]] or [50, 100, 200])
