"""The comparison helpers that every notebook's tests use: they pass what is right, and fail what is
wrong with a message that says what was expected and what came back."""

import warnings

import numpy as np
import pandas as pd
import pytest

from coursetools.student import checks


def fails_with(check, *args, **kwargs):
    with pytest.raises(AssertionError) as failure:
        check(*args, **kwargs)
    return str(failure.value)


def test_shape_message_names_both_shapes_and_the_hint():
    message = fails_with(checks.expect_shape, "feedforward", np.zeros((100, 1)), (100,), hint="np.ravel it")
    assert message == "feedforward returned shape (100, 1); expected (100,). np.ravel it"
    checks.expect_shape("feedforward", np.zeros(100), (100,))


def test_close_compares_raveled_values_with_tolerances_and_names_the_first_wrong_position():
    checks.expect_close("f", np.array([[1.0], [2.0]]), [1.0, 2.0 + 1e-12])
    message = fails_with(checks.expect_close, "f", [1.0, 2.5, 3.0], [1.0, 2.0, 3.0])
    assert message == "f is wrong at 1 of 3 positions; first at position 1: expected 2, got 2.5"
    assert "returned 2 values; expected 3" in fails_with(checks.expect_close, "f", [1, 2], [1, 2, 3])
    assert "not numeric" in fails_with(checks.expect_close, "f", object(), [1.0])


def test_equal_is_exact_for_folds_and_scalars():
    folds = [0.9809523809523809, 0.9840764331210191]
    checks.expect_equal("cross_validate", np.array(folds), folds)
    message = fails_with(checks.expect_equal, "cross_validate", [0.9809523809523809, 0.9712], folds)
    assert "first at position 1: expected 0.9840764331, got 0.9712" in message
    checks.expect_equal("final_accuracy", 0.9888888888888889, 0.9888888888888889)
    assert "expected 0.98888" in fails_with(checks.expect_equal, "final_accuracy", 0.99, 0.9888888888888889)
    assert "expected" in fails_with(checks.expect_equal, "final_accuracy", np.array([0.98]), 0.98)


def test_columns_tell_integer_names_from_strings():
    checks.expect_columns("add_bias", pd.DataFrame(columns=[0, "bias"]), [0, "bias"])
    message = fails_with(checks.expect_columns, "add_bias", pd.DataFrame(columns=["0", "bias"]), [0, "bias"])
    assert message == "add_bias returned columns ['0', 'bias']; expected [0, 'bias']"


def test_frame_checks_type_columns_index_and_values():
    expected = pd.DataFrame({"a": [1.0, 2.0]}, index=[10, 20])
    checks.expect_frame("f", expected.copy(), expected)
    assert "returned ndarray; expected DataFrame" in fails_with(checks.expect_frame, "f", expected.to_numpy(),
                                                                  expected)
    assert "returned index" in fails_with(checks.expect_frame, "f", expected.reset_index(drop=True), expected)


def test_inputs_unchanged_catches_a_function_that_modifies_its_input_and_keeps_the_callers_copy():
    def relu_in_place(x):
        x[x < 0] = 0
        return x

    data = np.array([-1.0, 2.0])
    assert fails_with(checks.expect_inputs_unchanged, relu_in_place, data) == (
        "relu_in_place (argument 1) changed its input, a numpy array; work on a copy instead "
        "(e.g. x = x.copy(), or a function that returns a new array)"
    )
    assert data.tolist() == [-1.0, 2.0]
    checks.expect_inputs_unchanged(lambda coefs: [c * 2 for c in coefs], [np.ones(2), np.ones((2, 3))])


def test_call_silences_warnings_and_stderr_unless_warnings_are_forbidden(capsys):
    def noisy(z):
        import sys

        print("debug", file=sys.stderr)
        warnings.warn("not converged", stacklevel=1)
        return np.exp(-z)

    assert checks.call(noisy, 1000.0) == 0.0
    assert capsys.readouterr().err == ""
    assert fails_with(checks.call, lambda z: np.exp(z), 1000.0, allow_warnings=False).startswith(
        "<lambda> warned RuntimeWarning: overflow"
    )


def test_call_reports_the_students_exception_and_seeds_numpy():
    def broken(x):
        raise KeyError("[316, 322, 324] not in index" * 50)

    message = fails_with(checks.call, broken, 1)
    assert message.startswith("broken raised KeyError:") and len(message) < 350
    assert checks.call(np.random.random) == checks.call(np.random.random)


def test_call_replaces_globals_of_the_students_function_for_the_call_only():
    namespace = {"helper": lambda: "student"}
    exec("def answer():\n    return helper()", namespace)  # a function defined in a notebook cell
    assert checks.call(namespace["answer"], replace={"helper": lambda: "reference"}) == "reference"
    assert namespace["answer"]() == "student"


class AlwaysEqual(float):
    """A float that equals every number: the kind of answer that fakes its comparisons."""

    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def test_call_accepts_plain_data_only():
    plain = [1, 0.5, np.float64(0.5), np.longlong(3), np.bool_(True), np.zeros(3),
             pd.Series([1, 2], dtype="Int64"), pd.DataFrame({"a": [1.0]}), [np.float64(0.9), 0.8],
             (pd.DataFrame({"a": [1]}), pd.Series([1])), {"mlp": 0.9, "logistic": 0.8}]
    for value in plain:
        assert checks.call(lambda value=value: value) is value
    faked = [(AlwaysEqual(0.0), "object of class AlwaysEqual"), (np.array([object()]), "of object"),
             (pd.Series(["a"], dtype="category"), "of category"), ([AlwaysEqual(0.0)], "AlwaysEqual"),
             (np.ma.array([1.0]), "MaskedArray")]
    for value, says in faked:
        assert says in fails_with(checks.call, lambda value=value: value)
    model = checks.call(lambda: AlwaysEqual(1.0), any_result=True)  # not a student's answer: a model's fit
    assert isinstance(model, AlwaysEqual)


@pytest.mark.parametrize(("value", "named", "fix"), [
    (np.array([-1.0, 2.0]), "a numpy array", "x.copy()"),
    (pd.DataFrame({"a": [-1.0, 2.0]}), "a DataFrame", "frame.copy()"),
    (pd.Series([-1.0, 2.0]), "a Series", "series.copy()"),
    ([-1.0, 2.0], "a list", "list(values)"),
])
def test_a_changed_argument_is_named_by_its_type_with_the_fitting_copy(value, named, fix):
    def clip_in_place(x):
        x[0] = 0.0
        return x

    message = fails_with(checks.expect_inputs_unchanged, clip_in_place, value)
    assert f"changed its input, {named}; work on a copy" in message and fix in message, message
    assert "frame.copy()" not in message or named == "a DataFrame", message


def test_a_hint_shows_also_when_the_function_raised_or_warned_before_the_check():
    def tanh_overflowing(x):
        return (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))

    def check():
        with checks.hint("use np.tanh"):
            got = checks.call(tanh_overflowing, np.array([1000.0]), allow_warnings=False)
            checks.expect_close("tanh", got, [1.0])

    message = fails_with(check)
    assert message.startswith("tanh_overflowing warned RuntimeWarning") and message.endswith(". use np.tanh")
    with pytest.raises(checks.CheckFailed) as failure:  # a plain assert gets the hint too
        with checks.hint("the hint"):
            raise AssertionError("a plain assertion")
    assert str(failure.value) == "a plain assertion. the hint"
    with checks.hint("never shown"):  # nothing fails: nothing is said
        checks.expect_close("f", [1.0], [1.0])


def test_a_failure_has_a_brief_form_without_the_expected_values():
    with pytest.raises(checks.CheckFailed) as failure:
        checks.expect_close("relu", [0.0, 0.5, 7.0], [0.0, 0.5, 2.0], inputs=[-1, 0.5, 2], hint="max(0, x)")
    where = "relu is wrong at 1 of 3 positions; first at position 2 (input 2)"
    assert str(failure.value) == f"{where}: expected 2, got 7. max(0, x)"
    assert failure.value.brief == f"{where}: got 7. max(0, x)"
    with pytest.raises(checks.CheckFailed) as failure:
        checks.expect_equal("final_accuracy", 0.5, 0.98888)
    assert "0.98888" in str(failure.value) and "0.98888" not in failure.value.brief
    assert failure.value.brief == "final_accuracy returned 0.5, which is not the expected value"


def test_cases_report_how_many_passed_and_the_first_failure():
    def check(x):
        checks.expect_close(f"relu({x})", max(x, 0.0) if x != 3 else -1.0, max(x, 0.0))

    checks.cases(check, [-1.0, 0.0, 2.0])  # all pass: nothing raised
    with pytest.raises(checks.CasesFailed) as failure:
        checks.cases(check, [-1.0, 3, 2.0, 3])
    assert (failure.value.passed, failure.value.total) == (2, 4)
    assert str(failure.value).startswith("2 of 4 cases fail; the first: relu(3) is wrong at 1 of 1 positions")
    assert "expected 3" in str(failure.value) and "expected" not in failure.value.brief


def test_hidden_inputs_come_from_the_students_seed(monkeypatch):
    assert checks.seed is None  # a student's own Jupyter: the stream alone
    plain = checks.inputs_rng(3).normal(size=4)
    assert np.array_equal(plain, np.random.default_rng(3).normal(size=4))
    monkeypatch.setattr(checks, "seed", 12345)
    first = checks.inputs_rng(3).normal(size=4)
    assert np.array_equal(first, checks.inputs_rng(3).normal(size=4))  # stable
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, checks.inputs_rng(4).normal(size=4))  # streams differ
    monkeypatch.setattr(checks, "seed", 12346)
    assert not np.array_equal(first, checks.inputs_rng(3).normal(size=4))  # students differ
