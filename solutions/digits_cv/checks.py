"""Checks used by the tests in every notebook of the course.

Each check raises AssertionError with a message that says what was checked, what was expected and
what came back, so that a failed test teaches instead of only saying "fail". Checks run in the
order type -> shape -> values; values are compared on np.ravel of both sides, so that a shape
mistake is judged by the shape check alone.

The same test code runs in two places. In a student's own Jupyter, `call` calls the student's function
directly. At grading time the test cells run in the judge, outside the student's kernel: there each of
the student's functions is a stand-in whose `__call_in_kernel__` sends the call to the kernel and brings
back plain data, and `call` hands it the call. What the student's side of a call needs that is not data
(a make_model factory, a stand-in model, a replacement function) is written as `built(source)`: built
from that source where the call runs. A `@reference` function's results may be remembered by the grader
across the students of a class.
"""

import ast
import contextlib
import copy
import functools
import importlib
import io
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd


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
    With inputs_after=True it returns (result, the inputs as the function left them).
    """
    in_kernel = getattr(func, "__call_in_kernel__", None)
    if in_kernel is not None:  # grading: the judge sends the call to the student's kernel
        return in_kernel(args, kwargs, seed=seed, allow_warnings=allow_warnings, replace=replace or {},
                         inputs_after=inputs_after)
    name = getattr(func, "__name__", repr(func))
    args, kwargs = [_made(value) for value in args], {key: _made(value) for key, value in kwargs.items()}
    replace = {key: _made(value) for key, value in (replace or {}).items()}
    if copy_inputs or inputs_after:
        args, kwargs = copy.deepcopy(args), copy.deepcopy(kwargs)
    np.random.seed(seed)
    with _replaced(func, replace), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore" if allow_warnings else "error")
        try:
            result = func(*args, **kwargs)
        except Warning as warning:
            raise AssertionError(f"{name} warned {type(warning).__name__}: {_clip(warning)}") from warning
        except NotImplementedError as error:
            raise AssertionError(f"{name} is not written yet (it raises NotImplementedError)") from error
        except Exception as error:
            raise AssertionError(f"{name} raised {type(error).__name__}: {_clip(error)}") from error
    if not any_result:
        _expect_plain(name, result)
    return (result, list(args)) if inputs_after else result


class Built:
    """Instructor code for the student's side of a call, built from its source where the call runs (see
    `built`). Calling it calls what it builds."""

    def __init__(self, source, values, namespace):
        self.source, self.values, self._namespace, self._object = source, values, namespace, None

    @property
    def object(self):
        if self._object is None:
            self._object = build(self.source, {**self._namespace, **self.values})
        return self._object

    def __call__(self, *args, **kwargs):
        return self.object(*args, **kwargs)


def built(source, **values):
    """What a student's function gets that is not data, e.g. built("lambda: KNeighborsClassifier(3)"):
    an expression, or a block whose last statement defines the object. It is built in the namespace of
    the code that calls `built` (the notebook's) with `values` (data, or Notes that it fills in) added;
    at grading time, in the student's kernel."""
    return Built(textwrap.dedent(source).strip(), values, sys._getframe(1).f_globals)


def build(source, namespace):
    """The object that `source` (an expression, or a block whose last statement defines it) makes."""
    try:
        return eval(compile(source, "<built>", "eval"), namespace)
    except SyntaxError:
        pass
    last = ast.parse(source).body[-1]
    exec(compile(source, "<built>", "exec"), namespace)
    targets = last.targets if isinstance(last, ast.Assign) else [last]
    return namespace[getattr(targets[-1], "id", None) or targets[-1].name]


class Notes(list):
    """What built code notes down during a call (e.g. the sizes of the folds it was fitted on): built
    code appends to it; at grading time the kernel's notes come back with the call."""


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


def _made(value):
    return value.object if isinstance(value, Built) else value


# exact classes (not subclasses) of what an answer may return: Python's and numpy's own scalars
_PLAIN_SCALARS = {bool, int, float, str, type(None)} | {
    kind for kind in np.sctypeDict.values() if issubclass(kind, (np.number, np.bool_))}


def _expect_plain(name, value, depth=0):
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return
    if kind in (np.ndarray, pd.DataFrame, pd.Series):
        dtypes = value.dtypes if kind is pd.DataFrame else [value.dtype]
        # numbers and booleans, numpy's or pandas' own (Int64, boolean); not objects or categories
        if all(getattr(dtype, "kind", "O") in "biuf" for dtype in dtypes):
            return
        raise AssertionError(f"{name} returned a {kind.__name__} of {', '.join(map(str, set(dtypes)))}; "
                             "expected numbers")
    if kind in (list, tuple, dict) and depth < 3:
        for item in (value.values() if kind is dict else value):
            _expect_plain(name, item, depth + 1)
        return
    raise AssertionError(f"{name} returned an object of class {kind.__name__}; expected numbers, arrays, "
                         "DataFrames or Series (or lists, tuples and dicts of them)")


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
        raise AssertionError(_join(f"{what} returned {type(got).__name__}; expected {names}", hint))


def expect_shape(what, got, shape, hint=""):
    """np.shape(got) is exactly `shape`."""
    got_shape = np.shape(got)
    if got_shape != tuple(shape):
        raise AssertionError(_join(f"{what} returned shape {got_shape}; expected {tuple(shape)}", hint))


def expect_close(what, got, expected, *, rtol=1e-7, atol=1e-9, hint=""):
    """The values of `got` equal `expected` within rtol/atol, compared on np.ravel of both."""
    got_values = as_numbers(what, got).ravel()
    expected_values = np.asarray(expected, dtype=float).ravel()
    _expect_same_values(what, got_values, expected_values, hint,
                        lambda: np.isclose(got_values, expected_values, rtol=rtol, atol=atol))


def expect_equal(what, got, expected, hint=""):
    """`got` equals `expected` exactly (deterministic results: labels, KNN fold accuracies)."""
    if np.ndim(expected) == 0:
        if np.ndim(got) != 0 or not got == expected:
            raise AssertionError(_join(f"{what} returned {_short(got)}; expected {_short(expected)}", hint))
        return
    got_values = as_numbers(what, got).ravel()
    expected_values = np.asarray(expected, dtype=float).ravel()
    _expect_same_values(what, got_values, expected_values, hint, lambda: got_values == expected_values)


def _expect_same_values(what, got_values, expected_values, hint, compare):
    """Same number of values, then compare() says which ones are right."""
    if got_values.size != expected_values.size:
        raise AssertionError(
            _join(f"{what} returned {got_values.size} values; expected {expected_values.size}", hint)
        )
    right = compare()
    if not np.all(right):
        first = int(np.flatnonzero(~right)[0])
        raise AssertionError(
            _join(
                f"{what} is wrong at {int((~right).sum())} of {expected_values.size} positions; "
                f"first at position {first}: expected {expected_values[first]:.10g}, "
                f"got {got_values[first]:.10g}",
                hint,
            )
        )


def expect_columns(what, frame, names, hint=""):
    """The column names of `frame`, in order and of the same types (0 is not "0"), are `names`."""
    same_types = [type(name) for name in frame.columns] == [type(name) for name in names]
    if list(frame.columns) != list(names) or not same_types:
        message = f"{what} returned columns {list(frame.columns)!r}; expected {list(names)!r}"
        raise AssertionError(_join(message, hint))


def expect_frame(what, got, expected, *, rtol=1e-7, atol=1e-9, hint=""):
    """`got` is a DataFrame with the columns (names and order), index and values of `expected`."""
    expect_type(what, got, pd.DataFrame, hint)
    expect_columns(what, got, list(expected.columns), hint)
    if not got.index.equals(expected.index):
        raise AssertionError(
            _join(f"{what} returned index {_short(got.index)}; expected {_short(expected.index)}", hint)
        )
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
        raise AssertionError(f"{what} changed its input; work on a copy (e.g. frame.copy()) instead")


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
    """`value` as a float ndarray, or an AssertionError that says why it is not numeric."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        message = f"{what} returned {type(value).__name__}, which is not numeric: {error}"
        raise AssertionError(message) from None


def _short(value, limit=80):
    text = np.array2string(np.asarray(value), threshold=8, edgeitems=3, separator=", ")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(error, limit=300):
    text = str(error)
    return text if len(text) <= limit else text[: limit - 5] + " ..."


def _join(message, hint):
    return f"{message}. {hint}" if hint else message
