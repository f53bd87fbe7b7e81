"""Replay recorded feeds as device messages: our JSONL, any CSV, FloodNet raw uplinks.

* JSONL in the simulator's format (``simulators.messages``) replays as recorded;
  ``shift_s`` moves publish times and payload ``ts`` (e.g. to *now*, so ingest's
  future/stale checks accept a recording).
* CSV with a column mapping: ``time_col`` (RFC 3339 / ISO 8601 or epoch s/ms),
  ``device_col`` or a fixed ``device_id``, the ``kind``, and ``fields`` mapping payload
  fields to columns (``{"level_cm": "depth_cm"}``), with an optional ``scale`` per field.
* FloodNet raw uplinks (``time, deployment_id, dist_mm, batt_v, f_cnt, gw_1_rssi_dbm``):
  ultrasonic distance becomes standing-water depth against the dry baseline,
  ``level_cm = (baseline_mm − dist_mm) / 10``. The baseline is given, or taken causally
  as the median of the first ``calibration`` valid readings (no look-ahead past them).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from statistics import median
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridwatch.contracts import DEVICE_ID_RE, KINDS
from gridwatch.errors import ConfigError
from simulators.messages import Message, rfc3339

Format = Literal["auto", "jsonl", "csv", "floodnet"]


class ReplayError(ConfigError):
    """A recording that cannot be replayed as given."""


def _dumps(doc: object) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse_time(value: str, *, fmt: str | None = None, tz: str | None = None) -> float:
    """Epoch seconds from ISO 8601 / RFC 3339 text, a ``strptime`` format, or epoch s/ms.

    Times without an offset are in ``tz`` (an IANA zone such as ``America/New_York``,
    so daylight saving is right), or UTC when no zone is given.
    """
    text = value.strip()
    if fmt is None:
        try:
            number = float(text)
        except ValueError:
            number = math.nan  # not a number: parse as a date below
        if math.isfinite(number):
            return number / 1000.0 if number > 1e11 else number
    try:
        if fmt is not None:
            dt = datetime.strptime(text, fmt)
        else:
            dt = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError as exc:
        raise ReplayError(f"cannot read time {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_zone(tz))
    return dt.timestamp()


def _zone(tz: str | None) -> tzinfo:
    if tz is None:
        return UTC
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReplayError(f"unknown time zone {tz!r}") from exc


def detect_format(path: Path) -> Format:
    if path.suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with path.open(encoding="utf-8", errors="replace") as fh:
        header = fh.readline()
    cols = {c.strip() for c in header.split(",")}
    if {"dist_mm", "deployment_id", "time"} <= cols:
        return "floodnet"
    if header.lstrip().startswith("{"):
        return "jsonl"
    return "csv"


def _shift_body(body: str, shift_s: int) -> str:
    doc = json.loads(body)
    if isinstance(doc, dict) and isinstance(doc.get("ts"), str):
        doc["ts"] = rfc3339(int(parse_time(doc["ts"])) + shift_s)
    return _dumps(doc)


def read_jsonl(path: Path, *, shift_s: int = 0) -> Iterator[Message]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                msg = Message.from_line(line)
            except (ValueError, KeyError, TypeError) as exc:
                raise ReplayError(f"{path}:{n}: not a simulator JSONL line: {exc}") from exc
            if shift_s:
                body = _shift_body(msg.body, shift_s) if msg.body is not None else None
                msg = Message(msg.at + shift_s, msg.topic, body, msg.raw)
            yield msg


def read_csv(
    path: Path,
    **options: Any,
) -> Iterator[Message]:
    """CSV rows as messages, in time order (files are often sorted by device first).

    Options: ``kind``, ``fields``, ``time_col``, ``device_col`` or ``device_id``,
    ``scale``, ``seq_col``, ``shift_s``, ``time_format``, ``tz`` (see ``_csv_rows``).
    """
    return iter(sorted(_csv_rows(path, **options), key=lambda m: m.at))


def _csv_rows(
    path: Path,
    *,
    kind: str,
    fields: dict[str, str],
    time_col: str = "time",
    device_col: str | None = None,
    device_id: str | None = None,
    scale: dict[str, float] | None = None,
    seq_col: str | None = None,
    shift_s: int = 0,
    time_format: str | None = None,
    tz: str | None = None,
) -> Iterator[Message]:
    if kind not in KINDS:
        raise ReplayError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if (device_col is None) == (device_id is None):
        raise ReplayError("give exactly one of a device column or a fixed device id")
    if device_id is not None and not DEVICE_ID_RE.match(device_id):
        raise ReplayError(f"device id {device_id!r} does not match {DEVICE_ID_RE.pattern}")
    scale = scale or {}
    seqs: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        wanted = {time_col, *fields.values()} | ({device_col} if device_col else set())
        missing = sorted(c for c in wanted if c not in cols)
        if missing:
            raise ReplayError(f"{path}: no column(s) {', '.join(missing)} (has {sorted(cols)})")
        for n, row in enumerate(reader, 2):
            dev = device_id or _device_name(row[device_col or ""])
            t = round(parse_time(row[time_col], fmt=time_format, tz=tz)) + shift_s
            payload: dict[str, object] = {"ts": rfc3339(t)}
            for name, col in fields.items():
                cell = row[col].strip()
                if cell == "":
                    continue
                try:
                    value = float(cell) * scale.get(name, 1.0)
                except ValueError as exc:
                    raise ReplayError(f"{path}:{n}: column {col}: {cell!r} is no number") from exc
                payload[name] = int(value) if name in ("bikes", "capacity", "uptime_s") else value
            seqs[dev] = seqs.get(dev, 0) + 1
            payload["seq"] = int(float(row[seq_col])) if seq_col else seqs[dev]
            yield Message(t, f"gw/v1/{kind}/{dev}", _dumps(payload))


def _device_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")[:64]
    if not name or not DEVICE_ID_RE.match(name):
        raise ReplayError(f"cannot make a device id from {raw!r}")
    return name


def read_floodnet(
    path: Path,
    *,
    baseline_mm: float | None = None,
    calibration: int = 30,
    device_prefix: str = "fn-",
    shift_s: int = 0,
) -> Iterator[Message]:
    """FloodNet raw uplinks → water messages (``level_cm`` against the dry baseline)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"time", "deployment_id", "dist_mm"}
        if not need <= set(reader.fieldnames or []):
            raise ReplayError(f"{path}: not FloodNet raw uplinks (needs {sorted(need)})")
        calib: dict[str, list[float]] = {}
        base: dict[str, float] = {}
        for n, row in enumerate(reader, 2):
            dev = _device_name(device_prefix + row["deployment_id"])
            try:
                dist = float(row["dist_mm"])
            except ValueError as exc:
                raise ReplayError(f"{path}:{n}: dist_mm {row['dist_mm']!r}") from exc
            ok = row.get("error_flag", "0") in ("0", "0.0", "")
            if baseline_mm is not None:
                base[dev] = baseline_mm
            elif dev not in base:
                if ok:
                    calib.setdefault(dev, []).append(dist)
                if len(calib.get(dev, [])) < calibration:
                    continue  # still learning the dry baseline from past readings
                base[dev] = median(calib[dev])
            t = round(parse_time(row["time"])) + shift_s
            payload: dict[str, object] = {
                "ts": rfc3339(t),
                "level_cm": round((base[dev] - dist) / 10.0, 1),
            }
            if row.get("batt_v"):
                payload["battery_v"] = float(row["batt_v"])
            if row.get("gw_1_rssi_dbm"):
                payload["rssi_dbm"] = float(row["gw_1_rssi_dbm"])
            if row.get("f_cnt"):
                payload["seq"] = int(float(row["f_cnt"]))
            yield Message(t, f"gw/v1/water/{dev}", _dumps(payload))


def first_time(
    path: Path,
    fmt: Format,
    time_col: str = "time",
    *,
    time_format: str | None = None,
    tz: str | None = None,
) -> float:
    """Event time of the first record (to rebase a recording to now)."""
    if fmt == "jsonl":
        for msg in read_jsonl(path):
            return float(msg.at)
        raise ReplayError(f"{path} is empty")
    with path.open(encoding="utf-8", newline="") as fh:
        row = next(csv.reader(fh), None)
        second = next(csv.reader(fh), None)
    if row is None or second is None:
        raise ReplayError(f"{path} has no data rows")
    if time_col not in row:
        raise ReplayError(f"{path}: no column {time_col!r}")
    return parse_time(second[row.index(time_col)], fmt=time_format, tz=tz)
