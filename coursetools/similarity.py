"""The similarity report for TAs looking for copied answers: similarity_<assignment>.html.

Only the answer cells count (nbgrader's solution cells, where students write their code). Everything the
release gave the whole class is boilerplate: the "YOUR CODE HERE" stubs of its answer cells (the `def`
lines and docstrings that students keep) and every other code cell of the released notebook (imports,
data, the lesson's code, the tests), so that what every student received never makes two answers alike,
even pasted into an answer (only where it joins the student's own code counts). Answer cells left exactly
as released are no answer and are left out.

The answers are compared with copydetect's winnowing: each answer cell's code is tokenized (names
become V, F or O, comments and layout vanish, so renamed variables and rewritten comments change
nothing), its k-grams are hashed into fingerprints, once per student and cell by cell (no k-gram spans
two cells), the boilerplate's fingerprints are removed, and the fingerprints shared by each pair give
the share of each answer's code that the other one holds (copydetect's similarity). A pair is flagged
when each of the two answers is mostly the other's and the shared code is long enough to tell a copy from
the obvious: the answers of this course are short, and two students who both write `return np.tanh(x)`
share all of it honestly.

similarity_<assignment>.json beside the page holds the counts and the flagged pairs, for the class
report's section (`summary`).
"""

import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2
import nbformat
import numpy as np
from markupsafe import Markup, escape

from coursetools.course import grade_id, is_code_answer, notebook_path

LOG = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"

# Tokenized answers are terse: `def relu(x): return np.maximum(0, x)` becomes `defF(V):returnV.V(0,V)`
# (a token is a character of that). NOISE (copydetect's noise threshold, the k of the k-grams) is about one
# statement (`V=V.V(V,V=float)`): shorter common fragments are shared by chance. WINDOW 1 fingerprints
# every k-gram (guarantee threshold = noise threshold): answers are small, speed comes from fingerprinting
# each student once.
NOISE = 16
WINDOW = 1
# Flagged: each of the two answers shares at least THRESHOLD of its tokens with the other, and at least
# MIN_OVERLAP tokens (about four statements). Measured in grader_tests/test_similarity.py: disguised copies
# of whole answers (names changed, functions moved and reordered, comments and docstrings rewritten) share
# 0.98 to 1.00 of both, 108 to 340 tokens; independently written correct answers (grader_tests/corpus)
# that share 60 tokens or more share at most 0.61 of one of them; one-line answers share up to 0.80 of
# each other, but never more than 22 tokens: those are never flagged, however alike.
THRESHOLD = 0.8
MIN_OVERLAP = 60
SEPARATOR = "\n\n"  # between the answer cells in answer_code


@dataclass
class Pair:
    """Two students whose answers are alike."""

    student_a: str
    student_b: str
    similarity_a: float  # the share of a's answer code (its fingerprinted tokens) that b's holds
    similarity_b: float  # the share of b's that a's holds
    overlap: int  # tokens of a's answer code shared with b's
    code_a: str = ""  # a's answer code, HTML-escaped, the shared parts in <span class="shared">
    code_b: str = ""


class Pairs(list):
    """The flagged pairs, most similar first, and what was compared to find them."""

    def __init__(self, pairs=(), students=(), skipped=(), threshold=THRESHOLD, min_overlap=MIN_OVERLAP):
        super().__init__(pairs)
        self.students = list(students)  # the students compared
        self.skipped = list(skipped)  # (student, reason): notebooks that could not be read
        self.threshold = threshold
        self.min_overlap = min_overlap

    @property
    def compared(self):
        """How many pairs were compared."""
        return len(self.students) * (len(self.students) - 1) // 2


def answer_cells(notebook, release=None):
    """The code of each of the notebook's answer cells, in order; with `release` (the released notebook),
    without the answer cells left as released: a stub is no answer."""
    stubs = {grade_id(cell): cell.source.strip() for cell in release.cells} if release is not None else {}
    return [
        cell.source.strip("\n") for cell in notebook.cells
        if is_code_answer(cell)
        and stubs.get(grade_id(cell)) != cell.source.strip()
    ]


def answer_code(notebook, release=None):
    """The code of the notebook's answer cells, in order (see answer_cells)."""
    return SEPARATOR.join(answer_cells(notebook, release))


@dataclass
class Fingerprint:
    """copydetect's fingerprint (CodeFingerprint's attributes, as compare_files reads them) of a student's
    answer code, made cell by cell so that no k-gram spans two cells: the end of one answer joined to the
    start of the next is not the student's code (and is the same for all who left the same stubs)."""

    k: int
    hashes: set  # the fingerprints, without the boilerplate's
    hash_idx: dict  # fingerprint -> where its k-grams start in the tokenized code of all the cells
    filtered_code: str  # the tokenized code of all the cells
    token_coverage: int  # tokens covered by the fingerprints
    cells: list  # (start in the answer code, start in filtered_code, copydetect's offsets) of each cell
    offsets: np.ndarray = field(default_factory=lambda: np.array([]))  # none: compare_files gives tokens

    def code_slices(self, slices):
        """copydetect's slices of the tokenized code (2 x n starts and ends), as slices of the answer
        code, split where cells end."""
        bounds = [start for _, start, _ in self.cells[1:]] + [len(self.filtered_code)]
        pieces = []
        for start, end in zip(*slices, strict=True):
            for (code_start, filtered_start, offsets), bound in zip(self.cells, bounds, strict=True):
                if start < bound and end > filtered_start:
                    local = np.array([max(start, filtered_start), min(end, bound)]) - filtered_start
                    if len(offsets):  # as compare_files maps tokens back to characters
                        row = np.clip(np.searchsorted(offsets[:, 0], local), 0, len(offsets) - 1)
                        local += offsets[row, 1]
                    pieces.append(local + code_start)
        return np.array(pieces, dtype=np.int64).reshape(-1, 2).T


def release_code(release):
    """The code of every code cell of the released notebook: the answer cells' stubs and the code that
    the instructor gave."""
    return [cell.source for cell in release.cells if cell.cell_type == "code"]


def boilerplate_hashes(release):
    """The fingerprints of every k-gram of each code cell of the released notebook."""
    # copydetect is imported where it is used: it imports matplotlib.pyplot (1.3 s), which the class
    # report's `summary` and a run that compares nothing need not
    from copydetect import CodeFingerprint

    prints = (CodeFingerprint("release.py", NOISE, 1, fp=io.StringIO(code), language="python")
              for code in release_code(release))
    return {int(hash_) for print_ in prints for hash_ in print_.hashes}


def fingerprint(cells, boilerplate=frozenset()):
    """The fingerprint of a student's answer cells (a list of code, or one code), without the
    fingerprints in `boilerplate`."""
    from copydetect import CodeFingerprint
    from copydetect.utils import get_token_coverage

    cells = [cells] if isinstance(cells, str) else cells
    hash_idx, filtered, where, code_start = {}, "", [], 0
    for code in cells:
        print_ = CodeFingerprint("answers.py", NOISE, WINDOW, fp=io.StringIO(code), language="python")
        # the boilerplate is removed here rather than through CodeFingerprint(boilerplate=...):
        # copydetect 0.5 intersects with assume_unique=True, which also drops every k-gram that the code
        # holds twice. Plain ints rather than numpy's, for the dictionaries of shared_tokens
        for hash_, starts in print_.hash_idx.items():
            if int(hash_) not in boilerplate:
                hash_idx.setdefault(int(hash_), []).extend(len(filtered) + int(start) for start in starts)
        where.append((code_start, len(filtered), print_.offsets))
        filtered += print_.filtered_code
        code_start += len(code) + len(SEPARATOR)
    coverage = int(get_token_coverage(hash_idx, NOISE, len(filtered)))
    return Fingerprint(NOISE, set(hash_idx), hash_idx, filtered, coverage, where)


def read_submissions(root, assignment, release):
    """({student: answer cells}, [(student, reason)] of the notebooks that could not be read)."""
    answers, skipped = {}, []
    for path in sorted((Path(root) / "submitted").glob(f"*/{assignment}/{assignment}.ipynb")):
        student = path.parent.parent.name
        try:
            answers[student] = answer_cells(nbformat.read(path, as_version=4), release)
        except Exception as error:  # whatever is wrong with one student's file, the others are compared
            message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            reason = f"not a readable notebook ({type(error).__name__}{': ' + message if message else ''})"
            LOG.warning("similarity of %s: %s skipped, %s", assignment, student, reason)
            skipped.append((student, reason))
    return answers, skipped


def shared_tokens(prints):
    """tokens[i, j]: how many tokens of student i's answer code the fingerprints that j's code also holds
    cover, for all pairs at once; copydetect's count (a fingerprint covers NOISE tokens from where it
    starts, up to the start of the next shared one), without its arrays made for each shared fingerprint
    of each pair."""
    holders = {}  # fingerprint -> the students whose code holds it
    for i, print_ in enumerate(prints):
        for hash_ in print_.hashes:
            holders.setdefault(hash_, []).append(i)
    never = np.iinfo(np.int64).max
    tokens = np.zeros((len(prints), len(prints)), dtype=np.int64)
    for i, print_ in enumerate(prints):
        starts = sorted((start, hash_) for hash_, where in print_.hash_idx.items() for start in where)
        if not starts:
            continue
        positions = np.array([start for start, _ in starts], dtype=np.int64)
        held = np.zeros((len(prints), len(starts)), dtype=bool)  # held[j, n]: j's code holds i's n-th k-gram
        for n, (_, hash_) in enumerate(starts):
            held[holders[hash_], n] = True
        # for each k-gram, where the next one that j holds starts
        following = np.minimum.accumulate(np.where(held, positions, never)[:, ::-1], axis=1)[:, ::-1]
        following = np.concatenate([following[:, 1:], np.full((len(prints), 1), never)], axis=1)
        tokens[i] = np.where(held, np.minimum(following - positions, NOISE), 0).sum(axis=1)
    return tokens


def marked(cells, print_, slices):
    """The answer code of `cells` HTML-escaped, the shared parts (`slices` of the tokenized code) in
    <span class="shared">."""
    from copydetect.utils import highlight_overlap

    code, slices = SEPARATOR.join(cells), print_.code_slices(slices)
    if not slices.size:
        return escape(code)
    text, _ = highlight_overlap(code, slices, '<span class="shared">', "</span>", escape_html=True)
    return Markup(text)


def compare(root, assignment, threshold=THRESHOLD, min_overlap=MIN_OVERLAP):
    """The pairs of students whose answers to `assignment` are alike: each answer shares at least
    `threshold` of its tokens with the other, and at least `min_overlap` tokens. A `Pairs` list of `Pair`,
    most similar first."""
    from copydetect import compare_files

    root = Path(root)
    release = nbformat.read(notebook_path(root, "release", assignment), as_version=4)
    boilerplate = boilerplate_hashes(release)
    answers, skipped = read_submissions(root, assignment, release)
    students = list(answers)
    prints = [fingerprint(answers[student], boilerplate) for student in students]
    tokens = shared_tokens(prints)
    coverage = np.array([print_.token_coverage for print_ in prints])
    enough = (tokens >= min_overlap) & (tokens >= threshold * coverage[:, None])
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(enough & enough.T, k=1)), strict=True):
        # copydetect's own comparison, for the shares and the places to mark
        overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(prints[i], prints[j])
        a, b = students[i], students[j]
        pairs.append(Pair(a, b, float(share_a), float(share_b), int(overlap),
                          marked(answers[a], prints[i], slices_a), marked(answers[b], prints[j], slices_b)))
    pairs.sort(key=lambda pair: (-min(pair.similarity_a, pair.similarity_b), -pair.overlap))
    return Pairs(pairs, students=students, skipped=skipped, threshold=threshold, min_overlap=min_overlap)


def write_report(root, assignment, pairs=None):
    """Write similarity_<assignment>.html, and similarity_<assignment>.json for `summary`, in the course
    folder (`pairs`: what `compare` returned, compared anew when None); return the page's path."""
    root = Path(root)
    if pairs is None:
        pairs = compare(root, assignment)
    elif not isinstance(pairs, Pairs):  # a plain list of pairs: the class is counted anew
        release = nbformat.read(notebook_path(root, "release", assignment), as_version=4)
        answers, skipped = read_submissions(root, assignment, release)
        pairs = Pairs(pairs, students=answers, skipped=skipped)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
    page = environment.get_template("similarity.html.j2").render(
        assignment=assignment, pairs=pairs, noise=NOISE,
    )
    path = root / f"similarity_{assignment}.html"
    path.write_text(page, encoding="utf-8")
    record = {
        "assignment": assignment, "students": len(pairs.students), "pairs_compared": pairs.compared,
        "threshold": pairs.threshold, "min_overlap": pairs.min_overlap,
        "skipped": [list(item) for item in pairs.skipped],
        "pairs": [{key: value for key, value in asdict(pair).items() if not key.startswith("code_")}
                  for pair in pairs],
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return path


def summary(root, assignments):
    """[{assignment, students, pairs_flagged, page}] for the assignments that were handed in, page relative
    to the course folder. It reads what write_report stored, and writes the page again first when it is
    missing or older than a submission or the release, or when the number of submissions changed."""
    root = Path(root)
    rows = []
    for assignment in assignments:
        submitted = list((root / "submitted").glob(f"*/{assignment}/{assignment}.ipynb"))
        if not submitted:
            continue
        record_path = root / f"similarity_{assignment}.json"
        inputs = [*submitted, notebook_path(root, "release", assignment)]
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not written yet, or damaged: written anew
            record = None
        if (record is None or record_path.stat().st_mtime < max(path.stat().st_mtime for path in inputs)
                or record["students"] + len(record["skipped"]) != len(submitted)):
            write_report(root, assignment)
            record = json.loads(record_path.read_text(encoding="utf-8"))
        rows.append({"assignment": assignment, "students": record["students"],
                     "pairs_flagged": len(record["pairs"]), "page": f"similarity_{assignment}.html"})
    return rows
