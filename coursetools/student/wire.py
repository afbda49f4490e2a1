"""The plain-data format in which values cross between the grading judge and the student's kernel.

Only data crosses: what checks.py calls plain data (None, booleans, numbers of Python and numpy, strings,
numeric numpy arrays, pandas DataFrames and Series of numbers, and lists, tuples and dicts of them), by
exact class, so an object that fakes its comparisons or its conversions cannot cross. A value is written
as JSON; arrays travel as .npy bytes (base64) and are read back with allow_pickle=False; the reader runs
no code that a value brings along: no pickle, no eval.

What is not data may cross only as a reference, where the caller allows it (`refer` and `resolve`): a
number that names an object kept on the side that made it ({"$judge": ...} or {"$kernel": ...}).

A reader never builds more than it was allowed: `parse` bounds what json.loads makes from a text, and
`decode` first measures what a value will become (the elements of arrays, Series and frames from their
.npy headers, index lengths, items of lists and dicts) and refuses it over its budget, before it
allocates anything. Nothing is broadcast: a Series or a frame whose values and index differ in length is
refused.

The judge sends this file's source into the kernel, where the shim uses it: it imports only the standard
library, numpy, pandas and checks.py.
"""

import base64
import io
import json

import numpy as np
import pandas as pd

from coursetools.student.checks import MAX_DEPTH, NULLABLE, NUMBER_KINDS, leaf_problem

REFERENCES = ("$judge", "$kernel")  # tags of references to objects kept on one side
_ITEM = 64  # bytes that one item of a list or dict, or one object label, may cost once read
_HEADER = 24  # base64 characters that hold an .npy file's magic, version and header length


class NotData(ValueError):
    """A value that cannot cross: the message says what it is ("an object of class X")."""


class TooLarge(ValueError):
    """A value over its budget: the message says how large it would be and what is allowed."""

    def __init__(self, size, budget):
        super().__init__(f"answered a value of {_bytes(size)}; at most {_bytes(budget)}")


def dumps(value, refer=None):
    """`value` as a JSON text, or NotData."""
    return json.dumps(encode(value, refer), allow_nan=True)


def loads(text, budget=64 * 2**20, resolve=None):
    """The value of a JSON text that dumps wrote; ValueError when the text is anything else, TooLarge
    when it would take more than `budget` bytes."""
    return decode(parse(text, budget), budget, resolve)


def parse(text, budget):
    """json.loads of `text`, once a count of its brackets and commas shows that the lists and dicts it
    makes stay within `budget` bytes."""
    if not isinstance(text, str):
        raise ValueError("not a text")
    made = len(text) + _ITEM * (text.count("[") + text.count("{")) + (_ITEM // 4) * text.count(",")
    if made > budget:
        raise TooLarge(made, budget)
    return json.loads(text)


def encode(value, refer=None, depth=0):
    """`value` as JSON-ready data. What is not data becomes refer(value) (a reference), or NotData."""
    kind = type(value)
    if kind in (list, tuple, dict):
        if depth >= MAX_DEPTH:
            raise NotData(f"lists, tuples or dicts nested more than {MAX_DEPTH} deep")
        if kind is list:
            return [encode(item, refer, depth + 1) for item in value]
        if kind is tuple:
            return {"$tuple": [encode(item, refer, depth + 1) for item in value]}
        return {"$dict": [[encode(key, refer, depth + 1), encode(item, refer, depth + 1)]
                          for key, item in value.items()]}
    problem = leaf_problem(value)
    if problem:
        if refer is None:
            raise NotData(problem)
        return refer(value)
    if kind is np.ndarray:
        return {"$array": _npy(value)}
    if kind is pd.Series:
        return {"$series": {"values": _column(value), "index": _index(value.index),
                            "name": _label(value.name)}}
    if kind is pd.DataFrame:
        dtypes = set(value.dtypes)
        if len(dtypes) == 1 and isinstance(next(iter(dtypes)), np.dtype):  # one block: a fifth of the cost
            return {"$frame": {"columns": _index(value.columns), "block": _npy(value.to_numpy()),
                               "index": _index(value.index)}}
        return {"$frame": {"columns": _index(value.columns),
                           "data": [_column(value.iloc[:, i]) for i in range(value.shape[1])],
                           "index": _index(value.index)}}
    if kind in (bool, int, float, str, type(None)):
        return value
    return {"$scalar": _npy(np.asarray(value))}


def decode(data, budget=64 * 2**20, resolve=None):
    """The value that encode wrote as `data`, once `measure` shows that it takes at most `budget` bytes.
    References are given to resolve(tag, body); without it they are refused."""
    measure(data, budget)
    return _decode(data, resolve)


def measure(data, budget=None):
    """The bytes that `data` will take once decoded (an upper bound), read from lengths and .npy headers
    without decoding any value: TooLarge as soon as they pass `budget`, ValueError when `data` is not a
    value of this format."""
    meter = _Meter(budget)
    _measure(data, meter)
    return meter.size


class _Meter:
    def __init__(self, budget):
        self.size, self.budget = 0, budget

    def add(self, size):
        self.size += size
        if self.budget is not None and self.size > self.budget:
            raise TooLarge(self.size, self.budget)


def _measure(data, meter, depth=0):
    if depth > MAX_DEPTH + 2:
        raise ValueError("nested too deep")
    if data is None or type(data) in (bool, int, float):
        return meter.add(8)
    if type(data) is str:
        return meter.add(len(data) + _ITEM)
    if type(data) is list:
        meter.add(_ITEM * len(data))
        for item in data:
            _measure(item, meter, depth + 1)
        return None
    (tag, body) = _tagged(data)
    if tag == "$scalar":
        shape, itemsize = _npy_shape(body)
        if shape != ():
            raise ValueError("a scalar that is not 0-d")
        return meter.add(itemsize)
    if tag == "$array":
        shape, itemsize = _npy_shape(body)
        return meter.add(int(np.prod(shape, dtype=object)) * itemsize)
    if tag == "$tuple":
        return _measure(_list(body), meter, depth)
    if tag == "$dict":
        pairs = _list(body)
        if any(type(pair) is not list or len(pair) != 2 for pair in pairs):
            raise ValueError("a dict of something else than pairs")
        meter.add(_ITEM * len(pairs))
        for pair in pairs:
            _measure(pair, meter, depth + 1)
        return None
    if tag == "$series":
        rows = _index_size(_field(body, "index"), meter)
        return _column_size(_field(body, "values"), rows, meter)
    if tag == "$frame":
        rows = _index_size(_field(body, "index"), meter)
        names = _index_size(_field(body, "columns"), meter)
        if set(body) == {"columns", "block", "index"}:
            shape, itemsize = _npy_shape(body["block"])
            if shape != (rows, names):
                raise ValueError(f"a frame of shape {shape} beside {rows} rows and {names} columns")
            return meter.add(rows * names * itemsize)
        columns = _list(_field(body, "data"))
        if names != len(columns):
            raise ValueError("a frame whose column names and columns differ in number")
        for column in columns:
            _column_size(column, rows, meter)
        return None
    if tag in REFERENCES:
        return meter.add(_ITEM)
    raise ValueError(f"unknown tag {tag!r}")


def _decode(data, resolve, depth=0):
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [_decode(item, resolve, depth + 1) for item in data]
    (tag, body) = _tagged(data)
    if tag == "$scalar":
        return _from_npy(body)[()]
    if tag == "$array":
        return _from_npy(body)
    if tag == "$tuple":
        return tuple(_decode(item, resolve, depth + 1) for item in body)
    if tag == "$dict":
        return {_decode(key, resolve, depth + 1): _decode(item, resolve, depth + 1) for key, item in body}
    if tag == "$series":
        return pd.Series(_from_column(body["values"]), index=_from_index(body["index"]),
                         name=_from_label(body.get("name")))
    if tag == "$frame" and "block" in body:
        return pd.DataFrame(_from_npy(body["block"]), index=_from_index(body["index"]),
                            columns=_from_index(body["columns"]))
    if tag == "$frame":
        index = _from_index(body["index"])
        frame = pd.DataFrame({i: _from_column(column) for i, column in enumerate(body["data"])}, index=index)
        frame.columns = _from_index(body["columns"])
        return frame
    if tag in REFERENCES and resolve is not None:
        return resolve(tag, body)
    raise ValueError(f"a reference ({tag}) where only data may be")


def _tagged(data):
    if type(data) is not dict or len(data) != 1:
        raise ValueError(f"not a value of this format: {str(data)[:80]}")
    return next(iter(data.items()))


def _field(body, key):
    if type(body) is not dict or key not in body:
        raise ValueError(f"no {key}")
    return body[key]


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _npy_shape(text):
    """The shape and item size that an .npy text declares, read from its header alone."""
    if type(text) is not str:
        raise ValueError("an array that is not a text")
    try:
        start = base64.b64decode(text[:_HEADER], validate=True)
        if len(start) < 12 or start[:6] != b"\x93NUMPY":
            raise ValueError("not an .npy array")
        version = (start[6], start[7])
        length = int.from_bytes(start[8:10] if version == (1, 0) else start[8:12], "little")
        end = (10 if version == (1, 0) else 12) + length
        buffer = io.BytesIO(base64.b64decode(text[:4 * (end // 3 + 1)], validate=True))
        np.lib.format.read_magic(buffer)
        formats = np.lib.format
        read = formats.read_array_header_1_0 if version == (1, 0) else formats.read_array_header_2_0
        shape, _, dtype = read(buffer)
    except ValueError:
        raise
    except Exception as error:  # a header that numpy cannot read
        raise ValueError(f"not an .npy array ({type(error).__name__})") from None
    if dtype.kind not in NUMBER_KINDS:
        raise ValueError(f"an array of {dtype}")
    if any(size < 0 for size in shape):
        raise ValueError("an array of negative size")
    return shape, dtype.itemsize


def _from_npy(text):
    array = np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    if array.dtype.kind not in NUMBER_KINDS:
        raise ValueError(f"an array of {array.dtype}")
    return array


def _column(series):
    """A Series' values: numpy's numbers, or pandas' nullable numbers (Int64, Float64, boolean)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        return {"numpy": _npy(series.to_numpy())}
    return {"nullable": dtype.name, "values": _npy(series.to_numpy(dtype=float, na_value=np.nan))}


def _column_size(body, rows, meter):
    """Count what a column will take; ValueError unless it holds one value per row (pandas would
    broadcast one value to every row)."""
    if type(body) is not dict:
        raise ValueError("not a column of this format")
    if set(body) == {"numpy"}:
        shape, itemsize = _npy_shape(body["numpy"])
    elif set(body) == {"nullable", "values"} and body["nullable"] in NULLABLE:
        shape, itemsize = _npy_shape(body["values"])
        itemsize += 1  # the mask
    else:
        raise ValueError("not a column of this format")
    if shape != (rows,):
        raise ValueError(f"a column of shape {shape} beside an index of {rows} rows")
    meter.add(rows * itemsize)


def _from_column(body):
    if set(body) == {"numpy"}:
        return _from_npy(body["numpy"])
    values = _from_npy(body["values"]).astype(float)
    missing = np.isnan(values)
    array = pd.array(np.where(missing, 0, values), dtype=body["nullable"])
    array[missing] = pd.NA
    return array


def _label(name):
    """A column, index or Series name: a string, a number or None (0 and "0" stay apart)."""
    kind = type(name)
    if kind in (str, int, float, bool, type(None)):
        return name
    if leaf_problem(name) is None and np.ndim(name) == 0:
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


def _index_size(body, meter):
    """Count what an index will take once its values are read (a range too: checks turn it into
    numbers); return its length."""
    if type(body) is not dict:
        raise ValueError("not an index of this format")
    if "range" in body:
        start, stop, step = _range(body["range"])
        rows = len(range(start, stop, step))
        meter.add(8 * rows)
        return rows
    if "numbers" in body:
        shape, itemsize = _npy_shape(body["numbers"])
        if len(shape) != 1:
            raise ValueError("an index that is not 1-D")
        meter.add(shape[0] * itemsize)
        return shape[0]
    labels = _list(_field(body, "labels"))
    meter.add(_ITEM * len(labels))
    for label in labels:
        _measure(label, meter)
    return len(labels)


def _range(numbers):
    numbers = _list(numbers)
    if len(numbers) != 3 or any(type(number) is not int for number in numbers) or numbers[2] == 0:
        raise ValueError("not a range")
    return numbers


def _from_index(body):
    name = _from_label(body.get("name"))
    if "range" in body:
        start, stop, step = _range(body["range"])
        return pd.RangeIndex(start, stop, step, name=name)
    if "numbers" in body:
        return pd.Index(_from_npy(body["numbers"]), name=name)
    return pd.Index([_from_label(label) for label in _list(body["labels"])], dtype=object, name=name)


def _list(data):
    if type(data) is not list:
        raise ValueError("expected a list")
    return data


def _bytes(size):
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.3g} MB"
