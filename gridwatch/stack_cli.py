"""``gridwatch stack up|down|status|restart|provision|fetch-kafka``."""

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
    typer.Argument(
        help=f"Services ({', '.join(SERVICES)}; kafka-2, kafka-3 on a three-broker cluster); "
        "default all.",
        show_default=False,
    ),
]


def _stack(brokers: int | None = None) -> Stack:
    from gridwatch.cli import State, settings

    var_dir = settings().stack.var_dir
    ensure_credentials(var_dir)
    State.settings = None  # reload so the generated credentials are seen
    current = settings()
    if brokers is not None:
        current = current.model_copy(
            update={
                "stack": current.stack.model_copy(update={"kafka_brokers": brokers}),
                "kafka": current.kafka.model_copy(update={"replication_factor": min(3, brokers)}),
            }
        )
    return Stack(current)


def _services(stack: Stack, names: list[str] | None) -> list[str] | None:
    """``names`` checked against the stack's services (None: all of them)."""
    known = stack.services()
    for name in names or []:
        if name not in known and name != "kafka":
            raise typer.BadParameter(f"unknown service {name!r}; choose from {', '.join(known)}")
    return names or None


def _table(rows: list[ServiceStatus]) -> Table:
    table = Table(title="GridWatch local stack")
    for col in ("service", "address", "pid", "state", "start-up s", "RSS MB"):
        table.add_column(col)
    for row in rows:
        state = (
            "[green]healthy[/]"
            if row.healthy
            else ("[yellow]running, unhealthy[/]" if row.running else "[dim]stopped[/]")
        )
        table.add_row(
            row.name,
            row.address,
            str(row.pid or "-"),
            state,
            "-" if row.startup_s is None else f"{row.startup_s:.1f}",
            "-" if row.rss_mb is None else f"{row.rss_mb:.0f}",
        )
    return table


@app.command()
def up(
    services: ServicesArg = None,
    registry: Annotated[
        Path | None, typer.Option(help="Registry directory whose devices may publish.")
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="Kafka brokers of a newly formatted cluster (3: replication factor 3, "
            "min.insync.replicas 2, for failover); an existing var/kafka keeps its own.",
        ),
    ] = None,
) -> None:
    """Start the local services (idempotent) and wait until each is healthy."""
    stack = _stack(brokers)
    kinds: dict[str, str] = {}
    if registry is not None:
        from gridwatch.registry import Registry

        kinds = {d: p.device.kind for d, p in Registry.from_dir(registry).devices.items()}
    with console.status("starting services…"):
        rows = stack.up(_services(stack, services), device_ids=list(kinds), kinds=kinds)
    console.print(_table(rows))
    cluster = stack.kafka_cluster()
    if len(cluster.brokers) > 1:
        console.print(f"Kafka bootstrap: {cluster.bootstrap}")


@app.command()
def down(services: ServicesArg = None) -> None:
    """Stop the local services by pid."""
    stack = _stack()
    stack.down(_services(stack, services))
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
    """Stop then start services (Kafka and InfluxDB keep their data)."""
    stack = _stack()
    chosen = _services(stack, services)
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


@app.command("fetch-kafka")
def fetch_kafka() -> None:
    """Copy Apache Kafka's jars from Maven Central (deploy/kafka/pom.xml; once per pom)."""
    from gridwatch import kafka_dist
    from gridwatch.cli import settings

    st = settings().stack
    libs = kafka_dist.libs_dir(settings())
    if kafka_dist.fetched(libs):
        console.print(f"Apache Kafka is in {libs}")
        return
    with console.status("fetching Apache Kafka from Maven Central…"):
        kafka_dist.fetch(libs, st.maven_args)
    console.print(f"Apache Kafka copied to {libs} ({len(list(libs.glob('*.jar')))} jars)")
