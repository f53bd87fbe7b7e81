"""Command line of the simulators.

``gridwatch sim city|validate|list|bench`` (the typer ``app``) and the top-level
``gridwatch simulate`` and ``gridwatch replay`` (the plain functions ``simulate`` and
``replay``, registered by ``gridwatch.cli``). Settings come from
``gridwatch.cli.settings()``, called inside the commands that need them (MQTT).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from simulators.bench import measure
from simulators.city import SIZES, generate_city
from simulators.cli_support import (
    MqttSink,
    console,
    listen,
    parse_start,
    progress_bar,
    provision_replay,
    summary_table,
)
from simulators.cli_support import (
    provision as provision_stack,
)
from simulators.complaints_out import ApiComplaintSink, KafkaComplaintSink
from simulators.delivery import expected_seqs, missing, received_seqs
from simulators.engine import Simulation
from simulators.messages import Message
from simulators.output import write_jsonl
from simulators.replay import (
    detect_format,
    first_time,
    read_csv,
    read_floodnet,
    read_jsonl,
)
from simulators.runner import paced, run_scenario
from simulators.scenario import ScenarioError, load_scenario, shipped_scenarios
from simulators.truth import GroundTruth

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


# -- helpers -----------------------------------------------------------------------------


# -- gridwatch sim ... -------------------------------------------------------------------


@app.command("city")
def city_cmd(
    out: Annotated[Path, typer.Option(help="Directory for grids.geojson and devices.json.")],
    size: Annotated[str, typer.Option(help=f"One of {', '.join(SIZES)}.")] = "small",
    seed: Annotated[int, typer.Option(help="City seed.")] = 7,
    max_devices: Annotated[int | None, typer.Option(help="Keep only the first N devices.")] = None,
) -> None:
    """Generate a synthetic district (GeoJSON grids and a device registry)."""
    if size not in SIZES:
        raise typer.BadParameter(f"size must be one of {', '.join(SIZES)}")
    city = generate_city(seed, size, max_devices=max_devices)
    city.registry()  # fails loudly if the registry would not load
    city.write(out)
    kinds = Counter(d["kind"] for d in city.devices)
    levels = Counter(f["properties"]["level"] for f in city.grids["features"])
    summary_table(
        f"city {size} (seed {seed}) → {out}",
        [
            *((f"{k} polygons", v) for k, v in levels.items()),
            *((f"{k} devices", v) for k, v in sorted(kinds.items())),
        ],
    )


@app.command("validate")
def validate_cmd(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files (default: shipped).")
    ] = None,
) -> None:
    """Validate scenario files, listing every error; exit 1 if any is unusable."""
    bad = 0
    for path in files or shipped_scenarios():
        try:
            sc = load_scenario(path)
        except ScenarioError as exc:
            bad += 1
            console.print(f"[red]✗[/] {path}\n{exc}", highlight=False)
            continue
        console.print(f"[green]✓[/] {path}: {sc.name}, {sc.city.size}, {sc.duration / 3600:g} h")
    if bad:
        raise typer.Exit(1)


@app.command("list")
def list_cmd() -> None:
    """List the shipped scenarios."""
    for path in shipped_scenarios():
        sc = load_scenario(path)
        console.print(
            f"[bold]{sc.name}[/]  {sc.city.size:6} {sc.duration / 3600:5.2f} h  {sc.description}"
        )


@app.command("truth")
def truth_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Output directory of a simulate run.")],
) -> None:
    """Summarise a run's ground truth: incidents, nuisance, complaints, faults."""
    truth = GroundTruth.load(run_dir)
    table = Table(title=f"ground truth of {run_dir}")
    table.add_column("category", no_wrap=True, min_width=15)
    for col in ("incidents", "worthy", "reported", "never", "median worthy→call"):
        table.add_column(col, justify="right")
    cats = sorted({i.category.value for i in truth.incidents})
    for cat in cats:
        incs = [i for i in truth.incidents if i.category.value == cat]
        worthy = [i for i in incs if i.complaint_worthy_at is not None]
        called = [i for i in worthy if i.first_complaint_at is not None]
        delays = sorted(i.first_complaint_at - i.complaint_worthy_at for i in called)  # type: ignore[operator]
        median = f"{delays[len(delays) // 2] / 60:.0f} min" if delays else "-"
        table.add_row(
            cat, str(len(incs)), str(len(worthy)), str(len(called)),
            str(len(worthy) - len(called)), median,
        )  # fmt: skip
    console.print(table)
    faults = Counter(f["fault"] for f in truth.faults)
    summary_table(
        "faults and complaints",
        [("complaints", len(truth.complaints)), *sorted(faults.items())],
    )


@app.command("listen")
def listen_cmd(
    run: Annotated[
        Path | None, typer.Argument(help="messages.jsonl (or its run directory) to check against.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 600.0,
    idle: Annotated[float, typer.Option(help="Stop after this long without a message.")] = 10.0,
) -> None:
    """Subscribe to the broker and check a run arrived complete (by seq per device).

    Start it before ``simulate --to mqtt``; when messages stop for ``--idle`` seconds it
    compares what arrived with the run's messages.jsonl.
    """
    from gridwatch.cli import settings

    got = received_seqs(listen(settings(), timeout_s=timeout, idle_s=idle))
    sent = None
    if run is not None:
        path = run / "messages.jsonl" if run.is_dir() else run
        if not path.is_file():
            raise typer.BadParameter(f"no run messages at {path}")
        city = path.parent / "city" / "devices.json"
        registered = (
            {d["device_id"] for d in json.loads(city.read_text(encoding="utf-8"))}
            if city.is_file()
            else None
        )
        # Unregistered ids (unknown_device faults) have no broker account: not sent.
        sent = expected_seqs(
            m for m in read_jsonl(path) if registered is None or m.device_id in registered
        )
    rows: list[tuple[str, Any]] = [
        ("received", got.messages),
        ("devices", len(got.seqs)),
        ("without a readable seq", got.unreadable),
    ]
    if sent is not None:
        gaps = missing(sent, got)
        rows += [
            ("sent (registered devices)", sent.messages),
            ("devices with missing seq", len(gaps)),
            ("missing seq", sum(len(v) for v in gaps.values())),
        ]
    summary_table("delivery", rows)
    if sent is not None and missing(sent, got):
        raise typer.Exit(1)


@app.command("bench")
def bench_cmd(
    scenario: Annotated[str, typer.Option(help="Scenario to generate.")] = "city-load",
    duration: Annotated[str, typer.Option(help="Event time to generate.")] = "10min",
    small: Annotated[
        str | None, typer.Option(help="Also a small-city scenario (whole run); '' to skip.")
    ] = "rainstorm-50y",
    mqtt: Annotated[bool, typer.Option(help="Also publish over MQTT (needs the stack).")] = False,
    mqtt_scenario: Annotated[
        str, typer.Option(help="Scenario for the MQTT run.")
    ] = "rainstorm-50y",
    mqtt_duration: Annotated[str, typer.Option(help="Event time for the MQTT run.")] = "20min",
) -> None:
    """Generator throughput (readings/s, one core) to memory and to JSONL, and over MQTT."""
    runs = [load_scenario(scenario).with_overrides(duration=duration)]
    if small:
        runs.append(load_scenario(small))
    rows: list[tuple[str, Any]] = []
    for sc in runs:
        r = measure(sc)
        rows += [
            (f"{r.scenario}", f"{r.size}, {r.devices} devices, {sc.duration / 60:g} min"),
            ("  readings", r.readings),
            ("  generate only, readings/s (CPU)", f"{r.generate_per_s:,.0f}"),
            ("  generate + JSONL, readings/s (CPU)", f"{r.jsonl_per_s:,.0f}"),
            ("  JSONL size", f"{r.jsonl_mb:.1f} MB"),
        ]
    if mqtt:
        msc = load_scenario(mqtt_scenario).with_overrides(duration=mqtt_duration)
        msim = Simulation(msc, np.random.default_rng(msc.seed), parse_start("now", "mqtt"))
        msgs = list(msim.messages())
        sink = MqttSink(set(msim.registry.devices))
        wall0 = time.monotonic()
        for m in msgs:
            sink(m)
        sink.close()
        wall = time.monotonic() - wall0
        rows += [
            ("MQTT scenario", f"{msc.name} ({len(msim.city.devices)} devices, {mqtt_duration})"),
            ("MQTT published+acked, msg/s (wall, incl. connects)", f"{len(msgs) / wall:,.0f}"),
            ("MQTT refused", sum(sink.refused.values())),
            ("MQTT not provisioned (unknown_device faults)", sink.not_provisioned),
        ]
    summary_table("simulator benchmark", rows)


# -- gridwatch simulate / replay ---------------------------------------------------------


def simulate(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped name (rainstorm-50y).")],
    speed: Annotated[float | None, typer.Option(help="Event seconds per wall second.")] = None,
    as_fast_as_possible: Annotated[
        bool, typer.Option("--as-fast-as-possible", help="No pacing.")
    ] = False,
    to: Annotated[str, typer.Option(help="jsonl, or mqtt (also keeps the JSONL log).")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default var/sim/NAME).")
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="Override the duration (e.g. 30min).")
    ] = None,
    size: Annotated[str | None, typer.Option(help="Override the city size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the scenario seed.")] = None,
    max_devices: Annotated[int | None, typer.Option(help="Keep only the first N devices.")] = None,
    start: Annotated[
        str | None, typer.Option(help="now | scenario | RFC 3339 (default: now for mqtt).")
    ] = None,
    complaints: Annotated[
        str,
        typer.Option(
            help="Also call the hotline at each complaint's time: none, kafka (gw.complaints) "
            "or api (the ticket API's intake)."
        ),
    ] = "none",
    complaints_url: Annotated[
        str | None, typer.Option(help="Ticket API base URL (default from settings.tickets).")
    ] = None,
    complaints_token: Annotated[
        str | None, typer.Option(help="Bearer token (operator role) for --complaints api.")
    ] = None,
    provision: Annotated[
        bool,
        typer.Option(
            help="First write this city to the registry directory and its device passwords "
            "to the local broker (restart the bridge to load the registry)."
        ),
    ] = False,
) -> None:
    """Simulate a scenario: device messages over MQTT or to JSONL, plus ground truth."""
    if to not in ("jsonl", "mqtt"):
        raise typer.BadParameter("--to must be jsonl or mqtt")
    if speed is not None and (as_fast_as_possible or speed <= 0):
        raise typer.BadParameter("give either a positive --speed or --as-fast-as-possible")
    sc = load_scenario(scenario).with_overrides(
        duration=duration, size=size, seed=seed, max_devices=max_devices
    )
    if speed is None and not as_fast_as_possible and to == "mqtt":
        speed = 1.0
    out_dir = out or Path("var") / "sim" / sc.name
    if provision:
        provision_stack(sc)
    sink = None
    if to == "mqtt":
        city = generate_city(sc.city.seed, sc.city.size, max_devices=sc.city.max_devices)
        sink = MqttSink({d["device_id"] for d in city.devices})
    if complaints not in ("none", "kafka", "api"):
        raise typer.BadParameter("--complaints must be none, kafka or api")
    hotline: KafkaComplaintSink | ApiComplaintSink | None = None
    if complaints == "kafka":
        from gridwatch.cli import settings

        hotline = KafkaComplaintSink(settings().kafka)
    elif complaints == "api":
        from gridwatch.cli import settings

        if not complaints_token:
            raise typer.BadParameter("--complaints api needs --complaints-token")
        t = settings().tickets
        hotline = ApiComplaintSink(complaints_url or f"http://{t.host}:{t.port}", complaints_token)
    with progress_bar() as progress:
        task = progress.add_task(f"{sc.name}", total=sc.duration, info="")

        def advance(event_s: int) -> None:
            progress.update(task, completed=event_s, info=f"event +{event_s / 60:.0f} min")

        try:
            result = run_scenario(
                sc,
                out_dir,
                start=parse_start(start, to),
                speed=speed,
                on_message=sink,
                progress=advance,
                on_complaint=hotline,
            )
        finally:
            if sink is not None:
                sink.close()
            if hotline is not None:
                hotline.close()
    s, truth = result.summary, result.truth
    cats = Counter(i.category.value for i in truth.incidents)
    faults = Counter(f["fault"] for f in truth.faults)
    rows: list[tuple[str, Any]] = [
        ("messages", s.messages),
        *((f"  {k}", v) for k, v in sorted(s.by_kind.items())),
        ("wall time", f"{result.wall_s:.1f} s"),
        ("readings/s", f"{s.messages / max(result.wall_s, 1e-9):,.0f}"),
        ("incidents", len(truth.incidents)),
        *((f"  {k}", v) for k, v in sorted(cats.items())),
        ("complaint-worthy", sum(1 for i in truth.incidents if i.complaint_worthy_at)),
        ("complaints", len(truth.complaints)),
        (
            "complaints sent",
            "none" if hotline is None else f"{len(truth.complaints)} ({complaints})",
        ),
        ("faults", len(truth.faults)),
        *((f"  {k}", v) for k, v in sorted(faults.items())),
        ("output", str(out_dir)),
    ]
    if sink is not None:
        rows.insert(1, ("published over MQTT", sink.pub.stats.published))
        rows.insert(2, ("refused by the broker", sum(sink.refused.values())))
        rows.insert(3, ("not sent: unknown devices", sink.not_provisioned))
    summary_table(f"simulate {sc.name}", rows)


def replay(
    file: Annotated[Path, typer.Argument(help="Recorded JSONL, CSV or FloodNet raw uplinks.")],
    speed: Annotated[
        float | None,
        typer.Option(help="Event seconds per wall second (default: as fast as possible)."),
    ] = None,
    to: Annotated[str, typer.Option(help="jsonl or mqtt.")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="JSONL output file (for --to jsonl).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl, csv or floodnet.")] = "auto",
    start: Annotated[
        str | None,
        typer.Option(
            help="Rebase the first record to now | RFC 3339 (default: as recorded; now for mqtt)."
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="CSV: device kind.")] = "water",
    time_col: Annotated[str, typer.Option(help="CSV: time column.")] = "time",
    device_col: Annotated[str | None, typer.Option(help="CSV: device id column.")] = None,
    device_id: Annotated[str | None, typer.Option(help="CSV: fixed device id.")] = None,
    field: Annotated[
        list[str] | None, typer.Option(help="CSV: payload_field=column[*scale], repeatable.")
    ] = None,
    seq_col: Annotated[str | None, typer.Option(help="CSV: sequence-number column.")] = None,
    time_format: Annotated[
        str | None, typer.Option(help="CSV: strptime format, e.g. '%m/%d/%Y %H:%M:%S'.")
    ] = None,
    tz: Annotated[
        str | None, typer.Option(help="CSV: IANA zone of times without offset (default UTC).")
    ] = None,
    baseline_mm: Annotated[float | None, typer.Option(help="FloodNet: dry distance (mm).")] = None,
    calibration: Annotated[
        int, typer.Option(help="FloodNet: readings that set the baseline.")
    ] = 30,
    provision: Annotated[
        bool,
        typer.Option(
            help="First register the replayed devices (in a demo city) and their broker "
            "passwords in the local stack (restart the bridge to load the registry)."
        ),
    ] = False,
) -> None:
    """Replay a recorded feed over MQTT or to JSONL, paced by its event times."""
    if to not in ("jsonl", "mqtt"):
        raise typer.BadParameter("--to must be jsonl or mqtt")
    form = detect_format(file) if fmt == "auto" else fmt
    if form not in ("jsonl", "csv", "floodnet"):
        raise typer.BadParameter("--format must be auto, jsonl, csv or floodnet")
    shift = 0
    rebase = parse_start(start or ("now" if to == "mqtt" else "scenario"), to)
    fields, scale = _field_map(field or []) if form == "csv" else ({}, {})

    def read(shift: int) -> Iterator[Message]:
        if form == "jsonl":
            return read_jsonl(file, shift_s=shift)
        if form == "floodnet":
            return read_floodnet(
                file, baseline_mm=baseline_mm, calibration=calibration, shift_s=shift
            )
        return read_csv(
            file, kind=kind, fields=fields, time_col=time_col, device_col=device_col,
            device_id=device_id, scale=scale, seq_col=seq_col, shift_s=shift,
            time_format=time_format, tz=tz,
        )  # fmt: skip

    if rebase is not None:
        # The earliest record moves to the start (CSV files are often sorted by device).
        first = (
            first_time(file, "jsonl")
            if form == "jsonl"
            else min((m.at for m in read(0)), default=rebase.timestamp())
        )
        shift = int(rebase.timestamp() - first)
    if provision:
        provision_replay({m.device_id: m.kind for m in read(0)})
    messages = read(shift)
    sink: Callable[[Message], None] | None = None
    mqtt = MqttSink() if to == "mqtt" else None
    sink = mqtt
    out_file = out or Path("var") / "replay" / f"{file.stem}.jsonl"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    wall0 = time.monotonic()
    try:
        with progress_bar() as progress:
            with file.open("rb") as fh:
                n_rows = sum(1 for _ in fh) - (0 if form == "jsonl" else 1)
            task = progress.add_task(file.name, total=max(n_rows, 1), info="")
            count = [0]

            def each(msg: Message) -> None:
                if sink is not None:
                    sink(msg)
                count[0] += 1
                if count[0] % 500 == 0:
                    progress.update(task, info=f"{count[0]:,} messages", advance=500)

            summary = write_jsonl(paced(messages, speed), out_file, on_message=each)
            progress.update(task, completed=max(n_rows, 1), info=f"{count[0]:,} messages")
    finally:
        if mqtt is not None:
            mqtt.close()
    rows: list[tuple[str, Any]] = [
        ("format", form),
        ("messages", summary.messages),
        *((f"  {k}", v) for k, v in sorted(summary.by_kind.items())),
        ("wall time", f"{time.monotonic() - wall0:.1f} s"),
        ("time shift", f"{shift} s"),
        ("output", str(out_file)),
    ]
    if mqtt is not None:
        rows.insert(2, ("published over MQTT", mqtt.pub.stats.published))
        rows.insert(3, ("refused by the broker", sum(mqtt.refused.values())))
    summary_table(f"replay {file.name}", rows)


def _field_map(specs: list[str]) -> tuple[dict[str, str], dict[str, float]]:
    fields: dict[str, str] = {}
    scale: dict[str, float] = {}
    for spec in specs:
        name, sep, col = spec.partition("=")
        if not sep or not name or not col:
            raise typer.BadParameter(f"--field {spec!r}: use payload_field=column[*scale]")
        col, star, factor = col.partition("*")
        fields[name] = col
        if star:
            try:
                scale[name] = float(factor)
            except ValueError as exc:
                raise typer.BadParameter(f"--field {spec!r}: scale {factor!r}") from exc
    if not fields:
        raise typer.BadParameter("CSV replay needs at least one --field payload_field=column")
    return fields, scale
