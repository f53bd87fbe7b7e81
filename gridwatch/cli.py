"""The ``gridwatch`` command: one typer app composed from each package's sub-app.

Each stage package exposes ``<package>/cli.py`` with a ``typer.Typer`` named ``app``;
this module only wires them together, builds the settings once and turns our errors
into one readable line.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from gridwatch.errors import GridWatchError
from gridwatch.settings import Settings, load_settings

err_console = Console(stderr=True)

app = typer.Typer(
    name="gridwatch",
    help="GridWatch: city grid sensors → stream jobs → proactive tickets → InfluxDB/Grafana.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (command group, module holding its typer app, help)
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("stack", "gridwatch.stack_cli", "Start, stop and inspect the local real stack."),
    ("ingest", "ingest.cli", "Run the MQTT → Kafka bridge and read its statistics."),
    ("streams", "streams.cli", "Run Faust stream workers and inspect them."),
    ("tickets", "tickets.cli", "Serve the ticket API and console; manage the ticket store."),
    ("models", "models.cli", "Train and evaluate the detectors and forecasters."),
    ("dashboards", "dashboards.cli", "Build, preview and publish the Grafana dashboards."),
    ("sim", "simulators.cli", "Generate cities and scenarios; simulate and replay feeds."),
)
# Top-level commands provided by packages (name, module, attribute).
TOP_LEVEL: tuple[tuple[str, str, str], ...] = (
    ("demo", "gridwatch.demo", "demo"),
    ("simulate", "simulators.cli", "simulate"),
    ("replay", "simulators.cli", "replay"),
    ("bench", "gridwatch.bench", "bench"),
    ("evaluate", "gridwatch.evaluate", "evaluate"),
    ("drill", "gridwatch.drill", "drill"),
)


class State:
    settings: Settings | None = None
    config: Path | None = None


def settings() -> Settings:
    """The settings object for this invocation, built once."""
    if State.settings is None:
        State.settings = load_settings(State.config)
    return State.settings


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML configuration file (default ./gridwatch.toml)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "WARNING",
) -> None:
    State.config = config
    State.settings = None
    configure_logging(log_level)


def configure_logging(level: str) -> None:
    """Configure logging once per entrypoint (key=value lines on stderr)."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    for name, module, help_text in SUBCOMMANDS:
        try:
            sub = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # that package has no CLI yet
            raise
        app.add_typer(sub.app, name=name, help=help_text)
    for name, module, attr in TOP_LEVEL:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        app.command(name=name)(getattr(mod, attr))


def main() -> None:
    _register()
    try:
        app()
    except GridWatchError as exc:
        # one line, whatever the terminal's width; the message is text, not markup
        err_console.print(
            f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise SystemExit(130) from None
