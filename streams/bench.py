"""``gridwatch bench pipeline``: MQTT → bridge → Kafka → Faust → InfluxDB, end to end.

For 1 and 2 stream workers, a mixed load (every kind, every device of a small city;
each MQTT message a SenML pack of a device's last ``pack`` readings, or one JSON reading
with ``pack=1``) goes through one bridge at offered rates of 500, 1,000, 1,500, …
5,000 readings/s, ``seconds`` per rate, until the pipeline no longer keeps up (it needs
more than ``KEEP_UP_S`` after the load to store the step). Per step: readings/s
published and stored, the consumer lag at the end of the load, publish → InfluxDB
latency of the water readings (InfluxDB's count is polled every 100 ms and the i-th
published reading counts as stored when the count first passes i), and each process's
CPU and peak memory. The sustained rate is the highest step that kept up; start-up is
worker launch → group joined.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gridwatch.bench import ProcessSampler, percentiles, private_stack
from gridwatch.influx import QueryClient, rows
from gridwatch.isolation import isolated
from gridwatch.kafka import all_topics, consumer_lag
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import Stack
from ingest.bench import publish_for, start_bridges


def _count(client: QueryClient) -> int:
    """Water readings in InfluxDB."""
    found = rows(client.query('SELECT COUNT("level_cm") FROM "water"'))
    return int(found[0]["count"]) if found else 0


def _stored(client: QueryClient) -> int:
    """Readings of every kind in InfluxDB (one query)."""
    kinds = ",".join(f'"{k}"' for k in ("water", "rain", "bike", "camera", "status"))
    return sum(int(r["count"]) for r in rows(client.query(f'SELECT COUNT("qc") FROM {kinds}')))


RATES = (500, 1000, 1500, 2000, 3000, 4000, 5000)


def run_case(
    base: Settings,
    registry: Registry,
    workers: int,
    seconds: float,
    rates: tuple[int, ...] = RATES,
    pack: int = 1,
    console: Console | None = None,
) -> dict[str, Any]:
    """One pool of ``workers``: a warm-up round (every device connects and publishes
    once), then ``seconds`` of load at each offered rate in turn, until the pipeline no
    longer keeps up (it needs more than ``KEEP_UP_S`` after the load to store the
    step's readings)."""
    from simulators.mqtt_publisher import MqttPublisher

    tag = f"w{workers}"
    settings = isolated(base, tag)
    logs = settings.stack.var_dir / "log"
    started = time.monotonic()
    pool = [
        Child(f"worker-{tag}-{i}", ["streams", "run"], settings, logs).start()
        for i in range(workers)
    ]
    bridges = start_bridges(settings, 1, tag)
    curve: list[tuple[float, int]] = []
    stop = threading.Event()

    main = QueryClient(settings.influx)

    def poll() -> None:
        own = QueryClient(settings.influx)  # one per thread
        try:
            while not stop.is_set():
                curve.append((time.time() * 1000, _count(own)))
                time.sleep(0.1)
        finally:
            own.close()

    steps: list[dict[str, Any]] = []
    try:
        # the workers must have joined before the clock starts
        wait_until(
            lambda: all(w.alive() for w in pool) and _joined(settings), 90, what="workers joined"
        )
        startup_s = time.monotonic() - started
        poller = threading.Thread(target=poll, daemon=True)
        names = {**{b.name: b.pid for b in bridges}, **{w.name: w.pid for w in pool}}
        stack = Stack(settings)
        for service in stack.services():
            pid = stack.service_status(service).pid
            if pid is not None:
                names[service] = pid
        names["publisher (this process)"] = os.getpid()
        poller.start()
        with MqttPublisher(settings, max_inflight=200) as pub:
            warm = publish_for(settings, registry, 120, limit=len(registry.devices), pub=pub)
            wait_until(lambda: _stored(main) >= len(warm), 120, what="warm-up stored")
            total = len(warm)
            for rate in rates:
                water_base = _count(main)
                with ProcessSampler(names) as sampler:
                    t0 = time.time()
                    sent = publish_for(settings, registry, seconds, rate=rate, pub=pub, pack=pack)
                    publish_end = time.time()
                    total += len(sent)
                    k = settings.kafka
                    lag_at_end = sum(
                        asyncio.run(
                            consumer_lag(k, k.streams_group, _reading_topics(settings))
                        ).values()
                    )
                    with contextlib.suppress(TimeoutError):  # reported as readings missing
                        wait_until(
                            lambda total=total: _stored(main) >= total,
                            STORE_TIMEOUT_S,
                            interval_s=0.2,
                            what="all readings stored",
                        )
                    done = time.time()
                missing = max(total - _stored(main), 0)
                drain_s = round(done - publish_end, 1)
                step: dict[str, Any] = {
                    "offered_per_s": rate,
                    "published_per_s": round(len(sent) / max(publish_end - t0, 1e-9)),
                    "stored_per_s": round(len(sent) / max(done - t0, 1e-9)),
                    "drain_s_after_load": drain_s,
                    "lag_records_at_end_of_load": lag_at_end,
                    "publish_to_influx_ms": percentiles(
                        _latencies(sent, curve, water_base, publish_end)
                    ),
                    "cpu_percent": {k: round(v) for k, v in sampler.cpu_percent.items()},
                    "peak_rss_mb": {k: round(v) for k, v in sampler.peak_rss_mb.items()},
                }
                step["missing"] = missing
                step["kept_up"] = drain_s <= KEEP_UP_S and not missing
                steps.append(step)
                if console is not None:
                    console.print(
                        f"  {workers} worker(s), offered {rate:,}/s: published "
                        f"{step['published_per_s']:,}/s, drained {drain_s} s after the load, "
                        f"p99 {step['publish_to_influx_ms']['p99']} ms"
                        + (f", {missing:,} readings missing" if missing else "")
                    )
                if not step["kept_up"]:
                    break
    finally:
        stop.set()
        main.close()
        for child in [*bridges, *pool]:
            child.stop()
    kept = [s for s in steps if s["kept_up"]]
    return {
        "workers": workers,
        "startup_s": round(startup_s, 1),
        "sustained_per_s": max((s["published_per_s"] for s in kept), default=0),
        "steps": steps,
    }


KEEP_UP_S = 2.0
STORE_TIMEOUT_S = 120.0  # a step whose readings are not all stored by then has lost some


def _latencies(
    sent: list[tuple[str, int]], curve: list[tuple[float, int]], base: int, until: float
) -> list[float]:
    """Publish → InfluxDB latency (ms) of each water reading of a step: the i-th one
    counts as stored when InfluxDB's water count first passes ``base + i``."""
    water_sent = np.array([ms for kind, ms in sent if kind == "water"], dtype=float)
    times = np.array([t for t, _ in curve])
    counts = np.array([c for _, c in curve])
    out = []
    for i, sent_ms in enumerate(water_sent):
        hit = np.searchsorted(counts, base + i + 1)  # counts only grow
        if hit < len(times):
            out.append(max(times[hit] - sent_ms, 0.0))
    return out


def _reading_topics(settings: Settings) -> list[str]:
    return [t for t in all_topics(settings.kafka) if ".readings." in t]


def _joined(settings: Settings) -> bool:
    """Faust has created its changelog topic: the group is up."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def topics() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
        await admin.start()
        try:
            return list(await admin.list_topics())
        finally:
            await admin.close()

    return any(t.startswith(settings.kafka.streams_group) for t in asyncio.run(topics()))


def run_bench(
    seconds: float = 15.0, pack: int = 10, console: Console | None = None
) -> dict[str, Any]:
    from simulators.city import generate_city

    console = console or Console()
    city = generate_city(42, "small")
    registry = city.registry()
    cases = []
    with private_stack(city) as settings:
        for n in (1, 2):
            with console.status(
                f"pipeline bench: {n} worker(s), {seconds:.0f} s per offered rate, "
                f"{pack} reading(s) per message…"
            ):
                cases.append(run_case(settings, registry, n, seconds, pack=pack, console=console))
    table = Table(
        title="gridwatch bench pipeline (MQTT → bridge → Kafka → Faust → InfluxDB), "
        f"{pack} reading(s) per MQTT message"
    )
    cols = ("workers", "offered/s", "published/s", "stored/s", "drain s", "lag", "p50 ms", "p99 ms")
    for col in (*cols, "kept up"):
        table.add_column(col, justify="right")
    for c in cases:
        for st in c["steps"]:
            table.add_row(
                str(c["workers"]),
                f"{st['offered_per_s']:,}",
                f"{st['published_per_s']:,}",
                f"{st['stored_per_s']:,}",
                str(st["drain_s_after_load"]),
                f"{st['lag_records_at_end_of_load']:,}",
                str(st["publish_to_influx_ms"]["p50"]),
                str(st["publish_to_influx_ms"]["p99"]),
                "yes" if st["kept_up"] else "no",
            )
    console.print(table)
    for c in cases:
        console.print(
            f"{c['workers']} worker(s): sustained {c['sustained_per_s']:,} readings/s "
            f"(drained within {KEEP_UP_S:g} s of the load); start-up to joined {c['startup_s']} s"
        )
    cpu = Table(title="CPU % of one core and peak RSS MB per process, highest step")
    cpu.add_column("workers")
    cpu.add_column("process")
    cpu.add_column("CPU %", justify="right")
    cpu.add_column("peak RSS MB", justify="right")
    for c in cases:
        last = c["steps"][-1] if c["steps"] else {"cpu_percent": {}, "peak_rss_mb": {}}
        for name, value in last["cpu_percent"].items():
            cpu.add_row(
                str(c["workers"]), name, str(value), str(last["peak_rss_mb"].get(name, "-"))
            )
    console.print(cpu)
    return {"seconds": seconds, "pack": pack, "rates": list(RATES), "cases": cases}
