"""The MQTT → Kafka bridge: at-least-once, batched, never stopped by bad input.

Flow: paho (its own network thread) hands each PUBLISH to the asyncio loop as an
``Inbound`` and does nothing else. The loop decodes it (``Decoder``), files the readings
into per-(kind, partition) buffers, and every ``linger_ms`` produces one
``ReadingBatch`` record per buffer to that partition (acks=all). Only when every record
made from a message is acknowledged by Kafka is the message acknowledged to the MQTT
broker (MQTT 5, QoS 1, ``manual_ack``), so a crash before that makes the broker
redeliver it to the persistent session. While Kafka is unreachable the bridge keeps
retrying the same cycle and acknowledges nothing; the broker's in-flight window
(receive maximum) then holds further messages back in the broker's queue.

Retained messages are never ingested. The subscription asks for retain handling 2 (the
broker sends no retained message at SUBSCRIBE, which the bridge repeats at every
connect; Mosquitto does replay retained messages to a shared subscription at each
SUBSCRIBE with retain handling 0, as tests/integration/ingest/test_nothing_lost.py
shows), and a message delivered with the retain flag set anyway (a broker that ignores
retain handling) is dead-lettered as ``retained`` and counted, never decoded.
Refused, not deduplicated: a retained copy is the broker's replay of a past publish,
whose live copy already reached the persistent session when it was published; and the
duplicate window is in memory, empty after a restart, which is exactly when the broker
replays. A live publish that carried the retain flag reaches a subscriber with the flag
cleared (MQTT 5, retain-as-published 0) and is ingested as usual.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gridwatch.contracts import (
    DEVICE_ID_RE,
    DeadLetter,
    DeadLetterReason,
    ReadingBase,
    ReadingBatch,
)
from gridwatch.errors import ContractError, GridWatchError
from gridwatch.kafka import ensure_topics, partition_for, readings_topic
from gridwatch.settings import Settings
from ingest.decode import Decoder
from ingest.metrics import BridgeMetrics

log = logging.getLogger(__name__)

RAW_PREVIEW_LIMIT = 65_536
# (topic, partition or None for keyed, key, value)
OutRecord = tuple[str, int | None, bytes | None, bytes]


class BridgeError(GridWatchError):
    """The bridge cannot connect or configure itself."""


@dataclass(frozen=True, slots=True)
class Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime
    arrived_mono: float
    retain: bool = False  # delivered with the retain flag: a replay, not a live publish


class Bridge:
    def __init__(
        self,
        settings: Settings,
        decoder: Decoder,
        *,
        client_id: str | None = None,
        retain_handling: int = SubscribeOptions.RETAIN_DO_NOT_SEND,
    ) -> None:
        self.settings = settings
        self.decoder = decoder
        self.client_id = client_id or settings.mqtt.client_id
        # Always 2 in service; tests pass 0 to make a real broker replay retained
        # messages and prove the retain-flag refusal behind it.
        self.retain_handling = retain_handling
        self.metrics = BridgeMetrics(instance=self.client_id)
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._producer: AIOKafkaProducer | None = None
        self._connected = asyncio.Event()
        self._subscribe_refused: str | None = None
        self._topics_ready = False
        self.stopping = asyncio.Event()

    # -- MQTT side (paho thread: build a record, hand it on, nothing else) ---------

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        inbound = Inbound(
            msg.mid,
            msg.qos,
            msg.topic,
            bytes(msg.payload),
            datetime.now(UTC),
            time.monotonic(),
            bool(msg.retain),
        )
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, inbound)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        rc: mqtt.ReasonCode,
        props: object,
    ) -> None:
        if rc.is_failure:
            log.error("mqtt connect refused reason=%s", rc)
            return
        sub = f"$share/{self.settings.mqtt.share_group}/{self.settings.mqtt.topic_root}/#"
        client.subscribe(sub, options=SubscribeOptions(qos=1, retainHandling=self.retain_handling))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        codes: list[mqtt.ReasonCode],
        props: object,
    ) -> None:
        assert self._loop is not None
        if any(code.is_failure for code in codes):
            self._subscribe_refused = str(codes[0])
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: object,
        rc: mqtt.ReasonCode,
        props: object,
    ) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._connected.clear)

    def _mqtt_client(self) -> mqtt.Client:
        m = self.settings.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if m.password is not None:
            client.username_pw_set(m.username, m.password.get_secret_value())
        client.on_message = self._on_message
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt.session_expiry_s
        props.ReceiveMaximum = self.settings.mqtt.receive_maximum
        return props

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, ready_file: Path | None = None) -> None:
        """Connect to Kafka and MQTT; once subscribed, write ``ready_file`` (if given)."""
        self._loop = asyncio.get_running_loop()
        k = self.settings.kafka
        await ensure_topics(k)
        self._topics_ready = True
        self._producer = AIOKafkaProducer(
            bootstrap_servers=k.bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried produce is not written twice
            linger_ms=0,
            max_batch_size=1_048_576,
            max_request_size=4_194_304,
            request_timeout_ms=k.request_timeout_ms,
            client_id=self.client_id,
        )
        await self._producer.start()
        self._client = self._mqtt_client()
        m = self.settings.mqtt
        try:
            self._client.connect(
                m.host,
                m.port,
                keepalive=m.keepalive_s,
                clean_start=False,
                properties=self._connect_properties(),
            )
        except OSError as exc:
            raise BridgeError(f"cannot reach MQTT broker at {m.host}:{m.port}: {exc}") from exc
        self._client.loop_start()
        try:
            await asyncio.wait_for(self._connected.wait(), timeout=10)
        except TimeoutError as exc:
            raise BridgeError(
                f"MQTT broker at {m.host}:{m.port} did not accept user {m.username!r}"
            ) from exc
        if self._subscribe_refused is not None:
            raise BridgeError(f"MQTT subscription refused: {self._subscribe_refused}")
        if ready_file is not None:
            await asyncio.to_thread(_write_ready, ready_file)

    async def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        if self._producer is not None:
            await self._producer.stop()

    async def run(self, ready_file: Path | None = None) -> None:
        """Run until ``stopping`` is set; the caller handles signals."""
        await self.start(ready_file)
        try:
            while not self.stopping.is_set():
                batch = await self._collect()
                if batch:
                    await self._forward(batch)
        finally:
            await self.stop()

    # -- the cycle: collect, decode, produce, then ack ------------------------------

    async def _collect(self) -> list[Inbound]:
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout=0.2)
        except TimeoutError:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.kafka.linger_ms / 1000
        while True:
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch
            await asyncio.sleep(min(remaining, 0.002))

    async def _forward(self, batch: list[Inbound]) -> None:
        k = self.settings.kafka
        buffers: dict[tuple[str, int], list[ReadingBase]] = defaultdict(list)
        dead: list[DeadLetter] = []
        for inbound in batch:
            self.metrics.received += 1
            try:
                readings, conflict = self.decoder.decode_message(
                    inbound.topic, inbound.payload, inbound.received_at, retained=inbound.retain
                )
            except ContractError as exc:
                dead.append(self._dead_letter(inbound, exc.reason, exc.detail))
                continue
            except Exception as exc:  # the bridge must never stop on input
                log.exception("decoder failed topic=%s", inbound.topic[:120])
                dead.append(self._dead_letter(inbound, DeadLetterReason.MALFORMED, repr(exc)))
                continue
            if conflict is not None:  # some readings conflict, the others are forwarded
                dead.append(self._dead_letter(inbound, conflict.reason, conflict.detail))
            for reading in readings:
                part = partition_for(reading.device_id, k.partitions)
                buffers[(reading.kind, part)].append(reading)
        records: list[OutRecord] = []
        packed_at = datetime.now(UTC)
        for (kind, part), readings in buffers.items():
            for start in range(0, len(readings), k.max_batch_readings):
                chunk = readings[start : start + k.max_batch_readings]
                value = ReadingBatch(kind=kind, readings=chunk, packed_at=packed_at)  # type: ignore[arg-type]
                records.append(
                    (
                        readings_topic(k, kind),
                        part,
                        f"{kind}:{part}".encode(),
                        value.model_dump_json().encode(),
                    )
                )
        for letter in dead:
            key = (letter.device_id or "").encode() or None
            records.append((k.topic("deadletter"), None, key, letter.model_dump_json().encode()))
        await self._produce_all(records)
        forwarded = sum(len(v) for v in buffers.values())
        self.metrics.forwarded += forwarded
        self.metrics.records += len(records)
        for letter in dead:
            self.metrics.dead_letter(letter.reason.value)
            if letter.reason is DeadLetterReason.DUPLICATE:
                self.metrics.duplicates += 1
        now = time.monotonic()
        assert self._client is not None
        for inbound in batch:
            if inbound.qos > 0:
                self._client.ack(inbound.mid, inbound.qos)
            self.metrics.ack_latency.add((now - inbound.arrived_mono) * 1000)

    async def _produce_all(self, records: list[OutRecord]) -> None:
        """Produce every record and wait for all acks; retry the whole set until it
        succeeds (at-least-once: a partial success may be produced twice).

        After any failure the topics are ensured again before the next attempt: a broker
        whose data was wiped comes back without them.
        """
        assert self._producer is not None
        delay = 0.2
        while True:
            started = time.monotonic()
            try:
                if not self._topics_ready:
                    await ensure_topics(self.settings.kafka)
                    self._topics_ready = True
                futures = [
                    await self._producer.send(topic, value=value, key=key, partition=part)
                    for topic, part, key, value in records
                ]
                await asyncio.gather(*futures)
                self.metrics.produce_latency.add((time.monotonic() - started) * 1000)
                return
            except (KafkaError, GridWatchError) as exc:
                self._topics_ready = False
                self.metrics.produce_errors += 1
                log.warning("kafka produce failed, retrying error=%r delay_s=%.1f", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _dead_letter(self, inbound: Inbound, reason: str, detail: str) -> DeadLetter:
        _, _, segment = inbound.topic.rpartition("/")
        device = segment if DEVICE_ID_RE.fullmatch(segment) else None
        return DeadLetter(
            reason=DeadLetterReason(reason),
            detail=detail[:2000],
            topic=inbound.topic[:1024],
            raw=inbound.payload[:RAW_PREVIEW_LIMIT],
            received_at=inbound.received_at,
            device_id=device,
        )


def _write_ready(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
