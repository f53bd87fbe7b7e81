"""Strict JSON for device payloads: reject, never coerce.

``loads`` accepts UTF-8 JSON text and rejects, with a dead-letter reason:

* more than ``max_bytes`` (checked before any decoding)   → ``too_large``
* bytes that are not UTF-8 (or a UTF-8 byte-order mark)     → ``malformed``
* ``NaN``, ``Infinity``, ``-Infinity``                        → ``non_finite``
* number literals that overflow a float (``1e400``)         → ``non_finite``
* integer literals outside the signed 64-bit range          → ``schema``
* the same key twice in one object                          → ``malformed``
* arrays/objects nested deeper than ``max_depth``            → ``malformed``
* strings holding lone surrogates (``"\\ud800"``)             → ``malformed``
* anything else the standard parser refuses                 → ``malformed``

Type strictness (a number sent as a string, a boolean where a number belongs) is
checked where the fields are mapped, since it depends on the field, not on JSON.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_DEPTH = 16
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Tokens that change the nesting depth, skipping over string literals (which may hold
# brackets). Used only when a cheap count says the payload *could* be too deep.
_DEPTH_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
# A backslash-u escape of a UTF-16 surrogate: only then can a lone surrogate appear.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)


def _reject_constant(name: str) -> float:
    raise ContractError(DeadLetterReason.NON_FINITE, f"{name} is not a finite number")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ContractError(DeadLetterReason.NON_FINITE, f"{text[:40]} overflows a float")
    return value


def _parse_int(text: str) -> int:
    # Length first: int() of thousands of digits is slow (and refused past 4300).
    if len(text) > 20 or not INT64_MIN <= (value := int(text)) <= INT64_MAX:
        raise ContractError(DeadLetterReason.SCHEMA, f"integer {text[:40]} exceeds 64 bits")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]  # set.add returns None on purpose
        raise ContractError(DeadLetterReason.MALFORMED, f"duplicate key {dup[:40]!r}")
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicate_keys,
    parse_float=_parse_float,
    parse_int=_parse_int,
    parse_constant=_reject_constant,
    strict=True,  # no raw control characters inside strings
)


def check_depth(payload: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``malformed`` if arrays/objects nest deeper than ``max_depth``."""
    # Fast path: a payload with few brackets in total cannot nest deeply.
    if payload.count(b"[") + payload.count(b"{") <= max_depth:
        return
    depth = 0
    for match in _DEPTH_TOKENS.finditer(payload):
        tok = match.group()
        if tok in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise ContractError(
                    DeadLetterReason.MALFORMED, f"nesting deeper than {max_depth} levels"
                )
        elif tok in (b"]", b"}"):
            depth -= 1


def loads(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one device payload strictly; raise only ``ContractError``."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ContractError(DeadLetterReason.MALFORMED, "payload is not bytes")
    if not isinstance(payload, bytes):
        payload = bytes(payload)
    if len(payload) > max_bytes:
        raise ContractError(
            DeadLetterReason.TOO_LARGE, f"{len(payload)} bytes exceeds the {max_bytes}-byte limit"
        )
    if payload.startswith(b"\xef\xbb\xbf"):
        raise ContractError(DeadLetterReason.MALFORMED, "UTF-8 byte-order mark not allowed")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(DeadLetterReason.MALFORMED, f"not UTF-8: {exc.reason}") from exc
    check_depth(payload, max_depth)
    try:
        # RFC 8259 allows whitespace around the value; raw_decode does not skip it.
        start = len(text) - len(text.lstrip(" \t\r\n"))
        value, end = _DECODER.raw_decode(text, start)
    except ContractError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ContractError(DeadLetterReason.MALFORMED, str(exc)[:200]) from exc
    if text[end:].strip(" \t\r\n"):
        raise ContractError(DeadLetterReason.MALFORMED, f"extra data after JSON at {end}")
    if _SURROGATE_ESCAPE.search(payload) and _has_lone_surrogate(value):
        raise ContractError(DeadLetterReason.MALFORMED, "string holds a lone UTF-16 surrogate")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
