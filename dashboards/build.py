"""Render every dashboard to JSON under dashboards/generated/ (sorted keys, stable ids).

``render_all()`` is pure: the same code gives the same bytes, so a test compares it with
the committed files and ``gridwatch dashboards build`` on a clean tree changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import bikes, cameras, devices, pipeline, wall, waterlogging
from dashboards.gazetteer import GAZETTEER_NAME, gazetteer, load_devices

PACKAGE_DIR = Path(__file__).resolve().parent
GENERATED_DIR = PACKAGE_DIR / "generated"
GAZETTEER_DIR = PACKAGE_DIR / "gazetteer"
CITY_DIR = PACKAGE_DIR.parent / "deploy" / "city"

# file stem → dashboard factory; "wall" is the home dashboard of docker-compose.yml.
DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "wall": wall.dashboard,
    "waterlogging": waterlogging.dashboard,
    "bikes": bikes.dashboard,
    "cameras": cameras.dashboard,
    "devices": devices.dashboard,
    "pipeline": pipeline.dashboard,
}


def render(factory: Callable[[], db.Dashboard]) -> dict[str, Any]:
    """The dashboard as Grafana JSON, panels numbered 1..n in order."""
    model: dict[str, Any] = json.loads(json.dumps(factory().build(), cls=JSONEncoder))
    for i, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = i
    model["id"] = None
    model["version"] = 1
    return model


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all(city_dir: Path = CITY_DIR) -> dict[Path, str]:
    """Every generated file (relative to dashboards/) and its text."""
    files = {Path("generated") / f"{stem}.json": dumps(render(f)) for stem, f in DASHBOARDS.items()}
    files[Path("gazetteer") / GAZETTEER_NAME] = dumps(gazetteer(load_devices(city_dir)))
    return files


def build(root: Path = PACKAGE_DIR, city_dir: Path = CITY_DIR) -> list[Path]:
    """Write the files that differ; return those written."""
    written = []
    for rel, text in render_all(city_dir).items():
        path = root / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def load_generated(root: Path = PACKAGE_DIR) -> dict[str, dict[str, Any]]:
    """The committed dashboards, by file stem."""
    return {
        stem: json.loads((root / "generated" / f"{stem}.json").read_text(encoding="utf-8"))
        for stem in DASHBOARDS
    }
