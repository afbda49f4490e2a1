"""`course check NOTEBOOK...`: a student's self-check, the visible tests of a notebook run as
`nbgrader validate` runs them, one line per question.

For students (on the course's JupyterHub or their own machine) and for CI, from any folder. Each notebook
runs in a plain local kernel of this Python (no sandbox: it is the student's own code on their machine),
in the notebook's folder, so that the checks.py beside it is imported; the notebook file is not written.
The tests are those the notebook holds (a release notebook holds the visible ones only). A test cell
passes when nbgrader would give it full points: no error, nothing on stderr, no partial score.

Exit code 0 when every visible check of every notebook passes, 1 when one fails, a cell of the course's
(setup, data, plots) fails or a notebook cannot be run, 2 for a wrong command line.
"""

import ast
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbgrader import utils

from coursetools.course import ONE_BLAS_THREAD, grade_id, is_test_cell, tests_by_answer

TIMEOUT = 60  # seconds a cell may run, as when it is graded (nbgrader_config.py)
MESSAGE_WIDTH = 200  # characters of an error message shown


class ThisPythonKernel(AsyncKernelManager):
    """A kernel of the Python that runs `course check`, where the course's packages are installed,
    whatever kernel the notebook names (one saved elsewhere may name a kernel this machine lacks)."""

    @property
    def kernel_spec(self):
        # (the kernel's own log, not its cells' output: ipykernel warns on every start that it uses TCP)
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                                "--log-level=ERROR"], display_name="Python 3", language="python")


@dataclass
class Question:
    """An answer cell and the test cells after it, up to the next answer cell."""

    name: str
    written: bool = False
    checks: int = 0
    passed: int = 0
    hidden: int = 0  # test cells whose tests were all hidden: removed from the release
    problems: list = field(default_factory=list)

    def line(self):
        if self.written:
            return f"{self.name}: a written answer, graded by a TA"
        line = f"{self.name}: {self.passed} of {self.checks} visible checks pass"
        return f"{line}; {self.problems[0]}" if self.problems else line


def check_notebooks(paths, timeout=TIMEOUT):
    """Check each notebook and print what came out; the exit code (0 when every check passes)."""
    results = [check_notebook(Path(path), timeout) for path in paths]
    return 0 if all(results) else 1


def check_notebook(path, timeout):
    """Run one notebook, print its lines; whether every visible check passed."""
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # missing, not JSON, not a notebook: say so, check the others
        print(f"{path}: cannot be read: {one_line(str(error)) or type(error).__name__}", flush=True)
        return False
    for cell in notebook.cells:  # as nbgrader validate does: no output of an earlier run counts
        if cell.cell_type == "code":
            cell.outputs = []
    client = NotebookClient(notebook, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            error_on_timeout={"ename": "TimeoutError", "traceback": [],
                                              "evalue": f"the cell ran longer than {timeout} s"},
                            kernel_name="python3", kernel_manager_class=ThisPythonKernel,
                            on_cell_executed=keep_reply_error,
                            resources={"metadata": {"path": str(path.resolve().parent)}})
    try:
        client.execute(env={**os.environ, **ONE_BLAS_THREAD})
    except Exception as error:  # the kernel did not start, or died: the checks after it did not run
        print(f"{path}: could not be run: {type(error).__name__}: {one_line(str(error))}", flush=True)
        return False
    questions, broken = questions_of(notebook.cells)
    if broken and not questions:  # a cell before the first question failed: the checks could not run
        print(f"{path}: cannot run its checks: {broken[0]}", flush=True)
        return False
    if not questions:  # nothing to pass is no pass: a notebook of another course, or its metadata lost
        print(f"{path}: holds no questions of the course (no cells with nbgrader's metadata)", flush=True)
        return False
    checks, passed = sum(q.checks for q in questions), sum(q.passed for q in questions)
    hidden = sum(q.hidden for q in questions)
    total = f"{path}: {passed} of {checks} visible checks pass"
    if hidden:
        total += f" ({hidden} hidden {'check runs' if hidden == 1 else 'checks run'} when it is graded)"
    print(total)
    for line in [q.line() for q in questions] + broken:
        print(f"  {line}")
    sys.stdout.flush()
    return not broken and not any(q.problems for q in questions)


def questions_of(cells):
    """The questions of a notebook's cells (course.tests_by_answer), and what failed outside the tests and
    answers (read-only cells); questions is empty when a cell before the first answer or test failed."""
    questions, broken = [], []
    for answer, tests in tests_by_answer(cells):
        # tests before any answer are a question of their own, named after the first of them
        written = answer is not None and answer.cell_type == "markdown"
        question = Question(grade_id(answer or tests[0]), written=written)
        if answer and (problem := cell_error(answer)):
            question.problems.append(f"your answer cell raised {problem}")
        for test in tests:
            if not has_checks(test.source):
                question.hidden += 1
                continue
            question.checks += 1
            if problem := check_problem(test):
                question.problems.append(f"{grade_id(test)}: {problem}")
            else:
                question.passed += 1
        questions.append(question)
    first = next((index for index, cell in enumerate(cells) if utils.is_solution(cell) or is_test_cell(cell)),
                 len(cells))
    for index, cell in enumerate(cells):
        # the course's own cells (setup, data, plots); a student's own cells are not judged, as in nbgrader
        # validate
        if utils.is_locked(cell) and not is_test_cell(cell) and (problem := cell_error(cell)):
            broken.append(f"cell {grade_id(cell) or index + 1} raised {problem}")
            if index < first:
                return [], broken
    return questions, broken


def check_problem(cell):
    """What keeps a test cell from full points, in one line; None when it has them."""
    if problem := cell_error(cell):
        return problem
    try:
        score, points = utils.determine_grade(cell)
    except (KeyError, ValueError) as error:  # a displayed score nbgrader cannot take
        return f"shows a score nbgrader cannot use ({one_line(str(error))})"
    # partial credit: a test cell may show the points it earned; less than full is not a pass
    return None if score >= points else f"scored {score:g} of {points:g} points"


def cell_error(cell):
    """A code cell's first error or stderr output, in one line (as nbgrader scores it: either is a
    failure); None without one."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            message = one_line(output.get("evalue", ""))
            # a failed check (AssertionError, checks.py's CheckFailed) has a message written for students
            if message and (output.ename == "AssertionError" or output.ename.endswith("Failed")):
                return message
            return f"{output.ename}: {message}" if message else output.ename
        if output.output_type == "stream" and output.name == "stderr":
            return f"printed to stderr: {one_line(output.text)}"
    return None


def keep_reply_error(cell, cell_index, execute_reply):
    """nbclient gives a cell that timed out no error output of its own (at most the interrupt's): give it
    the reply's, first, as nbgrader gives it one."""
    content = (execute_reply or {}).get("content", {})
    shown = {output.get("ename") for output in cell.outputs if output.output_type == "error"}
    if content.get("status") == "error" and content.get("ename") not in shown:
        cell.outputs.insert(0, nbformat.v4.new_output("error", ename=content.get("ename", "Error"),
                                                      evalue=content.get("evalue", ""), traceback=[]))


def has_checks(source):
    """Whether a test cell has anything to run: one whose tests were all hidden holds only its docstring
    (and a `pass`) in the release, and is not a visible check."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython syntax (magics), or broken: it runs, so it counts
        return True
    return any(not (isinstance(statement, ast.Pass) or is_string(statement)) for statement in body)


def is_string(statement):
    """Whether a statement is a string alone (a docstring): it does nothing."""
    value = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def one_line(text):
    """The first non-blank line of `text`, clipped."""
    line = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return line if len(line) <= MESSAGE_WIDTH else line[:MESSAGE_WIDTH - 3] + "..."
