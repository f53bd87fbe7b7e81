"""One settings object for every GridWatch process.

Built once in an entrypoint (``load_settings``) and passed down; no module reads the
environment on its own. Sources, highest priority first:

1. keyword arguments (tests, the CLI's own flags);
2. environment variables ``GW_<SECTION>__<FIELD>`` (e.g. ``GW_MQTT__PORT=1884``);
3. ``gridwatch.toml`` in the working directory, or the file given to ``load_settings``;
4. ``<var_dir>/credentials.toml``, the development credentials ``gridwatch stack up``
   generates (never committed).
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gridwatch.errors import ConfigError

_Section = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(BaseModel):
    model_config = _Section

    host: str = "127.0.0.1"
    # 1884, not 1883: a system Mosquitto, where one runs, holds 1883.
    port: int = Field(1884, ge=1, le=65535)
    username: str = "gw-ingest"
    password: SecretStr | None = None
    client_id: str = "gw-ingest-1"
    topic_root: str = "gw/v1"
    share_group: str = "gw-ingest"
    keepalive_s: int = Field(30, ge=5)
    session_expiry_s: int = Field(3600, ge=0)
    receive_maximum: int = Field(2000, ge=1, le=65535)
    # Broker side: sized for a Kafka outage of ~10 minutes at 500 msg/s per bridge.
    broker_max_inflight: int = Field(2000, ge=1, le=65535)
    broker_max_queued: int = Field(300_000, ge=1000)
    broker_autosave_s: int = Field(5, ge=1)


class KafkaSettings(BaseModel):
    model_config = _Section

    bootstrap: str = "127.0.0.1:9092"
    partitions: int = Field(4, ge=1, le=256)
    # Copies of every topic we create (3 on the three-broker failover cluster).
    replication_factor: int = Field(1, ge=1, le=9)
    topic_prefix: str = "gw"
    # Faust application id = consumer group of the stream workers.
    streams_group: str = "gridwatch-streams"
    # Table store of the stream workers: RocksDB (rocksdict) keeps tables on disk under
    # var/streams/worker-<slot>, so a restarted worker recovers only the changelog tail.
    streams_store: Literal["rocksdb", "memory"] = "rocksdb"
    # The bridge packs the readings of one partition into one record every linger_ms:
    # a stream job's fixed cost per call (~1.5-3 ms whatever the batch size) is shared
    # by the readings of the record. Measured with `gridwatch bench pipeline` at 5,000
    # readings/s (SenML packs of 10): 200 ms → p99 1.2-1.6 s, 100 ms → p99 0.75 s.
    linger_ms: int = Field(100, ge=0, le=1000)
    max_batch_readings: int = Field(500, ge=1, le=10_000)
    # faust-streaming hard-codes 1500 ms; Kafka answers a fetch as soon as a byte is
    # there, so the wait only matters on an idle partition.
    fetch_max_wait_ms: int = Field(100, ge=1, le=5000)
    request_timeout_ms: int = Field(10_000, ge=1000)

    def topic(self, name: str) -> str:
        """Full topic name, e.g. ``topic("readings.water") == "gw.readings.water"``."""
        return f"{self.topic_prefix}.{name}"


class InfluxSettings(BaseModel):
    model_config = _Section

    api: Literal["v1", "v2"] = "v1"
    url: str = "http://127.0.0.1:8086"
    # v1 API (InfluxDB 1.x)
    database: str = "gridwatch"
    username: str | None = None
    password: SecretStr | None = None
    # v2 API (InfluxDB 2.x / 3.x)
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    batch_points: int = Field(5000, ge=1)
    flush_interval_ms: int = Field(100, ge=1)
    timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0)
    # Stream workers: points held in memory before agents wait, and the local spool
    # (under stack.var_dir/streams/spool) that takes batches while InfluxDB is down.
    max_buffered_points: int = Field(50_000, ge=1)
    spool_max_mb: int = Field(1024, ge=0)

    @model_validator(mode="after")
    def _v2_needs_org_bucket_token(self) -> InfluxSettings:
        if self.api == "v2" and not (self.org and self.bucket and self.token):
            raise ValueError("influx.api = 'v2' needs influx.org, influx.bucket and influx.token")
        return self


class IngestSettings(BaseModel):
    model_config = _Section

    # Per-device token bucket. Generous enough for simulations and replays at speed
    # (hundreds of readings per device in seconds); an abusive device sends thousands.
    rate_per_s: float = Field(20.0, gt=0)
    burst: float = Field(300.0, ge=1)
    dedup_window: int = Field(64, ge=1, le=4096)
    max_future_s: float = Field(300.0, ge=0)
    max_age_s: float = Field(7 * 86400.0, gt=0)
    metrics_every_s: float = Field(5.0, gt=0)


class TicketsSettings(BaseModel):
    model_config = _Section

    db_url: str = "sqlite:///var/tickets.db"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class StackSettings(BaseModel):
    model_config = _Section

    var_dir: Path = Path("var")
    influx_rpc_port: int = Field(8088, ge=1, le=65535)
    start_timeout_s: float = Field(30.0, gt=0)
    mosquitto_bin: str = "mosquitto"
    influxd_bin: str = "influxd"
    # Apache Kafka (gridwatch.kafka_dist): the JRE, where its jars are copied (None: the
    # checkout's var/kafka-libs), how many brokers a newly formatted cluster has (ports every
    # second one from kafka.bootstrap's first; or one broker per bootstrap entry), their
    # controller ports (empty: each client port + 1) and each broker's heap.
    java_bin: str = "java"
    kafka_libs_dir: Path | None = None
    maven_args: tuple[str, ...] = ()  # e.g. ("-s", "mirror-settings.xml") or ("-o",)
    kafka_brokers: int = Field(1, ge=1, le=9)
    kafka_controller_ports: tuple[int, ...] = ()
    # 1 GiB: the broker's working set in the benches stays under 400 MB; page cache does
    # the rest on a 24 GiB machine.
    kafka_heap_mb: int = Field(1024, ge=128, le=16384)


class SimSettings(BaseModel):
    model_config = _Section

    seed: int = 42
    devices: int = Field(20, ge=1)
    minutes: float = Field(30.0, gt=0)
    interval_s: float = Field(60.0, gt=0)
    # Derives each device's MQTT password; generated into var/credentials.toml.
    device_secret: SecretStr | None = None


_TOML_FILES: ContextVar[tuple[Path, ...]] = ContextVar(
    "gridwatch_toml_files", default=(Path("gridwatch.toml"),)
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GW_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mqtt: MqttSettings = MqttSettings()
    kafka: KafkaSettings = KafkaSettings()
    influx: InfluxSettings = InfluxSettings()
    ingest: IngestSettings = IngestSettings()
    tickets: TicketsSettings = TicketsSettings()
    stack: StackSettings = StackSettings()
    sim: SimSettings = SimSettings()
    # grids.geojson + devices.json (see gridwatch.registry)
    registry_dir: Path = Path("var/city")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Later files in the list override earlier ones; the user's file comes last.
        files = list(reversed(_TOML_FILES.get()))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=files),
        )


def credentials_path(var_dir: Path) -> Path:
    return var_dir / "credentials.toml"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings object for an entrypoint.

    ``config`` names a TOML file (default ``./gridwatch.toml`` when it exists). The
    development credentials under the var directory are read last, so a real
    configuration always wins over them.
    """
    if config is not None and not config.is_file():
        raise ConfigError(f"configuration file not found: {config}")
    user_file = config if config is not None else Path("gridwatch.toml")
    var_dir = _var_dir_hint(overrides, user_file)
    token = _TOML_FILES.set((user_file, credentials_path(var_dir)))
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
    finally:
        _TOML_FILES.reset(token)


def _var_dir_hint(overrides: dict[str, Any], user_file: Path) -> Path:
    """Where credentials live, before the full settings exist (override > env > file)."""
    stack = overrides.get("stack")
    if isinstance(stack, StackSettings):
        return stack.var_dir
    if isinstance(stack, dict) and "var_dir" in stack:
        return Path(stack["var_dir"])
    try:
        env_value = _EnvOnly().stack.var_dir
    except ValueError as exc:
        raise ConfigError(f"invalid GW_STACK__ settings: {exc}") from exc
    if user_file.is_file():
        try:
            data = tomllib.loads(user_file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{user_file}: not valid TOML: {exc}") from exc
        file_var = data.get("stack", {}).get("var_dir")
        if file_var and env_value == StackSettings().var_dir:
            return Path(file_var)
    return env_value


class _EnvOnly(BaseSettings):
    """Reads only ``GW_STACK__VAR_DIR`` to find the credentials file."""

    model_config = SettingsConfigDict(env_prefix="GW_", env_nested_delimiter="__", extra="ignore")
    stack: StackSettings = StackSettings()
