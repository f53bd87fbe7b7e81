"""The drill machinery itself: the delaying proxy, the registry and the CLI's bad input."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from gridwatch.drills import Checks, registry
from gridwatch.drills.proxy import DelayProxy

REQUIRED = {
    "bridge-kill",
    "worker-kill",
    "worker-restart",
    "worker-join",
    "tickets-api-kill",
    "relay-kill",
    "mosquitto-restart",
    "kafka-restart",
    "kafka-leader-kill",
    "influx-outage",
    "postgres-restart",
    "slow-influx",
    "clock-skew",
    "abuse",
}


def test_every_required_drill_is_registered() -> None:
    assert set(registry()) == REQUIRED


def test_checks_fail_when_any_requirement_fails() -> None:
    checks = Checks()
    checks.require(True, "fine")
    assert checks.result("x", "h", {}).passed
    checks.require(False, "3 readings lost")
    result = checks.result("x", "h", {"lost": 3})
    assert not result.passed and result.failures == ["3 readings lost"]


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def test_delay_proxy_forwards_in_order_and_adds_its_delay() -> None:
    server, port = await _echo_server()
    proxy = DelayProxy("127.0.0.1", port, (200, 300), seed=1).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        started = time.monotonic()
        writer.write(b"hello")
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(5), 10)
        elapsed_ms = (time.monotonic() - started) * 1000
        writer.close()
    finally:
        proxy.stop()
        server.close()
    assert echoed == b"hello"
    assert elapsed_ms >= 400  # one delayed chunk each way
    assert proxy.stats.chunks == 2
    assert 200 <= proxy.stats.mean_delay_ms <= 300


@pytest.mark.parametrize("name", ["no-such-drill"])
def test_unknown_drill_is_one_readable_line_exit_2(name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gridwatch", "drill", name],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GW_")}, "COLUMNS": "300"},
        check=False,
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown drill 'no-such-drill'" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
