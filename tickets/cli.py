"""``gridwatch tickets``: serve the API and console, migrate, tokens, relay, demo data."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridwatch.registry import Registry
from tickets.config import TicketsConfig, ensure_dev_tokens, load_config, tokens_path

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
log = logging.getLogger(__name__)

ConfigOpt = Annotated[
    Path | None, typer.Option("--tickets-config", help="TOML with SLA, rosters, tokens.")
]
DbOpt = Annotated[str | None, typer.Option("--db-url", help="Override tickets.db_url.")]


def _config(config_file: Path | None, db_url: str | None = None) -> TicketsConfig:
    from gridwatch.cli import settings  # the entrypoint's settings object, built once

    overrides = {"db_url": db_url} if db_url else {}
    return load_config(settings(), config_file, **overrides)


def _registry(path: Path | None, cfg: TicketsConfig) -> Registry:
    if path is not None:
        return Registry.from_dir(path)
    city = cfg.var_dir / "city"
    if (city / "grids.geojson").is_file():
        return Registry.from_dir(city)
    from gridwatch.cli import settings
    from simulators.city import generate_city  # demo fallback: the synthetic district

    console.print(f"[yellow]no registry at {city}; using the synthetic demo city[/]")
    return generate_city(settings().sim.seed, "small").registry()


@app.command()
def migrate(tickets_config: ConfigOpt = None, db_url: DbOpt = None) -> None:
    """Bring the ticket database schema to the newest revision."""
    from tickets.db import current_revision, make_engine
    from tickets.db import migrate as run

    cfg = _config(tickets_config, db_url)
    engine = make_engine(cfg.db_url)
    run(engine)
    console.print(f"tickets schema at revision [bold]{current_revision(engine)}[/]")


@app.command()
def token(
    show: Annotated[bool, typer.Option(help="Print the tokens themselves.")] = False,
) -> None:
    """Create development tokens (viewer/operator/admin + an Open311 key) under var/."""
    from gridwatch.cli import settings

    path = ensure_dev_tokens(settings().stack.var_dir)
    console.print(f"development tokens in {path}")
    if show:
        cfg = load_config(settings())
        for t in cfg.tokens:
            console.print(f"  {t.role:9} {t.token.get_secret_value()}")
        for k in cfg.open311_api_keys:
            console.print(f"  open311   {k.get_secret_value()}")


@app.command()
def serve(
    tickets_config: ConfigOpt = None,
    db_url: DbOpt = None,
    registry: Annotated[
        Path | None, typer.Option(help="Directory with grids.geojson and devices.json.")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    demo: Annotated[bool, typer.Option(help="Seed demo tickets when the store is empty.")] = False,
    sweep_every_s: Annotated[
        float | None, typer.Option(help="SLA sweep period (default: escalation_sweep_s).")
    ] = None,
) -> None:
    """Serve the ticket API, Open311 and the watch-floor console (uvicorn)."""
    import uvicorn
    from sqlalchemy import func, select

    from tickets.api import create_app
    from tickets.models import Ticket
    from tickets.service import TicketService, utc_now

    cfg = _config(tickets_config, db_url)
    if not cfg.tokens:
        from gridwatch.cli import settings

        ensure_dev_tokens(cfg.var_dir)
        cfg = load_config(settings(), tickets_config, **({"db_url": db_url} if db_url else {}))
        console.print(f"using development tokens from {tokens_path(cfg.var_dir)}")
    reg = _registry(registry, cfg)
    service = TicketService.from_url(cfg.db_url, reg, cfg)
    if demo:
        from tickets.demo import seed_demo

        with service.read_session() as s:
            empty = not s.scalar(select(func.count()).select_from(Ticket))
        if empty:
            console.print(f"seeded {seed_demo(service, reg, utc_now())} demo alerts")
    h, p = host or cfg.host, port or cfg.port
    console.print(f"console at http://{h}:{p}/console/  (token: gridwatch tickets token --show)")
    app_ = create_app(service, sweep_every_s=sweep_every_s or cfg.escalation_sweep_s)
    # open console streams must not hold a shutdown forever
    uvicorn.run(app_, host=h, port=p, log_level="info", timeout_graceful_shutdown=5)


@app.command()
def relay(
    jsonl: Annotated[
        Path | None, typer.Option(help="Also append events to this JSON-lines file.")
    ] = None,
    to: Annotated[
        str, typer.Option(help="Comma-separated sinks: kafka (gw.tickets), influx (ticket).")
    ] = "kafka,influx",
    tickets_config: ConfigOpt = None,
    db_url: DbOpt = None,
) -> None:
    """Run the outbox relay (one per ticket store): every change, published once."""
    from gridwatch.cli import settings
    from tickets.db import make_engine
    from tickets.db import migrate as run_migrations
    from tickets.outbox import FanoutPublisher, JsonlPublisher, OutboxRelay, Publisher
    from tickets.publishers import InfluxPublisher, KafkaPublisher

    sinks = [t.strip() for t in to.split(",") if t.strip()]
    unknown = [t for t in sinks if t not in ("kafka", "influx")]
    if unknown:
        raise typer.BadParameter(f"unknown sink {unknown[0]!r}; use kafka and/or influx")
    cfg = _config(tickets_config, db_url)
    engine = make_engine(cfg.db_url)
    run_migrations(engine)
    s = settings()
    publishers: list[Publisher] = []
    if "kafka" in sinks:
        publishers.append(KafkaPublisher(s.kafka))
    if "influx" in sinks:
        publishers.append(InfluxPublisher(s.influx))
    if jsonl is not None:
        publishers.append(JsonlPublisher(jsonl))
    if not publishers:
        raise typer.BadParameter("nothing to publish to: give --to and/or --jsonl")
    relay_ = OutboxRelay(engine, FanoutPublisher(*publishers), batch_size=cfg.relay_batch)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await relay_.run(stop)
        finally:
            for p in publishers:
                close = getattr(p, "close", None)
                if close is not None:
                    await close()

    asyncio.run(main())
    console.print(f"published {relay_.stats.published} events")


@app.command()
def bench(
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results here.")] = None,
    db_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL server to make a temporary database on (default: a private one)."
        ),
    ] = None,
) -> None:
    """Raise/update throughput and API p50/p99 on SQLite and PostgreSQL."""
    from tickets.bench import run_bench

    run_bench(json_out, db_url)
