"""Apache Kafka for the local stack: jars from Maven Central, KRaft configs, formatting.

The broker is ``org.apache.kafka:kafka_2.13`` with its runtime dependencies, copied by Maven
from ``deploy/kafka/pom.xml`` into one directory (``var/kafka-libs`` of the checkout unless
``stack.kafka_libs_dir`` says otherwise; Maven caches the downloads in ``~/.m2``, so a
``make clean`` re-copies them offline). Each broker runs as a plain JVM process
(``kafka.Kafka``), a combined broker + controller in KRaft mode, with its data under
``<var_dir>/kafka/node-<id>``. A cluster's layout (how many brokers, on which ports, its
cluster id) is written once, when it is formatted, to ``<var_dir>/kafka/cluster.json``, and
later starts follow it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from gridwatch.errors import StackError
from gridwatch.settings import Settings

# The checkout this module lives in: deploy/kafka/pom.xml sits beside the packages.
_ROOT = Path(__file__).resolve().parents[1]
POM = _ROOT / "deploy" / "kafka" / "pom.xml"
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


@dataclass(frozen=True)
class Broker:
    """One combined broker + controller of a local KRaft cluster."""

    node_id: int
    host: str
    port: int  # clients (PLAINTEXT)
    controller_port: int

    @property
    def service(self) -> str:
        """The stack's name for it: ``kafka`` for the first, ``kafka-2``… for the rest."""
        return "kafka" if self.node_id == 1 else f"kafka-{self.node_id}"


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    brokers: tuple[Broker, ...]

    def to_json(self) -> str:
        return json.dumps(
            {"cluster_id": self.cluster_id, "brokers": [asdict(b) for b in self.brokers]},
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Cluster:
        doc = json.loads(text)
        brokers = tuple(Broker(**b) for b in doc["brokers"])
        if not brokers or not isinstance(doc["cluster_id"], str):
            raise ValueError("no brokers or no cluster id")
        return cls(doc["cluster_id"], brokers)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{b.host}:{b.port}" for b in self.brokers)


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars), as
    ``kafka-storage.sh random-uuid`` prints; like Kafka's ``Uuid.randomUuid`` never with a
    leading "-" (the storage tool would read it as an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def planned_brokers(settings: Settings) -> tuple[Broker, ...]:
    """The brokers settings ask for: one per ``kafka.bootstrap`` entry, or
    ``stack.kafka_brokers`` of them every second port from the first entry; controller
    ports from ``stack.kafka_controller_ports``, else each client port + 1."""
    entries = [e.strip() for e in settings.kafka.bootstrap.split(",") if e.strip()]
    addresses = [host_port(e) for e in entries]
    count = max(settings.stack.kafka_brokers, len(addresses))
    host, first = addresses[0]
    while len(addresses) < count:
        addresses.append((host, first + 2 * len(addresses)))
    controllers = list(settings.stack.kafka_controller_ports)
    if controllers and len(controllers) != count:
        raise StackError(
            f"stack.kafka_controller_ports lists {len(controllers)} port(s) for {count} broker(s)"
        )
    return tuple(
        Broker(i + 1, h, p, controllers[i] if controllers else p + 1)
        for i, (h, p) in enumerate(addresses)
    )


def server_properties(cluster: Cluster, broker: Broker, data_dir: Path, partitions: int) -> str:
    """``server.properties`` of one broker. With three or more brokers every topic is
    replicated three times and a write needs two in-sync copies (``acks=all``)."""
    n = len(cluster.brokers)
    replicas = min(3, n)
    min_isr = 2 if n >= 3 else 1
    voters = ",".join(f"{b.node_id}@{b.host}:{b.controller_port}" for b in cluster.brokers)
    lines = {
        "process.roles": "broker,controller",
        "node.id": broker.node_id,
        "controller.quorum.voters": voters,
        "listeners": (
            f"PLAINTEXT://{broker.host}:{broker.port},CONTROLLER://{broker.host}:"
            f"{broker.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{broker.host}:{broker.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data_dir,
        "num.partitions": partitions,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,  # 50 by default: slower first joins, no gain here
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "unclean.leader.election.enable": "false",
        # as in production (docker-compose.yml): topics are created on purpose, with our
        # partition count, by gridwatch.kafka.ensure_topics and by Faust
        "auto.create.topics.enable": "false",
        # a consumer group starts at once instead of waiting 3 s for more members
        "group.initial.rebalance.delay.ms": 0,
        # replays carry event times of weeks ago: never delete by age, only by size
        "log.retention.ms": -1,
        "log.retention.bytes": 2 * 1024**3,
        "log.segment.bytes": 256 * 1024**2,
        # two cores: fewer threads than Kafka's server-sized defaults
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 2,
        "background.threads": 4,
    }
    head = "# Generated by gridwatch stack; do not edit (the layout: var/kafka/cluster.json).\n"
    return head + "".join(f"{k}={v}\n" for k, v in lines.items())


LOG4J = """# Generated by gridwatch stack: the broker logs to stdout, which the stack writes to
# var/log/<service>.log.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.server.ControllerServer=INFO
"""


def jvm_argv(java: str, libs: Path, heap_mb: int, log4j: Path) -> list[str]:
    """``java`` with the broker's JVM options: a fixed heap (sized for a 2-core, 24 GiB
    machine by ``stack.kafka_heap_mb``), G1 with short pauses, exit on OOM."""
    return [
        java,
        f"-Xms{min(heap_mb, 512)}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration={log4j.as_uri()}",
        "-cp",
        f"{libs}/*",
    ]


def java_binary(configured: str) -> str:
    found = shutil.which(configured)
    if found is None:
        raise StackError(
            f"Java not found ({configured!r}): Kafka needs a JRE 17; install it with "
            "`make setup` (apt-get install -y openjdk-17-jre-headless)"
        )
    return found


def libs_dir(settings: Settings) -> Path:
    return settings.stack.kafka_libs_dir or (_ROOT / "var" / "kafka-libs")


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def fetched(libs: Path) -> bool:
    """The jars in ``libs`` are those of the current pom."""
    stamp = libs / ".pom-sha256"
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def fetch(
    libs: Path, extra_args: tuple[str, ...] = (), mvn: str = "mvn", timeout_s: float = 900
) -> Path:
    """Copy the broker's jars from Maven Central into ``libs`` (once per pom version);
    ``extra_args`` go to Maven (``-s settings.xml`` for a mirror, ``-o`` offline)."""
    if fetched(libs):
        return libs
    found = shutil.which(mvn)
    if found is None:
        raise StackError(
            f"Maven not found ({mvn!r}): it fetches Apache Kafka; install it with "
            "`make setup` (apt-get install -y maven)"
        )
    if libs.exists():
        shutil.rmtree(libs)
    argv = [
        found,
        "-q",
        "-B",
        "-Dstyle.color=never",
        *extra_args,
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            f"fetching Apache Kafka from Maven Central took over {timeout_s:.0f} s"
        ) from exc
    jars = list(libs.glob("kafka_2.13-*.jar")) if libs.is_dir() else []
    if out.returncode != 0 or not jars:
        raise StackError(
            f"cannot fetch Apache Kafka from Maven Central (offline?): mvn: "
            f"{_first_error(out.stdout + out.stderr) or f'exit code {out.returncode}'}"
        )
    (libs / ".pom-sha256").write_text(_pom_digest() + "\n")
    return libs


def _first_error(output: str) -> str:
    """Maven's first ``[ERROR]`` line (else its first line), without colours, shortened."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln.removeprefix("[ERROR]").strip() for ln in lines if ln.startswith("[ERROR]")]
    first = (errors or lines or [""])[0]
    return first if len(first) <= 160 else first[:159] + "…"


def format_storage(java: str, libs: Path, cluster: Cluster, properties: Path, log4j: Path) -> None:
    """``kafka-storage format`` for one broker's data directory (done once per cluster)."""
    argv = [
        *jvm_argv(java, libs, 256, log4j),
        STORAGE_TOOL,
        "format",
        "-t",
        cluster.cluster_id,
        "-c",
        str(properties),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        text = (out.stderr or out.stdout).strip().splitlines()
        raise StackError(
            f"cannot format Kafka's storage ({properties.parent}): "
            f"{text[-1][:300] if text else out.returncode}"
        )


def quorum_leader(java: str, libs: Path, bootstrap: str, log4j: Path) -> int:
    """The node id of the active controller (the KRaft quorum's leader), as Kafka's own
    ``kafka-metadata-quorum describe --status`` reports it."""
    argv = [
        *jvm_argv(java, libs, 256, log4j),
        "org.apache.kafka.tools.MetadataQuorumCommand",
        "--bootstrap-server",
        bootstrap,
        "describe",
        "--status",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "LeaderId" and value.strip().isdigit():
            return int(value.strip())
    text = (out.stderr or out.stdout).strip().splitlines()
    raise StackError(f"cannot describe the KRaft quorum at {bootstrap}: {text[-1] if text else ''}")


def host_port(netloc: str) -> tuple[str, int]:
    host, _, port = netloc.strip().rpartition(":")
    if not host or not port.isdigit():
        raise StackError(f"expected host:port, got {netloc!r}")
    return host, int(port)
