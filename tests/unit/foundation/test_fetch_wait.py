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
    assert app.conf.broker_rebalance_timeout == 6.0
    assert app.conf.web_enabled is False
