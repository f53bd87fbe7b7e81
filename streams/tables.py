"""The stream jobs' tables: one codec from store to changelog and back; local RocksDB
tables that are ahead of their changelog are dropped before start-up.

``state_table`` makes a Faust table whose values go through one codec (MessagePack
state documents: ``streams.codec``) everywhere: in its local store, in the changelog
records it writes, and in the changelog topic that recovery reads them back with. A
``faust.Table`` takes its value codec from ``value_type`` only and makes its changelog
topic as it is registered with the app (``TableManager.add``), so setting the table's
``value_serializer`` afterwards left that topic on JSON: the worker wrote MessagePack,
and on every start that had to read the changelog, recovery failed record after record
(``Error in recovery 'utf-8' codec can't decode byte 0x87``) and never ended.
``check_codecs`` refuses to start a worker whose tables disagree with their changelogs.

A worker's RocksDB store remembers, per table partition, the last changelog offset it
applied. If the broker lost its log (a wiped or rebuilt
cluster), that offset lies beyond the changelog's end and Faust refuses to
start (``ConsistencyError``), for ever. The changelog is the source of truth: such a
partition's local copy is deleted and rebuilt from whatever the changelog holds.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from gridwatch.errors import GridWatchError
from gridwatch.settings import KafkaSettings

log = logging.getLogger(__name__)

OFFSET_KEY = b"__faust\0offset__"  # where Faust's RocksDB store keeps the applied offset
_DB = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


class StateTable(faust.Table):
    """A table whose values use the codec ``value_serializer`` (a name registered in
    ``faust.serializers.codecs``), set before the app registers the table and so before
    its store and changelog topic exist; kept by ``clone``."""

    def __init__(self, app: faust.App, *, value_serializer: str, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.value_serializer = value_serializer

    def info(self) -> Mapping[str, Any]:
        return {**super().info(), "value_serializer": self.value_serializer}


def state_table(
    app: faust.App,
    name: str,
    *,
    codec: str,
    partitions: int,
    on_changelog_event: Callable[[Any], Awaitable[None]] | None = None,
) -> StateTable:
    """Register table ``name`` (default None) whose values go through ``codec``."""
    table = StateTable(
        app,
        name=name,
        default=None,
        partitions=partitions,
        value_serializer=codec,
        on_changelog_event=on_changelog_event,
        beacon=app.tables.beacon,
    )
    app.tables.add(table)
    return table


def check_codecs(app: faust.App) -> None:
    """Every table's changelog topic decodes with the codec the table writes (and its
    store, made later from the table's codec, uses)."""
    for name, table in app.tables.items():
        written, read = table.value_serializer, table.changelog_topic.value_serializer
        if written != read:
            raise GridWatchError(
                f"table {name!r} writes its changelog with codec {written!r} but would"
                f" recover it with {read!r}"
            )


def table_dbs(datadir: Path) -> list[tuple[str, int, Path]]:
    """(table, partition, db directory) of every table partition stored in ``datadir``."""
    found = []
    for path in sorted((datadir / "v1" / "tables").glob("*.db")):
        m = _DB.match(path.name)
        if m is not None:
            found.append((m["table"], int(m["partition"]), path))
    return found


def persisted_offsets(datadir: Path) -> dict[tuple[str, int], tuple[Path, int]]:
    """(table, partition) → (db directory, last applied changelog offset)."""
    from rocksdict import AccessType, Rdict

    out: dict[tuple[str, int], tuple[Path, int]] = {}
    for table, partition, path in table_dbs(datadir):
        db = Rdict(str(path), access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        if raw is not None:
            out[(table, partition)] = (path, int(raw))
    return out


async def drop_stale_tables(settings: KafkaSettings, datadir: Path) -> list[str]:
    """Delete the local table partitions whose applied offset is past their changelog's
    end; returns their names."""
    found = persisted_offsets(datadir)
    if not found:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {
            key: TopicPartition(f"{settings.streams_group}-{key[0]}-changelog", key[1])
            for key in found
        }
        existing = await consumer.topics()
        present = [tp for tp in tps.values() if tp.topic in existing]
        ends = await consumer.end_offsets(present) if present else {}
    finally:
        await consumer.stop()
    dropped = []
    for key, (path, offset) in found.items():
        end = ends.get(tps[key], 0)
        if offset > end - 1:  # Faust's own test: past the last offset in the changelog
            log.warning(
                "table %s partition %d is ahead of its changelog (applied %d, end %d):"
                " rebuilding it from the changelog",
                key[0],
                key[1],
                offset,
                end,
            )
            shutil.rmtree(path, ignore_errors=True)
            dropped.append(path.name)
    return dropped
