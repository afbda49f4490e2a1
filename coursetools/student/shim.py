"""Inside the grading kernel: the shim that answers the judge's calls.

When grading starts, the judge sends this file's source, with wire.py's, into the student's kernel. The
kernel never gets a test, a reference function or an expected value: only requests "call <name> with
these arguments and these options (seed, warnings as errors, names replaced during the call, inputs to
send back)", through a Jupyter comm. `respond` carries one out on the student's own function, in the
notebook's namespace, and sends back the result as plain data (wire.py), or why there is none. The
notebook's `from checks import ...` finds a stand-in module: no test helper runs here.

Everything in this kernel is the student's to change, this shim included: what it sends back is only
ever the student's answer, judged by trusted code elsewhere.
"""

import ast
import contextlib
import importlib
import io
import json
import sys
import time
import types
import warnings

import numpy as np

from coursetools.student import wire

TARGET = "coursetools.judge"  # the Jupyter comm through which the judge's calls come


def install(helper_names):
    """A stand-in `checks` module: the notebook's imports of the test helpers work; calling one says that
    tests run elsewhere. And the comm target through which calls come."""
    from comm import get_comm_manager

    module = types.ModuleType("checks", "The course's test helpers: they run beside a graded notebook.")
    for name in helper_names:
        setattr(module, name, _elsewhere(name))
    sys.modules["checks"] = module
    get_comm_manager().register_target(TARGET, _opened)


def _opened(comm, message):
    @comm.on_msg
    def _asked(message):
        comm.send({"answer": json.dumps(respond(json.loads(message["content"]["data"]["request"])),
                                        allow_nan=True)})


def _elsewhere(name):
    def helper(*args, **kwargs):
        raise RuntimeError(f"{name} is a test helper: when your notebook is graded, tests run beside it")

    helper.__name__ = name
    return helper


def respond(request):
    """The response to one request: {"result": ..., "notes": ..., "inputs_after": ...} or {"error": ...}."""
    namespace = sys.modules["__main__"].__dict__
    name = request["function"]
    function = namespace.get(name)
    if not callable(function):
        return {"error": {"kind": "missing"}}
    notes = {}
    try:
        args = [_value(value, namespace, notes) for value in request["args"]]
        kwargs = {key: _value(value, namespace, notes) for key, value in request["kwargs"].items()}
        replace = {key: _value(value, namespace, notes) for key, value in request["replace"].items()}
    except Exception as error:  # the student's namespace lacks what the request names, or broke it
        return {"error": {"kind": "request", "type": type(error).__name__, "message": _clip(error)}}
    np.random.seed(request["seed"])
    with _replaced(function, replace), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore" if request["allow_warnings"] else "error")
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
            spent = time.perf_counter() - started
        except Warning as warning:
            return {"error": {"kind": "warned", "type": type(warning).__name__, "message": _clip(warning)}}
        except NotImplementedError:
            return {"error": {"kind": "not written"}}
        except KeyboardInterrupt:
            raise  # the judge's interrupt at the time limit
        except BaseException as error:  # SystemExit too: the student's function ended the call
            return {"error": {"kind": "raised", "type": type(error).__name__, "message": _clip(error)}}
    try:
        response = {"result": wire.encode(result),
                    "notes": {key: wire.encode(list(found)) for key, found in notes.items()},
                    "seconds": spent}  # for the judge's statistics only
        if request["inputs_after"]:
            response["inputs_after"] = [wire.encode(value) for value in args]
    except wire.NotData as refused:
        return {"error": {"kind": "refused", "message": str(refused)}}
    return response


def _value(data, namespace, notes):
    """An argument: data, an object of the notebook that the judge names, or instructor code built here."""
    if isinstance(data, dict) and set(data) == {"$name"}:
        return namespace[data["$name"]]
    if isinstance(data, dict) and set(data) == {"$built"}:
        values = {}
        for key, value in data["$built"]["values"].items():
            if value == {"$notes": key}:
                values[key] = notes.setdefault(key, [])
            else:
                values[key] = wire.decode(value)
        return build(data["$built"]["source"], {**namespace, **values})
    return wire.decode(data)


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


def _clip(error, limit=300):
    text = str(error)
    return text if len(text) <= limit else text[: limit - 5] + " ..."
