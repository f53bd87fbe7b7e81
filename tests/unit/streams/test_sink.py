"""The stream sink: batching, ack only after a write, spool while InfluxDB is down,
drain in order, bisection of refused lines. InfluxDB is replaced by a transport that
records request bodies and fails on command (the real server is in the e2e tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridwatch.errors import SinkError
from gridwatch.influx import InfluxWriter, Point, RetryableWriteError
from gridwatch.metrics import LatencyWindow
from gridwatch.settings import InfluxSettings
from streams.sink import Sink
from streams.spool import Spool


class FlakyTransport:
    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.down = False
        self.refuse: set[str] = set()  # lines answered with 400

    async def write(self, body: str) -> None:
        if self.down:
            raise RetryableWriteError("InfluxDB unreachable: connection refused")
        bad = [line for line in body.split("\n") if line in self.refuse]
        if bad:
            raise SinkError(f"InfluxDB write answered 400: field type conflict {bad[0]}")
        self.bodies.append(body)

    async def close(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        return [line for body in self.bodies for line in body.split("\n")]


class Stats:
    def __init__(self) -> None:
        self.sink_ms = LatencyWindow()
        self.sink_retries = self.sink_rejected = self.spooled = self.spool_drained = 0


def point(i: int) -> Point:
    return Point("water", {"device": f"d{i % 7}"}, {"level_cm": float(i)}, 1_700_000_000_000 + i)


def line(i: int) -> str:
    return f"water,device=d{i % 7} level_cm={float(i)!r} {1_700_000_000_000 + i}"


def make(tmp_path: Path, **kw):  # type: ignore[no-untyped-def]
    transport = FlakyTransport()
    writer = InfluxWriter(InfluxSettings(max_retries=0), transport)
    rejected: list[tuple[str, str]] = []

    async def reject(bad: str, detail: str) -> None:
        rejected.append((bad, detail))

    sink = Sink(
        writer,
        Spool(tmp_path / "spool", kw.pop("spool_bytes", 1 << 20)),
        stats=Stats(),
        reject=reject,
        write_retries=0,
        **kw,
    )
    return sink, transport, rejected


async def running(sink: Sink, body):  # type: ignore[no-untyped-def]
    tasks = [asyncio.create_task(t()) for t in (sink.run_timer, sink.run_writer, sink.run_drain)]
    try:
        return await asyncio.wait_for(body(), 20)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def drained(sink: Sink) -> None:
    for _ in range(400):
        if not sink.spool.files():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the spool was not drained")


def test_batches_by_size_and_acks_only_after_the_write(tmp_path: Path) -> None:
    sink, transport, _ = make(tmp_path, batch_points=10, flush_interval_s=30)
    acked: list[int] = []

    async def body() -> None:
        for event in range(5):
            pts = [point(event * 4 + k) for k in range(4)]

            async def ack(event: int = event) -> None:
                acked.append(event)

            await sink.put(pts, ack)
        # a batch is sealed once it holds 10 lines: events 0-2 (12 lines) are written
        # and acked; events 3-4 wait for the timer (or a flush)
        await asyncio.sleep(0.2)
        assert acked == [0, 1, 2]
        assert len(transport.lines) == 12
        await sink.flush()

    asyncio.run(running(sink, body))
    assert acked == [0, 1, 2, 3, 4]
    assert transport.lines == [line(i) for i in range(20)]


def test_the_timer_flushes_a_small_batch(tmp_path: Path) -> None:
    sink, transport, _ = make(tmp_path, batch_points=1000, flush_interval_s=0.05)
    acked = asyncio.Event()

    async def ack() -> None:
        acked.set()

    async def body() -> None:
        await sink.put([point(1)], ack)
        await asyncio.wait_for(acked.wait(), 2)

    asyncio.run(running(sink, body))
    assert transport.lines == [line(1)]


def test_influx_down_spools_acks_and_drains_in_order(tmp_path: Path) -> None:
    sink, transport, _ = make(tmp_path, batch_points=5, flush_interval_s=0.02)
    transport.down = True
    acked: list[int] = []

    async def body() -> None:
        for event in range(6):

            async def ack(event: int = event) -> None:
                acked.append(event)

            await sink.put([point(event * 5 + k) for k in range(5)], ack)
        await sink.flush()
        # every event acked although InfluxDB is down: the points are on disk
        assert acked == list(range(6))
        assert len(sink.spool.files()) == 6
        assert transport.lines == []
        transport.down = False
        await drained(sink)

    asyncio.run(running(sink, body))
    assert transport.lines == [line(i) for i in range(30)]
    assert sink.stats.spooled == 30 and sink.stats.spool_drained == 30


def test_new_batches_queue_behind_the_spool(tmp_path: Path) -> None:
    sink, transport, _ = make(tmp_path, batch_points=2, flush_interval_s=0.02)
    sink.spool.append([line(0), line(1)])  # left by a worker that died

    async def body() -> None:
        await sink.put([point(2), point(3)])
        await sink.flush()
        await drained(sink)

    asyncio.run(running(sink, body))
    assert transport.lines == [line(i) for i in range(4)]


def test_a_full_spool_holds_the_agents(tmp_path: Path) -> None:
    sink, transport, _ = make(
        tmp_path, batch_points=2, flush_interval_s=0.01, max_buffered=4, spool_bytes=0
    )
    transport.down = True
    acked: list[int] = []

    async def body() -> None:
        async def ack() -> None:
            acked.append(1)

        for i in range(2):
            await sink.put([point(2 * i), point(2 * i + 1)], ack)
        blocked = asyncio.create_task(sink.put([point(9)], ack))
        await asyncio.sleep(0.3)
        assert not blocked.done() and acked == []  # back-pressure, nothing acked
        transport.down = False
        await blocked
        await sink.flush()

    asyncio.run(running(sink, body))
    assert len(acked) == 3
    assert sorted(transport.lines) == sorted([line(i) for i in range(4)] + [line(9)])
    assert sink.stats.sink_retries >= 1


def test_refused_lines_are_isolated_and_rejected(tmp_path: Path) -> None:
    sink, transport, rejected = make(tmp_path, batch_points=8, flush_interval_s=0.01)
    transport.refuse = {line(3), line(6)}

    async def body() -> None:
        await sink.put([point(i) for i in range(8)])
        await sink.flush()

    asyncio.run(running(sink, body))
    assert sorted(transport.lines) == sorted(line(i) for i in range(8) if i not in (3, 6))
    assert [bad for bad, _ in rejected] == [line(3), line(6)]
    assert "400" in rejected[0][1]


def test_a_point_without_fields_is_refused_before_it_is_queued(tmp_path: Path) -> None:
    sink, transport, _ = make(tmp_path)

    async def body() -> None:
        with pytest.raises(SinkError, match="no field"):
            await sink.put([point(1), Point("water", {}, {}, 1)])
        await sink.flush()

    asyncio.run(running(sink, body))
    assert transport.lines == []


def test_spool_claims_are_exclusive(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    path = spool.append(["a 1", "b 2"])
    other = Spool(tmp_path, 1 << 20)
    with spool.claim(path) as lines:
        assert lines == ["a 1", "b 2"]
        with other.claim(path) as none:
            assert none is None  # held by the first worker
    assert not path.exists() and spool.size_bytes == 0
    with other.claim(path) as gone:
        assert gone is None


def test_a_failed_drain_keeps_the_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    path = spool.append(["a 1"])
    with pytest.raises(RuntimeError), spool.claim(path):
        raise RuntimeError("write failed")
    assert path.exists() and spool.files() == [path]
