"""Kafka failover: a three-broker KRaft cluster loses the leader of its busiest partition,
then its active controller, mid-storm."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from typing import Any

from gridwatch.demo import DemoProcs
from gridwatch.drills import Checks, DrillContext, DrillResult, drill
from gridwatch.drills.harness import (
    Supervisor,
    check_every_reading,
    committed_offsets,
    own_kafka,
    run_storm,
)
from gridwatch.errors import GridWatchError
from gridwatch.kafka import all_topics
from gridwatch.procs import wait_until
from gridwatch.settings import Settings
from gridwatch.stack import Stack

# The storm publishes ≈ 7,000 messages: the leader dies after this many, the controller
# after the second figure (its broker back by then).
LEADER_AT = 2500
CONTROLLER_AT = 5000
RESUME_WITHIN_S = 30.0


async def busiest_partition(settings: Settings, topics: list[str]) -> tuple[str, int, int]:
    """(topic, partition, leader node id) of the partition holding the most records."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from gridwatch.kafka import partitions_of

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await consumer.start()
    await admin.start()
    try:
        sizes: dict[tuple[str, int], int] = {}
        for topic in topics:
            parts = await partitions_of(consumer, topic)
            for tp, end in (await consumer.end_offsets(parts)).items():
                sizes[(tp.topic, tp.partition)] = end
        topic, partition = max(sizes, key=lambda k: sizes[k])
        (doc,) = await admin.describe_topics([topic])
        leader = next(p["leader"] for p in doc["partitions"] if p["partition"] == partition)
        return topic, partition, int(leader)
    finally:
        await consumer.stop()
        await admin.close()


class Failover:
    """Kills one broker and measures, in the background, how long until the stream
    workers commit past where they stood (the pipeline resumed); then restarts the broker
    so the cluster is whole again."""

    def __init__(self, kafka: Stack, settings: Settings, topics: list[str]) -> None:
        self.kafka = kafka
        self.settings = settings
        self.topics = topics
        self.phases: dict[str, dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []

    def _committed_sum(self) -> int:
        return sum(asyncio.run(committed_offsets(self.settings, self.topics)).values())

    def strike(self, phase: str, service: str, **facts: Any) -> None:
        before = self._committed_sum()
        self.kafka.kill(service)
        killed = time.monotonic()
        record: dict[str, Any] = {"killed": service, **facts, "committed_at_kill": before}
        self.phases[phase] = record

        def watch() -> None:
            try:
                wait_until(
                    lambda: self._committed_sum() > before,
                    120,
                    interval_s=0.25,
                    what=f"the stream workers to commit past {before} after {phase}",
                )
                record["resume_s"] = round(time.monotonic() - killed, 2)
            except TimeoutError as exc:
                record["error"] = str(exc)
            restarted = time.monotonic()
            try:
                self.kafka.start_when_port_free(service)
                record["broker_back_s"] = round(time.monotonic() - restarted, 2)
            except GridWatchError as exc:
                record["error"] = f"{service} did not come back: {exc}"

        thread = threading.Thread(target=watch, name=f"failover-{phase}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout_s: float = 180) -> None:
        for thread in self._threads:
            thread.join(timeout_s)


@drill(
    "kafka-leader-kill",
    "a three-broker Kafka (KRaft, replication factor 3, min.insync.replicas 2, idempotent "
    "acks=all producers) loses, by kill -9 mid-storm, the leader of its busiest partition, "
    "then its active controller: every published reading is in InfluxDB exactly once per "
    f"(device, time), no duplicate ticket, the workers commit again within "
    f"{RESUME_WITHIN_S:.0f} s of each kill",
)
def kafka_leader_kill(ctx: DrillContext) -> DrillResult:
    with own_kafka(ctx, brokers=3) as (kafka, settings):
        k = settings.kafka
        readings = [t for t in all_topics(k) if ".readings." in t]
        failover = Failover(kafka, settings, readings)
        supervisor = Supervisor(workers=True)

        def chaos(published: int, procs: DemoProcs) -> None:
            supervisor.watch(procs)
            if "leader" not in failover.phases and published >= LEADER_AT:
                wait_until(
                    lambda: asyncio.run(committed_offsets(settings, readings)),
                    60,
                    interval_s=0.5,
                    what="the stream workers' first offset commit",
                )
                topic, partition, leader = asyncio.run(busiest_partition(settings, readings))
                failover.strike(
                    "leader",
                    kafka.kafka_service_of(leader),
                    partition=f"{topic}[{partition}]",
                )
            elif "controller" not in failover.phases and published >= CONTROLLER_AT:
                first = failover.phases["leader"]
                wait_until(  # the cluster whole again before the second blow
                    lambda: "broker_back_s" in first or "error" in first,
                    120,
                    what="the first killed broker back",
                )
                failover.strike("controller", kafka.kafka_controller())

        with supervisor:
            result = run_storm(replace(ctx, settings=settings), chaos, timeout_s=420)
        failover.wait()
        checks = Checks()
        figures = check_every_reading(checks, settings, result)
    for phase in ("leader", "controller"):
        record = failover.phases.get(phase)
        if not checks.require(record is not None, f"the {phase} was never killed"):
            continue
        assert record is not None
        checks.require("error" not in record, f"{phase}: {record.get('error')}")
        resume = record.get("resume_s")
        checks.require(
            resume is not None and resume <= RESUME_WITHIN_S,
            f"{phase}: the pipeline resumed after {resume} s (limit {RESUME_WITHIN_S:.0f} s)",
        )
        figures.update({f"{phase}_{key}": value for key, value in record.items()})
    exits = supervisor.restarts["worker"]
    checks.require(exits == 0, f"{exits} stream worker(s) exited and were restarted")
    figures["worker_exits_after"] = exits
    return checks.result("kafka-leader-kill", "", figures)
