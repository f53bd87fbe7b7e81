"""Strict JSON: limits at their exact boundaries, and what is accepted."""

from __future__ import annotations

import pytest

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError
from ingest.decode import Decoder
from ingest.strictjson import MAX_DEPTH, MAX_PAYLOAD_BYTES, check_depth, loads

from .conftest import NOW, WATER


def reason(payload: bytes, **kw: int) -> str | None:
    try:
        loads(payload, **kw)
    except ContractError as exc:
        return str(exc.reason)
    return None


def test_depth_limit_is_exact() -> None:
    assert reason(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is None
    assert reason(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == "malformed"
    mixed = b'{"a": [{"b": [1]}]}'
    assert reason(mixed, max_depth=4) is None
    assert reason(mixed, max_depth=3) == "malformed"


def test_brackets_inside_strings_do_not_count() -> None:
    payload = b'{"a": "' + b"[{" * 40 + b'\\"[[[["}'
    assert reason(payload) is None
    check_depth(payload)


def test_many_shallow_records_are_fine() -> None:
    payload = b"[" + b",".join(b'{"n": "x", "v": 1}' for _ in range(200)) + b"]"
    assert reason(payload) is None


def test_size_limit_is_exact_and_checked_before_decoding() -> None:
    body = b'{"a": "' + b"x" * (MAX_PAYLOAD_BYTES - 10) + b'"}'
    assert len(body) == MAX_PAYLOAD_BYTES - 1
    assert reason(body) is None
    assert reason(body + b" ") is None
    assert reason(body + b"  ") == "too_large"
    assert reason(b"\xff" * (MAX_PAYLOAD_BYTES + 1)) == "too_large"  # not "malformed"


def test_decoder_checks_size_before_parsing(decoder: Decoder) -> None:
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, b"\xff" * (MAX_PAYLOAD_BYTES + 1), NOW)
    assert info.value.reason == DeadLetterReason.TOO_LARGE


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b' \n{"a": 1}\r\n ', {"a": 1}),
        (
            b'{"a": -0.0, "b": 1.5e300, "c": "\\u00e9\\ud83d\\ude00"}',
            {"a": -0.0, "b": 1.5e300, "c": "é😀"},
        ),
        ('{"名": "网格"}'.encode(), {"名": "网格"}),
        (b'{"a": 9223372036854775807, "b": -9223372036854775808}', {"a": 2**63 - 1, "b": -(2**63)}),
        (b'{"a": {"a": 1}}', {"a": {"a": 1}}),  # the same key at two levels is fine
    ],
)
def test_accepted(payload: bytes, expected: object) -> None:
    assert loads(payload) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"a": 9223372036854775808}', "schema"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "schema"),
        (b'{"a": 1e309}', "non_finite"),
        (b'{"a": -1E+400}', "non_finite"),
        (b'{"a": 1e-400}', None),  # underflows to 0.0: finite
        (b'{"a": nan}', "malformed"),
        (b'{"a": NaN}', "non_finite"),
        (b"{'a': 1}", "malformed"),
        (b'{"a": 1,}', "malformed"),
        (b'{"a": "\t"}', "malformed"),  # raw control character
        (b'{"a": "\\ud800x"}', "malformed"),
        (b'{"\\udc00": 1}', "malformed"),  # lone surrogate in a key
        (b'{"a": 1, "b": {"c": 1, "c": 2}}', "malformed"),
        (b"\x00", "malformed"),
        (b"\xc3\x28", "malformed"),  # invalid UTF-8 sequence
        (b"\xed\xa0\x80", "malformed"),  # UTF-8-encoded surrogate
    ],
)
def test_rejected(payload: bytes, expected: str | None) -> None:
    assert reason(payload) == expected
