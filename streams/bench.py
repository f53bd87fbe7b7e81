"""``gridwatch bench pipeline``: MQTT → bridge → Kafka → Faust → InfluxDB, end to end.

For 1 and 2 stream workers, the ingest load (every kind, every device of a small city,
as fast as the publisher gets PUBACKs for ``seconds``) goes through one bridge; the
figures are readings/s stored in InfluxDB, the consumer lag at the end of the load,
publish → InfluxDB latency of the water readings (from the arrival curve: InfluxDB's
count is polled every 100 ms and the i-th published reading counts as stored when the
count first passes i), and each process's CPU and peak memory.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from gridwatch.bench import ProcessSampler, percentiles, private_stack
from gridwatch.influx import query, rows
from gridwatch.kafka import all_topics, consumer_lag
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import SERVICES, Stack
from ingest.bench import publish_for, start_bridges


def _count(settings: Settings, measurement: str = "water", field: str = "level_cm") -> int:
    found = rows(
        asyncio.run(query(settings.influx, f'SELECT COUNT("{field}") FROM "{measurement}"'))
    )
    return int(found[0]["count"]) if found else 0


def _stored(settings: Settings) -> int:
    return sum(_count(settings, m, "qc") for m in ("water", "rain", "bike", "camera", "status"))


def run_case(base: Settings, registry: Registry, workers: int, seconds: float) -> dict[str, Any]:
    tag = f"w{workers}"
    db = f"bench_{tag}"
    httpx.post(f"{base.influx.url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=10)
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"topic_prefix": tag, "streams_group": f"{tag}-streams"}
            ),
            "mqtt": base.mqtt.model_copy(update={"share_group": tag}),
            "influx": base.influx.model_copy(update={"database": db}),
        }
    )
    logs = settings.stack.var_dir / "log"
    pool = [
        Child(f"worker-{tag}-{i}", ["streams", "run"], settings, logs).start()
        for i in range(workers)
    ]
    bridges = start_bridges(settings, 1, tag)
    curve: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            curve.append((time.time() * 1000, _count(settings)))
            time.sleep(0.1)

    try:
        # the workers must have joined before the clock starts
        wait_until(
            lambda: all(w.alive() for w in pool) and _joined(settings), 90, what="workers joined"
        )
        poller = threading.Thread(target=poll, daemon=True)
        names = {**{b.name: b.pid for b in bridges}, **{w.name: w.pid for w in pool}}
        stack = Stack(settings)
        for service in SERVICES:
            pid = stack.service_status(service).pid
            if pid is not None:
                names[service] = pid
        names["publisher (this process)"] = os.getpid()
        with ProcessSampler(names) as sampler:
            poller.start()
            t0 = time.time()
            sent = publish_for(settings, registry, seconds)
            publish_end = time.time()
            k = settings.kafka
            lag_at_end = sum(
                asyncio.run(consumer_lag(k, k.streams_group, _reading_topics(settings))).values()
            )
            total = len(sent)
            wait_until(
                lambda: _stored(settings) >= total, 300, interval_s=0.5, what="all readings stored"
            )
            done = time.time()
        stop.set()
        poller.join()
    finally:
        stop.set()
        for child in [*bridges, *pool]:
            child.stop()
    water_sent = np.array([ms for kind, ms in sent if kind == "water"], dtype=float)
    times = np.array([t for t, _ in curve])
    counts = np.array([c for _, c in curve])
    latency = []
    for i, sent_ms in enumerate(water_sent):
        hit = np.searchsorted(counts, i + 1)  # counts only grow
        if hit < len(times):
            latency.append(max(times[hit] - sent_ms, 0.0))
    return {
        "workers": workers,
        "readings": total,
        "publish_rate": round(total / max(publish_end - t0, 1e-9)),
        "stored_per_s": round(total / max(done - t0, 1e-9)),
        "lag_records_at_end_of_load": lag_at_end,
        "publish_to_influx_ms": percentiles(latency),
        "cpu_percent": {k: round(v) for k, v in sampler.cpu_percent.items()},
        "peak_rss_mb": {k: round(v) for k, v in sampler.peak_rss_mb.items()},
    }


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


def run_bench(seconds: float = 15.0, console: Console | None = None) -> dict[str, Any]:
    from simulators.city import generate_city

    console = console or Console()
    city = generate_city(42, "small")
    registry = city.registry()
    cases = []
    with private_stack(list(registry.devices)) as settings:
        city.write(settings.registry_dir)
        for n in (1, 2):
            with console.status(f"pipeline bench: {n} worker(s), {seconds:.0f} s of load…"):
                cases.append(run_case(settings, registry, n, seconds))
    table = Table(title="gridwatch bench pipeline (MQTT → bridge → Kafka → Faust → InfluxDB)")
    for col in ("workers", "readings", "published/s", "stored/s", "lag at end", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for c in cases:
        table.add_row(
            str(c["workers"]),
            f"{c['readings']:,}",
            f"{c['publish_rate']:,}",
            f"{c['stored_per_s']:,}",
            f"{c['lag_records_at_end_of_load']:,}",
            str(c["publish_to_influx_ms"]["p50"]),
            str(c["publish_to_influx_ms"]["p99"]),
        )
    console.print(table)
    cpu = Table(title="CPU % of one core and peak RSS MB per process")
    cpu.add_column("workers")
    cpu.add_column("process")
    cpu.add_column("CPU %", justify="right")
    cpu.add_column("peak RSS MB", justify="right")
    for c in cases:
        for name, value in c["cpu_percent"].items():
            cpu.add_row(str(c["workers"]), name, str(value), str(c["peak_rss_mb"].get(name, "-")))
    console.print(cpu)
    return {"seconds": seconds, "cases": cases}
