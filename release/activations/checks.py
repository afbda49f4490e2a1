"""Checks used by the tests in every notebook of the course.

Each check raises CheckFailed (an AssertionError) with a message that says what was checked, what was
expected and what came back, so that a failed test teaches instead of only saying "fail". Checks run in the
order type -> shape -> values; values are compared on np.ravel of both sides, so that a shape
mistake is judged by the shape check alone.

The same test code runs in two places. In a student's own Jupyter, `call` calls the student's function
directly. At grading time the test cells run in the judge, outside the student's kernel: there each of
the student's functions is a stand-in whose `__call_in_kernel__` sends the call to the kernel and brings
back plain data, and `call` hands it the call. What a test passes that is not data (a make_model
factory, a stand-in model, a replacement function) stays with the test: at grading time the kernel gets
a stub that forwards every use of it back to the judge. A `@reference` function's results may be
remembered by the grader across the students of a class.

This file is also the one definition of how a call is made (`run`), what it says when it fails
(`failure_message`) and what counts as plain data (`data_problem`): the grading kernel runs `run` on the
student's function, and the judge says what went wrong with `failure_message`, so a mistake reads the
same in a student's own Jupyter and in the feedback.
"""

import contextlib
import copy
import functools
import importlib
import io
import warnings

import numpy as np
import pandas as pd

MAX_DEPTH = 6  # how deep lists, tuples and dicts of plain data may nest
NUMBER_KINDS = "biuf"  # numpy dtype kinds that are numbers: booleans, signed and unsigned integers, floats
# exact classes (not subclasses) of the scalars that are plain data: Python's and numpy's own
SCALARS = {bool, int, float, str, type(None)}
NUMPY_SCALARS = {kind for kind in np.sctypeDict.values() if issubclass(kind, (np.number, np.bool_))}
# pandas' nullable number dtypes that are plain data beside numpy's numbers
NULLABLE = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
            "boolean")


class CheckFailed(AssertionError):
    """A failed check. Its text says everything: what was checked, what was expected, what came back, and
    the hint. `brief` says what was wrong without the expected values: what a failed hidden test shows
    (each student's hidden inputs are their own, and the course chooses how much such a test tells)."""

    def __init__(self, message, brief=None, hint=""):
        self.message, self.brief_message, self.hint = message, message if brief is None else brief, hint
        super().__init__(_join(message, hint))

    @property
    def brief(self):
        return _join(self.brief_message, self.hint)

    def with_hint(self, hint):
        """This failure with `hint` added after a hint of its own."""
        self.hint = _join(self.hint, hint) if self.hint else hint
        self.args = (_join(self.message, self.hint),)
        return self


class CasesFailed(CheckFailed):
    """Some cases of `cases` failed: `passed` of `total` passed; the message is the first failure's."""

    def __init__(self, message, brief=None, hint="", passed=0, total=0):
        super().__init__(message, brief, hint)
        self.passed, self.total = passed, total


@contextlib.contextmanager
def hint(text):
    """Adds `text` to the message of any check that fails in the block: also when the student's function
    raised or warned, so that the call failed before the check that would carry the hint could run."""
    try:
        yield
    except CheckFailed as failed:
        raise failed.with_hint(text) from failed.__cause__
    except AssertionError as error:  # a plain assert, or a call that failed in the judge
        raise CheckFailed(str(error), hint=text) from error.__cause__


def cases(check, inputs):
    """Partial credit: runs check(case) for every case. When some fail, it raises CasesFailed with how many
    passed and the first failure's message: in a student's own Jupyter the test fails; at grading time
    the test cell scores its points in proportion to the cases that passed (none passed: zero). Make it
    the last statement of its test cell (the judge gives partial credit only then)."""
    inputs = list(inputs)
    failures = []
    for case in inputs:
        try:
            check(case)
        except AssertionError as error:
            failures.append(error)
    if failures:
        counted = f"{len(failures)} of {len(inputs)} cases fail; the first: "
        first = failures[0]
        raise CasesFailed(counted + str(first), counted + getattr(first, "brief", str(first)),
                          passed=len(inputs) - len(failures), total=len(inputs))


seed = None  # each student's own seed at grading time (the judge sets it); None in a student's own Jupyter


def inputs_rng(stream):
    """The random generator a hidden test draws its inputs from (`stream` tells the tests of a notebook
    apart). At grading time it is seeded with the student's own seed, from the course, the assignment
    and the student: each student's hidden inputs are their own, the same at every regrade."""
    return np.random.default_rng(stream if seed is None else [stream, seed])


def call(func, *args, seed=0, copy_inputs=True, allow_warnings=True, replace=None, any_result=False,
         inputs_after=False, **kwargs):
    """Call a student's function the way every test does.

    - on deep copies of the inputs, so a function that modifies its input cannot spoil the test's data;
    - after seeding numpy's global RNG, so unseeded scikit-learn models give repeatable results;
    - with warnings and stderr captured: nbgrader scores any stderr output as a failed test, and a
      ConvergenceWarning from a correct answer must not cost points. With allow_warnings=False a
      warning fails the check instead (for answers that must be warning-free, such as a stable sigmoid);
    - with the global names in `replace` (e.g. {"sigmoid": reference}) swapped for the duration of the
      call, so that a test of one function is not failed by a mistake in another one that it uses; a
      dotted name ("sklearn.neural_network.MLPClassifier") swaps a module's attribute, which an import
      inside the function would otherwise bypass;
    - and it accepts only plain data in return (numbers, numeric arrays, DataFrames and Series, and
      lists, tuples and dicts of them): an object of another class could fake its comparisons
      (any_result=True for calls that are not a student's answer, such as a model's fit).
    With inputs_after=True it returns (result, the inputs as the function left them): at grading time
    those come from the student's kernel, so a check on them rests on the kernel's word.
    """
    in_kernel = getattr(func, "__call_in_kernel__", None)
    if in_kernel is not None:  # grading: the judge sends the call to the student's kernel
        return in_kernel(args, kwargs, seed=seed, allow_warnings=allow_warnings, replace=replace or {},
                         inputs_after=inputs_after)
    name = getattr(func, "__name__", repr(func))
    if copy_inputs or inputs_after:
        args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    outcome = run(func, args, kwargs, seed=seed, allow_warnings=allow_warnings, replace=replace)
    if "error" in outcome:  # the student's own traceback stays attached, for their own Jupyter
        raise CheckFailed(failure_message(name, outcome["error"])) from outcome["exception"]
    result = outcome["result"]
    if not any_result:
        problem = data_problem(result)
        if problem:
            raise CheckFailed(failure_message(name, {"kind": "refused", "message": problem}))
    return (result, list(args)) if inputs_after else result


def run(func, args, kwargs, seed=0, allow_warnings=True, replace=None):
    """Call `func(*args, **kwargs)` as a test does (seed, warnings, stderr, replaced names): return
    {"result": what it returned} or {"error": {"kind": ..., "type": ..., "message": ...}, "exception": the
    exception}, with the kinds that `failure_message` words. seed=None and allow_warnings=None keep the
    RNG and the warning filter as they are (a call made from inside another one)."""
    if seed is not None:
        np.random.seed(seed)
    with _replaced(func, replace or {}), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        if allow_warnings is not None:
            warnings.simplefilter("ignore" if allow_warnings else "error")
        try:
            return {"result": func(*args, **kwargs)}
        except Warning as warning:
            error = {"kind": "warned", "type": type(warning).__name__, "message": _clip(warning)}
            return {"error": error, "exception": warning}
        except NotImplementedError as error:
            return {"error": {"kind": "not written"}, "exception": error}
        except KeyboardInterrupt:
            raise  # the judge's interrupt at the time limit, or the student's own
        except BaseException as error:  # SystemExit too: the student's function ended the call
            return {"error": {"kind": "raised", "type": type(error).__name__, "message": _clip(error)},
                    "exception": error}


def failure_message(name, error):
    """What a student reads when a call of their function `name` gave no answer (`error` as `run` makes
    it, or as the judge saw the call fail)."""
    kind = error.get("kind")
    if kind == "missing":
        return f"{name} is not defined in your notebook"
    if kind == "not written":
        return f"{name} is not written yet (it raises NotImplementedError)"
    if kind == "warned":
        return f"{name} warned {error.get('type')}: {error.get('message')}"
    if kind == "raised":
        return f"{name} raised {error.get('type')}: {error.get('message')}"
    if kind == "refused":
        return (f"{name} returned {error.get('message')}; expected numbers, arrays, DataFrames or Series (or "
                "lists, tuples and dicts of them)")
    if kind == "request":
        return f"{name} could not be called: your notebook lacks what the test needs ({error.get('message')})"
    if kind == "failed":  # the call's answer could not be had: too large, or not within the time limit
        return f"{name} {error.get('message')}"
    return f"{name} did not answer (the code of your notebook got in the way of the call)"


def data_problem(value, depth=0):
    """None when `value` is plain data (numbers, strings, numeric arrays, DataFrames and Series, and
    lists, tuples and dicts of them, by exact class); else what it is ("an object of class X")."""
    kind = type(value)
    if kind in (list, tuple, dict):
        if depth >= MAX_DEPTH:
            return f"lists, tuples or dicts nested more than {MAX_DEPTH} deep"
        items = [*value.keys(), *value.values()] if kind is dict else value
        return next((problem for item in items if (problem := data_problem(item, depth + 1))), None)
    return leaf_problem(value)


def leaf_problem(value):
    """data_problem of a value that is not a list, tuple or dict."""
    kind = type(value)
    if kind in SCALARS or kind in NUMPY_SCALARS:
        return None
    if kind in (np.ndarray, pd.Series, pd.DataFrame):
        dtypes = list(value.dtypes) if kind is pd.DataFrame else [value.dtype]
        odd = [dtype for dtype in dtypes if not _number_dtype(dtype)]
        return f"a {kind.__name__} of {', '.join(sorted(set(map(str, odd))))}" if odd else None
    return f"an object of class {kind.__name__}"


def _number_dtype(dtype):
    """numpy's numbers and booleans, or pandas' nullable ones (Int64, boolean); not objects or categories."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in NUMBER_KINDS
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.name in NULLABLE


def reference(function):
    """Marks a reference implementation: its result depends only on its inputs, so the grader may
    remember it across the students of a class (at grading time `remember` is set)."""

    @functools.wraps(function)
    def referenced(*args, **kwargs):
        if remember is None:
            return function(*args, **kwargs)
        return remember(function, args, kwargs)

    return referenced


remember = None  # the judge's memory of reference results, or None


@contextlib.contextmanager
def _replaced(func, replacements):
    missing = object()
    saved = []
    for name, value in replacements.items():
        if "." in name:
            module, _, name = name.rpartition(".")
            namespace = vars(importlib.import_module(module))
        else:
            namespace = getattr(func, "__globals__", {})
        saved.append((namespace, name, namespace.get(name, missing)))
        namespace[name] = value
    try:
        yield
    finally:
        for namespace, name, value in reversed(saved):
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def expect_type(what, got, types, hint=""):
    """`got` is an instance of `types` (a type or a tuple of types)."""
    if not isinstance(got, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise CheckFailed(f"{what} returned {type(got).__name__}; expected {names}", hint=hint)


def expect_shape(what, got, shape, hint=""):
    """np.shape(got) is exactly `shape`."""
    got_shape = np.shape(got)
    if got_shape != tuple(shape):
        raise CheckFailed(f"{what} returned shape {got_shape}; expected {tuple(shape)}", hint=hint)


def expect_close(what, got, expected, *, rtol=1e-7, atol=1e-9, hint="", inputs=None):
    """The values of `got` equal `expected` within rtol/atol, compared on np.ravel of both. With `inputs`
    (of an elementwise function), a failure names the input at the first wrong position."""
    got_values = as_numbers(what, got).ravel()
    expected_values = np.asarray(expected, dtype=float).ravel()
    _expect_same_values(what, got_values, expected_values, hint, inputs,
                        lambda: np.isclose(got_values, expected_values, rtol=rtol, atol=atol))


def expect_equal(what, got, expected, hint="", inputs=None):
    """`got` equals `expected` exactly (deterministic results: labels, KNN fold accuracies)."""
    if np.ndim(expected) == 0:
        if np.ndim(got) != 0 or not got == expected:
            raise CheckFailed(f"{what} returned {_short(got)}; expected {_short(expected)}",
                              f"{what} returned {_short(got)}, which is not the expected value", hint)
        return
    got_values = as_numbers(what, got).ravel()
    expected_values = np.asarray(expected, dtype=float).ravel()
    _expect_same_values(what, got_values, expected_values, hint, inputs,
                        lambda: got_values == expected_values)


def _expect_same_values(what, got_values, expected_values, hint, inputs, compare):
    """Same number of values, then compare() says which ones are right."""
    if got_values.size != expected_values.size:
        raise CheckFailed(f"{what} returned {got_values.size} values; expected {expected_values.size}",
                          hint=hint)
    right = compare()
    if not np.all(right):
        first = int(np.flatnonzero(~right)[0])
        where = (f"{what} is wrong at {int((~right).sum())} of {expected_values.size} positions; "
                 f"first at position {first}")
        if inputs is not None and np.size(inputs) == expected_values.size:
            where += f" (input {np.ravel(np.asarray(inputs, dtype=float))[first]:.10g})"
        got_text = f"got {got_values[first]:.10g}"
        raise CheckFailed(f"{where}: expected {expected_values[first]:.10g}, {got_text}",
                          f"{where}: {got_text}", hint)


def expect_columns(what, frame, names, hint=""):
    """The column names of `frame`, in order and of the same types (0 is not "0"), are `names`."""
    same_types = [type(name) for name in frame.columns] == [type(name) for name in names]
    if list(frame.columns) != list(names) or not same_types:
        raise CheckFailed(f"{what} returned columns {list(frame.columns)!r}; expected {list(names)!r}",
                          hint=hint)


def expect_frame(what, got, expected, *, rtol=1e-7, atol=1e-9, hint=""):
    """`got` is a DataFrame with the columns (names and order), index and values of `expected`."""
    expect_type(what, got, pd.DataFrame, hint)
    expect_columns(what, got, list(expected.columns), hint)
    if not got.index.equals(expected.index):
        raise CheckFailed(f"{what} returned index {_short(got.index)}; expected {_short(expected.index)}",
                          hint=hint)
    expect_close(what, got.to_numpy(dtype=float), expected.to_numpy(dtype=float), rtol=rtol, atol=atol,
                 hint=hint)


def expect_inputs_unchanged(func, *args):
    """Calling `func` leaves every one of its arguments exactly as it was.

    The function gets copies, so that one which does modify its input cannot spoil the caller's data.
    """
    _, after = call(func, *args, inputs_after=True)
    for position, (before, later) in enumerate(zip(args, after, strict=True), start=1):
        _expect_unchanged(f"{func.__name__} (argument {position})", before, later)


def _expect_unchanged(what, before, after):
    if not _same(before, after):
        kind, fix = _COPIES.get(type(before), (type(before).__name__, "copy.deepcopy(value)"))
        raise CheckFailed(f"{what} changed its input, {kind}; work on a copy instead (e.g. {fix})")


# how to copy what a test passes, by its type: the words of a "changed its input" message
_COPIES = {np.ndarray: ("a numpy array", "x = x.copy(), or a function that returns a new array"),
           pd.DataFrame: ("a DataFrame", "frame = frame.copy()"), pd.Series: ("a Series", "series.copy()"),
           list: ("a list", "values = list(values), or copy.deepcopy(values) for a list of arrays"),
           dict: ("a dict", "dict(values)"), tuple: ("a tuple of arrays", "[a.copy() for a in values]")}


def _same(before, after):
    """Exact equality of inputs: pandas objects (names included), arrays, and lists of arrays."""
    if isinstance(before, (pd.DataFrame, pd.Series)):
        same = isinstance(after, type(before)) and before.equals(after)
        return same and list(getattr(before, "columns", [])) == list(getattr(after, "columns", []))
    if isinstance(before, (list, tuple)):
        return (isinstance(after, (list, tuple)) and len(before) == len(after)
                and all(_same(b, a) for b, a in zip(before, after, strict=True)))
    return np.shape(before) == np.shape(after) and np.array_equal(before, after)


def as_numbers(what, value):
    """`value` as a float ndarray, or a CheckFailed that says why it is not numeric."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise CheckFailed(f"{what} returned {type(value).__name__}, which is not numeric: {error}") from None


def _short(value, limit=80):
    text = np.array2string(np.asarray(value), threshold=8, edgeitems=3, separator=", ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(error, limit=300):
    text = str(error)
    return text if len(text) <= limit else text[: limit - 5] + " ..."


def _join(message, hint):
    return f"{message}. {hint}" if hint else message
