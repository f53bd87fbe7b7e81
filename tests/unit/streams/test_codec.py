"""The table value codec keeps state documents exactly, NaN included, and reads
documents an earlier version wrote as JSON; a state table reads its changelog back
with that codec."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import faust
import numpy as np
import pytest
from faust.serializers import codecs
from faust.types import Message
from hypothesis import given
from hypothesis import strategies as st

import streams.codec  # noqa: F401  (registers the codec)
from gridwatch.errors import GridWatchError
from streams.codec import NAME
from streams.tables import check_codecs, state_table

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


def test_reads_json_lists_of_an_earlier_version() -> None:
    slot = [0.5, float("nan"), 3.0]  # a camera's baseline slot is a list, not a map
    legacy = codecs.get_codec("json").dumps(slot)
    assert same(codec.loads(legacy), slot)


def _changelog_message(table: Any, value: bytes) -> Message:
    return Message(table.changelog_topic.get_topic_name(), 0, 7, 0.0, 0, {}, b'"wl-1"', value, None)


def test_a_state_table_recovers_its_changelog_with_its_own_codec() -> None:
    """What Faust's recovery does with a changelog record: decode it through the
    changelog topic, as the table wrote it (MessagePack) or as the JSON version did."""
    app = faust.App("codec-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = state_table(app, "water-sites", codec=NAME, partitions=4)
    check_codecs(app)
    doc = {"qc": [1.0, 2.0], "_ts": 1.7e9}
    for written in (codec.dumps(doc), codecs.get_codec("json").dumps(doc)):
        event = asyncio.run(table.changelog_topic.decode(_changelog_message(table, written)))
        assert event.key == "wl-1" and event.value == doc


def test_a_table_whose_changelog_would_recover_another_codec_is_refused() -> None:
    app = faust.App("codec-test", broker="kafka://127.0.0.1:1", store="memory://")
    table: Any = app.Table("water-sites", default=None, partitions=4)
    table.value_serializer = NAME  # too late: the changelog topic decodes JSON
    with pytest.raises(GridWatchError, match="recover it with 'json'"):
        check_codecs(app)
