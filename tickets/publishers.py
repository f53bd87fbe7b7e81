"""Where the outbox relay publishes ticket events: Kafka ``gw.tickets`` and InfluxDB
measurement ``ticket``.

Both return only once the batch is durably accepted (Kafka acks=all; InfluxDB 204) and
raise otherwise, so the relay marks rows published only after they are. Both tolerate
a re-sent event: Kafka consumers drop a repeated ``event_id`` header, and InfluxDB
overwrites the same series and time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from gridwatch.errors import SinkError
from gridwatch.influx import InfluxWriter
from gridwatch.kafka import ensure_topics
from gridwatch.settings import InfluxSettings, KafkaSettings
from tickets.errors import OutboxError
from tickets.outbox import OutboxMessage, influx_line, kafka_record


class KafkaPublisher:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topic = settings.topic("tickets")
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, batch: Sequence[OutboxMessage]) -> None:
        try:
            if self._producer is None:
                await ensure_topics(self.settings, [self.topic])
                self._producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap, acks="all", enable_idempotence=True
                )
                await self._producer.start()
            futures = []
            for m in batch:
                key, value, headers = kafka_record(m)
                futures.append(
                    await self._producer.send(self.topic, value=value, key=key, headers=headers)
                )
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise OutboxError(
                f"publishing {len(batch)} ticket events to {self.topic}: {exc!r}"
            ) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class InfluxPublisher:
    def __init__(self, settings: InfluxSettings) -> None:
        self.writer = InfluxWriter(settings, precision="ns")  # see outbox.influx_line

    async def publish(self, batch: Sequence[OutboxMessage]) -> None:
        try:
            await self.writer.write_lines([influx_line(m) for m in batch], retries=2)
        except SinkError as exc:
            raise OutboxError(f"writing {len(batch)} ticket events to InfluxDB: {exc}") from exc

    async def close(self) -> None:
        await self.writer.close()
