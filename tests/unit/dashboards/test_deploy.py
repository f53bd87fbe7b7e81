"""docker-compose.yml and deploy/ agree with what the stream workers need on disk.

No Docker engine runs here (see tests/unit/foundation/test_compose.py for the file's
general coherence); these check the values the settings object will really receive and
the persistent state of the ``streams`` service.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DEPLOY = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")


def _example_env() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value
    return out


def _settings_of(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a gridwatch container builds from its compose environment and the
    .env file (.env.example's values)."""
    env = {**_example_env(), **SERVICES[service]["environment"]}
    for name in [n for n in os.environ if n.startswith("GW_")]:
        monkeypatch.delenv(name)
    for key, value in env.items():
        if key.startswith("GW_"):
            monkeypatch.setenv(key, str(value))
    return Settings()


@pytest.mark.parametrize("service", ["ingest", "streams", "tickets"])
def test_compose_environment_builds_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _settings_of(service, monkeypatch)
    assert s.influx.api == "v2" and s.influx.url == "http://influxdb:8086"
    assert s.kafka.bootstrap == "kafka:9092"
    assert s.stack.var_dir == Path("/data")


def test_stream_workers_keep_their_state_on_a_named_volume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = _settings_of("streams", monkeypatch)
    assert s.kafka.streams_store == "rocksdb"
    assert s.influx.spool_max_mb > 0 and s.influx.max_buffered_points > 0
    mounts = dict(v.split(":", 1) for v in SERVICES["streams"]["volumes"])
    assert mounts.get("streams-data") == str(s.stack.var_dir)
    assert "streams-data" in COMPOSE["volumes"]
    assert SERVICES["streams"]["deploy"]["replicas"] >= 2  # sharing one volume


def test_image_prepares_the_data_directory_for_its_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "ENV GW_STACK__VAR_DIR=/data" in dockerfile
    assert re.search(r"mkdir -p /data && chown gridwatch /data", dockerfile)


def test_deploy_notes_cover_the_workers_state() -> None:
    for needle in (
        "streams/<group>/worker-<n>",
        "streams/spool/",
        "kafka.streams_store",
        "influx.spool_max_mb",
        "influx.max_buffered_points",
        "Replicas may share that volume",
        "flock",
    ):
        assert needle in DEPLOY, needle


def test_workers_sharing_one_volume_get_a_slot_each(tmp_path: Path) -> None:
    """What the notes promise of streams.app.claim_slot: ``worker-<n>`` per live worker,
    held by a lock file, and the slot free again once its worker is gone."""
    from streams.app import claim_slot

    root = tmp_path / "streams" / "group"
    first, lock0 = claim_slot(root)
    second, lock1 = claim_slot(root)
    assert (first.name, second.name) == ("worker-0", "worker-1")
    assert (root / "worker-0.lock").exists() and (root / "worker-1.lock").exists()
    lock0.close()  # the first worker exits
    again, lock2 = claim_slot(root)
    assert again.name == "worker-0"
    lock1.close()
    lock2.close()
