"""Device positions for the geomap: a Grafana gazetteer built from the city registry.

Readings in InfluxDB carry the device id but not its position (the registry, not the
device, says where it is), so the wall's geomap looks each ``device`` up in this file.
Format: Grafana's "worldmap" gazetteer, a JSON array of ``{key, latitude, longitude,
name}``. Grafana serves it from ``public/gazetteer/`` (see deploy/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gridwatch.errors import ConfigError

GAZETTEER_NAME = "gridwatch-devices.json"
GAZETTEER_URL = f"public/gazetteer/{GAZETTEER_NAME}"


def gazetteer(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per registered device, sorted by id."""
    out = []
    for dev in sorted(devices, key=lambda d: str(d["device_id"])):
        out.append(
            {
                "key": dev["device_id"],
                "latitude": round(float(dev["lat"]), 6),
                "longitude": round(float(dev["lon"]), 6),
                "name": f"{dev.get('site') or dev['device_id']} ({dev['kind']})",
            }
        )
    return out


def load_devices(city_dir: Path) -> list[dict[str, Any]]:
    path = city_dir / "devices.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the device registry {path}: {exc}") from exc
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a JSON array of devices")
    return data
