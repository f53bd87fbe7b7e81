"""The consumer Faust creates for our workers uses our fetch wait, not Faust's 1500 ms."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gridwatch.settings import load_settings
from simulators.city import generate_city
from streams.app import create_app
from streams.transport import ConsumerThread


def test_worker_consumer_uses_configured_fetch_wait(tmp_path: Path) -> None:
    generate_city(1, "tiny").write(tmp_path / "city")
    settings = load_settings(
        kafka={"fetch_max_wait_ms": 77},
        registry_dir=tmp_path / "city",
        stack={"var_dir": tmp_path},
    )
    app = create_app(settings)

    async def build() -> int:
        consumer = app.consumer
        thread = consumer._new_consumer_thread()
        assert isinstance(thread, ConsumerThread)
        aio = thread._create_worker_consumer(app.transport)
        wait = aio._fetch_max_wait_ms
        await aio.stop()
        return int(wait)

    assert asyncio.run(build()) == 77
    assert app.conf.broker_rebalance_timeout == 60.0  # Kafka joins at once; a busy worker stays
    assert app.conf.web_enabled is False


def test_rocksdb_workers_get_their_own_data_slot(tmp_path: Path) -> None:
    """Two workers on one host never share a RocksDB directory; a slot is reused once
    its worker is gone."""
    from streams.app import claim_slot

    first, lock0 = claim_slot(tmp_path)
    second, lock1 = claim_slot(tmp_path)
    assert (first.name, second.name) == ("worker-0", "worker-1")
    lock0.close()  # the first worker exits
    again, lock2 = claim_slot(tmp_path)
    assert again.name == "worker-0"
    lock1.close()
    lock2.close()


def test_rocksdb_is_the_default_table_store(tmp_path: Path) -> None:
    generate_city(1, "tiny").write(tmp_path / "city")
    settings = load_settings(registry_dir=tmp_path / "city", stack={"var_dir": tmp_path})
    app = create_app(settings)
    assert str(app.conf.store).startswith("rocksdb:")
    assert Path(app.conf.datadir).name == "worker-0"
    assert Path(app.conf.datadir).parent.name == settings.kafka.streams_group
    memory = create_app(
        settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"streams_store": "memory"})}
        )
    )
    assert str(memory.conf.store).startswith("memory:")
