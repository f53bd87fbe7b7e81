"""The local real stack: Mosquitto, Apache Kafka (KRaft) and InfluxDB 1.x.

Each runs as a plain process with a generated config, its log and data under
``<var_dir>``, on the ports from settings. ``up`` is idempotent (a healthy service is
left alone), waits for health (MQTT CONNACK, a Kafka metadata request that lists the
broker, InfluxDB ``/ping``) and creates the InfluxDB database; ``down`` stops by pid.
Kafka is one broker (service ``kafka``) or, formatted with ``stack.kafka_brokers = 3``, a
three-broker cluster (``kafka``, ``kafka-2``, ``kafka-3``); ``gridwatch.kafka_dist`` has
its jars, configs and layout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch import kafka_dist, mosquitto_conf, mosquitto_control
from gridwatch.credentials import ensure_secret_file
from gridwatch.errors import StackError
from gridwatch.settings import Settings

log = logging.getLogger(__name__)

# The services every stack has; a multi-broker Kafka adds kafka-2, kafka-3…
SERVICES = ("mosquitto", "kafka", "influxdb")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    address: str
    detail: str = ""
    startup_s: float | None = None  # from spawn to healthy, at its last start
    rss_mb: float | None = None


class Stack:
    """Start, stop and probe the local services of one var directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.var = settings.stack.var_dir.resolve()

    # -- paths ---------------------------------------------------------------------

    def _dir(self, *parts: str) -> Path:
        path = self.var.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def pid_file(self, name: str) -> Path:
        return self._dir("run") / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self._dir("log") / f"{name}.log"

    # -- public API ----------------------------------------------------------------

    def up(
        self,
        services: Iterable[str] | None = None,
        device_ids: Iterable[str] = (),
        kinds: Mapping[str, str] | None = None,
    ) -> list[ServiceStatus]:
        """Start ``services`` (default all); ``device_ids`` get MQTT logins (their kinds
        from ``kinds``, else the registry at ``settings.registry_dir``)."""
        wanted = self._expand(services)
        if "mosquitto" in wanted:
            self.provision_devices(device_ids, reload=True, kinds=kinds)
        # a KRaft quorum forms only when a majority of its brokers runs: spawn every
        # broker first, then wait for each
        spawned = {name: self._spawn(name) for name in wanted if self._is_kafka(name)}
        for name in wanted:
            if name in spawned:
                self._await_healthy(name, spawned[name])
            else:
                self.start(name)
        return self.status()

    def down(self, services: Iterable[str] | None = None) -> None:
        for name in reversed(self._expand(services)):
            self.stop(name)

    def services(self) -> list[str]:
        """This stack's services, in start order."""
        brokers = [b.service for b in self.kafka_cluster().brokers]
        return ["mosquitto", *brokers, "influxdb"]

    def _expand(self, services: Iterable[str] | None) -> list[str]:
        """``services`` in start order; ``kafka`` stands for every broker of the cluster."""
        known = self.services()
        if services is None:
            return known
        chosen: set[str] = set()
        for name in services:
            if name == "kafka":
                chosen.update(n for n in known if self._is_kafka(n))
            elif name in known:
                chosen.add(name)
            else:
                raise StackError(f"unknown service {name!r}; choose from {', '.join(known)}")
        return [n for n in known if n in chosen]

    @staticmethod
    def _is_kafka(name: str) -> bool:
        return name == "kafka" or name.startswith("kafka-")

    def start(self, name: str) -> None:
        """Start one service and wait until it is healthy (a healthy one is left alone)."""
        proc = self._spawn(name)
        self._await_healthy(name, proc)

    def _spawn(self, name: str) -> subprocess.Popen[bytes] | None:
        """Launch ``name`` unless it is already healthy (then None)."""
        if name not in self.services():
            raise StackError(f"unknown service {name!r}; choose from {', '.join(self.services())}")
        status = self.service_status(name)
        if status.running and status.healthy:
            return None
        if status.running:
            self.stop(name)
        for port in self._ports(name):
            # a process just killed leaves its accepted connections closing for a moment
            if not _port_free(port, wait_s=5):
                raise StackError(
                    f"{name}: port {port} is in use by another process; "
                    "choose another in settings (e.g. GW_MQTT__PORT, GW_KAFKA__BOOTSTRAP)"
                )
        argv = self._argv(name)
        log_fh = self.log_file(name).open("ab")
        proc = subprocess.Popen(
            argv,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.var,
        )
        log_fh.close()
        self.pid_file(name).write_text(str(proc.pid))
        self._started_file(name).unlink(missing_ok=True)
        proc.gw_spawned_at = time.monotonic()  # type: ignore[attr-defined]
        return proc

    def _await_healthy(self, name: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        spawned_at: float = proc.gw_spawned_at  # type: ignore[attr-defined]
        deadline = spawned_at + self.settings.stack.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StackError(
                    f"{name} exited with code {proc.returncode} at start-up; "
                    f"see {self.log_file(name)}: {self._tail(name)}"
                )
            if self._healthy(name) and proc.poll() is None:
                if name == "influxdb":
                    self._create_database()
                self._started_file(name).write_text(
                    json.dumps({"startup_s": round(time.monotonic() - spawned_at, 2)})
                )
                return
            time.sleep(0.1)
        raise StackError(
            f"{name} did not become healthy within {self.settings.stack.start_timeout_s:.0f} s; "
            f"see {self.log_file(name)}: {self._tail(name)}"
        )

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float | None = None) -> None:
        """Signal ``name`` and wait for it to exit; SIGKILL after ``timeout_s`` (Kafka's
        controlled shutdown gets a minute: it hands its partitions over and flushes)."""
        if timeout_s is None:
            timeout_s = 60.0 if self._is_kafka(name) else 10.0
        pid = self._pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + timeout_s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
        self.pid_file(name).unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """``kill -9``: for fault drills."""
        self.stop(name, sig=signal.SIGKILL)

    def status(self) -> list[ServiceStatus]:
        return [self.service_status(name) for name in self.services()]

    def service_status(self, name: str) -> ServiceStatus:
        pid = self._pid(name)
        running = pid is not None
        healthy = running and self._healthy(name)
        startup_s = rss_mb = None
        if running:
            with contextlib.suppress(OSError, ValueError, KeyError):
                startup_s = float(json.loads(self._started_file(name).read_text())["startup_s"])
            with contextlib.suppress(psutil.Error):
                rss_mb = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        return ServiceStatus(
            name, pid, running, healthy, self._address(name), startup_s=startup_s, rss_mb=rss_mb
        )

    def _started_file(self, name: str) -> Path:
        return self._dir("run") / f"{name}.started.json"

    # -- Kafka ---------------------------------------------------------------------

    def kafka_cluster(self) -> kafka_dist.Cluster:
        """The cluster of this var directory: as formatted (``var/kafka/cluster.json``),
        with the ports settings give when they plan as many brokers; else as planned."""
        planned = kafka_dist.planned_brokers(self.settings)
        path = self.var / "kafka" / "cluster.json"
        if not path.exists():
            return kafka_dist.Cluster("", planned)
        try:
            saved = kafka_dist.Cluster.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StackError(
                f"{path} is unreadable ({exc}); remove {path.parent} to start a new, "
                "empty Kafka cluster"
            ) from exc
        if len(saved.brokers) == len(planned):
            return kafka_dist.Cluster(saved.cluster_id, planned)
        if len(planned) > 1:
            raise StackError(
                f"{path.parent} holds a {len(saved.brokers)}-broker cluster, not "
                f"{len(planned)}: `gridwatch stack down` and remove {path.parent} to change it"
            )
        return saved

    def kafka_controller(self) -> str:
        """The service name of the broker whose controller leads the KRaft quorum."""
        leader = kafka_dist.quorum_leader(
            kafka_dist.java_binary(self.settings.stack.java_bin),
            kafka_dist.fetch(kafka_dist.libs_dir(self.settings), self.settings.stack.maven_args),
            self.kafka_cluster().bootstrap,
            self._dir("kafka") / "log4j.properties",
        )
        return self._kafka_broker(leader).service

    def kafka_service_of(self, node_id: int) -> str:
        return self._kafka_broker(node_id).service

    def _kafka_broker(self, which: str | int) -> kafka_dist.Broker:
        """The broker with service name or node id ``which``."""
        for broker in self.kafka_cluster().brokers:
            if which in (broker.service, broker.node_id):
                return broker
        raise StackError(f"no Kafka broker {which!r} in this stack")

    def _kafka_prepare(self, broker: kafka_dist.Broker) -> list[str]:
        """Fetch the jars when missing, format the cluster once, write the configs:
        the broker's argv."""
        st = self.settings.stack
        java = kafka_dist.java_binary(st.java_bin)
        libs = kafka_dist.fetch(kafka_dist.libs_dir(self.settings), st.maven_args)
        root = self._dir("kafka")
        log4j = root / "log4j.properties"
        log4j.write_text(kafka_dist.LOG4J, encoding="utf-8")
        cluster = self.kafka_cluster()
        if not cluster.cluster_id:
            cluster = kafka_dist.Cluster(kafka_dist.new_cluster_id(), cluster.brokers)
            (root / "cluster.json").write_text(cluster.to_json(), encoding="utf-8")
        node = self._dir("kafka", f"node-{broker.node_id}")
        props = node / "server.properties"
        data = node / "data"
        props.write_text(
            kafka_dist.server_properties(cluster, broker, data, self.settings.kafka.partitions),
            encoding="utf-8",
        )
        if not (data / "meta.properties").exists():
            kafka_dist.format_storage(java, libs, cluster, props, log4j)
        heap = st.kafka_heap_mb
        return [*kafka_dist.jvm_argv(java, libs, heap, log4j), kafka_dist.MAIN_CLASS, str(props)]

    def provision_devices(
        self,
        device_ids: Iterable[str],
        reload: bool = True,
        kinds: Mapping[str, str] | None = None,
    ) -> int:
        """Give exactly ``device_ids`` (plus the service users) MQTT logins; returns the
        number of users.

        Each device may publish only under its own kind: from ``kinds``, else the
        registry at ``settings.registry_dir``, else what it was provisioned with before.
        A stopped broker gets a new dynamic-security file. A running one (``reload``)
        gets the difference as dynamic-security commands, or, when the plugin would be
        busy rewriting its file for seconds (``mosquitto_control.affordable``) or the
        admin login is refused, is restarted on a new file: its clients reconnect and
        persistent sessions are kept.
        """
        wanted = self._dynsec_state(self._device_kinds(list(device_ids), kinds))
        path = self._dynsec_path()
        if self._pid("mosquitto") is None:
            mosquitto_conf.write_config(path, mosquitto_conf.config_doc(wanted))
            return len(wanted.clients)
        if not reload:
            raise StackError("Mosquitto is running: its logins change only with reload=True")
        current = mosquitto_conf.read_config(path)
        if current is not None:
            commands = mosquitto_conf.changes(current, wanted)
            if not commands:
                return len(wanted.clients)
            # each command rewrites the whole file: as big as it is now, or will be
            size = max(len(current.get("clients") or []), len(wanted.clients))
            if mosquitto_control.affordable(len(commands), size):
                m = self.settings.mqtt
                try:
                    mosquitto_control.send_commands(
                        m.host,
                        m.port,
                        mosquitto_conf.ADMIN_USER,
                        self._admin_password(),
                        commands,
                    )
                    return len(wanted.clients)
                except mosquitto_control.ControlRefused as exc:
                    log.warning("dynsec admin refused, restarting Mosquitto: %s", exc)
        self.stop("mosquitto")
        mosquitto_conf.write_config(path, mosquitto_conf.config_doc(wanted))
        self.start_when_port_free("mosquitto")
        return len(wanted.clients)

    def provisioned_devices(self) -> dict[str, str]:
        """Device id → kind of every device login the broker has (its dynsec file)."""
        doc = mosquitto_conf.read_config(self._dynsec_path())
        return mosquitto_conf.provisioned_devices(doc, self.settings.mqtt.topic_root)

    def _dynsec_path(self) -> Path:
        path = self._dir("mosquitto") / "dynsec.json"
        path.parent.chmod(0o700)
        return path

    def _admin_password(self) -> str:
        return ensure_secret_file(self._dir("mosquitto") / "dynsec-admin.secret")

    def _dynsec_state(self, devices: Mapping[str, str]) -> mosquitto_conf.DynsecState:
        return mosquitto_conf.wanted_state(self.settings, devices, self._admin_password())

    def _device_kinds(
        self, device_ids: list[str], kinds: Mapping[str, str] | None
    ) -> dict[str, str]:
        known = {**self.provisioned_devices(), **_registry_kinds(self.settings.registry_dir)}
        known.update(kinds or {})
        missing = [d for d in device_ids if d not in known]
        if missing:
            raise StackError(
                f"cannot provision {len(missing)} device(s) without a kind ({missing[0]}, …): "
                f"they are not in the registry at {self.settings.registry_dir}; "
                "write the registry first or pass their kinds"
            )
        return {d: known[d] for d in device_ids}

    def _prepare_dynsec(self) -> None:
        """Before a start: keep the provisioned devices, refresh the service users."""
        path = self._dynsec_path()
        current = mosquitto_conf.read_config(path)
        devices = mosquitto_conf.provisioned_devices(current, self.settings.mqtt.topic_root)
        wanted = self._dynsec_state(devices)
        if current is None or mosquitto_conf.changes(current, wanted, trust=devices):
            doc = mosquitto_conf.config_doc(wanted, reuse=current, trust=devices)
            mosquitto_conf.write_config(path, doc)
        # the password file and ACL file of earlier versions hold hashes nobody reads
        for stale in ("passwd", "acl"):
            (path.parent / stale).unlink(missing_ok=True)

    def start_when_port_free(self, name: str, timeout_s: float = 60) -> None:
        """``start``, retried while its port is taken: clients reconnecting to a dead
        local port can be handed that very port as their ephemeral source port and
        connect to themselves (TCP simultaneous open), holding it for a few seconds."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.start(name)
                return
            except StackError as exc:
                if "in use" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # -- per service ---------------------------------------------------------------

    def _argv(self, name: str) -> list[str]:
        st = self.settings.stack
        if name == "mosquitto":
            binary = _which(st.mosquitto_bin, "apt-get install -y mosquitto")
            plugin = mosquitto_conf.find_plugin(binary)
            data = self._dir("mosquitto")
            conf = data / "mosquitto.conf"
            log_file = self.log_file("mosquitto")
            conf.write_text(
                mosquitto_conf.config_text(self.settings, data, log_file, plugin),
                encoding="utf-8",
            )
            self._prepare_dynsec()
            return [binary, "-c", str(conf)]
        if self._is_kafka(name):
            return self._kafka_prepare(self._kafka_broker(name))
        if name == "influxdb":
            binary = _which(st.influxd_bin, "apt-get install -y influxdb")
            conf = self._dir("influxdb") / "influxdb.conf"
            conf.write_text(self._influx_conf(), encoding="utf-8")
            return [binary, "-config", str(conf)]
        raise StackError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")

    def _influx_conf(self) -> str:
        data = self._dir("influxdb")
        host, port = _host_port(urlsplit(self.settings.influx.url).netloc)
        return f"""# Generated by gridwatch stack; do not edit.
reporting-disabled = true
bind-address = "127.0.0.1:{self.settings.stack.influx_rpc_port}"
[meta]
  dir = "{data / "meta"}"
[data]
  dir = "{data / "data"}"
  wal-dir = "{data / "wal"}"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"
[http]
  enabled = true
  bind-address = "{host}:{port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""

    def _ports(self, name: str) -> list[int]:
        if name == "mosquitto":
            return [self.settings.mqtt.port]
        if self._is_kafka(name):
            broker = self._kafka_broker(name)
            return [broker.port, broker.controller_port]
        influx_port = _host_port(urlsplit(self.settings.influx.url).netloc)[1]
        return [influx_port, self.settings.stack.influx_rpc_port]

    def _address(self, name: str) -> str:
        if name == "mosquitto":
            return f"mqtt://{self.settings.mqtt.host}:{self.settings.mqtt.port}"
        if self._is_kafka(name):
            broker = self._kafka_broker(name)
            return f"kafka://{broker.host}:{broker.port}"
        return self.settings.influx.url

    def _healthy(self, name: str) -> bool:
        checks: dict[str, Callable[[], bool]] = {
            "mosquitto": self._mqtt_healthy,
            "influxdb": self._influx_healthy,
        }
        try:
            if self._is_kafka(name):
                return self._kafka_healthy(self._kafka_broker(name))
            return checks[name]()
        except Exception:  # a probe that fails for any reason means "not healthy yet"
            log.debug("health probe failed", extra={"service": name}, exc_info=True)
            return False

    def _mqtt_healthy(self) -> bool:
        """A CONNACK from the broker: an anonymous CONNECT answered 'not authorised' counts."""
        answered: list[int] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.on_connect = lambda c, u, f, rc, p: answered.append(rc.value)
        client.connect(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=5)
        deadline = time.monotonic() + 2
        while not answered and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        client.disconnect()
        return bool(answered)

    def _kafka_healthy(self, broker: kafka_dist.Broker) -> bool:
        """A metadata request to this broker answers and lists it (a KRaft broker is
        listed once it has registered with the quorum and caught up)."""
        from aiokafka import AIOKafkaClient

        # not listening yet: say so quietly (aiokafka logs every refused connect as ERROR)
        with socket.create_connection((broker.host, broker.port), timeout=1):
            pass

        async def probe() -> bool:
            client = AIOKafkaClient(
                bootstrap_servers=f"{broker.host}:{broker.port}", request_timeout_ms=2000
            )
            try:
                await client.bootstrap()
                return any(b.nodeId == broker.node_id for b in client.cluster.brokers())
            finally:
                await client.close()

        return asyncio.run(asyncio.wait_for(probe(), timeout=3))

    def _influx_healthy(self) -> bool:
        response = httpx.get(f"{self.settings.influx.url}/ping", timeout=1)
        return response.status_code == 204

    def _create_database(self) -> None:
        db = self.settings.influx.database
        response = httpx.post(
            f"{self.settings.influx.url}/query",
            data={"q": f'CREATE DATABASE "{db}"'},
            timeout=5,
        )
        if response.status_code != 200:
            raise StackError(f"cannot create InfluxDB database {db!r}: {response.text[:200]}")

    def _pid(self, name: str) -> int | None:
        path = self.pid_file(name)
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _tail(self, name: str, lines: int = 3) -> str:
        try:
            text = self.log_file(name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[:400]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _port_free(port: int, wait_s: float = 0.0) -> bool:
    """Whether ``port`` can be bound on loopback, now or within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
        time.sleep(0.1)


def free_port() -> int:
    """A TCP port nobody listens on right now (for tests and private stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _which(binary: str, install_hint: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise StackError(
            f"{binary} not found; install it with: {install_hint} (or run `make setup`)"
        )
    return found


def _registry_kinds(registry_dir: Path) -> dict[str, str]:
    """Device id → kind from a registry's ``devices.json`` (empty when there is none)."""
    try:
        doc = json.loads((registry_dir / "devices.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read {registry_dir / 'devices.json'}: {exc}") from exc
    items = doc.get("devices", []) if isinstance(doc, dict) else doc
    return {
        d["device_id"]: d["kind"]
        for d in items
        if isinstance(d, dict) and isinstance(d.get("device_id"), str) and "kind" in d
    }


_host_port = kafka_dist.host_port
