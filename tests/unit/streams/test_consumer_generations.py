"""Offsets are committed only for records handled in the current consumer-group
generation (streams/transport.Consumer): Faust's commit arithmetic on its own acked lists,
driven the way a rebalance drives it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

from faust.types import TP
from faust.types.tuples import Message

from gridwatch.settings import load_settings
from simulators.city import generate_city
from streams.app import create_app
from streams.transport import Consumer, NeverRead, forget_acks

TOPIC = "t.readings.water"
PART = TP(TOPIC, 0)


def consumer(generation: int, committed: int) -> Any:
    c: Any = Consumer.__new__(Consumer)  # only the ack bookkeeping, no Kafka
    c.app = SimpleNamespace(
        consumer_generation_id=generation,
        topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
    )
    c._acked = defaultdict(list)
    c._acked_index = defaultdict(set)
    c._gap = defaultdict(list)
    c._committed_offset = defaultdict(lambda: None, {PART: committed})
    c._read_offset = defaultdict(lambda: None)
    c._unacked_messages = WeakSet()
    c._n_acked = 0
    c._waiting_for_ack = None
    return c


def message(offset: int, generation: int) -> Message:
    return Message(
        TOPIC, 0, offset, 0.0, 0, None, b"k", b"v", None, tp=PART, generation_id=generation
    )


def test_an_ack_from_the_generation_before_the_rebalance_is_not_counted() -> None:
    c = consumer(generation=2, committed=100)
    stale = [message(o, generation=1) for o in range(100, 150)]  # skipped or written late
    assert not any(c.ack(m) for m in stale)
    assert c._new_offset(PART) is None  # nothing to commit: 100.. must be handled again
    fresh = [message(o, generation=2) for o in range(100, 120)]
    assert all(c.ack(m) for m in fresh)
    assert c._new_offset(PART) == 120


def test_the_seek_after_a_rebalance_forgets_the_acks_taken_before_it() -> None:
    c = consumer(generation=1, committed=100)
    for o in range(101, 130):  # 100 still in the sink when the group rebalanced
        c.ack(message(o, generation=1))
    forget_acks(c)
    c._committed_offset[PART] = 100  # what the seek reads back from Kafka
    assert c._new_offset(PART) is None
    c.ack(message(100, generation=1))
    assert c._new_offset(PART) == 101  # not 130: 101.. were never acked again


def test_acks_of_one_generation_commit_as_faust_does() -> None:
    c = consumer(generation=3, committed=0)
    for o in range(0, 10):
        assert c.ack(message(o, generation=3))
    assert c._new_offset(PART) == 10


def test_a_commit_never_passes_the_next_unacked_record() -> None:
    c = consumer(generation=1, committed=100)
    for o in range(101, 111):  # 100 is still being written
        c.ack(message(o, generation=1))
    assert c._new_offset(PART) is None  # Faust alone would commit 111, past 100
    c.ack(message(100, generation=1))
    assert c._new_offset(PART) == 111


def test_the_worker_consumer_never_drops_a_record_as_already_read(tmp_path: Path) -> None:
    """Faust drops a fetched record whose offset lies below the partition's read offset;
    the worker's consumer never reports one, whatever the fetch loop or a seek records."""
    generate_city(1, "tiny").write(tmp_path / "city")
    settings = load_settings(registry_dir=tmp_path / "city", stack={"var_dir": tmp_path})
    c: Any = create_app(settings, store="memory://").consumer
    assert isinstance(c._read_offset, NeverRead)
    c._read_offset[PART] = 11  # what the fetch loop records after delivering offset 11
    c._read_offset.update({PART: 10})  # what the seek to the committed offsets records
    assert c._read_offset[PART] is None  # so the record at offset 10 is still delivered


def test_a_fetched_record_not_delivered_is_fetched_again(tmp_path: Path) -> None:
    """Records of a partition paused for recovery, and every record after the group's
    generation changed mid-batch, are not delivered; their partitions are sought back to
    the first such record (Faust drops them and its position moves past them)."""
    generate_city(1, "tiny").write(tmp_path / "city")
    settings = load_settings(registry_dir=tmp_path / "city", stack={"var_dir": tmp_path})
    app: Any = create_app(settings, store="memory://")
    c: Any = app.consumer
    active, paused, late = TP(TOPIC, 0), TP(TOPIC, 1), TP(TOPIC, 2)
    records = {
        active: [SimpleNamespace(offset=o) for o in (10, 11)],
        paused: [SimpleNamespace(offset=o) for o in (5, 6)],
        late: [SimpleNamespace(offset=o) for o in (7, 8)],
    }
    sought: dict[TP, int] = {}

    async def wait_next_records(_timeout: float) -> Any:
        return records, {active, late}

    async def seek(tp: TP, offset: int) -> None:
        sought[tp] = offset

    c._wait_next_records = wait_next_records
    c.seek = seek
    c.assignment = lambda: {active, paused, late}
    c.highwater = lambda tp: 100
    c._to_message = lambda tp, record: (tp, record.offset)
    c.scheduler = SimpleNamespace(
        iterate=lambda recs: [(tp, r) for tp in (active, paused, late) for r in recs[tp]]
    )

    async def drain() -> list[Any]:
        delivered = []
        async for _tp, message in c.getmany(timeout=1.0):
            delivered.append(message)
            if message == (late, 7):
                app.consumer_generation_id += 1  # the group rebalanced meanwhile
        return delivered

    assert asyncio.run(drain()) == [(active, 10), (active, 11), (late, 7)]
    assert sought == {paused: 5, late: 8}
