"""``gridwatch stack up|down|status|restart``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridwatch.credentials import ensure_credentials
from gridwatch.stack import SERVICES, ServiceStatus, Stack

app = typer.Typer(no_args_is_help=True)
console = Console()

ServicesArg = Annotated[
    list[str] | None,
    typer.Argument(help=f"Services ({', '.join(SERVICES)}); default all.", show_default=False),
]


def _stack() -> Stack:
    from gridwatch.cli import State, settings

    var_dir = settings().stack.var_dir
    ensure_credentials(var_dir)
    State.settings = None  # reload so the generated credentials are seen
    return Stack(settings())


def _services(names: list[str] | None) -> list[str]:
    chosen = names or list(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        raise typer.BadParameter(
            f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)}"
        )
    return chosen


def _table(rows: list[ServiceStatus]) -> Table:
    table = Table(title="GridWatch local stack")
    for col in ("service", "address", "pid", "state"):
        table.add_column(col)
    for row in rows:
        state = (
            "[green]healthy[/]"
            if row.healthy
            else ("[yellow]running, unhealthy[/]" if row.running else "[dim]stopped[/]")
        )
        table.add_row(row.name, row.address, str(row.pid or "-"), state)
    return table


@app.command()
def up(
    services: ServicesArg = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry directory whose devices may publish.")
    ] = None,
) -> None:
    """Start the local services (idempotent) and wait until each is healthy."""
    stack = _stack()
    kinds: dict[str, str] = {}
    if registry is not None:
        from gridwatch.registry import Registry

        kinds = {d: p.device.kind for d, p in Registry.from_dir(registry).devices.items()}
    with console.status("starting services…"):
        rows = stack.up(_services(services), device_ids=list(kinds), kinds=kinds)
    console.print(_table(rows))


@app.command()
def down(services: ServicesArg = None) -> None:
    """Stop the local services by pid."""
    stack = _stack()
    stack.down(_services(services))
    console.print(_table(stack.status()))


@app.command()
def status() -> None:
    """Show each service's pid and health; exit 1 if any is not healthy."""
    rows = _stack().status()
    console.print(_table(rows))
    if not all(r.healthy for r in rows):
        raise typer.Exit(1)


@app.command()
def restart(services: ServicesArg = None) -> None:
    """Stop then start services (with stack.kafka_storage = "memory" Tansu starts empty)."""
    stack = _stack()
    chosen = _services(services)
    stack.down(chosen)
    console.print(_table(stack.up(chosen)))


@app.command()
def provision(
    registry: Annotated[
        Path, typer.Option(help="Registry directory (grids.geojson, devices.json).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write Mosquitto's dynamic-security file here (production: "
            "deploy/secrets/dynsec.json) instead of provisioning the local broker."
        ),
    ] = None,
) -> None:
    """Give every registered device an MQTT login (password derived from the device secret)
    allowed to publish on its own topic only."""
    from gridwatch.mosquitto_conf import write_production_config
    from gridwatch.registry import Registry

    kinds = {d: p.device.kind for d, p in Registry.from_dir(registry).devices.items()}
    devices = list(kinds)
    stack = _stack()
    if out is None:
        count = stack.provision_devices(devices, kinds=kinds)
        console.print(f"{count} MQTT users written; the local broker reloaded them.")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    count = write_production_config(stack.settings, kinds, out)
    console.print(
        f"{count} MQTT users written to {out}; the admin login's password is in "
        f"{out.with_name(out.name + '.admin')}"
    )
