"""Pipeline drills: the storm of ``harness.drill_scenario`` with one component killed,
restarted, slowed down or skewed mid-stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from gridwatch.demo import DemoProcs
from gridwatch.drills import Checks, DrillContext, DrillResult, drill
from gridwatch.drills.harness import (
    Supervisor,
    check_every_reading,
    committed_offsets,
    dead_letters,
    drill_scenario,
    influx_rows,
    own_kafka,
    pause,
    published_messages,
    readings_in_kafka,
    restart_bridge,
    restart_worker,
    resume,
    run_storm,
    start_worker,
    wait_forwarded,
)
from gridwatch.drills.proxy import DelayProxy
from gridwatch.kafka import all_topics, consumer_lag
from gridwatch.procs import wait_until

# The storm publishes ≈ 7,000 messages; faults strike after this many.
STRIKE_AT = 3000
LEAVE_AT = 5000
RESTART_WITHIN_S = 30.0


@drill(
    "bridge-kill",
    "kill -9 of the ingest bridge mid-stream, holding ~500 received but unacked messages "
    "(it is paused for them first): the MQTT persistent session redelivers what was not "
    "acked after Kafka acks=all; every published reading is in InfluxDB exactly once per "
    f"(device, time); the new bridge is subscribed within {RESTART_WITHIN_S:.0f} s",
)
def bridge_kill(ctx: DrillContext) -> DrillResult:
    state: dict[str, Any] = {}

    def chaos(published: int, procs: DemoProcs) -> None:
        if "paused_at" not in state and published >= STRIKE_AT:
            state["paused_at"] = published
            pause(procs.bridge)  # what reaches it now stays unacked
        elif "killed_at" not in state and published >= STRIKE_AT + 500:
            state["killed_at"] = published
            procs.publisher.flush(timeout_s=60)
            procs.bridge.kill()
            # faults are off: one reading per message, so what Kafka lacks was unacked
            state["waiting_at_kill"] = published - readings_in_kafka(ctx.settings)
            state["restart_s"] = restart_bridge(procs, "ingest-restarted")
            state["redelivered_s"] = wait_forwarded(ctx.settings, published)

    result = run_storm(ctx, chaos)
    checks = Checks()
    checks.require("killed_at" in state, "the bridge was never killed")
    figures = check_every_reading(checks, ctx.settings, result)
    waiting = state.get("waiting_at_kill", 0)
    checks.require(waiting > 0, "no reading depended on redelivery: the drill proved nothing")
    restart_s = state.get("restart_s", float("inf"))
    checks.require(restart_s < RESTART_WITHIN_S, f"new bridge subscribed after {restart_s:.1f} s")
    figures.update(
        killed_after_messages=state.get("killed_at"),
        messages_not_in_kafka_at_kill=waiting,
        resubscribed_s=round(restart_s, 2),
        all_forwarded_after_restart_s=round(state.get("redelivered_s", 0.0), 2),
    )
    return checks.result("bridge-kill", "", figures)


@drill(
    "worker-kill",
    "kill -9 of a stream worker mid-stream (restarted at once): offsets are committed only "
    "after the InfluxDB write, so every published reading is in InfluxDB exactly once per "
    "(device, time); no incident gets a duplicate ticket; the storm is still ticketed",
)
def worker_kill(ctx: DrillContext) -> DrillResult:
    state: dict[str, Any] = {}

    def chaos(published: int, procs: DemoProcs) -> None:
        if "killed_at" not in state and published >= STRIKE_AT:
            state["killed_at"] = published
            procs.pool[0].kill()  # kill -9
            restart_worker(procs, 0, "streams-restarted")

    result = run_storm(ctx, chaos)
    checks = Checks()
    checks.require("killed_at" in state, "the worker was never killed")
    figures = check_every_reading(checks, ctx.settings, result)
    floods = sum(t["category"] == "waterlogging" for t in result.tickets)
    checks.require(floods > 0, "the storm raised no waterlogging ticket")
    figures.update(killed_after_messages=state.get("killed_at"), waterlogging_tickets=floods)
    return checks.result("worker-kill", "", figures)


@drill(
    "worker-join",
    "a second stream worker joins mid-storm and, later, the first one is stopped (SIGTERM), "
    "as in a rolling restart: the group rebalances twice, every published reading is in "
    "InfluxDB exactly once per (device, time), no incident gets a duplicate ticket, the "
    "storm is still ticketed",
)
def worker_join(ctx: DrillContext) -> DrillResult:
    state: dict[str, Any] = {}
    stopping: list[threading.Thread] = []

    def chaos(published: int, procs: DemoProcs) -> None:
        if "joined_at" not in state and published >= STRIKE_AT:
            state["joined_at"] = published
            procs.pool.append(start_worker(procs, "streams-joined"))
        elif "left_at" not in state and published >= LEAVE_AT:
            state["left_at"] = published
            first = procs.pool.pop(0)  # its exit is expected, not a crash
            thread = threading.Thread(target=first.stop, name="worker-leaves", daemon=True)
            thread.start()  # the storm keeps flowing while it shuts down
            stopping.append(thread)

    result = run_storm(ctx, chaos)
    for thread in stopping:
        thread.join(30)
    checks = Checks()
    checks.require("joined_at" in state, "the second worker never joined")
    checks.require("left_at" in state, "the first worker was never stopped")
    figures = check_every_reading(checks, ctx.settings, result)
    floods = sum(t["category"] == "waterlogging" for t in result.tickets)
    checks.require(floods > 0, "the storm raised no waterlogging ticket")
    figures.update(
        joined_after_messages=state.get("joined_at"),
        left_after_messages=state.get("left_at"),
        waterlogging_tickets=floods,
    )
    return checks.result("worker-join", "", figures)


INFLUX_OUTAGE_S = 30.0


@drill(
    "influx-outage",
    f"InfluxDB stopped for {INFLUX_OUTAGE_S:.0f} s mid-stream, then started again: the "
    "stream sink retries (offsets wait for the write), every published reading ends up in "
    "InfluxDB exactly once, assessments too",
)
def influx_outage(ctx: DrillContext) -> DrillResult:
    outage: list[threading.Thread] = []
    state: dict[str, float] = {}

    def stop_start() -> None:
        ctx.stack.stop("influxdb")
        state["stopped"] = time.monotonic()
        time.sleep(INFLUX_OUTAGE_S)
        ctx.stack.start_when_port_free("influxdb")
        state["down_s"] = time.monotonic() - state["stopped"]

    def chaos(published: int, procs: DemoProcs) -> None:
        if not outage and published >= STRIKE_AT // 2:
            outage.append(threading.Thread(target=stop_start, name="influx-outage"))
            outage[0].start()

    try:
        result = run_storm(ctx, chaos)
    finally:
        for thread in outage:
            thread.join()
    checks = Checks()
    checks.require(bool(outage) and "down_s" in state, "InfluxDB was never stopped and started")
    figures = check_every_reading(checks, ctx.settings, result)
    checks.require(
        result.points["assessment"] >= result.points["water"],
        f"{result.points['assessment']} assessments for {result.points['water']} water points",
    )
    figures.update(
        influx_down_s=round(state.get("down_s", 0.0), 1), assessments=result.points["assessment"]
    )
    return checks.result("influx-outage", "", figures)


@drill(
    "mosquitto-restart",
    "Mosquitto restarted mid-stream while 1,500 QoS 1 messages wait in the bridge's "
    "persistent session (bridge paused): the broker keeps them across the restart, the "
    "bridge and the publishers reconnect, every acknowledged reading is in InfluxDB once",
)
def mosquitto_restart(ctx: DrillContext) -> DrillResult:
    from simulators.mqtt_publisher import MqttPublisher

    queued = 1500
    state: dict[str, Any] = {}
    publishers: list[MqttPublisher] = []

    def chaos(published: int, procs: DemoProcs) -> None:
        if "paused_at" not in state and published >= STRIKE_AT:
            state["paused_at"] = published
            pause(procs.bridge)
        elif "restarted_at" not in state and published >= STRIKE_AT + queued:
            state["restarted_at"] = published
            procs.publisher.flush(timeout_s=60)  # the broker holds every message now
            started = time.monotonic()
            ctx.stack.stop("mosquitto")
            ctx.stack.start_when_port_free("mosquitto")
            state["broker_restart_s"] = time.monotonic() - started
            resume(procs.bridge)
            procs.publisher.close()
            procs.publisher = MqttPublisher(ctx.settings)  # devices reconnect
            publishers.append(procs.publisher)
            # the bridge reconnects (paho backs off 1–5 s) and drains its session
            state["drained_s"] = wait_forwarded(ctx.settings, published)

    try:
        result = run_storm(ctx, chaos)
    finally:
        for pub in publishers:
            pub.close()
    checks = Checks()
    checks.require("restarted_at" in state, "Mosquitto was never restarted")
    figures = check_every_reading(checks, ctx.settings, result)
    figures.update(
        queued_in_session=state.get("restarted_at", 0) - state.get("paused_at", 0),
        broker_restart_s=round(state.get("broker_restart_s", 0.0), 2),
        session_drained_after_restart_s=round(state.get("drained_s", 0.0), 2),
    )
    return checks.result("mosquitto-restart", "", figures)


@drill(
    "kafka-restart",
    "kill -9 and restart of the Kafka broker mid-stream (the drill runs its own Apache "
    "Kafka, default storage); no runbook (nothing recreated, no worker restarted by hand): every "
    "published water reading is in InfluxDB exactly once per (device, time), the stream "
    "workers' committed offsets come back unchanged, no duplicate ticket",
)
def kafka_restart(ctx: DrillContext) -> DrillResult:
    with own_kafka(ctx) as (kafka, settings):
        state: dict[str, Any] = {}
        supervisor = Supervisor(workers=True)  # a worker that exits is restarted, counted

        k = settings.kafka
        readings = [t for t in all_topics(k) if ".readings." in t]

        def chaos(published: int, procs: DemoProcs) -> None:
            supervisor.watch(procs)
            if "committed_at" not in state and published >= STRIKE_AT // 2:
                # the publisher waits until the workers have committed offsets (Faust
                # commits every few seconds), then runs ahead of them again until the kill
                state["committed_at"] = published
                wait_until(
                    lambda: asyncio.run(committed_offsets(settings, readings)),
                    60,
                    interval_s=0.5,
                    what="the stream workers' first offset commit",
                )
            if "killed_at" not in state and published >= STRIKE_AT:
                state["killed_at"] = published
                lag = asyncio.run(consumer_lag(k, k.streams_group, readings))
                state["lag_records_at_kill"] = sum(lag.values())
                state["committed_before"] = asyncio.run(committed_offsets(settings, readings))
                started = time.monotonic()
                kafka.kill("kafka")
                kafka.start_when_port_free("kafka")
                state["broker_restart_s"] = time.monotonic() - started
                state["committed_after"] = asyncio.run(committed_offsets(settings, readings))

        with supervisor:
            result = run_storm(replace(ctx, settings=settings), chaos, timeout_s=300)
        checks = Checks()
        checks.require("killed_at" in state, "the broker was never restarted")
        figures = check_every_reading(checks, settings, result)  # reads the broker too
    before = state.get("committed_before", {})
    after = state.get("committed_after", {})
    checks.require(bool(before), "the stream workers had committed no offset before the kill")
    went_back = {
        f"{topic}[{partition}]": (offset, after.get((topic, partition)))
        for (topic, partition), offset in before.items()
        if after.get((topic, partition), -1) < offset
    }
    checks.require(not went_back, f"committed offsets lost in the restart: {went_back}")
    exits = supervisor.restarts["worker"]
    checks.require(exits == 0, f"{exits} stream worker(s) exited and were restarted")
    figures.update(
        killed_after_messages=state.get("killed_at"),
        lag_records_at_kill=state.get("lag_records_at_kill"),
        committed_partitions_at_kill=len(before),
        committed_offset_sum_at_kill=sum(before.values()),
        committed_offsets_lost=len(went_back),
        broker_restart_s=round(state.get("broker_restart_s", 0.0), 2),
        worker_exits_after=supervisor.restarts["worker"],
    )
    return checks.result("kafka-restart", "", figures)


PROXY_DELAY_MS = (200.0, 500.0)


@drill(
    "slow-influx",
    f"every chunk between the workers/relay and InfluxDB delayed by "
    f"{PROXY_DELAY_MS[0]:.0f}–{PROXY_DELAY_MS[1]:.0f} ms (a TCP proxy): the pipeline still "
    "stores every published reading exactly once; the extra sink latency is measured",
)
def slow_influx(ctx: DrillContext) -> DrillResult:
    from urllib.parse import urlsplit

    target = urlsplit(ctx.settings.influx.url)
    proxy = DelayProxy(
        target.hostname or "127.0.0.1", target.port or 8086, PROXY_DELAY_MS, seed=7
    ).start()
    try:
        slow = ctx.settings.model_copy(
            update={
                "influx": ctx.settings.influx.model_copy(
                    update={"url": f"http://127.0.0.1:{proxy.port}"}
                )
            }
        )
        result = run_storm(ctx, None, settings=slow, timeout_s=300)
    finally:
        proxy.stop()
    checks = Checks()
    figures = check_every_reading(checks, ctx.settings, result)
    checks.require(proxy.stats.chunks > 0, "nothing went through the delaying proxy")
    figures.update(
        proxy_chunks=proxy.stats.chunks,
        proxy_mean_delay_ms=round(proxy.stats.mean_delay_ms, 1),
        run_s=round(result.seconds, 1),
    )
    return checks.result("slow-influx", "", figures)


SKEWED_FRACTION = 0.25


@drill(
    "clock-skew",
    f"{SKEWED_FRACTION:.0%} of devices with clocks 1 min–3 h ahead or behind: each of their "
    "readings is either stored or dead-lettered with a time reason (future_ts: > 5 min "
    "after arrival), per device published = stored + dead-lettered, none silently lost; no "
    "stored reading lies in the future; no flood ticket at a skewed device's site without "
    "a flood there",
)
def clock_skew(ctx: DrillContext) -> DrillResult:
    result = run_storm(ctx, None, scenario=drill_scenario(clock_skew=SKEWED_FRACTION))
    checks = Checks()
    skew = {f["device_id"]: int(f["detail"]["skew_s"]) for f in result.faults}
    skew = {d: s for d, s in skew.items() if d in _published_devices(result, ctx)}
    checks.require(len(skew) > 0, "no device had a skewed clock")
    published = Counter(d for _, d, _ in published_messages(result, ctx.settings))
    stored: Counter[str] = Counter()
    for kind_counts in result.per_device.values():
        stored.update(kind_counts)
    letters = dead_letters(ctx.settings)
    dead = Counter(letter.device_id for letter in letters if letter.device_id)
    reasons = Counter(letter.reason.value for letter in letters)
    unaccounted = {
        d: published[d] - stored[d] - dead[d] for d in skew if published[d] != stored[d] + dead[d]
    }
    checks.require(not unaccounted, f"skewed devices with readings unaccounted: {unaccounted}")
    ahead = [d for d, s in skew.items() if s > 0]
    unclear = {r: n for r, n in reasons.items() if r not in ("future_ts", "stale_ts")}
    checks.require(not unclear, f"dead letters without a time reason: {unclear}")
    innocent = sum(n for d, n in dead.items() if d not in skew)
    checks.require(innocent == 0, f"{innocent} readings of devices with true clocks dead-lettered")
    # the decoder's window: nothing stored lies more than 5 min after its arrival
    future = sum(
        int(r["count"])
        for kind in ("water", "rain", "bike", "camera", "status")
        for r in influx_rows(ctx.settings, f"SELECT COUNT(qc) FROM {kind} WHERE time > now() + 6m")
    )
    checks.require(future == 0, f"{future} stored readings lie > 5 min in the future")
    flooded = {i["incident_key"] for i in result.incidents if i["category"] == "waterlogging"}
    skewed_sites = {f"site-{d}" for d in skew}
    false_floods = [
        t["incident_key"]
        for t in result.tickets
        if t["category"] == "waterlogging"
        and t["incident_key"].rsplit(":", 1)[-1] in skewed_sites
        and t["incident_key"] not in flooded
    ]
    checks.require(not false_floods, f"flood tickets caused by skew: {false_floods}")
    figures = {
        "skewed_devices": len(skew),
        "ahead": len(ahead),
        "max_skew_s": max((abs(v) for v in skew.values()), default=0),
        "behind": sum(s < 0 for s in skew.values()),
        "skewed_published": sum(published[d] for d in skew),
        "skewed_stored": sum(stored[d] for d in skew),
        "skewed_dead_lettered": sum(dead[d] for d in skew),
        "unaccounted": sum(unaccounted.values()),
        "stored_in_future": future,
        "dead_letter_reasons": dict(reasons),
        "false_flood_tickets": len(false_floods),
        "tickets": len(result.tickets),
    }
    return checks.result("clock-skew", "", figures)


def _published_devices(result: Any, ctx: DrillContext) -> set[str]:
    return {d for _, d, _ in published_messages(result, ctx.settings)}
