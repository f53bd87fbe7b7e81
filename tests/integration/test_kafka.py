"""Apache Kafka as the local stack runs it: durable across ``kill -9``, a three-broker
cluster, and every fault of its start-up as one readable line."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gridwatch.kafka import ensure_topics, read_topic
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack, free_port
from tests.integration.cli import run_cli

pytestmark = [pytest.mark.integration]


def _kafka_settings(var_dir: Path, brokers: int = 1) -> Settings:
    ports = [free_port() for _ in range(2 * brokers)]
    return load_settings(
        stack={
            "var_dir": var_dir,
            "start_timeout_s": 90,
            "kafka_brokers": brokers,
            "kafka_controller_ports": tuple(ports[brokers:]),
        },
        kafka={
            "bootstrap": ",".join(f"127.0.0.1:{p}" for p in ports[:brokers]),
            "replication_factor": min(3, brokers),
            "topic_prefix": "kt",
        },
    )


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(_kafka_settings(tmp_path / "var"))
    try:
        stack.up(["kafka"])
        yield stack
    finally:
        stack.down(["kafka"])


async def _produce(settings: Settings, topic: str, n: int, start: int = 0) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"d{i % 97}".encode(), value=str(i).encode())
            for i in range(start, start + n)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _commit_all(settings: Settings, topic: str, group: str) -> dict[int, int]:
    """Commit the end of every partition for ``group``; returns partition → offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.commit({tp: ends[tp] for tp in parts})
        return {tp.partition: ends[tp] for tp in parts}
    finally:
        await consumer.stop()


async def _committed(settings: Settings, topic: str, group: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {
            p: await consumer.committed(TopicPartition(topic, p))
            for p in range(settings.kafka.partitions)
        }
    finally:
        await consumer.stop()


def test_kill_9_loses_no_acknowledged_record_nor_offset(own_kafka: Stack) -> None:
    """Tansu's memory storage lost all 57,204 acknowledged records and every committed
    offset on a kill -9; Kafka must lose none."""
    s = own_kafka.settings
    topic = s.kafka.topic("durable")
    asyncio.run(ensure_topics(s.kafka, [topic]))
    asyncio.run(_produce(s, topic, 20_000))
    committed = asyncio.run(_commit_all(s, topic, "kt-group"))
    assert sum(committed.values()) == 20_000

    own_kafka.kill("kafka")
    assert not own_kafka.service_status("kafka").running
    own_kafka.start("kafka")

    values = [int(r.value) for r in asyncio.run(read_topic(s.kafka, topic, timeout_s=60))]
    assert sorted(values) == list(range(20_000))
    assert asyncio.run(_committed(s, topic, "kt-group")) == committed
    # and it goes on taking writes after the restart
    asyncio.run(_produce(s, topic, 100, start=20_000))
    assert len(asyncio.run(read_topic(s.kafka, topic, timeout_s=60))) == 20_100


def test_status_reports_start_up_time_and_memory(own_kafka: Stack) -> None:
    status = own_kafka.service_status("kafka")
    assert status.healthy
    assert status.startup_s is not None and 0 < status.startup_s < 90
    assert status.rss_mb is not None and status.rss_mb > 50  # a JVM, not a stub
    cmdline = Path(f"/proc/{status.pid}/cmdline").read_bytes().split(b"\0")
    assert b"kafka.Kafka" in cmdline


# -- the CLI, as a user meets its faults ------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    port, controller = free_port(), free_port()
    return {
        "GW_KAFKA__BOOTSTRAP": f"127.0.0.1:{port}",
        "GW_STACK__KAFKA_CONTROLLER_PORTS": json.dumps([controller]),
        "GW_STACK__START_TIMEOUT_S": "60",
        **extra,
    }


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_jdk_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        ["stack", "up", "kafka"], _env(tmp_path, GW_STACK__JAVA_BIN="java-not-here"), tmp_path
    )
    assert_one_line(result, "Java not found", "openjdk-17-jre-headless")


def test_failed_maven_fetch_is_one_line(tmp_path: Path) -> None:
    """Offline, with nothing cached: Maven cannot resolve the broker."""
    env = _env(
        tmp_path,
        GW_STACK__KAFKA_LIBS_DIR=str(tmp_path / "libs"),
        GW_STACK__MAVEN_ARGS=json.dumps(["-o", f"-Dmaven.repo.local={tmp_path / 'm2'}"]),
    )
    assert_one_line(run_cli(["stack", "fetch-kafka"], env, tmp_path), "cannot fetch Apache Kafka")
    assert_one_line(run_cli(["stack", "up", "kafka"], env, tmp_path), "cannot fetch Apache Kafka")


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    env = _env(tmp_path)
    port = int(env["GW_KAFKA__BOOTSTRAP"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert_one_line(run_cli(["stack", "up", "kafka"], env, tmp_path), f"port {port} is in use")


def test_corrupt_cluster_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "var" / "kafka").mkdir(parents=True)
    (tmp_path / "var" / "kafka" / "cluster.json").write_text("{not json")
    result = run_cli(["stack", "up", "kafka"], _env(tmp_path), tmp_path)
    assert_one_line(result, "cluster.json is unreadable", "remove")


def test_a_broker_that_will_not_come_up_is_one_line(tmp_path: Path) -> None:
    """Its data directory's metadata damaged: Kafka refuses to start."""
    env = _env(tmp_path)
    try:
        assert run_cli(["stack", "up", "kafka"], env, tmp_path).returncode == 0
    finally:
        assert run_cli(["stack", "down", "kafka"], env, tmp_path).returncode == 0
    meta = tmp_path / "var" / "kafka" / "node-1" / "data" / "meta.properties"
    meta.write_text("version=7\nnode.id=banana\n")
    try:
        result = run_cli(["stack", "up", "kafka"], env, tmp_path)
    finally:
        run_cli(["stack", "down", "kafka"], env, tmp_path)
    assert_one_line(result, "kafka exited with code")


@pytest.mark.slow
def test_three_brokers_from_the_cli(tmp_path: Path) -> None:
    """``stack up --brokers 3``: three JVMs, each healthy, topics with three replicas;
    later commands follow the formatted layout without the flag."""
    base = next(
        p for p in range(20000, 30000, 10) if all(_free(q) for q in range(p, p + 6))
    )  # brokers on base, base+2, base+4; their controllers one above each
    env = {"GW_KAFKA__BOOTSTRAP": f"127.0.0.1:{base}", "GW_STACK__START_TIMEOUT_S": "90"}
    try:
        up = run_cli(["stack", "up", "kafka", "--brokers", "3"], env, tmp_path)
        assert up.returncode == 0, up.stderr
        status = run_cli(["stack", "status"], env, tmp_path)
        for name in ("kafka ", "kafka-2", "kafka-3"):
            line = next(ln for ln in status.stdout.splitlines() if f" {name}" in ln)
            assert "healthy" in line, status.stdout
        layout = json.loads((tmp_path / "var" / "kafka" / "cluster.json").read_text())
        assert [b["node_id"] for b in layout["brokers"]] == [1, 2, 3]
        s = load_settings(kafka={"bootstrap": up.stdout.split("Kafka bootstrap: ")[1].split()[0]})
        k = s.kafka.model_copy(update={"replication_factor": 3, "topic_prefix": "k3"})
        asyncio.run(ensure_topics(k, [k.topic("x")]))

        async def replicas() -> list[int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap)
            await admin.start()
            try:
                (doc,) = await admin.describe_topics([k.topic("x")])
                return sorted(len(p["replicas"]) for p in doc["partitions"])
            finally:
                await admin.close()

        assert asyncio.run(replicas()) == [3, 3, 3, 3]
        again = run_cli(["stack", "up", "kafka", "--brokers", "1"], env, tmp_path)
        assert again.returncode == 0  # one broker asked of a 3-broker var: its own layout
    finally:
        down = run_cli(["stack", "down"], env, tmp_path)
    assert down.returncode == 0
    ps = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert ps.stdout.strip() == ""
