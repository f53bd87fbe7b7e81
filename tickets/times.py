"""Times read from query strings, as the API's schema declares them.

``QueryTime`` (the ``/api/v1`` filters): an RFC 3339 date-time with an offset, or whole
epoch seconds (0 … 4102444800, up to 2100) or milliseconds (2e10 … 4102444800000).
Negative, fractional, naive and out-of-calendar values are refused.

``StartDate`` / ``EndDate`` (Open311 ``start_date`` / ``end_date``): a W3C datetime
(``2026-07-01T08:00:00Z``, ``2026-07-01T08:00+08:00``) or a date alone; a start date
means that day's first instant in UTC, an end date the first instant of the next day, so
that ``start_date=end_date=2026-07-01`` is the whole day. A time of day without an
offset is refused (it names no instant).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, WithJsonSchema

EPOCH_MAX_S = 4_102_444_800  # 2100-01-01T00:00:00Z
EPOCH_MIN_MS = 20_000_000_000  # below this a number is seconds (pydantic's rule too)
EPOCH_MAX_MS = EPOCH_MAX_S * 1000
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_W3C = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})")


def to_utc(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError as exc:  # the calendar's edge, once moved to UTC
        raise ValueError("time out of range") from exc


def _epoch(v: Any) -> Any:
    """Numbers become UTC datetimes when they are sane epoch seconds or milliseconds."""
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        return v
    text = str(v)
    if not _NUMBER.fullmatch(text):
        return v
    if not text.strip().isdigit():
        raise ValueError("an epoch time is a whole, non-negative number of seconds or ms")
    n = int(text)
    if n <= EPOCH_MAX_S:
        return datetime.fromtimestamp(n, UTC)
    if EPOCH_MIN_MS <= n <= EPOCH_MAX_MS:
        return datetime.fromtimestamp(n / 1000, UTC)
    raise ValueError(
        f"epoch time out of range: seconds 0..{EPOCH_MAX_S} or ms {EPOCH_MIN_MS}..{EPOCH_MAX_MS}"
    )


QUERY_TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "minimum": 0, "maximum": EPOCH_MAX_S},
        {"type": "integer", "minimum": EPOCH_MIN_MS, "maximum": EPOCH_MAX_MS},
    ],
    "description": "RFC 3339 date-time with an offset, or epoch seconds / milliseconds",
}

# A query-string time: must carry an offset and fit the calendar once in UTC.
QueryTime = Annotated[
    AwareDatetime,
    BeforeValidator(_epoch),
    AfterValidator(to_utc),
    WithJsonSchema(QUERY_TIME_SCHEMA),
]


def parse_w3c(text: str, *, end: bool = False) -> datetime:
    """A W3C datetime or a date alone (see the module doc); ``ValueError`` otherwise."""
    text = text.strip()
    if _DATE.fullmatch(text):
        day = date.fromisoformat(text)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if not end:
            return start
        try:
            return start + timedelta(days=1)
        except OverflowError as exc:
            raise ValueError("date out of range") from exc
    if not _W3C.fullmatch(text):
        raise ValueError(
            f"{text[:40]!r} is not a W3C datetime with an offset "
            "(2026-07-01T08:00:00Z, 2026-07-01T16:00:00+08:00) or a date (2026-07-01)"
        )
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


W3C_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
    "description": "W3C datetime with an offset, or a date (a whole day in UTC)",
}


def _start(v: Any) -> Any:
    return parse_w3c(v) if isinstance(v, str) else v


def _end(v: Any) -> Any:
    return parse_w3c(v, end=True) if isinstance(v, str) else v


StartDate = Annotated[AwareDatetime, BeforeValidator(_start), WithJsonSchema(W3C_SCHEMA)]
EndDate = Annotated[AwareDatetime, BeforeValidator(_end), WithJsonSchema(W3C_SCHEMA)]
