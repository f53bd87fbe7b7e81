"""A worker's local RocksDB table ahead of its changelog (the broker lost its log) is
dropped before start-up instead of Faust refusing to start for ever."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer
from rocksdict import Rdict

from gridwatch.kafka import ensure_topics
from gridwatch.settings import Settings
from streams.tables import OFFSET_KEY, drop_stale_tables, persisted_offsets


def _table(datadir: Path, name: str, partition: int, offset: int) -> Path:
    path = datadir / "v1" / "tables" / f"{name}-{partition}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = Rdict(str(path))
    db[OFFSET_KEY] = str(offset).encode()
    db[b"device"] = b"{}"
    db.close()
    return path


def test_tables_ahead_of_their_changelog_are_dropped(settings: Settings, tmp_path: Path) -> None:
    k = settings.kafka
    changelog = f"{k.streams_group}-water-sites-changelog"

    async def fill() -> None:
        await ensure_topics(k, [changelog])
        producer = AIOKafkaProducer(bootstrap_servers=k.bootstrap)
        await producer.start()
        try:
            for i in range(5):
                await producer.send_and_wait(changelog, b"{}", key=f"d{i}".encode(), partition=0)
        finally:
            await producer.stop()

    asyncio.run(fill())
    consistent = _table(tmp_path, "water-sites", 0, 4)  # last offset in the changelog
    ahead = _table(tmp_path, "water-sites", 1, 700)  # the broker lost partition 1's log
    gone = _table(tmp_path, "bike-devices", 0, 3)  # no changelog topic at all
    assert set(persisted_offsets(tmp_path)) == {
        ("water-sites", 0),
        ("water-sites", 1),
        ("bike-devices", 0),
    }
    dropped = asyncio.run(drop_stale_tables(k, tmp_path))
    assert sorted(dropped) == sorted([ahead.name, gone.name])
    assert consistent.exists() and not ahead.exists() and not gone.exists()
