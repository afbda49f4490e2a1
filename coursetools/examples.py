"""Example submissions, built from the released notebooks so that they always match the gradebook.

Three example students hand in every assignment:
- example-correct: the reference solution (solutions/);
- example-untouched: the release as students receive it;
- example-mistakes: the reference solution with the answer cells of examples/mistakes/<assignment>.py.

An answer file holds cell bodies in the "percent" format. Each block replaces the answer cell with
that grade id, in the reference solution, and may say which test cells it must fail, and no others:

    # %% add_bias | fails: add_bias_input_unchanged
    def add_bias(features):
        ...
"""

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils

from coursetools.course import EXAMPLE_STUDENT_PREFIX, grade_id, notebook_path

_HEADER = re.compile(r"^# %% (?P<cell>[\w-]+)(?:\s*\|\s*fails:\s*(?P<fails>.*))?$")


@dataclass
class Answer:
    """The new body of one answer cell, and the test cells that it must fail."""

    cell: str
    source: str
    fails: list[str] = field(default_factory=list)


def percent_blocks(path, header):
    """(header match, body, cells named after "fails:") of each "# %% ..." block of a file, in order.

    `header` is a regular expression for the block's first line, with an optional group "fails".
    """
    blocks, lines = [], None
    for line in Path(path).read_text().splitlines():
        match = header.match(line)
        if match:
            lines = []
            fails = [name.strip() for name in (match["fails"] or "").split(",") if name.strip()]
            blocks.append((match, lines, fails))
        elif lines is not None:
            lines.append(line)
    return [(match, "\n".join(lines).strip("\n"), fails) for match, lines, fails in blocks]


def read_answers(path):
    """The answers of an answer file, in file order."""
    answers = [Answer(match["cell"], body, fails) for match, body, fails in percent_blocks(path, _HEADER)]
    if not answers:
        raise ValueError(f"{path}: no '# %% <answer cell>' block")
    return answers


def fill_answers(notebook, answers):
    """A copy of `notebook` with its answer cells replaced; an unknown answer cell is an error."""
    notebook = nbformat.from_dict(notebook)
    cells = {grade_id(cell): cell for cell in notebook.cells}
    for answer in answers:
        cell = cells.get(answer.cell)
        if cell is None or not utils.is_solution(cell):  # code or written
            raise KeyError(f"no answer cell {answer.cell!r} in the notebook")
        cell.source = answer.source
    return notebook


def example_students(root, assignment):
    """{student id: answer file or None} of the bundled examples of one assignment."""
    students = {"correct": None, "untouched": None}
    for answer_file in sorted((root / "examples").glob(f"*/{assignment}.py")):
        students[answer_file.parent.name] = answer_file
    return {EXAMPLE_STUDENT_PREFIX + name: path for name, path in students.items()}


def submit(root, assignment, student, notebook):
    """Hand in `notebook` for `student` as nbgrader expects it: submitted/<student>/<assignment>/."""
    target = notebook_path(root, "submitted", assignment, student)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    nbformat.write(notebook, target)
    return target


def submit_examples(root, assignment, kinds=None):
    """Hand in the example students' notebooks for one assignment (of `kinds`, e.g. ["correct"], or all);
    return the student ids."""
    release = nbformat.read(notebook_path(root, "release", assignment), as_version=4)
    solution = nbformat.read(notebook_path(root, "solutions", assignment), as_version=4)
    students = {student: path for student, path in example_students(root, assignment).items()
                if kinds is None or student.removeprefix(EXAMPLE_STUDENT_PREFIX) in kinds}
    for student, answer_file in students.items():
        if student == EXAMPLE_STUDENT_PREFIX + "untouched":
            notebook = release
        else:  # the correct example is the solution itself: it has no answer file
            notebook = fill_answers(solution, read_answers(answer_file)) if answer_file else solution
        submit(root, assignment, student, notebook)
    return list(students)
