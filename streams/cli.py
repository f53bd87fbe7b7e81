"""``gridwatch streams run``."""

from __future__ import annotations

import logging
from typing import Annotated

import faust
import typer

app = typer.Typer(no_args_is_help=True)


class Worker(faust.Worker):
    """Faust worker whose logging stays where we set it (Faust leaves DEBUG on, which
    costs ~30 % throughput; notes/stack-measurements.md)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        for name in ("", "faust", "mode", "aiokafka", "kafka"):
            logging.getLogger(name).setLevel(level or logging.WARNING)


@app.command()
def run(
    loglevel: Annotated[str, typer.Option(help="Worker log level.")] = "WARNING",
) -> None:
    """Run one stream worker (start several to share the partitions)."""
    from gridwatch.cli import settings
    from streams.app import create_app

    s = settings()
    faust_app = create_app(s)
    if str(faust_app.conf.store).startswith("rocksdb"):
        import asyncio
        from pathlib import Path

        from streams.tables import drop_stale_tables

        loop = asyncio.new_event_loop()  # not the worker's loop, which Faust sets up
        try:
            loop.run_until_complete(drop_stale_tables(s.kafka, Path(faust_app.conf.datadir)))
        finally:
            loop.close()
    worker = Worker(faust_app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


@app.command()
def status() -> None:
    """Consumer lag per topic, and each worker's counters, assigned partitions and table
    sizes (rows per table) as it last reported them to InfluxDB."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from gridwatch.cli import settings
    from gridwatch.influx import query, rows
    from gridwatch.kafka import all_topics, consumer_lag

    s = settings()
    k = s.kafka
    console = Console()
    consumed = [
        t for t in all_topics(k) if ".readings." in t or t.endswith((".alerts", ".complaints"))
    ]
    lag = asyncio.run(consumer_lag(k, k.streams_group, consumed))
    table = Table(title=f"consumer group {k.streams_group!r}: records not yet processed")
    table.add_column("topic")
    table.add_column("lag", justify="right")
    for topic in sorted(lag):
        table.add_row(topic, f"{lag[topic]:,}")
    console.print(table)
    series = asyncio.run(
        query(
            s.influx,
            "SELECT LAST(readings) AS readings, LAST(alerts) AS alerts,"
            " LAST(dead_lettered) AS dead_lettered, LAST(sink_retries) AS sink_retries,"
            " LAST(spooled) AS spooled, LAST(assigned) AS assigned,"
            " LAST(partitions) AS partitions, LAST(rows_water_sites) AS water_sites,"
            " LAST(rows_bike_devices) AS bike_devices, LAST(rows_camera_devices) AS cameras,"
            " LAST(rows_rain_gauges) AS gauges, LAST(rows_status_devices) AS status_devices"
            " FROM pipeline WHERE stage='streams' AND time > now() - 10m GROUP BY instance",
        )
    )
    workers = Table(title="workers seen in the last 10 minutes (counters, assignment, table rows)")
    cols = {
        "instance": "instance",
        "time": "last report",
        "readings": "readings",
        "alerts": "alerts",
        "dead_lettered": "dead-lettered",
        "sink_retries": "sink retries",
        "spooled": "spooled",
        "assigned": "partitions",
        "water_sites": "water",
        "bike_devices": "bike",
        "cameras": "camera",
        "gauges": "rain",
        "status_devices": "status",
    }
    for title in cols.values():
        workers.add_column(title)
    for row in rows(series):
        workers.add_row(*(str(row.get(key, "-")) for key in cols))
    console.print(workers)
