"""Event times from device payloads: RFC 3339 text or epoch milliseconds, checked
against the arrival time before any ``datetime`` is built (so absurd values cannot
overflow)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError

# RFC 3339 date-time (section 5.6): full-date "T" full-time with a mandatory offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeWindow:
    """Accepted event times relative to the arrival time."""

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=7)

    def check_ms(self, ts_ms: float, received_ms: float, what: str = "ts") -> None:
        if ts_ms > received_ms + self.max_future.total_seconds() * 1000:
            raise ContractError(
                DeadLetterReason.FUTURE_TS,
                f"{what} {ts_ms:.0f} ms is more than {self.max_future} after arrival",
            )
        if ts_ms < received_ms - self.max_age.total_seconds() * 1000:
            raise ContractError(
                DeadLetterReason.STALE_TS,
                f"{what} {ts_ms:.0f} ms is more than {self.max_age} before arrival",
            )


def to_ms(value: datetime) -> float:
    return (value - _EPOCH).total_seconds() * 1000.0


def from_ms(ts_ms: float) -> datetime:
    return _EPOCH + timedelta(milliseconds=ts_ms)


def parse_rfc3339_ms(text: str) -> float:
    """Epoch milliseconds of an RFC 3339 date-time; ``schema`` if it is not one."""
    if len(text) > 40 or _RFC3339.fullmatch(text) is None:
        raise ContractError(DeadLetterReason.SCHEMA, f"time {text[:40]!r} is not RFC 3339")
    try:
        # The regex fixed the shape; fromisoformat (3.11) reads every RFC 3339 form except
        # a lower-case "z", and drops fraction digits beyond microseconds.
        parsed = datetime.fromisoformat(text if text[-1] != "z" else text[:-1] + "Z")
    except ValueError as exc:  # e.g. month 13, second 61
        raise ContractError(DeadLetterReason.SCHEMA, f"time {text[:40]!r}: {exc}") from exc
    return to_ms(parsed)


def event_ms(value: Any, what: str = "ts") -> float:
    """Epoch milliseconds of a payload time: RFC 3339 text or an epoch-ms number."""
    if isinstance(value, str):
        return parse_rfc3339_ms(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # finiteness is guaranteed by strictjson
    if value is None:
        raise ContractError(DeadLetterReason.SCHEMA, f"{what} is missing")
    raise ContractError(
        DeadLetterReason.SCHEMA, f"{what} must be RFC 3339 text or epoch milliseconds"
    )
