"""A synthetic district: grid hierarchy as GeoJSON and a device registry, from a seed.

The district is a rectangle split into streets (columns of grids), comprehensive grids
and micro-grids (each grid split 2 × 2). Devices are placed inside grids by kind.
The same seed and size give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.registry import Registry

GRID_TYPES = ("residential", "commercial", "mixed", "campus")
# Approximate metres per degree at 31° N (Shanghai).
M_PER_DEG_LAT = 110_900.0
M_PER_DEG_LON = 95_300.0


@dataclass(frozen=True)
class CitySize:
    streets: int
    grids_per_street: int
    water_per_grid: float
    rain_per_grid: float
    bike_per_grid: float
    camera_per_grid: float


SIZES: dict[str, CitySize] = {
    "tiny": CitySize(2, 2, 2.0, 0.25, 1.0, 1.0),
    "small": CitySize(5, 9, 4.0, 0.34, 2.0, 4.8),
    "medium": CitySize(10, 50, 4.0, 0.34, 2.0, 4.0),
    "city": CitySize(25, 50, 17.0, 0.34, 8.0, 14.6),
}


@dataclass(frozen=True)
class City:
    grids: dict[str, Any]
    devices: list[dict[str, Any]]

    def registry(self) -> Registry:
        return Registry.from_documents(self.grids, self.devices)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "grids.geojson").write_text(_dumps(self.grids), encoding="utf-8")
        (directory / "devices.json").write_text(_dumps(self.devices), encoding="utf-8")
        return directory


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


def _feature(props: dict[str, Any], geom: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geom}


def generate_city(
    seed: int,
    size: str = "small",
    *,
    origin: tuple[float, float] = (121.40, 31.20),
    grid_m: float = 600.0,
    max_devices: int | None = None,
) -> City:
    """Generate a district of ``size`` (see ``SIZES``) from ``seed``."""
    if size not in SIZES:
        raise ValueError(f"unknown city size {size!r}; choose one of {', '.join(SIZES)}")
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    lon0, lat0 = origin
    dlon = grid_m / M_PER_DEG_LON
    dlat = grid_m / M_PER_DEG_LAT
    width = spec.streets * dlon
    height = spec.grids_per_street * dlat
    district = "D01"
    features = [
        _feature(
            {"id": district, "level": "district", "name": "示范区 Demo district"},
            _box(lon0, lat0, lon0 + width, lat0 + height),
        )
    ]
    devices: list[dict[str, Any]] = []
    counters = {"water": 0, "rain": 0, "bike": 0, "camera": 0}
    rain_budget = 0.0
    for s in range(spec.streets):
        street = f"{district}-S{s + 1:02d}"
        sx0 = lon0 + s * dlon
        features.append(
            _feature(
                {"id": street, "level": "street", "parent": district, "name": f"街道 {s + 1}"},
                _box(sx0, lat0, sx0 + dlon, lat0 + height),
            )
        )
        for g in range(spec.grids_per_street):
            grid = f"{street}-G{g + 1:02d}"
            gy0 = lat0 + g * dlat
            grid_type = GRID_TYPES[int(rng.integers(len(GRID_TYPES)))]
            features.append(
                _feature(
                    {
                        "id": grid,
                        "level": "grid",
                        "parent": street,
                        "name": f"网格 {s + 1}-{g + 1}",
                        "grid_type": grid_type,
                    },
                    _box(sx0, gy0, sx0 + dlon, gy0 + dlat),
                )
            )
            for m in range(4):
                mx0 = sx0 + (m % 2) * dlon / 2
                my0 = gy0 + (m // 2) * dlat / 2
                features.append(
                    _feature(
                        {"id": f"{grid}-M{m + 1}", "level": "micro_grid", "parent": grid},
                        _box(mx0, my0, mx0 + dlon / 2, my0 + dlat / 2),
                    )
                )

            def point() -> tuple[float, float]:
                # Keep devices off the polygon edges so lookups are unambiguous.
                fx, fy = rng.uniform(0.05, 0.95, size=2)
                return round(sx0 + float(fx) * dlon, 6), round(gy0 + float(fy) * dlat, 6)

            for _ in range(_count(rng, spec.water_per_grid)):
                counters["water"] += 1
                lon, lat = point()
                site_type = ("underpass", "metro_entrance", "old_compound", "low_road")[
                    int(rng.integers(4))
                ]
                devices.append(
                    {
                        "device_id": f"wl-{counters['water']:05d}",
                        "kind": "water",
                        "lon": lon,
                        "lat": lat,
                        "site_type": site_type,
                        "site": f"site-wl-{counters['water']:05d}",
                        "interval_s": 60.0,
                        "thresholds": {"alert_cm": 7.6, "impassable_cm": 15.0},
                        "attrs": {
                            "drainage_mm_h": round(float(rng.uniform(15, 45)), 1),
                            "elevation_m": round(float(rng.uniform(2.0, 6.0)), 2),
                            "catchment_m2": round(float(rng.uniform(2_000, 12_000)), 0),
                            "basin_m2": round(float(rng.uniform(300, 1_500)), 0),
                        },
                    }
                )
            rain_budget += spec.rain_per_grid
            if rain_budget >= 1.0:
                rain_budget -= 1.0
                counters["rain"] += 1
                lon, lat = point()
                devices.append(
                    {
                        "device_id": f"rg-{counters['rain']:05d}",
                        "kind": "rain",
                        "lon": lon,
                        "lat": lat,
                        "site_type": "rooftop",
                        "interval_s": 60.0,
                    }
                )
            for _ in range(_count(rng, spec.bike_per_grid)):
                counters["bike"] += 1
                lon, lat = point()
                devices.append(
                    {
                        "device_id": f"bk-{counters['bike']:05d}",
                        "kind": "bike",
                        "lon": lon,
                        "lat": lat,
                        "site_type": "metro_exit",
                        "site": f"site-bk-{counters['bike']:05d}",
                        "interval_s": 120.0,
                        "attrs": {"capacity": float(int(rng.integers(40, 200)))},
                    }
                )
            for _ in range(_count(rng, spec.camera_per_grid)):
                counters["camera"] += 1
                lon, lat = point()
                devices.append(
                    {
                        "device_id": f"cam-{counters['camera']:05d}",
                        "kind": "camera",
                        "lon": lon,
                        "lat": lat,
                        "site_type": ("intersection", "commercial_street")[int(rng.integers(2))],
                        "interval_s": 60.0,
                    }
                )
    if max_devices is not None:
        devices = devices[:max_devices]
    return City(grids={"type": "FeatureCollection", "features": features}, devices=devices)


def _count(rng: np.random.Generator, mean: float) -> int:
    return int(rng.poisson(mean))
