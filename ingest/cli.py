"""``gridwatch ingest run|stats``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridwatch.errors import SinkError
from gridwatch.influx import InfluxWriter, query, rows
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from ingest.bridge import Bridge
from ingest.decode import Decoder

app = typer.Typer(no_args_is_help=True)
console = Console()
log = logging.getLogger(__name__)


def ready_file(settings: Settings, client_id: str) -> Path:
    """Written by a bridge once it is subscribed (the demo and tests wait for it)."""
    return settings.stack.var_dir / "run" / f"ingest-{client_id}.ready"


def make_decoder(settings: Settings, registry: Registry) -> Decoder:
    i = settings.ingest
    return Decoder(
        registry,
        topic_root=settings.mqtt.topic_root,
        max_future=timedelta(seconds=i.max_future_s),
        max_age=timedelta(seconds=i.max_age_s),
        dedup_window=i.dedup_window,
        rate_per_s=i.rate_per_s,
        burst=i.burst,
    )


async def run_bridge(settings: Settings, client_id: str | None = None) -> None:
    """Run one bridge process until SIGTERM/SIGINT, exporting metrics to InfluxDB."""
    # aiokafka logs every failed reconnect (10/s during an outage); the bridge reports
    # outages itself, as a warning per retry and the produce_errors metric.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    registry = Registry.from_dir(settings.registry_dir)
    decoder = make_decoder(settings, registry)
    metrics_every_s = settings.ingest.metrics_every_s
    bridge = Bridge(settings, decoder, client_id=client_id)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bridge.stopping.set)
    writer = InfluxWriter(settings.influx)

    async def export() -> None:
        while True:
            await asyncio.sleep(metrics_every_s)
            try:
                await writer.write(bridge.metrics.points(int(time.time() * 1000)), retries=1)
            except SinkError as exc:  # visible as a log line and a counter; never fatal
                bridge.metrics.dead_letter("metrics_export_failed")
                log.warning("metrics export failed error=%s", exc)

    exporter = asyncio.create_task(export())
    try:
        ready = ready_file(settings, bridge.client_id)
        ready.unlink(missing_ok=True)
        await bridge.run(ready)
    finally:
        exporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await exporter
        with contextlib.suppress(SinkError):
            await writer.write(bridge.metrics.points(int(time.time() * 1000)), retries=0)
        await writer.close()


@app.command()
def run(
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (unique per bridge process).")
    ] = None,
) -> None:
    """Run an MQTT → Kafka bridge (share the load by starting several with distinct ids)."""
    from gridwatch.cli import settings

    asyncio.run(run_bridge(settings(), client_id))


@app.command()
def stats() -> None:
    """Latest counters of every bridge, read from InfluxDB measurement ``pipeline``."""
    from gridwatch.cli import settings

    s = settings()
    series = asyncio.run(
        query(
            s.influx,
            "SELECT LAST(*) FROM pipeline WHERE stage='ingest' AND time > now() - 1h"
            " GROUP BY instance, reason",
        )
    )
    table = Table(title="ingest bridges (last hour)")
    for col in (
        "instance",
        "reason",
        "received",
        "forwarded",
        "dead_lettered",
        "ack p50 ms",
        "ack p99 ms",
    ):
        table.add_column(col)
    for row in rows(series):
        table.add_row(
            row.get("instance", ""),
            row.get("reason", "") or "",
            _fmt(row.get("last_received")),
            _fmt(row.get("last_forwarded")),
            _fmt(row.get("last_dead_lettered")),
            _fmt(row.get("last_ack_ms_p50")),
            _fmt(row.get("last_ack_ms_p99")),
        )
    console.print(table)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)
