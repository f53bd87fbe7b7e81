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

    faust_app = create_app(settings())
    worker = Worker(faust_app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


@app.command()
def status() -> None:
    """Consumer lag per topic and every worker's latest counters (from InfluxDB)."""
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
            " LAST(dead_lettered) AS dead_lettered, LAST(sink_retries) AS sink_retries"
            " FROM pipeline WHERE stage='streams' AND time > now() - 10m GROUP BY instance",
        )
    )
    workers = Table(title="workers seen in the last 10 minutes")
    for col in ("instance", "last report", "readings", "alerts", "dead-lettered", "sink retries"):
        workers.add_column(col)
    for row in rows(series):
        workers.add_row(
            str(row.get("instance")),
            str(row.get("time")),
            str(row.get("readings")),
            str(row.get("alerts")),
            str(row.get("dead_lettered")),
            str(row.get("sink_retries")),
        )
    console.print(workers)
