"""Tansu on durable storage (``stack.kafka_storage = "s3"``): a ``kill -9`` of the broker
keeps every acknowledged record and every committed consumer offset.

Each test module gets its own broker and S3 server (``kafka-store``) on free ports; the
session stack of the other tests runs Tansu on memory storage and is not touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gridwatch.errors import StackError
from gridwatch.kafka import ensure_topics, read_topic
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack, free_port

pytestmark = [pytest.mark.integration]

RECORDS = 3000


def _settings(var_dir: Path, storage: str) -> Settings:
    return load_settings(
        stack={
            "var_dir": var_dir,
            "kafka_storage": storage,
            "kafka_store_port": free_port(),
            "start_timeout_s": 60,
        },
        kafka={"bootstrap": f"127.0.0.1:{free_port()}", "partitions": 4},
    )


@pytest.fixture(scope="module")
def durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(_settings(tmp_path_factory.mktemp("kafka-s3"), "s3"))
    try:
        stack.start("kafka")  # starts kafka-store first
        yield stack
    finally:
        stack.down(["kafka", "kafka-store"])


def _topic_settings(stack: Stack, name: str) -> Settings:
    kafka = stack.settings.kafka.model_copy(update={"topic_prefix": name})
    return stack.settings.model_copy(update={"kafka": kafka})


async def _produce(bootstrap: str, topic: str, n: int) -> dict[int, int]:
    """``n`` records acknowledged with acks=all; returns value → offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, str(i).encode(), key=f"d{i % 37}".encode()) for i in range(n)
        ]
        acked = await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return {i: meta.offset for i, meta in enumerate(acked)}


async def _consume(
    bootstrap: str, topic: str, group: str, limit: int, commit: bool
) -> tuple[list[int], dict[int, int | None]]:
    """``limit`` values from the group's position (then half a second more, to catch a
    record too many); the group's committed offset per partition afterwards."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        values: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(values) < limit and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=limit - len(values))
            values += [int(r.value) for records in batch.values() for r in records]
        if commit:
            await consumer.commit()
        else:
            extra = await consumer.getmany(timeout_ms=500)
            values += [int(r.value) for records in extra.values() for r in records]
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
        return values, committed
    finally:
        await consumer.stop()


def test_broker_kill_keeps_records_and_committed_offsets(durable: Stack) -> None:
    s = _topic_settings(durable, "restart")
    topic = s.kafka.topic("readings.water")
    bootstrap = s.kafka.bootstrap
    asyncio.run(ensure_topics(s.kafka, [topic]))
    acked = asyncio.run(_produce(bootstrap, topic, RECORDS))
    first, committed = asyncio.run(_consume(bootstrap, topic, "g-restart", 1200, commit=True))
    assert len(first) == 1200 and sum(v or 0 for v in committed.values()) == 1200

    durable.kill("kafka")
    durable.start("kafka")

    rest, committed_after = asyncio.run(
        _consume(bootstrap, topic, "g-restart", RECORDS - 1200, commit=False)
    )
    assert committed_after == committed  # the group's offsets came back
    assert sorted(first + rest) == list(range(RECORDS))  # resumed there: none twice or lost
    everything, _ = asyncio.run(_consume(bootstrap, topic, "g-fresh", RECORDS, commit=False))
    assert sorted(everything) == sorted(acked)
    kept = asyncio.run(read_topic(s.kafka, topic))  # to the end offsets Tansu reports
    assert sorted(int(r.value) for r in kept) == list(range(RECORDS))


def test_end_offset_counts_batches_written_within_one_second(durable: Stack) -> None:
    """Tansu answers ListOffsets(latest) from the newest batch object by LastModified:
    with whole seconds (moto's default) the end offset stuck at the first batch of the
    second and readers "at the end" stopped short; ``kafka_store`` lists microseconds."""
    s = _topic_settings(durable, "ends")
    topic = s.kafka.topic("alerts")
    asyncio.run(ensure_topics(s.kafka, [topic]))

    async def batches_then_end() -> tuple[int, int]:
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap, linger_ms=20)
        await producer.start()
        try:
            last = 0
            for _ in range(5):  # five batches of ten, well within one second
                sent = [await producer.send(topic, b"x", partition=0) for _ in range(10)]
                last = (await asyncio.gather(*sent))[-1].offset
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka.bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            return last, (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    last, end = asyncio.run(batches_then_end())
    assert last == 49
    assert end > 40  # inside the last batch (Tansu: its first offset + 1), not stuck at 1
    assert len(asyncio.run(read_topic(s.kafka, topic))) == 50


def test_memory_storage_has_no_store(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path, "memory"))
    assert not stack.uses("kafka-store")
    assert [st.name for st in stack.status()] == ["mosquitto", "kafka", "influxdb"]
    with pytest.raises(StackError, match="kafka_storage = 's3'"):
        stack.start("kafka-store")
