"""Inside the grading kernel: the shim that answers the judge's calls.

When grading starts, the judge sends this file's source, with checks.py's and wire.py's, into the
student's kernel. The kernel never gets a test, a reference function, an expected value or any other
instructor code: only requests "call <name> with these arguments and these options (seed, warnings as
errors, names replaced during the call)", through a Jupyter comm. `respond` carries one out on the
student's own function, in the notebook's namespace, with checks.run (the same call that a test makes in
the student's own Jupyter), and sends back the result as plain data (wire.py), or why there is none.

What a test passes that is not data (a make_model factory, a stand-in model, a replacement for a
function) stays in the judge: here it is a Stub, and every use of it (calling it, constructing one,
fit / predict / score / get_params, reading an attribute) is forwarded to the judge, which carries it out
and answers with data, or with a reference to another object that it keeps. The judge may ask, while it
carries out a use, to call something of the kernel's in turn (the student's make_model). These requests
travel on the kernel's stdin channel, as input requests, while the call runs: the judge answers each.
Stubs answer only during the call that made them.

Everything in this kernel is the student's to change, this shim included: what it sends back is only
ever the student's answer, judged by trusted code elsewhere, and what a stub forwards is a use that the
judge carries out and observes itself.
"""

import builtins
import json
import sys
import time

from coursetools.student import checks, wire

TARGET = "coursetools.judge"  # the Jupyter comm through which the judge's calls come
_kept = {}  # number -> an object of the kernel's that the judge holds a reference to, during one call
_stubs = {}  # number -> the Stub of the judge's object of that number, during one call
_calls = [0, False]  # how many calls the judge made, and whether one runs now


def install():
    """The course's test helpers as the notebook imports them (`from checks import ...`), and the comm
    target through which calls come."""
    from comm import get_comm_manager

    sys.modules["checks"] = checks
    get_comm_manager().register_target(TARGET, _opened)


def _opened(comm, message):
    @comm.on_msg
    def _asked(message):
        _calls[:] = [_calls[0] + 1, True]
        try:
            request = json.loads(message["content"]["data"]["request"])
            response = respond(request["call"])
        finally:
            _calls[1] = False
            _kept.clear()  # what the judge held, and the stubs of what it kept, end with the call
            _stubs.clear()
        comm.send({"answer": json.dumps(response, allow_nan=True)})


def respond(request, nested=False):
    """The response to one call: {"result": ..., "inputs_after": ...} or {"error": ...}. A nested call
    (the judge calling back, while a use runs) keeps the seed and warnings as they are, and may answer
    what is not data, as a reference."""
    namespace = sys.modules["__main__"].__dict__
    target = request["function"]
    function = namespace.get(target) if isinstance(target, str) else _resolve_data(target)
    if not callable(function):
        return {"error": {"kind": "missing"}}
    try:
        args = [_resolve_data(value) for value in request.get("args", [])]
        kwargs = {key: _resolve_data(value) for key, value in request.get("kwargs", {}).items()}
        replace = {key: _resolve_data(value) for key, value in request.get("replace", {}).items()}
    except Exception as error:  # the student's namespace lacks what the request names, or broke it
        return {"error": {"kind": "request", "type": type(error).__name__, "message": str(error)[:300]}}
    started = time.perf_counter()
    outcome = checks.run(function, args, kwargs, seed=request.get("seed"),
                         allow_warnings=request.get("allow_warnings"), replace=replace)
    spent = time.perf_counter() - started
    if "error" in outcome:
        return {"error": outcome["error"]}
    try:
        response = {"result": wire.encode(outcome["result"], _refer if nested else None),
                    "seconds": spent}  # for the judge's statistics only
        if request.get("inputs_after"):
            response["inputs_after"] = [wire.encode(value) for value in args]
    except wire.NotData as refused:
        return {"error": {"kind": "refused", "message": str(refused)}}
    return response


def _refer(value):
    """A reference to a value that is not data: the judge's own object (a stub), or one of the kernel's."""
    if isinstance(value, Stub) or isinstance(getattr(value, "_stub", None), Stub):
        stub = value if isinstance(value, Stub) else value._stub
        return {"$judge": {"number": stub._number}}
    number = len(_kept) + 1
    _kept[number] = value
    return {"$kernel": {"number": number, "callable": callable(value)}}


def _resolve_data(data):
    return wire.decode(data, resolve=_resolve)


def _resolve(tag, body):
    if tag == "$kernel":
        return _kept[body["number"]]
    number = body["number"]
    if number not in _stubs:
        _stubs[number] = _new_stub(number, body.get("kind"))
    return _stubs[number]


def _use(number, method, args=(), kwargs=None):
    """Ask the judge to use its object `number`; serve what it asks in turn; return its answer."""
    if not _calls[1] or _stubs.get(number) is None:
        raise RuntimeError("the tests' objects answer only during the test's call that gave them")
    message = {"use": {"object": number, "method": method,
                       "args": [wire.encode(value, _refer) for value in args],
                       "kwargs": {key: wire.encode(value, _refer) for key, value in (kwargs or {}).items()}}}
    while True:
        reply = json.loads(_ask_judge(json.dumps(message, allow_nan=True)))
        if "return" in reply:
            return _resolve_data(reply["return"])
        if "raise" in reply:
            raise _exception(reply["raise"])
        message = {"answer": respond(reply["call"], nested=True)}


def _ask_judge(text):
    """Send `text` to the judge on the stdin channel, as the input request of the call that runs now."""
    kernel = sys.modules["__main__"].get_ipython().kernel
    return kernel._input_request(text, kernel._parent_ident["shell"], kernel.get_parent("shell"))


def _exception(error):
    """The exception that a use raised in the judge, raised here: a built-in one as itself."""
    kind = getattr(builtins, str(error.get("type")), None)
    message = str(error.get("message"))
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, Warning):
        return kind(message)
    return RuntimeError(f"{error.get('type')}: {message}")


class Stub:
    """An object that the judge keeps: calling it and using its public attributes is forwarded there."""

    def __init__(self, number):
        self._number = number

    def __call__(self, *args, **kwargs):
        return _use(self._number, None, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return _use(self._number, "$get", (name,))

    def __repr__(self):
        return f"<the tests' object {self._number}>"


def _new_stub(number, kind):
    """A Stub; for a scikit-learn model, one that scikit-learn takes for a model of its kind (clone,
    cross_val_score), whose methods are forwarded."""
    if kind not in ("classifier", "regressor", "model"):
        return Stub(number)
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    mixins = {"classifier": (ClassifierMixin,), "regressor": (RegressorMixin,), "model": ()}[kind]

    class Model(*mixins, BaseEstimator):
        """A model that the judge keeps. Constructing one (as sklearn's clone does) asks the judge for a
        new model of the same class with these parameters."""

        def __init__(self, **params):
            self._params = params
            self._stub = _use(number, "$new", (), params)._stub

        def get_params(self, deep=True):
            if "_params" in self.__dict__ and not deep:
                return dict(self._params)  # the very objects it was made with, as clone checks
            return self._stub.get_params(deep=deep)

        def set_params(self, **params):
            self._stub.set_params(**params)
            return self

        def fit(self, *args, **kwargs):
            self._stub.fit(*args, **kwargs)
            return self

        def predict(self, *args, **kwargs):
            return self._stub.predict(*args, **kwargs)

        def predict_proba(self, *args, **kwargs):
            return self._stub.predict_proba(*args, **kwargs)

        def score(self, *args, **kwargs):
            return self._stub.score(*args, **kwargs)

        def __getattr__(self, name):
            stub = self.__dict__.get("_stub")
            if name.startswith("_") or stub is None:
                raise AttributeError(name)
            return getattr(stub, name)

        def __repr__(self):
            return f"<the tests' model {self._stub._number}>"

    model = Model.__new__(Model)
    model._stub = Stub(number)
    return model
