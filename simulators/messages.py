"""The unit of simulator output: one device publish, and its JSONL line.

JSONL format (one message per line, keys sorted, compact separators)::

    {"at":"2026-07-14T07:00:10Z","payload":{...},"topic":"gw/v1/water/wl-00001"}
    {"at":"2026-07-14T07:00:10Z","raw_b64":"eyJsZXZlbF9jbSI6TmFOfQ==","topic":"gw/v1/..."}

``payload`` is exactly the JSON the device sends over MQTT; ``raw_b64`` carries payload
bytes that are not a JSON value (malformed-payload faults).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TEMPLATES = {
    "water": '{"battery_v":%r,"level_cm":%r,"rssi_dbm":%r,"seq":%d,"ts":"%s"}',
    "rain": '{"intensity_mm_h":%r,"rain_mm":%r,"seq":%d,"ts":"%s"}',
    "bike": '{"bikes":%d,"by_operator":{"didi":%d,"hellobike":%d,"meituan":%d},'
    '"capacity":%d,"seq":%d,"ts":"%s"}',
    "camera": '{"counts":{"bike":%d,"garbage":%d,"person":%d,"road_occupation":%d,'
    '"vehicle":%d,"vendor":%d},"seq":%d,"status":"ok","ts":"%s","water_cover":%r}',
    "status": '{"battery_v":%r,"firmware":"%s","seq":%d,"ts":"%s","uptime_s":%d}',
}


def rfc3339(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@dataclass(frozen=True, slots=True)
class Message:
    """One publish: when, on which topic, and the payload (JSON text or raw bytes)."""

    at: int  # publish time, epoch seconds (UTC)
    topic: str
    body: str | None  # the payload as compact JSON text with sorted keys
    raw: bytes | None = None  # payload bytes that are not a JSON value (malformed)

    def payload_bytes(self) -> bytes:
        return self.body.encode() if self.body is not None else (self.raw or b"")

    def payload(self) -> Any:
        """The payload as a JSON value, or None for raw (malformed) bytes."""
        return json.loads(self.body) if self.body is not None else None

    @property
    def kind(self) -> str:
        return self.topic.split("/")[2]

    @property
    def device_id(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def line(self, at_text: str | None = None) -> str:
        at_text = at_text or rfc3339(self.at)
        if self.body is not None:
            return f'{{"at":"{at_text}","payload":{self.body},"topic":"{self.topic}"}}'
        b64 = base64.b64encode(self.raw or b"").decode()
        return f'{{"at":"{at_text}","raw_b64":"{b64}","topic":"{self.topic}"}}'

    @classmethod
    def from_line(cls, line: str) -> Message:
        doc = json.loads(line)
        at = parse_rfc3339(doc["at"])
        if "raw_b64" in doc:
            return cls(at, doc["topic"], None, base64.b64decode(doc["raw_b64"]))
        body = json.dumps(doc["payload"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(at, doc["topic"], body)

    @classmethod
    def from_bytes(cls, at: int, topic: str, raw: bytes) -> Message:
        """Keep payload bytes as JSON text when they are exactly canonical JSON."""
        try:
            text = raw.decode("utf-8")
            doc = json.loads(text)
            canonical = json.dumps(
                doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        except (UnicodeDecodeError, ValueError, RecursionError):
            return cls(at, topic, None, raw)
        if canonical == text and not _has_nonfinite(doc):
            return cls(at, topic, text)
        return cls(at, topic, None, raw)


def _has_nonfinite(doc: object) -> bool:
    if isinstance(doc, float):
        return not math.isfinite(doc)
    if isinstance(doc, dict):
        return any(_has_nonfinite(v) for v in doc.values())
    if isinstance(doc, list):
        return any(_has_nonfinite(v) for v in doc)
    return False


class TsCache:
    """RFC 3339 text per epoch second; devices share a few seconds per tick."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, t: int) -> str:
        text = self._cache.get(t)
        if text is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            text = self._cache[t] = rfc3339(t)
        return text
