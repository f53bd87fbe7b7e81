"""The table value codec keeps state documents exactly, NaN included, and reads
documents an earlier version wrote as JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from faust.serializers import codecs
from hypothesis import given
from hypothesis import strategies as st

import streams.codec  # noqa: F401  (registers the codec)
from streams.codec import NAME

codec = codecs.get_codec(NAME)
floats = st.floats(allow_nan=True, allow_infinity=True)
docs = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(st.none(), floats, st.lists(floats, max_size=20)),
    max_size=8,
)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@given(docs)
def test_round_trip(doc: dict) -> None:
    assert same(codec.loads(codec.dumps(doc)), doc)


def test_numpy_values_become_plain_numbers() -> None:
    doc = {"x": np.float64(1.5), "y": np.arange(3.0), "n": np.int64(4)}
    assert codec.loads(codec.dumps(doc)) == {"x": 1.5, "y": [0.0, 1.0, 2.0], "n": 4}


def test_reads_json_documents_of_an_earlier_version() -> None:
    doc = {"qc": [1.0, float("nan")], "_ts": 1.7e9}
    back = codec.loads(json.dumps(doc).encode())
    assert same(back, doc)


def test_refuses_what_it_cannot_store() -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        codec.dumps({"x": object()})
