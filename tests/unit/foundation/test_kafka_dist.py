"""The pure parts of the local Kafka: broker layout, configs, cluster ids, Maven's errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gridwatch import kafka_dist
from gridwatch.errors import StackError
from gridwatch.settings import load_settings


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_cluster_id_is_16_bytes_of_url_safe_base64() -> None:
    ids = {kafka_dist.new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cid in ids:
        assert len(cid) == 22
        assert not cid.startswith("-")  # kafka-storage would take it for an option
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_one_broker_by_default_controller_one_port_above() -> None:
    s = load_settings(kafka={"bootstrap": "127.0.0.1:19092"})
    assert kafka_dist.planned_brokers(s) == (kafka_dist.Broker(1, "127.0.0.1", 19092, 19093),)


def test_three_brokers_every_second_port_or_one_per_bootstrap_entry() -> None:
    s = load_settings(kafka={"bootstrap": "127.0.0.1:19092"}, stack={"kafka_brokers": 3})
    brokers = kafka_dist.planned_brokers(s)
    assert [(b.node_id, b.port, b.controller_port) for b in brokers] == [
        (1, 19092, 19093),
        (2, 19094, 19095),
        (3, 19096, 19097),
    ]
    assert [b.service for b in brokers] == ["kafka", "kafka-2", "kafka-3"]
    listed = load_settings(
        kafka={"bootstrap": "127.0.0.1:5001,127.0.0.1:6001,127.0.0.1:7001"},
        stack={"kafka_controller_ports": (5002, 6002, 7002)},
    )
    assert [(b.port, b.controller_port) for b in kafka_dist.planned_brokers(listed)] == [
        (5001, 5002),
        (6001, 6002),
        (7001, 7002),
    ]


def test_controller_ports_must_match_the_broker_count() -> None:
    s = load_settings(stack={"kafka_brokers": 3, "kafka_controller_ports": (1,)})
    with pytest.raises(StackError, match="1 port"):
        kafka_dist.planned_brokers(s)


def test_single_broker_config_is_kraft_combined_and_unreplicated(tmp_path: Path) -> None:
    broker = kafka_dist.Broker(1, "127.0.0.1", 19092, 19093)
    cluster = kafka_dist.Cluster("x" * 22, (broker,))
    props = _props(kafka_dist.server_properties(cluster, broker, tmp_path / "data", 4))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.retention.ms"] == "-1"  # replays carry old event times
    assert props["num.partitions"] == "4"


def test_three_broker_config_replicates_three_times_and_needs_two() -> None:
    brokers = tuple(kafka_dist.Broker(i, "h", 9000 + 2 * i, 9001 + 2 * i) for i in (1, 2, 3))
    cluster = kafka_dist.Cluster("y" * 22, brokers)
    props = _props(kafka_dist.server_properties(cluster, brokers[1], Path("/d"), 4))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == ("1@h:9003,2@h:9005,3@h:9007")
    assert props["default.replication.factor"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"


def test_cluster_layout_round_trips_and_refuses_garbage() -> None:
    cluster = kafka_dist.Cluster("z" * 22, (kafka_dist.Broker(1, "h", 1, 2),))
    assert kafka_dist.Cluster.from_json(cluster.to_json()) == cluster
    assert cluster.bootstrap == "h:1"
    for bad in ("{", '{"cluster_id": "a", "brokers": []}', '{"brokers": [{"x": 1}]}'):
        with pytest.raises((ValueError, KeyError, TypeError)):
            kafka_dist.Cluster.from_json(bad)


def test_jvm_has_a_bounded_heap_and_exits_on_oom(tmp_path: Path) -> None:
    argv = kafka_dist.jvm_argv("java", tmp_path, 1024, tmp_path / "log4j.properties")
    assert "-Xmx1024m" in argv and "-Xms512m" in argv
    assert "-XX:+ExitOnOutOfMemoryError" in argv
    assert argv[-1] == f"{tmp_path}/*"


@pytest.mark.parametrize(
    ("output", "line"),
    [
        (
            "\x1b[0m\x1b[0m[ERROR] No plugin found for prefix 'dependency'\n[ERROR] more\n",
            "No plugin found for prefix 'dependency'",
        ),
        ("plain failure\n", "plain failure"),
        ("", ""),
        ("[ERROR] " + "x" * 400, "x" * 159 + "…"),
    ],
)
def test_maven_failure_is_reduced_to_its_first_error(output: str, line: str) -> None:
    assert kafka_dist._first_error(output) == line


def test_missing_java_and_maven_say_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="openjdk-17-jre-headless"):
        kafka_dist.java_binary("java-that-is-not-installed")
    with pytest.raises(StackError, match="apt-get install -y maven"):
        kafka_dist.fetch(tmp_path / "libs", mvn="mvn-that-is-not-installed")
