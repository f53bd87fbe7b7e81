"""Kafka plumbing shared by the stages: topic names, partitioning, topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest

from gridwatch.contracts import KINDS
from gridwatch.errors import StackError, WaitTimeout
from gridwatch.settings import KafkaSettings

log = logging.getLogger(__name__)


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2, positive), so keyed and batched records
    of one device always land on the same partition."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def readings_topic(settings: KafkaSettings, kind: str) -> str:
    return settings.topic(f"readings.{kind}")


def all_topics(settings: KafkaSettings) -> list[str]:
    names = [readings_topic(settings, k) for k in KINDS]
    names += [
        settings.topic(n) for n in ("deadletter", "assessments", "alerts", "tickets", "complaints")
    ]
    return names


async def ensure_topics(settings: KafkaSettings, names: list[str] | None = None) -> None:
    """Create the topics (idempotent); all share the configured partition count so that
    per-device and per-incident keys stay co-partitioned across topics."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap, request_timeout_ms=settings.request_timeout_ms
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in (names or all_topics(settings)) if n not in existing]
        if not missing:
            return
        new = [
            NewTopic(
                n,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
            for n in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another process was faster
            await admin.create_topics(new)
        await _until_led(admin, missing, settings.request_timeout_ms / 1000)
    except KafkaError as exc:
        raise StackError(f"cannot create Kafka topics at {settings.bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    """Return once every broker's metadata gives every partition of ``topics`` a leader.
    CreateTopics answers when the controller has recorded them; each broker learns of them
    from the metadata log a moment later, and a client asking that broker in the meantime
    finds no partitions (seen with three brokers: one describe right after creation got
    none). Asked of each broker in turn: the admin client otherwise picks one at random."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    wanted = set(topics)
    while True:
        lagging: set[str] = set()
        for broker in admin._client.cluster.brokers():
            response = await admin._send_request_to_node(broker.nodeId, MetadataRequest(topics))
            docs = response.to_object()["topics"]
            led = {
                d["topic"]
                for d in docs
                if d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
            }
            lagging |= wanted - led
        if not lagging:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise StackError(
                f"Kafka topics without a leader after {timeout_s:.0f} s: "
                + ", ".join(sorted(lagging))
            )
        await asyncio.sleep(0.1)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (none if it does not exist). A consumer without a
    subscription has no topic's metadata (Tansu sent every topic's anyway; Kafka does not),
    and ``consumer.topics()`` does not keep what it fetched: ask the client for all of it."""
    known = consumer.partitions_for_topic(topic)
    if known is None:
        cluster = await consumer._client.fetch_all_metadata()
        known = cluster.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(known or ())]


async def read_topic(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record currently in ``topic`` (all partitions, from the beginning)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            positions = [await consumer.position(tp) for tp in parts]
            if all(pos >= end[tp] for pos, tp in zip(positions, parts, strict=True)):
                return records
            if asyncio.get_running_loop().time() > deadline:
                raise WaitTimeout(f"reading {topic} did not reach its end in {timeout_s:.0f} s")
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
    finally:
        # aiokafka 0.14 can re-raise the cancellation of its internal offset-reset task
        # from stop() right after a broker restart; the records read are complete.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def consumer_lag(settings: KafkaSettings, group: str, topics: list[str]) -> dict[str, int]:
    """Records not yet committed by ``group``, per topic (end offset − committed).

    Uses a consumer that never joins the group (no subscription) to read the committed
    offsets.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        for topic in topics:
            parts = await partitions_of(consumer, topic)
            if not parts:
                continue
            end = await consumer.end_offsets(parts)
            total = 0
            for tp in parts:
                done = await consumer.committed(tp)
                total += max(end[tp] - (done or 0), 0)
            lag[topic] = total
        return lag
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
