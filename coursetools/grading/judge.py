"""The judge: runs the test cells of a notebook outside the student's kernel, in trusted code.

At grading time the student's kernel (in the sandbox) runs the student's notebook without its test cells.
The judge runs, in this process, the instructor's own cells from source/ (never the copies in the
submission): the read-only setup and data cells, and the test cells, in notebook order. Every name that
the instructor's solution cells define is, in the judge, a StudentFunction: calling it sends the call to
the student's kernel, where the shim (coursetools/student/shim.py) carries it out on the student's
function and sends back plain data (coursetools/student/wire.py) that the judge reads without pickle or
eval, with a size and a time limit. So a test, a reference function or an expected value never enters
the kernel, and what the kernel runs cannot reach a verdict: it can only answer, or fail to.

What a call needs that is not data (a make_model factory, a stand-in model, a replacement function) is
kept here, in the judge: the kernel gets a reference, for which the shim makes a stub, and every use of it
(a call, fit / predict with data, get_params) comes back here, where it is carried out and observed by
trusted code (the kernel's stdin channel carries these requests while the call runs; see
student_kernel.Kernel.converse). So no instructor source is sent to the kernel, only the shim, wire.py and
checks.py, which are public; and what the kernel answers is only an answer: a check rests on answers and
on the uses that came back, never on what code in the kernel says it saw. Answers are measured before
they are decoded (wire.decode) and refused over their budget. A `@checks.reference` function's results are
remembered across the submissions graded (references.py).
The judge writes each test cell's outputs: what the test printed, and on failure an error whose text is
the check's message (no test source, no grader path); nbgrader scores them as always.
"""

import ast
import contextlib
import copy
import hashlib
import io
import itertools
import json
import math
import sys
import time
import types
import warnings
from pathlib import Path

import nbformat
import numpy as np
from nbgrader import utils

from coursetools.course import grade_id, is_code_answer, is_instructor_code

# the folder's variable and the memory are the judge's too, for batch.py and the tests
from coursetools.grading.references import remember
from coursetools.grading.student_kernel import Kernel, KernelGone, KernelObject, StudentFunction
from coursetools.student import checks, shim, wire

STUDENT_SIDE = [checks, wire, shim]  # modules whose source runs in the student's kernel, in this order
HIDDEN_FEEDBACK = ("message", "full", "pass/fail")  # how much a failed hidden test shows
_prefixes = {}  # digest of a notebook's first instructor cells -> (namespace they made, shared names)
_checks = {}  # digest of its source -> the course's checks module


class Judge:
    """Runs one notebook's instructor cells and test cells beside the student's kernel."""

    def __init__(self, source_notebook, checks_path, timeout=60, max_bytes=64 * 2**20, transcript=None,
                 seed=None, hidden_feedback="message", other_seeds=()):
        if hidden_feedback not in HIDDEN_FEEDBACK:
            raise ValueError(f"hidden_feedback is {hidden_feedback!r}; expected one of "
                             f"{', '.join(HIDDEN_FEEDBACK)}")
        self.cells = {grade_id(cell): cell for cell in source_notebook.cells if grade_id(cell)}
        # the student's own seed of hidden inputs; the others judge each test again (a check of the tests)
        self.seed, self.hidden_feedback, self.other_seeds = seed, hidden_feedback, list(other_seeds)
        self.student_names = solution_names(source_notebook)
        # the instructor's cells that come before the first test and use no function of the student's:
        # the same for every submission, so run once per process (the namespace they make is copied)
        self.prefix = []
        for cell in source_notebook.cells:
            if utils.is_grade(cell) or "inputs_rng(" in cell.source:  # a student's own inputs: never shared
                break
            if is_instructor_code(cell) and self.runs_here(cell):
                self.prefix.append(grade_id(cell))
        self.timeout, self.max_bytes, self.transcript = timeout, max_bytes, transcript
        self.checks = _load_checks(checks_path)
        # _load_checks keeps one module per content: its id stands for the helpers' source
        self._prefix_key = hashlib.sha256("\0".join(
            [str(id(self.checks)), *(self.cells[name].source for name in self.prefix)]).encode()).digest()
        self.namespace = {"__name__": "__main__"}
        self.namespace.update({name: StudentFunction(name, self) for name in self.student_names})
        self.kernel = None
        self.objects = {}  # number -> what the kernel holds a reference to (a stub), during one call
        self._numbers = {}  # id of such an object -> its number
        self._counter = itertools.count(1)  # numbers are never used twice: a stub kept from an old call
        self._depth = 0  # calls under way: a call made while the kernel waits for a use is nested
        self._deadline = 0.0
        self.out_of_memory = False  # a MemoryError in the judge: the rest of the notebook is not judged
        self.call_seconds = []  # what each call to the kernel took, the student's function included
        self.overhead_seconds = []  # what each call cost beyond the student's function: what a proxy costs

    def connect(self, km):
        """Open the line to the kernel and install the shim there (before the notebook's first cell)."""
        self.kernel = Kernel(km, self.timeout, self.max_bytes, self.transcript)
        self.kernel.run(_bootstrap())
        self.kernel.open(shim.TARGET)

    def close(self):
        if self.kernel:
            self.kernel.close()

    def runs_here(self, cell):
        """Whether the judge also runs this read-only instructor cell: setup and data cells, not the ones
        that use the student's functions (those are the student's to see run)."""
        source = self.cells.get(grade_id(cell))
        if source is None or source.cell_type != "code":
            return False
        if "skip-execution" in source.metadata.get("tags", []):
            return False
        return not (names_used(source.source) & set(self.student_names))

    def run_instructor_cell(self, grade_id):
        """Run a read-only instructor cell (the kernel runs its own copy of it)."""
        made = _prefixes.get(self._prefix_key)
        if grade_id in self.prefix and made is not None:
            if grade_id == self.prefix[0]:  # what the prefix made for an earlier submission, copied
                self.namespace.update({name: _fresh(value) for name, value in made.items()})
            return None
        _, error = self._run(self.cells[grade_id].source)
        if self.prefix and grade_id == self.prefix[-1] and error is None:
            student = set(self.student_names)
            _prefixes[self._prefix_key] = {
                name: _fresh(value) for name, value in self.namespace.items() if name not in student}
        return error

    def run_test_cell(self, grade_id):
        """Run the instructor's test cell; return its outputs as nbgrader scores them: what the test printed,
        and on failure an error with the check's message, or, for a test of `cases` that some cases passed,
        the message and the points earned (nbgrader's partial credit: an output that is a number)."""
        cell = self.cells[grade_id]
        if self.out_of_memory:
            printed, error = "", MemoryError("not judged: the grader ran out of memory in an earlier test")
        else:
            printed, error = self._run(cell.source)
            if self.other_seeds and "inputs_rng(" in cell.source and not self.out_of_memory:
                error = self._same_under_other_seeds(cell.source, error)
        hidden = "BEGIN HIDDEN TESTS" in cell.source
        told = self.hidden_feedback if hidden else "full"  # visible tests always show everything
        printed = "" if told == "pass/fail" else printed
        outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)] if printed else []
        if error is None:
            return outputs
        message = {"full": str(error), "message": getattr(error, "brief", str(error)),
                   "pass/fail": "this hidden test failed (the course shows no detail of hidden tests)"}[told]
        passed, total = getattr(error, "passed", 0), getattr(error, "total", 0)
        if passed and total and ends_with_cases(cell.source):
            points = float(cell.metadata["nbgrader"]["points"])
            earned = math.floor(100 * points * passed / total) / 100  # never more than the cases passed
            text = message if told != "pass/fail" else f"{total - passed} of {total} cases of this test fail"
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=f"{text}\n"))
            outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": f"{earned:g}"},
                                                  execution_count=None))
            return outputs
        name = type(error).__name__ if told != "pass/fail" else "AssertionError"
        outputs.append(nbformat.v4.new_output("error", ename=name, evalue=message,
                                              traceback=[f"{name}: {message}"]))
        return outputs

    def _same_under_other_seeds(self, source, error):
        """Judge a test that draws inputs from the student's seed again under the other seeds: its verdict
        (all of its points, or not) must not depend on them. The error of the student's own seed, or one
        that says under which seeds the verdict differs."""
        seed, errors = self.seed, {self.seed: error}
        try:
            for other in self.other_seeds:
                self.seed = other
                errors[other] = self._run(source)[1]
        finally:
            self.seed = seed
        failing = {key: failed for key, failed in errors.items() if failed is not None}
        if not failing or len(failing) == len(errors):
            return error
        passing = [str(key) for key in errors if key not in failing]
        first, failed = next(iter(failing.items()))
        return SeedDependent(f"the verdict depends on the hidden inputs: passes under seeds "
                             f"{', '.join(passing)}; fails under {', '.join(map(str, failing))}; "
                             f"under {first}: {failed}")

    def _run(self, source):
        printed = io.StringIO()
        self.checks.remember, self.checks.seed = remember, self.seed
        try:
            with contextlib.redirect_stdout(printed), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the judge's own warnings are nobody's business
                exec(compile(source, "<test cell>", "exec"), self.namespace)
        except MemoryError as error:  # the grader's own bound: the notebook needs a TA, the batch goes on
            self.out_of_memory = True
            return printed.getvalue(), MemoryError(f"the grader ran out of memory in this test ({error})")
        except Exception as error:  # a failed check, or a call the kernel could not answer
            return printed.getvalue(), error
        finally:
            self.checks.remember = self.checks.seed = None
        return printed.getvalue(), None

    def ask(self, function, name, args, kwargs, seed=None, allow_warnings=None, replace=None,
            inputs_after=False):
        """Call the student's `function` (its name, or a reference to an object of the kernel's) in the
        kernel; return the result (and the inputs after the call), or raise AssertionError with a message
        for the student. While the call runs, the kernel's uses of the tests' objects are carried out here,
        with numpy's global RNG seeded as the kernel's is (a stand-in MLP fits as it would there)."""
        top = self._depth == 0
        request = {"function": function, "inputs_after": inputs_after}
        if top:
            request.update(seed=seed, allow_warnings=allow_warnings)
            self._deadline = time.monotonic() + self.timeout
            state = np.random.get_state()
            np.random.seed(seed)
        started = time.perf_counter()
        self._depth += 1
        try:
            request.update(args=[self._encode(value) for value in args],
                           kwargs={key: self._encode(value) for key, value in kwargs.items()},
                           replace={key: self._encode(value) for key, value in (replace or {}).items()})
            response = self.kernel.converse(json.dumps({"call": request}, allow_nan=True), self._serve,
                                            self._deadline, nested=not top)
            if "error" in response:
                if not top and response["error"].get("kind") == "raised":
                    raise _StudentRaised(response["error"])  # to be raised in the student's code again
                raise AssertionError(checks.failure_message(name, response["error"]))
            result = self._decode(response["result"])
            after = [self._decode(value) for value in response.get("inputs_after", [])]
        except KernelGone as gone:
            raise AssertionError(f"{name} could not be called: {gone}") from None
        except (wire.TooLarge, TimeoutError) as error:
            raise AssertionError(checks.failure_message(name, {"kind": "failed", "message": str(error)})
                                 ) from None
        except (ValueError, KeyError, TypeError) as error:
            raise AssertionError(f"{name} answered something that is not data ({error})") from None
        finally:
            self._depth -= 1
            if top:
                self.objects.clear()  # the kernel's stubs of them answer no more
                self._numbers.clear()
                np.random.set_state(state)
                self.call_seconds.append(time.perf_counter() - started)
        spent = response.get("seconds")  # the kernel's word: statistics only, never a verdict
        if top and isinstance(spent, float) and 0 <= spent <= self.call_seconds[-1]:
            self.overhead_seconds.append(self.call_seconds[-1] - spent)
        return (result, after) if inputs_after else result

    def _serve(self, use):
        """Carry out one use that the kernel asked for: call one of the tests' objects (or a method of it,
        or make a new one of its class, as scikit-learn's clone does), with data; answer with data or a
        reference. What the use raises goes back to the kernel, to be raised where the student's code made
        the use."""
        try:
            target = self.objects[use["object"]]
            args = [self._decode(value) for value in use["args"]]
            kwargs = {key: self._decode(value) for key, value in use["kwargs"].items()}
            method = use["method"]
            if method is None:
                result = target(*args, **kwargs)
            elif method == "$new":
                result = type(target)(*args, **kwargs)
            elif method == "$get" and len(args) == 1 and _public(args[0]):
                result = getattr(target, args[0])
            elif _public(method):
                result = getattr(target, method)(*args, **kwargs)
            else:
                raise AttributeError(f"the tests' objects have no {str(method)[:40]!r}")
            return {"return": self._encode(result)}
        except (MemoryError, KernelGone, TimeoutError):
            raise
        except _StudentRaised as error:
            return {"raise": {"type": error.error.get("type"), "message": error.error.get("message")}}
        except Exception as error:
            kind = type(error).__name__ if type(error).__module__ == "builtins" else "RuntimeError"
            return {"raise": {"type": kind, "message": str(error)[:300]}}

    def _encode(self, value):
        return wire.encode(value, self._refer)

    def _decode(self, data):
        return wire.decode(data, self.max_bytes, self._resolve)

    def _refer(self, value):
        """A reference that the kernel gets for a value that is not data: the judge keeps the value."""
        if isinstance(value, KernelObject):
            return {"$kernel": {"number": value._number}}
        if id(value) not in self._numbers:
            number = next(self._counter)
            self.objects[number], self._numbers[id(value)] = value, number
        return {"$judge": {"number": self._numbers[id(value)], "kind": _kind(value)}}

    def _resolve(self, tag, body):
        number = body.get("number") if isinstance(body, dict) else None
        if tag == "$judge":
            if number not in self.objects:
                raise ValueError("a reference to an object that the tests do not hold")
            return self.objects[number]
        return KernelObject(self, number, bool(body.get("callable")))


class SeedDependent(AssertionError):
    """A test whose verdict changes with the seed of the hidden inputs: the test, not the answer, is wrong."""


def ends_with_cases(source):
    """Whether a test cell's last statement is a call of `cases`: then nothing of it is left unrun when
    `cases` reports that some cases failed, and the cell may earn partial credit."""
    body = ast.parse(source).body
    last = body[-1] if body else None
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name) and last.value.func.id == "cases")


def hidden_seed(course, assignment, student, round_=0):
    """The seed of a student's hidden inputs: from the course, the assignment and the student, so that it
    is the same at every regrade and differs between students (round_ > 0: other seeds, to check tests)."""
    text = "\0".join([course, assignment, student, str(round_)] if round_ else [course, assignment, student])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class _StudentRaised(Exception):
    """What the student's code raised in a call that the judge made while a use ran."""

    def __init__(self, error):
        super().__init__(f"{error.get('type')}: {error.get('message')}")
        self.error = error


def _public(name):
    return isinstance(name, str) and name.isidentifier() and not name.startswith("_")


def _kind(value):
    """What the kernel's stub of `value` must pass for: a scikit-learn model of its kind, or anything."""
    if isinstance(value, type) or not callable(getattr(value, "fit", None)):
        return "object"
    from sklearn.base import is_classifier, is_regressor

    return "classifier" if is_classifier(value) else "regressor" if is_regressor(value) else "model"


def _bootstrap():
    """The code that installs the shim in the kernel: its modules (student_modules), then the shim."""
    return (student_modules() + "import sys as _sys\n_sys.modules['coursetools.student.shim'].install()\n"
            "del _sys\n")


def snapshot_prelude():
    """What the snapshot of an assignment's set-up cells runs before them: the shim's modules, and
    `checks` where the cells import it from (in a kernel, installing the shim puts it there)."""
    return student_modules() + ("import sys as _sys\n_sys.modules['checks'] = "
                                "_sys.modules['coursetools.student.checks']\ndel _sys\n")


def student_modules():
    """The code that builds the shim's modules (the course's test helpers `checks` among them), from
    their source, under the names they import each other by (the kernel cannot import this package)."""
    modules = [(module.__name__, Path(module.__file__).read_text()) for module in STUDENT_SIDE]
    return (
        "import sys as _sys, types as _types\n"
        "for _name in ('coursetools', 'coursetools.student'):\n"
        "    _sys.modules.setdefault(_name, _types.ModuleType(_name))\n"
        f"for _name, _source in {modules!r}:\n"
        "    _module = _types.ModuleType(_name)\n"
        "    _sys.modules[_name] = _module\n"
        "    setattr(_sys.modules['coursetools.student'], _name.rpartition('.')[2], _module)\n"
        "    exec(compile(_source, _name, 'exec'), _module.__dict__)\n"
        "_sys.modules['coursetools'].student = _sys.modules['coursetools.student']\n"
        "del _sys, _types, _name, _source, _module\n"
    )


def _load_checks(path):
    """The course's test helpers, as the test cells import them (`from checks import ...`): loaded once
    per process and content (each submission of `course grade` has a scratch copy of its own), so that
    what a prefix made and what a test makes share them."""
    source = Path(path).read_bytes()
    key = hashlib.sha256(source).hexdigest()
    if key not in _checks:
        module = types.ModuleType("checks")
        module.__file__ = "checks.py"  # tracebacks name the file students know, not a scratch path
        exec(compile(source, "checks.py", "exec"), module.__dict__)
        _checks[key] = module
    sys.modules["checks"] = _checks[key]
    return _checks[key]


def _fresh(value):
    """A copy of a value of the judge's namespace that no test can change for the next submission;
    modules, classes and functions as they are."""
    if isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # what cannot be copied is used as it is
        return value


def solution_names(notebook):
    """Names that the instructor's solution cells define at their top level."""
    names = []
    for cell in notebook.cells:
        if is_code_answer(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.append(node.name)
                elif isinstance(node, ast.Assign):
                    names += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return names


def names_used(source):
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}

