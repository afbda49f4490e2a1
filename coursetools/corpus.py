"""A corpus of student answers that proves the hidden tests discriminate: the mutation score.

grader_tests/corpus/<assignment>/<function>.py holds answers to one graded function, written the way
students write them. Each block is either correct (it must get full marks) or wrong (it must lose the
points of the test cells it names, and of no other cell):

    # %% correct: np.where instead of np.maximum
    def relu(x): ...

    # %% wrong: zeroes the negatives in place | fails: relu_input_unchanged
    def relu(x): ...

A wrong answer may also say what its failure message must contain (the cause, named for the student):

    # %% wrong: builds its own model | fails: final_accuracy_hidden | says: never called make_model()

The tests of one function never depend on another function's answer, so one submission can carry one
answer for every function of an assignment: submission k holds the k-th answer of each function (the
reference solution where a function has fewer). The whole corpus is then graded in one nbgrader run.

Each student's hidden inputs are their own (drawn from a seed of the course, the assignment and the
student), so an answer must grade as declared whatever the seed: graded with `JudgedExecute.other_seeds`,
every test that draws inputs from the seed is judged under that many more seeds, and one whose verdict
changes fails with a SeedDependent message, which no entry may have.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from coursetools.course import grade_id, gradebook_url, is_code_answer, notebook_path, tests_by_answer
from coursetools.examples import Answer, fill_answers, percent_blocks, submit
from coursetools.grading.judge import SeedDependent
from coursetools.messages import failure_messages

CORPUS = Path("grader_tests") / "corpus"
# a test cell's failure when its verdict changed with the hidden inputs (JudgedExecute.other_seeds)
SEED_DEPENDENT = f"{SeedDependent.__name__}:"
_HEADER = re.compile(r"^# %% (?P<kind>correct|wrong): (?P<label>.*?)(?:\s*\|\s*fails:\s*(?P<fails>.*?))?"
                     r"(?:\s*\|\s*says:\s*(?P<says>.*))?$")


@dataclass
class Entry:
    """One answer of the corpus, and where it was graded."""

    assignment: str
    function: str
    correct: bool
    label: str
    answer: Answer
    says: str = ""  # what a failure message of its cells must contain
    student: str = ""
    lost: set = field(default_factory=set)  # test cells of its function that lost points, once graded
    messages: list = field(default_factory=list)  # the failure messages of those cells, once graded


def read_entries(path, assignment):
    """The entries of one corpus file, in file order."""
    function = Path(path).stem
    return [
        Entry(assignment, function, match["kind"] == "correct", match["label"], Answer(function, body, fails),
              says=match["says"] or "")
        for match, body, fails in percent_blocks(path, _HEADER)
    ]


def read_corpus(root):
    """{assignment: {function: [entries]}} of the whole corpus."""
    corpus = {}
    for path in sorted((root / CORPUS).glob("*/*.py")):
        corpus.setdefault(path.parent.name, {})[path.stem] = read_entries(path, path.parent.name)
    return corpus


def grade_cells_by_answer(notebook):
    """{code answer cell: [its test cells]}, by grade id (course.tests_by_answer)."""
    return {grade_id(answer): [grade_id(test) for test in tests]
            for answer, tests in tests_by_answer(notebook.cells) if answer and is_code_answer(answer)}


def submit_corpus(root, corpus, prefix):
    """Hand in the packed corpus submissions (student ids prefix0, prefix1, ...); return all entries."""
    entries = []
    for assignment, functions in corpus.items():
        solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
        for k in range(max(len(answers) for answers in functions.values())):
            student = f"{prefix}{k}"
            packed = [answers[k] for answers in functions.values() if k < len(answers)]
            for entry in packed:
                entry.student = student
            submit(root, assignment, student, fill_answers(solution, [entry.answer for entry in packed]))
            entries.extend(packed)
    return entries


def record_results(root, entries):
    """Fill in entry.lost and entry.messages from the gradebook and the autograded notebooks, once the
    corpus submissions are autograded."""
    with Gradebook(gradebook_url(root)) as gradebook:
        for entry in entries:
            source = nbformat.read(notebook_path(root, "source", entry.assignment), as_version=4)
            own_cells = grade_cells_by_answer(source)[entry.function]
            submission = gradebook.find_submission(entry.assignment, entry.student)
            scores = {g.name: (g.score, g.max_score) for nb in submission.notebooks for g in nb.grades}
            entry.lost = {cell for cell in own_cells if scores[cell][0] < scores[cell][1]}
            autograded = nbformat.read(notebook_path(root, "autograded", entry.assignment, entry.student),
                                       as_version=4)
            messages = failure_messages(autograded)
            entry.messages = [messages[cell] for cell in sorted(entry.lost) if cell in messages]
    return entries


def score_lines(entries):
    """The mutation score as text lines: per function and in total, correct answers at full marks and
    mistakes caught (a mistake is caught when it loses exactly the points of the cells it names)."""
    rows, totals = [], [0, 0, 0, 0]
    functions = sorted({(e.assignment, e.function) for e in entries})
    for assignment, function in functions:
        own = [e for e in entries if (e.assignment, e.function) == (assignment, function)]
        correct = [e for e in own if e.correct]
        wrong = [e for e in own if not e.correct]
        full = sum(not e.lost for e in correct)
        caught = sum(as_declared(e) for e in wrong)
        counts = [full, len(correct), caught, len(wrong)]
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
        rows.append((f"{assignment}.{function}", counts))
    rows.append(("total", totals))
    lines = [f"{'function':<42} {'correct at full marks':>22} {'mistakes caught':>16}"]
    for name, (full, correct, caught, wrong) in rows:
        lines.append(f"{name:<42} {f'{full}/{correct}':>22} {f'{caught}/{wrong}':>16}")
    full, correct, caught, wrong = totals
    percents = f"{100 * full / max(correct, 1):.0f} %", f"{100 * caught / max(wrong, 1):.0f} %"
    lines.append(f"{'':<42} {percents[0]:>22} {percents[1]:>16}")
    return lines


def as_declared(entry):
    """A correct answer lost nothing; a wrong one lost exactly the cells that it names (and some), with a
    message that says what it declares."""
    if entry.correct:
        return not entry.lost
    said = not entry.says or any(entry.says in message for message in entry.messages)
    everywhere = not any(message.startswith(SEED_DEPENDENT) for message in entry.messages)  # under all seeds
    return bool(entry.lost) and entry.lost == set(entry.answer.fails) and said and everywhere


def problem_lines(entries):
    """One line per entry that did not grade as declared, saying which cells lost points."""
    return [
        f"{e.assignment}.{e.function} ({'correct' if e.correct else 'wrong'}: {e.label}), {e.student}: "
        f"lost points in {sorted(e.lost) or 'no cell'}; declared {sorted(e.answer.fails) or 'none'}"
        + (f"; no message says {e.says!r}: {e.messages}" if e.says else "")
        for e in entries
        if not as_declared(e)
    ]
