"""The outbox relay: every committed change published once, in order, across crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tickets.db import session_factory
from tickets.errors import OutboxError
from tickets.models import OutboxRow
from tickets.outbox import JsonlPublisher, OutboxRelay, RecordingPublisher
from tickets.service import TicketService

from .tickets_testlib import make_alert

pytestmark = pytest.mark.integration


def make_changes(service: TicketService, incidents: int, first: int = 0) -> int:
    """Raise, acknowledge and resolve ``incidents`` tickets; return the outbox row count."""
    for i in range(first, first + incidents):
        tid = service.raise_alert(make_alert(f"ob{i}", site=f"site-{i}")).ticket_id or ""
        service.acknowledge(tid, "op")
        service.resolve(tid, "op", "real")
    with session_factory(service.engine)() as s:
        return int(s.scalar(select(func.count()).select_from(OutboxRow)) or 0)


def published_count(engine: Engine) -> int:
    with session_factory(engine)() as s:
        q = select(func.count()).where(OutboxRow.published_at.is_not(None))
        return int(s.scalar(q) or 0)


async def test_relay_publishes_each_row_once_in_order(
    service: TicketService, engine: Engine
) -> None:
    total = make_changes(service, 5)
    assert total == 15
    pub = RecordingPublisher()
    relay = OutboxRelay(engine, pub, batch_size=4)
    assert relay.pending() == 15
    assert await relay.drain() == 15
    assert await relay.drain() == 0
    seqs = [m.seq for m in pub.messages]
    assert seqs == sorted(seqs)
    assert len({m.event_id for m in pub.messages}) == 15
    per_ticket: dict[str, list[str]] = {}
    for m in pub.messages:
        per_ticket.setdefault(m.event.ticket_id, []).append(m.event.event)
    assert set(map(tuple, per_ticket.values())) == {("create", "acknowledge", "resolve")}
    assert pub.messages[0].key == pub.messages[0].event.incident_key
    assert relay.pending() == 0


async def test_failed_publish_marks_nothing_and_is_retried(
    service: TicketService, engine: Engine
) -> None:
    make_changes(service, 2)
    pub = RecordingPublisher(fail_next=1)
    relay = OutboxRelay(engine, pub, batch_size=100)
    with pytest.raises(OutboxError):
        await relay.run_once()
    assert published_count(engine) == 0
    assert relay.stats.failures == 1
    assert await relay.run_once() == 6
    assert len(pub.messages) == 6
    with session_factory(engine)() as s:
        assert set(s.scalars(select(OutboxRow.attempts))) == {2}


async def test_relay_loop_follows_new_changes(service: TicketService, engine: Engine) -> None:
    pub = RecordingPublisher(fail_next=1)
    relay = OutboxRelay(engine, pub, batch_size=10, poll_s=0.05, max_backoff_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    total = await asyncio.to_thread(make_changes, service, 3)
    deadline = time.monotonic() + 20
    # polling the recorder with a deadline is the point here
    while len(pub.messages) < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert len(pub.messages) == total
    assert relay.stats.failures == 1


RELAY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from tickets.db import make_engine
from tickets.outbox import JsonlPublisher, OutboxRelay

async def main():
    relay = OutboxRelay(make_engine(sys.argv[1]), JsonlPublisher(Path(sys.argv[2]),
        delay_per_message_s=float(sys.argv[3])), batch_size=40)
    await relay.drain()

asyncio.run(main())
"""


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


@pytest.mark.slow
def test_relay_killed_mid_batch_publishes_every_event_once(
    service: TicketService, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    total = make_changes(service, 40)  # 120 events, 3 batches of 40
    sink = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    cmd = [sys.executable, "-c", RELAY_SCRIPT, db_url, str(sink)]
    proc = subprocess.Popen([*cmd, "0.02"], env=env)  # 20 ms per event: room to kill
    deadline = time.monotonic() + 60
    # wait until the relay is inside its second batch, then kill it without warning
    while len(lines(sink)) < 60 and time.monotonic() < deadline:
        assert proc.poll() is None, "relay exited before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    written, marked = len(lines(sink)), published_count(engine)
    assert marked == 40  # the first batch was acknowledged and marked
    assert written > marked  # part of the second batch went out but was never marked

    subprocess.run([*cmd, "0"], env=env, check=True, timeout=120)
    events = lines(sink)
    ids = [e["event_id"] for e in events]
    assert len(ids) == total
    assert len(set(ids)) == total
    assert published_count(engine) == total
    with session_factory(engine)() as s:
        assert set(ids) == set(s.scalars(select(OutboxRow.event_id)))
        # only the interrupted batch was handed over twice
        attempts = list(s.scalars(select(OutboxRow.attempts)))
    assert sorted(set(attempts)) == [1, 2]
    assert attempts.count(2) == 40


async def test_jsonl_publisher_drops_torn_line_and_repeats(tmp_path: Path) -> None:
    from gridwatch.contracts import TicketEvent
    from tickets.outbox import OutboxMessage

    sink = tmp_path / "s.jsonl"
    pub = JsonlPublisher(sink)
    ev = TicketEvent.model_validate_json(
        json.dumps(
            {
                "event_id": "e1",
                "ticket_id": "TK-1",
                "incident_key": "g:waterlogging",
                "event": "create",
                "state": "open",
                "category": "waterlogging",
                "severity": "minor",
                "grid_id": "g",
                "ts": "2026-07-01T08:00:00Z",
            }
        )
    )
    msg = OutboxMessage(seq=1, event_id="e1", key="g:waterlogging", event=ev)
    await pub.publish([msg])
    with sink.open("a") as fh:
        fh.write('{"torn": ')
    again = JsonlPublisher(sink)
    await again.publish([msg, OutboxMessage(seq=2, event_id="e2", key="k", event=ev)])
    assert [e["event_id"] for e in lines(sink)] == ["e1", "e2"]
    assert sink.read_text().count("\n") == 2


async def test_every_complaint_yields_one_complaint_event_with_pre_emption(
    service: TicketService, engine: Engine
) -> None:
    from gridwatch.contracts import Category, Complaint
    from tickets.outbox import influx_line

    from .tickets_testlib import T0

    placed = service.registry.devices["wl-00001"]
    dev = placed.device
    service.raise_alert(make_alert("pe1", grid=placed.grid_id, lon=dev.lon, lat=dev.lat))

    def complaint(cid: str, category: Category, minutes: int) -> Complaint:
        from datetime import timedelta

        return Complaint(
            complaint_id=cid,
            ts=T0 + timedelta(minutes=minutes),
            category=category,
            lon=dev.lon,
            lat=dev.lat,
        )

    service.file_complaint(complaint("pe-c1", Category.WATERLOGGING, 25))  # pre-empted
    service.file_complaint(complaint("pe-c2", Category.CROWDING, 30))  # reactive
    pub = RecordingPublisher()
    await OutboxRelay(engine, pub).drain()
    events = [m for m in pub.messages if m.event.event == "complaint"]
    assert [m.detail["complaint_id"] for m in events] == ["pe-c1", "pe-c2"]
    assert [m.detail["pre_empted"] for m in events] == [True, False]
    lines = [influx_line(m) for m in events]
    assert "pre_empted=1i,lead_min=25.0" in lines[0]
    assert "pre_empted=0i" in lines[1]
    assert "lead_min" not in lines[1]


async def test_relay_loop_outlives_a_database_restart(registry) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL stopped under the relay: it backs off while claims fail and publishes
    everything once the server is back (it used to exit on the first OperationalError)."""
    from gridwatch.pgcluster import PgCluster
    from tickets.db import make_engine, migrate

    with PgCluster() as pg:
        engine = make_engine(pg.create_database("relay"))
        migrate(engine)
        service = TicketService(
            engine, TicketService.from_url(pg.url("relay"), registry).config, registry
        )
        pub = RecordingPublisher()
        relay = OutboxRelay(engine, pub, batch_size=10, poll_s=0.05, max_backoff_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        before = await asyncio.to_thread(make_changes, service, 1)
        await asyncio.to_thread(pg.stop, "immediate")
        await asyncio.sleep(1.0)  # the relay polls a dead server meanwhile
        assert not task.done()
        await asyncio.to_thread(pg.start)
        total = await asyncio.to_thread(make_changes, service, 2, 1)
        deadline = time.monotonic() + 30
        while len({m.seq for m in pub.messages}) < total and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)
        with session_factory(engine)() as s:
            rows = set(s.scalars(select(OutboxRow.id)))
        assert published_count(engine) == total
        engine.dispose()
    assert before < total == len(rows)
    assert {m.seq for m in pub.messages} == rows  # (a crash makes the sequence skip ids)
    assert relay.stats.failures >= 1
