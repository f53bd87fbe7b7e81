from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.errors import ConfigError
from gridwatch.settings import load_settings


def test_defaults_are_local_and_v1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.influx.api == "v1"
    assert s.mqtt.port == 1884
    assert s.kafka.topic("readings.water") == "gw.readings.water"
    assert s.mqtt.password is None


def test_env_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GW_MQTT__PORT", "2883")
    monkeypatch.setenv("GW_KAFKA__PARTITIONS", "8")
    monkeypatch.setenv("GW_MQTT__PASSWORD", "s3cret")
    s = load_settings()
    assert s.mqtt.port == 2883
    assert s.kafka.partitions == 8
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_toml_file_then_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gridwatch.toml").write_text(
        '[mqtt]\nport = 3883\nhost = "broker"\n[kafka]\npartitions = 2\n'
    )
    s = load_settings()
    assert (s.mqtt.port, s.mqtt.host, s.kafka.partitions) == (3883, "broker", 2)
    monkeypatch.setenv("GW_MQTT__PORT", "4883")
    assert load_settings().mqtt.port == 4883


def test_generated_credentials_are_read_from_var_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gridwatch.credentials import ensure_credentials

    monkeypatch.chdir(tmp_path)
    ensure_credentials(tmp_path / "var")
    s = load_settings()
    assert s.mqtt.password is not None and len(s.mqtt.password.get_secret_value()) == 32
    assert s.sim.device_secret is not None
    # a second call keeps the same secrets
    ensure_credentials(tmp_path / "var")
    assert load_settings().mqtt.password == s.mqtt.password
    # a custom var dir from the environment is honoured
    monkeypatch.setenv("GW_STACK__VAR_DIR", str(tmp_path / "other"))
    assert load_settings().mqtt.password is None


def test_v2_requires_org_bucket_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="org"):
        load_settings(influx={"api": "v2"})
    s = load_settings(influx={"api": "v2", "org": "city", "bucket": "gridwatch", "token": "t"})
    assert s.influx.api == "v2"


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("GW_MQTT__PORT", "seventy"),
        ("GW_MQTT__PORT", "70000"),
        ("GW_INFLUX__API", "v3"),
        ("GW_NOPE", "1"),
    ],
)
def test_bad_values_are_config_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(env, value)
    if env == "GW_NOPE":
        # unknown variables are ignored by env parsing, unknown *file* keys are not
        (tmp_path / "gridwatch.toml").write_text("nope = 1\n")
    with pytest.raises(ConfigError):
        load_settings()


def test_missing_config_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
