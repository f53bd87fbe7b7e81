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
