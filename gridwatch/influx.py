"""Writing points to InfluxDB: line protocol, and one writer over the v1 or v2 API.

Every stage that stores series (the stream sink, ingest metrics, the ticket outbox
relay) writes through ``InfluxWriter``. The v1 transport posts line protocol to
``/write`` (InfluxDB 1.x); the v2 transport uses influxdb-client's write API (2.x/3.x).
Above the transport the code is the same. Writes are idempotent: the same
measurement, tag set and time overwrite the earlier point.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from gridwatch.errors import SinkError
from gridwatch.retry import Backoff
from gridwatch.settings import InfluxSettings

log = logging.getLogger(__name__)

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ms: int


@functools.lru_cache(maxsize=1 << 16)  # tag keys, tag values and field keys repeat
def _escape_key(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


@functools.lru_cache(maxsize=256)
def _escape_measurement(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", r"\,").replace(" ", r"\ ")


def _field(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_line(point: Point) -> str:
    """One line of line protocol. Non-finite floats are not written as values (InfluxDB
    rejects them) but flagged in a ``nonfinite`` string field naming them."""
    fields: list[str] = []
    nonfinite: list[str] = []
    for key in sorted(point.fields):
        value = point.fields[key]
        if isinstance(value, float) and not math.isfinite(value):
            nonfinite.append(key)
            continue
        fields.append(f"{_escape_key(key)}={_field(value)}")
    if nonfinite:
        fields.append(f'nonfinite="{",".join(nonfinite)}"')
    if not fields:
        raise SinkError(f"point of {point.measurement!r} at {point.time_ms} has no field")
    tags = "".join(
        f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(point.tags.items()) if v != ""
    )
    return f"{_escape_measurement(point.measurement)}{tags} {','.join(fields)} {point.time_ms}"


class Transport(Protocol):
    async def write(self, body: str) -> None: ...
    async def close(self) -> None: ...


class RetryableWriteError(SinkError):
    """A write that may succeed later (network, 5xx, 429, timeouts)."""


class V1Transport:
    """``POST /write?db=…&precision=ms`` (or ``ns``) of InfluxDB 1.x."""

    def __init__(self, settings: InfluxSettings, precision: str = "ms") -> None:
        auth = None
        if settings.username and settings.password is not None:
            auth = (settings.username, settings.password.get_secret_value())
        self._client = httpx.AsyncClient(
            base_url=settings.url, timeout=settings.timeout_s, auth=auth
        )
        self._params = {"db": settings.database, "precision": precision}

    async def write(self, body: str) -> None:
        try:
            response = await self._client.post("/write", params=self._params, content=body.encode())
        except httpx.HTTPError as exc:
            raise RetryableWriteError(f"InfluxDB unreachable: {exc!r}") from exc
        if response.status_code == 204:
            return
        message = f"InfluxDB write answered {response.status_code}: {response.text[:300]}"
        if response.status_code >= 500 or response.status_code in (404, 408, 429):
            # 404: database not found yet (a restarted server) is worth retrying too.
            raise RetryableWriteError(message)
        raise SinkError(message)

    async def close(self) -> None:
        await self._client.aclose()


class V2Transport:
    """influxdb-client's write API (InfluxDB 2.x, 3.x, or 1.8+ compatibility)."""

    def __init__(self, settings: InfluxSettings, precision: str = "ms") -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        assert settings.token is not None and settings.org and settings.bucket  # validated
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._bucket = settings.bucket
        self._org = settings.org
        self._precision = precision

    async def write(self, body: str) -> None:
        from influxdb_client.client.write_api import WritePrecision
        from influxdb_client.rest import ApiException

        precision = WritePrecision.NS if self._precision == "ns" else WritePrecision.MS
        try:
            await asyncio.to_thread(
                self._write_api.write,
                bucket=self._bucket,
                org=self._org,
                record=body,
                write_precision=precision,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            message = f"InfluxDB write answered {exc.status}: {str(exc.body)[:300]}"
            if exc.status is None or exc.status >= 500 or exc.status in (408, 429):
                raise RetryableWriteError(message) from exc
            raise SinkError(message) from exc
        except Exception as exc:  # urllib3 raises many connection error types
            raise RetryableWriteError(f"InfluxDB unreachable: {exc!r}") from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


def make_transport(settings: InfluxSettings, precision: str = "ms") -> Transport:
    """The transport of ``settings.api``; line times in ``precision`` (ms or ns)."""
    if precision not in ("ms", "ns"):
        raise ValueError(f"precision must be ms or ns, got {precision!r}")
    if settings.api == "v2":
        return V2Transport(settings, precision)
    return V1Transport(settings, precision)


class InfluxWriter:
    """Write batches of points with retries and exponential backoff.

    ``write`` returns only once every point is stored, or raises ``SinkError`` after
    ``max_retries`` (so callers can keep their Kafka offsets uncommitted, or spool).
    """

    def __init__(
        self, settings: InfluxSettings, transport: Transport | None = None, precision: str = "ms"
    ) -> None:
        self.settings = settings
        self.transport = transport or make_transport(settings, precision)
        self.points_written = 0
        self.retries = 0

    async def write(self, points: Iterable[Point], *, retries: int | None = None) -> int:
        return await self.write_lines([to_line(p) for p in points], retries=retries)

    async def write_lines(self, lines: list[str], *, retries: int | None = None) -> int:
        """Write ready-made line-protocol lines (in the writer's precision)."""
        if not lines:
            return 0
        batch = self.settings.batch_points
        for start in range(0, len(lines), batch):
            await self._write_body("\n".join(lines[start : start + batch]), retries)
        self.points_written += len(lines)
        return len(lines)

    async def _write_body(self, body: str, retries: int | None) -> None:
        attempts = (self.settings.max_retries if retries is None else retries) + 1
        backoff = Backoff(0.2, 5.0)
        for attempt in range(attempts):
            try:
                await self.transport.write(body)
                return
            except RetryableWriteError:
                if attempt == attempts - 1:
                    raise
                self.retries += 1
                wait = backoff.next()
                log.warning(
                    "influx write failed; retrying attempt=%d delay_s=%.1f", attempt + 1, wait
                )
                await asyncio.sleep(wait)

    async def close(self) -> None:
        await self.transport.close()


def _query_request(
    settings: InfluxSettings, q: str, epoch: str
) -> tuple[dict[str, str], dict[str, str]]:
    params = {"db": settings.database, "q": q, "epoch": epoch}
    headers = {}
    if settings.api == "v2" and settings.token is not None:
        headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        params["db"] = settings.bucket or settings.database
    return params, headers


def _series(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code != 200:
        raise SinkError(f"InfluxQL query failed ({response.status_code}): {response.text[:300]}")
    series: list[dict[str, Any]] = []
    for result in response.json().get("results", []):
        if "error" in result:
            raise SinkError(f"InfluxQL error: {result['error']}")
        series.extend(result.get("series", []))
    return series


async def query(settings: InfluxSettings, q: str, *, epoch: str = "ms") -> list[dict[str, Any]]:
    """Run an InfluxQL query over the v1 ``/query`` endpoint; returns the series."""
    params, headers = _query_request(settings, q, epoch)
    async with httpx.AsyncClient(base_url=settings.url, timeout=settings.timeout_s) as client:
        response = await client.get("/query", params=params, headers=headers)
    return _series(response)


class QueryClient:
    """``query`` on one kept-open connection, for callers that poll: a new client per
    query costs ≈ 10 ms of CPU (its TLS context) — a benchmark polling every 100 ms
    spent a core on it. One per thread."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self._client = httpx.Client(base_url=settings.url, timeout=settings.timeout_s)

    def query(self, q: str, *, epoch: str = "ms") -> list[dict[str, Any]]:
        params, headers = _query_request(self.settings, q, epoch)
        return _series(self._client.get("/query", params=params, headers=headers))

    def close(self) -> None:
        self._client.close()


def rows(series: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten InfluxQL series into dict rows, tags included."""
    out: list[dict[str, Any]] = []
    for s in series:
        cols = s["columns"]
        for values in s.get("values", []):
            row = dict(zip(cols, values, strict=True))
            row.update(s.get("tags") or {})
            out.append(row)
    return out
