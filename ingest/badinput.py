"""The bad-input catalogue: every way a device topic or payload can be wrong, by reason.

One list, used by the decoder's unit tests (``tests/unit/ingest/test_decode.py``) and by
the attack sweep (``gridwatch.abuse``), which sends every case over MQTT to a running
bridge. The cases are built for given device ids and a given arrival time (times in the
payloads are relative to it), so they hold for a fixed test clock and for the live one.

``rate_limited``, ``duplicate`` and ``conflict`` are behaviours of a stream of messages
rather than of one message (see ``ingest.guards``): the sweep produces the first two by
flooding one device and by sending a reading twice. ``retained`` is a property of the
delivery (the broker's retain flag), not of the bytes (``ingest.bridge``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gridwatch.contracts import KINDS, DeadLetterReason

R = DeadLetterReason


@dataclass(frozen=True, slots=True)
class BadInput:
    """One catalogued bad message and the dead-letter reason ingest must give it."""

    name: str
    topic: str
    payload: bytes
    reason: DeadLetterReason


def _js(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_inputs(
    now_s: float,
    devices: Mapping[str, str],
    *,
    other_water: str,
    unknown_water: str,
    root: str = "gw/v1",
) -> list[BadInput]:
    """The catalogue for arrival time ``now_s`` (epoch seconds).

    ``devices`` maps every kind to a registered device of that kind; ``other_water`` is a
    second registered water device, ``unknown_water`` a well-formed id the registry does
    not know.
    """
    missing = [k for k in KINDS if k not in devices]
    if missing:
        raise ValueError(f"bad_inputs needs a device of every kind; missing {missing}")
    root = root.rstrip("/")
    water, rain, bike = (f"{root}/{k}/{devices[k]}" for k in ("water", "rain", "bike"))
    camera, status = (f"{root}/{k}/{devices[k]}" for k in ("camera", "status"))
    dev = devices["water"]
    ts = _rfc3339(now_s - 60)
    tsb = ts.encode()
    good = {"ts": ts, "seq": 7, "level_cm": 3.5, "battery_v": 3.6, "rssi_dbm": -88.0}
    big = b'{"ts": "' + tsb + b'", "level_cm": 1, "pad": "' + b"x" * 16_400 + b'"}'
    other_root = "gw/v2" if root != "gw/v2" else "gw/v3"
    cases: list[tuple[str, str, bytes, DeadLetterReason]] = [
        # malformed: not JSON, not UTF-8, duplicate keys, too deep, trailing data
        ("not-json", water, b"{level: 1}", R.MALFORMED),
        ("empty", water, b"", R.MALFORMED),
        ("not-utf8", water, b'{"ts": "\xff\xfe", "level_cm": 1}', R.MALFORMED),
        ("latin1", water, '{"ts": "é"}'.encode("latin-1"), R.MALFORMED),
        ("bom", water, b"\xef\xbb\xbf" + _js(good), R.MALFORMED),
        ("dup-key", water, b'{"ts": "%s", "level_cm": 1, "level_cm": 2}' % tsb, R.MALFORMED),
        ("deep", water, b'{"ts": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}", R.MALFORMED),
        ("trailing", water, _js(good) + b" {}", R.MALFORMED),
        ("lone-surrogate", status, b'{"ts": "%s", "firmware": "\\ud800"}' % tsb, R.MALFORMED),
        # non-finite numbers
        ("nan", water, b'{"ts": "%s", "level_cm": NaN}' % tsb, R.NON_FINITE),
        ("infinity", water, b'{"ts": "%s", "level_cm": Infinity}' % tsb, R.NON_FINITE),
        ("-infinity", water, b'{"ts": "%s", "level_cm": -Infinity}' % tsb, R.NON_FINITE),
        ("1e400", water, b'{"ts": "%s", "level_cm": 1e400}' % tsb, R.NON_FINITE),
        ("senml-1e400", water, b'[{"n": "level", "u": "cm", "v": -1e400}]', R.NON_FINITE),
        # schema: wrong types are rejected, never coerced
        ("number-as-string", water, _js({"ts": ts, "level_cm": "3.5"}), R.SCHEMA),
        ("bool-as-number", water, _js({"ts": ts, "level_cm": True}), R.SCHEMA),
        ("bool-as-int", bike, _js({"ts": ts, "bikes": True, "capacity": 10}), R.SCHEMA),
        ("float-as-int", bike, _js({"ts": ts, "bikes": 3.0, "capacity": 10}), R.SCHEMA),
        ("seq-as-string", water, _js({"ts": ts, "level_cm": 1, "seq": "7"}), R.SCHEMA),
        (
            "huge-int",
            water,
            b'{"ts": "%s", "level_cm": 1, "seq": 99999999999999999999}' % tsb,
            R.SCHEMA,
        ),
        ("negative-seq", water, _js({"ts": ts, "level_cm": 1, "seq": -1}), R.SCHEMA),
        ("missing-field", water, _js({"ts": ts, "battery_v": 3.6}), R.SCHEMA),
        ("unknown-field", water, _js({"ts": ts, "level_cm": 1, "foo": 1}), R.SCHEMA),
        ("sets-qc", water, _js({"ts": ts, "level_cm": 1, "qc": 1}), R.SCHEMA),
        ("sets-grid", water, _js({"ts": ts, "level_cm": 1, "grid_id": "X"}), R.SCHEMA),
        ("array-of-numbers", water, b"[1, 2]", R.SCHEMA),
        ("scalar", water, b"42", R.SCHEMA),
        ("ts-missing", water, _js({"level_cm": 1}), R.SCHEMA),
        ("ts-not-rfc3339", water, _js({"ts": ts[:10], "level_cm": 1}), R.SCHEMA),
        ("ts-no-offset", water, _js({"ts": ts[:-1], "level_cm": 1}), R.SCHEMA),
        ("ts-month-13", water, _js({"ts": "2026-13-23T07:59:00Z", "level_cm": 1}), R.SCHEMA),
        ("ts-bool", water, _js({"ts": True, "level_cm": 1}), R.SCHEMA),
        ("rain-negative", rain, _js({"ts": ts, "rain_mm": -1}), R.SCHEMA),
        ("rain-empty", rain, _js({"ts": ts}), R.SCHEMA),
        ("cover-over-1", camera, _js({"ts": ts, "counts": {}, "water_cover": 1.5}), R.SCHEMA),
        ("counts-list", camera, _js({"ts": ts, "counts": [1]}), R.SCHEMA),
        ("status-list", camera, _js({"ts": ts, "counts": {}, "status": ["ok"]}), R.SCHEMA),
        ("senml-no-unit", water, _js([{"n": "level", "v": 3}]), R.SCHEMA),
        # unknown device, topic mismatch, size, times
        ("unknown-device", f"{root}/water/{unknown_water}", _js(good), R.UNKNOWN_DEVICE),
        (
            "kind-mismatch",
            f"{root}/rain/{dev}",
            _js({"ts": ts, "rain_mm": 1}),
            R.TOPIC_MISMATCH,
        ),
        ("payload-device", water, _js({**good, "device_id": other_water}), R.TOPIC_MISMATCH),
        ("payload-kind", water, _js({**good, "kind": "rain"}), R.TOPIC_MISMATCH),
        ("bad-device-id", f"{root}/water/WL_1", _js(good), R.TOPIC_MISMATCH),
        ("device-id-newline", water + "\n", _js(good), R.TOPIC_MISMATCH),
        ("unknown-kind", f"{root}/smoke/{dev}", _js(good), R.TOPIC_MISMATCH),
        ("extra-level", water + "/x", _js(good), R.TOPIC_MISMATCH),
        ("wrong-root", f"{other_root}/water/{dev}", _js(good), R.TOPIC_MISMATCH),
        ("wildcard", f"{root}/water/+", _js(good), R.TOPIC_MISMATCH),
        (
            "senml-other-device",
            water,
            _js([{"bn": f"urn:dev:gw:{other_water}:", "n": "level", "u": "cm", "v": 1}]),
            R.TOPIC_MISMATCH,
        ),
        ("too-large", water, big, R.TOO_LARGE),
        ("future", water, _js({"ts": _rfc3339(now_s + 360), "level_cm": 1}), R.FUTURE_TS),
        ("future-ms", water, _js({"ts": 10**15, "level_cm": 1}), R.FUTURE_TS),
        ("stale", water, _js({"ts": _rfc3339(now_s - 8 * 86400 - 60), "level_cm": 1}), R.STALE_TS),
        ("stale-epoch-seconds", water, _js({"ts": int(now_s), "level_cm": 1}), R.STALE_TS),
        ("stale-negative", water, _js({"ts": -(10**15), "level_cm": 1}), R.STALE_TS),
    ]
    return [BadInput(name, topic, payload, reason) for name, topic, payload, reason in cases]


# Reasons the catalogue cannot show with a single message (see the module docstring).
STREAM_REASONS = frozenset({R.RATE_LIMITED, R.DUPLICATE, R.CONFLICT, R.RETAINED})
