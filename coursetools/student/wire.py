"""The plain-data format in which values cross between the grading judge and the student's kernel.

Only data crosses: None, booleans, numbers (Python's and numpy's own scalars), strings, numeric numpy
arrays, pandas DataFrames and Series of numbers, and lists, tuples and dicts of them. A value is written as
JSON; arrays travel as .npy bytes (base64) and are read back with allow_pickle=False. Anything else is
refused, by exact class, so an object that fakes its comparisons or its conversions cannot cross, and the
reader runs no code that a value brings along: no pickle, no eval.

The judge sends this file's source into the kernel, where the shim uses it: it imports only the standard
library, numpy and pandas.
"""

import base64
import io
import json

import numpy as np
import pandas as pd

MAX_DEPTH = 6  # nesting of lists, tuples and dicts
NUMBER_KINDS = "biuf"  # numpy dtype kinds that are numbers: booleans, signed and unsigned integers, floats
# exact classes of the scalars that may cross: Python's and numpy's own
SCALARS = {bool, int, float, str, type(None)}
NUMPY_SCALARS = {kind for kind in np.sctypeDict.values() if issubclass(kind, (np.number, np.bool_))}


class NotData(ValueError):
    """A value that cannot cross: the message says what it is ("an object of class X")."""


def dumps(value):
    """`value` as a JSON text, or NotData."""
    return json.dumps(encode(value), allow_nan=True)


def loads(text):
    """The value of a JSON text that dumps wrote; ValueError when the text is anything else."""
    return decode(json.loads(text))


def encode(value, depth=0):
    kind = type(value)
    if kind in SCALARS:
        return value
    if kind in NUMPY_SCALARS:
        return {"$scalar": _npy(np.asarray(value))}
    if kind is np.ndarray:
        _numbers(value.dtype, "an array")
        return {"$array": _npy(value)}
    if kind is pd.Series:
        return {"$series": {"values": _column(value), "index": _index(value.index),
                            "name": _label(value.name)}}
    if kind is pd.DataFrame:
        return {"$frame": {"columns": _index(value.columns),
                           "data": [_column(value.iloc[:, i]) for i in range(value.shape[1])],
                           "index": _index(value.index)}}
    if kind in (list, tuple, dict):
        if depth >= MAX_DEPTH:
            raise NotData(f"lists, tuples or dicts nested more than {MAX_DEPTH} deep")
        if kind is list:
            return [encode(item, depth + 1) for item in value]
        if kind is tuple:
            return {"$tuple": [encode(item, depth + 1) for item in value]}
        return {"$dict": [[encode(key, depth + 1), encode(item, depth + 1)] for key, item in value.items()]}
    raise NotData(f"an object of class {kind.__name__}")


def decode(data, depth=0):
    if depth > MAX_DEPTH + 2:
        raise ValueError("nested too deep")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(item, depth + 1) for item in data]
    if type(data) is not dict or len(data) != 1:
        raise ValueError(f"not a value of this format: {str(data)[:80]}")
    (tag, body), = data.items()
    if tag == "$scalar":
        return _from_npy(body)[()]
    if tag == "$array":
        return _from_npy(body)
    if tag == "$tuple":
        return tuple(decode(item, depth + 1) for item in _list(body))
    if tag == "$dict":
        return {decode(key, depth + 1): decode(item, depth + 1) for key, item in _list(body)}
    if tag == "$series":
        return pd.Series(_from_column(body["values"]), index=_from_index(body["index"]),
                         name=_from_label(body["name"]))
    if tag == "$frame":
        columns = _from_index(body["columns"])
        data = [_from_column(column) for column in _list(body["data"])]
        if len(columns) != len(data):
            raise ValueError("a frame whose columns and data differ in number")
        frame = pd.DataFrame(dict(enumerate(data)), index=_from_index(body["index"]))
        frame.columns = columns
        return frame
    raise ValueError(f"unknown tag {tag!r}")


def _numbers(dtype, what):
    if getattr(dtype, "kind", "O") not in NUMBER_KINDS:
        raise NotData(f"{what} of {dtype}")


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text):
    array = np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    if array.dtype.kind not in NUMBER_KINDS:
        raise ValueError(f"an array of {array.dtype}")
    return array


def _column(series):
    """A Series' values: numpy's numbers, or pandas' nullable numbers (Int64, Float64, boolean)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        _numbers(dtype, "a Series" if series.name is None else f"a column {series.name!r}")
        return {"numpy": _npy(series.to_numpy())}
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in NUMBER_KINDS and dtype.name in (
            "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
            "boolean"):
        return {"nullable": dtype.name, "values": _npy(series.to_numpy(dtype=float, na_value=np.nan))}
    raise NotData(f"a column of {dtype}")


def _from_column(body):
    if set(body) == {"numpy"}:
        return _from_npy(body["numpy"])
    if set(body) == {"nullable", "values"} and body["nullable"] in (
            "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
            "boolean"):
        values = _from_npy(body["values"]).astype(float)
        return pd.array([None if np.isnan(v) else v for v in values], dtype=body["nullable"])
    raise ValueError("not a column of this format")


def _label(name):
    """A column, index or Series name: a string, a number or None (0 and "0" stay apart)."""
    kind = type(name)
    if kind in (str, int, float, bool, type(None)):
        return name
    if kind in NUMPY_SCALARS:
        return name.item()
    raise NotData(f"a label of class {kind.__name__}")


def _from_label(name):
    if name is None or type(name) in (str, int, float, bool):
        return name
    raise ValueError("not a label")


def _index(index):
    if type(index) is pd.RangeIndex:
        return {"range": [index.start, index.stop, index.step], "name": _label(index.name)}
    if index.dtype.kind in NUMBER_KINDS:
        return {"numbers": _npy(index.to_numpy()), "name": _label(index.name)}
    return {"labels": [_label(label) for label in index], "name": _label(index.name)}


def _from_index(body):
    name = _from_label(body.get("name"))
    if "range" in body:
        start, stop, step = (int(number) for number in _list(body["range"]))
        return pd.RangeIndex(start, stop, step, name=name)
    if "numbers" in body:
        return pd.Index(_from_npy(body["numbers"]), name=name)
    return pd.Index([_from_label(label) for label in _list(body["labels"])], dtype=object, name=name)


def _list(data):
    if type(data) is not list:
        raise ValueError("expected a list")
    return data
