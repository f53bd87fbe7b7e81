"""docker-compose.yml is coherent with the repository and the settings object.

No Docker engine runs on our machines, so the production stack is checked by
structure: images or builds, ports, volumes, referenced files, env names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gridwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def test_expected_services() -> None:
    assert {
        "mosquitto",
        "kafka",
        "influxdb",
        "grafana",
        "postgres",
        "ingest",
        "streams",
        "tickets",
    } <= set(SERVICES)
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert SERVICES["influxdb"]["image"].startswith("influxdb:2")
    assert SERVICES["streams"]["deploy"]["replicas"] >= 2


def test_production_runs_the_kafka_release_the_local_stack_runs() -> None:
    import xml.etree.ElementTree as ET

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(ROOT / "deploy" / "kafka" / "pom.xml").getroot()
    versions = {
        d.findtext("m:artifactId", namespaces=ns): d.findtext("m:version", namespaces=ns)
        for d in pom.iterfind("m:dependencies/m:dependency", ns)
    }
    image = SERVICES["kafka"]["image"]
    assert image == f"apache/kafka:{versions['kafka_2.13']}"
    assert versions["kafka-tools"] == versions["kafka_2.13"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_image_or_build_and_valid_ports(name: str) -> None:
    svc = SERVICES[name]
    assert "image" in svc or "build" in svc
    if "build" in svc:
        assert (ROOT / svc["build"] / "Dockerfile").is_file()
    for port in svc.get("ports", []):
        assert re.fullmatch(r"\d{2,5}:\d{2,5}", port), port
    for dep in svc.get("depends_on", {}):
        assert dep in SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_bind_mounts_exist(name: str) -> None:
    volumes = COMPOSE.get("volumes", {})
    for spec in SERVICES[name].get("volumes", []):
        source = spec.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).exists(), f"{name}: {source} missing"
        else:
            assert source in volumes, f"{name}: named volume {source} not declared"


def _settings_env_names() -> set[str]:
    names = set()
    for section, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"GW_{section.upper()}__{sub.upper()}" for sub in annotation.model_fields}
        else:
            names.add(f"GW_{section.upper()}")
    return names


def test_gridwatch_env_names_match_settings() -> None:
    known = _settings_env_names()
    env_example = (ROOT / ".env.example").read_text()
    used = set(
        re.findall(r"\b(GW_[A-Z_]+)", (ROOT / "docker-compose.yml").read_text() + env_example)
    )
    unknown = sorted(name for name in used if name not in known)
    assert not unknown, f"env names not in Settings: {unknown}"


def test_every_compose_variable_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line
    }
    for var in re.findall(r"\$\{([A-Z_]+)", text):
        assert var in example, var
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def test_dockerfile_copies_existing_paths() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_commands_exist_in_cli() -> None:
    from typer.main import get_command

    from gridwatch.cli import _register, app

    _register()
    cli = get_command(app)
    for name in ("ingest", "streams", "tickets"):
        command = SERVICES[name]["command"]
        if not command:  # the service starts through a shell entrypoint
            command = SERVICES[name]["entrypoint"][-1].split("gridwatch ", 1)[1].split()[:2]
        group = cli.commands[command[0]]  # type: ignore[attr-defined]
        assert command[1] in group.commands, f"{name}: gridwatch {' '.join(command)} does not exist"
