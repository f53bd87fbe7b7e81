"""Deliver simulated hotline complaints while a run plays: to Kafka ``gw.complaints``.

Complaints are decided when an incident becomes a nuisance, with a delay, so they are
known before the run reaches their time. ``ComplaintFeed`` holds them in a heap and
hands each to a sink once the message stream passes its ``ts`` — so a paced run calls
the hotline at the right moment.

``KafkaComplaintSink`` produces each ``gridwatch.contracts.Complaint`` as JSON, keyed by
grid id, with ``acks=all``, from a private asyncio loop thread (aiokafka is async).
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx

from gridwatch.contracts import Complaint
from gridwatch.errors import GridWatchError
from gridwatch.settings import KafkaSettings

T = TypeVar("T")


class ComplaintDeliveryError(GridWatchError):
    """A complaint could not be delivered to its sink."""


class ComplaintFeed:
    """Releases complaints in time order as the run's publish time advances."""

    def __init__(self, complaints: list[Complaint], sink: Callable[[Complaint], None]):
        self._source = complaints  # grows while the simulation runs
        self._taken = 0
        self._heap: list[tuple[float, str, Complaint]] = []
        self.sink = sink
        self.delivered = 0

    def advance(self, now_epoch: float) -> None:
        while self._taken < len(self._source):
            c = self._source[self._taken]
            heapq.heappush(self._heap, (c.ts.timestamp(), c.complaint_id, c))
            self._taken += 1
        while self._heap and self._heap[0][0] <= now_epoch:
            self.sink(heapq.heappop(self._heap)[2])
            self.delivered += 1

    def finish(self) -> None:
        self.advance(float("inf"))


class KafkaComplaintSink:
    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 30.0):
        from aiokafka import AIOKafkaProducer

        self.topic = settings.topic("complaints")
        self.timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def start() -> AIOKafkaProducer:  # aiokafka wants its loop running
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.bootstrap,
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=settings.request_timeout_ms,
            )
            await producer.start()
            return producer

        try:
            self._producer = self._run(start())
        except Exception as exc:
            self._stop_loop()
            raise ComplaintDeliveryError(
                f"cannot reach Kafka at {settings.bootstrap}: {exc!r}"
            ) from exc

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    def __call__(self, complaint: Complaint) -> None:
        value = complaint.model_dump_json().encode()
        key = (complaint.grid_id or "").encode()
        try:
            self._run(self._producer.send_and_wait(self.topic, value, key=key))
        except Exception as exc:
            raise ComplaintDeliveryError(
                f"complaint {complaint.complaint_id} not delivered to {self.topic}: {exc!r}"
            ) from exc

    def close(self) -> None:
        try:
            self._run(self._producer.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class ApiComplaintSink:
    """POSTs each complaint to the ticket API's intake (``/api/v1/complaints``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = base_url.rstrip("/") + "/api/v1/complaints"
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, transport=transport
        )
        self.linked = 0

    def __call__(self, complaint: Complaint) -> None:
        try:
            resp = self._client.post(self.url, json=complaint.model_dump(mode="json"))
        except httpx.HTTPError as exc:
            raise ComplaintDeliveryError(
                f"complaint {complaint.complaint_id}: {self.url} unreachable: {exc!r}"
            ) from exc
        if resp.status_code >= 300:
            raise ComplaintDeliveryError(
                f"complaint {complaint.complaint_id}: {self.url} answered "
                f"{resp.status_code} {resp.text[:200]}"
            )
        body = (
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if isinstance(body, dict) and body.get("linked"):
            self.linked += 1

    def close(self) -> None:
        self._client.close()
