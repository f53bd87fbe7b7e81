"""A stream worker stopped and started again on its changelog recovers every table,
resumes, catches up and stores every later reading (those published while it was down
too): first with its local RocksDB state kept, then with it deleted (every table rebuilt
from the changelog alone, MessagePack documents and the JSON documents an earlier
version wrote alike).

Real worker processes (``gridwatch streams run``) on the session's broker and InfluxDB;
the readings go straight to ``gw.readings.*`` as the bridge packs them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.serializers import codecs

import streams.codec  # noqa: F401  (registers the table codec)
from gridwatch.contracts import KINDS, READING_TYPES, ReadingBatch
from gridwatch.drills.recovery import (
    delete_local_state,
    reading_lag,
    table_fields,
    table_snapshot,
    wait_recovered,
)
from gridwatch.kafka import ensure_topics, partition_for, partitions_of, readings_topic
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from tests.integration.pipeline import count_points

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# every table the stream jobs keep (streams/*_job.py), all with the MessagePack codec
TABLES = (
    "water-sites",
    "rain-gauges",
    "bike-devices",
    "camera-devices",
    "camera-slots",
    "status-devices",
)
STEPS = 6  # readings per device and phase, a minute apart
RECOVER_WITHIN_S = 90.0
CATCH_UP_WITHIN_S = 90.0


def reading(kind: str, device: str, reg: Registry, ts: datetime, rng: Any) -> Any:
    p = reg.placement(device)
    base = {"device_id": device, "ts": ts, "received_at": datetime.now(UTC)}
    base |= {"grid_id": p.grid_id, "district_id": p.district_id}
    measure: dict[str, Any] = {
        "water": {"level_cm": float(rng.uniform(0, 2)), "battery_v": 3.6},
        "rain": {"intensity_mm_h": float(rng.uniform(0, 4))},
        "bike": {"bikes": int(rng.integers(0, 20)), "capacity": 20},
        "camera": {"counts": {"person": int(rng.integers(0, 30))}, "water_cover": 0.0},
        "status": {"battery_v": 3.7, "uptime_s": 1000, "firmware": "1.0"},
    }[kind]
    return READING_TYPES[kind].model_validate({**base, **measure})


def batches(
    reg: Registry, steps: range, t0: datetime, partitions: int
) -> Iterator[tuple[str, int, bytes]]:
    """(kind, partition, ReadingBatch JSON) for every device of every kind and step."""
    rng = np.random.default_rng(steps.start)
    for step in steps:
        ts = t0 + timedelta(minutes=step)
        for kind in KINDS:
            by_part: dict[int, list[Any]] = {}
            for placement in reg.devices_of(kind):
                d = placement.device.device_id
                by_part.setdefault(partition_for(d, partitions), []).append(
                    reading(kind, d, reg, ts, rng)
                )
            for part, readings in sorted(by_part.items()):
                batch = ReadingBatch(kind=kind, readings=readings, packed_at=datetime.now(UTC))  # type: ignore[arg-type]
                yield kind, part, batch.model_dump_json().encode()


async def produce(settings: Settings, records: list[tuple[str, int | None, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for topic, part, key, value in records:
            await producer.send(topic, value, key=key, partition=part)
        await producer.flush()
    finally:
        await producer.stop()


def publish(settings: Settings, reg: Registry, steps: range, t0: datetime) -> None:
    k = settings.kafka
    asyncio.run(
        produce(
            settings,
            [
                (readings_topic(k, kind), part, f"{kind}:{part}".encode(), value)
                for kind, part, value in batches(reg, steps, t0, k.partitions)
            ],
        )
    )


def stored(settings: Settings) -> dict[str, int]:
    return {kind: count_points(settings, kind, "qc") for kind in KINDS}


def legacy_documents(settings: Settings) -> dict[str, tuple[bytes, bytes]]:
    """One state document per table as the JSON version wrote it (Faust's ``json``
    codec, key and value), under a key no device has."""
    json_codec = codecs.get_codec("json")
    docs: dict[str, Any] = {t: {"_ts": 1.0e9, "hyg": [0.0, float("nan")]} for t in TABLES}
    docs["camera-slots"] = [0.5] * 16  # a slot is a list of floats, not a map
    return {t: (json_codec.dumps(f"legacy-{t}"), json_codec.dumps(doc)) for t, doc in docs.items()}


async def changelog_contents(
    settings: Settings, topic: str
) -> tuple[dict[bytes, bytes], set[bytes]]:
    """The newest value of every live key in changelog ``topic``, read to its real end,
    and the keys whose newest record lies at or past the end offset the broker reports,
    which no consumer that trusts that end (Faust's recovery) can be expected to read.

    None on Kafka. Tansu 0.6 reports the end of a partition as its last record batch's
    base offset + 1 (measured: three batches of 10 records, end 21), so it hides most of
    the last batch of each changelog partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    try:
        parts = await partitions_of(consumer, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        newest: dict[bytes, Any] = {}
        quiet = 0
        while quiet < 2:  # until two polls of a second find nothing more in the log
            batch = await consumer.getmany(timeout_ms=1000)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                newest.update((r.key, r) for r in records)
    finally:
        await consumer.stop()
    hidden = {k for k, r in newest.items() if r.offset >= ends[TopicPartition(topic, r.partition)]}
    return {k: r.value for k, r in newest.items() if r.value is not None}, hidden


def start_worker(settings: Settings, name: str) -> Child:
    logs = settings.stack.var_dir / "log" / settings.kafka.topic_prefix
    return Child(name, ["streams", "run"], settings, logs).start()


def catch_up(settings: Settings, worker: Child, expected: dict[str, int]) -> None:
    """Lag back to 0 and every reading published so far stored."""

    def done() -> bool:
        worker.check_alive()
        return reading_lag(settings) == 0 and stored(settings) == expected

    try:
        wait_until(done, CATCH_UP_WITHIN_S, interval_s=0.5, what="lag 0, every reading stored")
    except TimeoutError as exc:
        raise AssertionError(
            f"{exc}: lag {reading_lag(settings)}, stored {stored(settings)} of {expected};"
            f" {worker.tail(8)}"
        ) from exc


def no_recovery_errors(worker: Child) -> None:
    text = worker.log_path.read_text(errors="replace")
    errors = [line for line in text.splitlines() if "Error in recovery" in line]
    assert not errors, f"{len(errors)} recovery errors, first: {errors[0][:300]}"


def test_restarted_worker_recovers_every_table_from_its_changelog(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "tickets": settings.tickets.model_copy(
                update={"db_url": f"sqlite:///{tmp_path / 'tickets.db'}"}
            )
        }
    )
    k = settings.kafka
    changelogs = {t: f"{k.streams_group}-{t}-changelog" for t in TABLES}
    asyncio.run(ensure_topics(k, [*list(changelogs.values())]))
    asyncio.run(ensure_topics(k))
    legacy = legacy_documents(settings)
    asyncio.run(
        produce(settings, [(changelogs[t], 0, key, value) for t, (key, value) in legacy.items()])
    )
    devices = {kind: len(registry.devices_of(kind)) for kind in KINDS}
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    expected_rows = {
        "water_sites": devices["water"] + 1,
        "rain_gauges": devices["rain"] + 1,
        "bike_devices": devices["bike"] + 1,
        "camera_devices": devices["camera"] + 1,
        "status_devices": devices["status"] + 1,
    }

    # 1. a storm's worth of readings: a changelog record for every device of every table
    worker = start_worker(settings, "worker-first")
    try:
        wait_recovered(settings, worker, RECOVER_WITHIN_S)
        publish(settings, registry, range(0, STEPS), t0)
        catch_up(settings, worker, {kind: n * STEPS for kind, n in devices.items()})
    finally:
        worker.stop()
    before = table_snapshot(settings)
    assert set(before) == set(TABLES)
    for table in TABLES:
        assert legacy[table][0] in before[table], f"{table}: the JSON document was not recovered"

    # 2. stopped (SIGTERM) and started again on its local state and the changelog, with
    # readings waiting for it (published while it was down) and more arriving after
    publish(settings, registry, range(STEPS, STEPS + STEPS // 2), t0)
    worker = start_worker(settings, "worker-restarted")
    try:
        report = wait_recovered(settings, worker, RECOVER_WITHIN_S)
        publish(settings, registry, range(STEPS + STEPS // 2, 2 * STEPS), t0)
        catch_up(settings, worker, {kind: n * 2 * STEPS for kind, n in devices.items()})
        no_recovery_errors(worker)
    finally:
        worker.stop()
    rows = table_fields(report, "rows_")
    assert {name: rows[name] for name in expected_rows} == expected_rows
    kept = table_snapshot(settings)

    # 3. stopped, its local table state deleted: every table rebuilt from the changelog
    assert delete_local_state(settings)
    worker = start_worker(settings, "worker-rebuilt")
    try:
        report = wait_recovered(settings, worker, RECOVER_WITHIN_S)
        no_recovery_errors(worker)
    finally:
        worker.stop()
    replayed = table_fields(report, "replayed_")
    assert all(replayed.get(t.replace("-", "_"), 0) >= len(kept[t]) for t in TABLES), replayed
    rebuilt = table_snapshot(settings)
    assert rebuilt.keys() == kept.keys()
    codec = codecs.get_codec("gw-state")
    for table in TABLES:
        # every row as the changelog last has it (what a broker hides aside, see above)
        assert rebuilt[table].keys() == kept[table].keys(), f"{table}: rows lost in the rebuild"
        newest, hidden = asyncio.run(changelog_contents(settings, changelogs[table]))
        wrong = {key for key, value in newest.items() if rebuilt[table].get(key) != value}
        assert wrong <= hidden, f"{table}: {len(wrong - hidden)} rows differ from the changelog"
        assert all(isinstance(codec.loads(v), dict | list) for v in rebuilt[table].values())

    # ... and it resumes on the rebuilt tables: every later reading stored, lag 0
    worker = start_worker(settings, "worker-resumed")
    try:
        wait_recovered(settings, worker, RECOVER_WITHIN_S)
        publish(settings, registry, range(2 * STEPS, 3 * STEPS), t0)
        catch_up(settings, worker, {kind: n * 3 * STEPS for kind, n in devices.items()})
        no_recovery_errors(worker)
    finally:
        worker.stop()
    # every device's state took in its last reading, as the worker wrote it to the changelog
    last_ts = (t0 + timedelta(minutes=3 * STEPS - 1)).timestamp()
    for table in ("water-sites", "rain-gauges", "bike-devices", "camera-devices"):
        newest, _ = asyncio.run(changelog_contents(settings, changelogs[table]))
        assert newest.keys() == kept[table].keys()
        seen = [codec.loads(v).get("_ts") for key, v in newest.items() if b"legacy" not in key]
        assert seen and all(ts == last_ts for ts in seen), f"{table}: not every device scored on"
