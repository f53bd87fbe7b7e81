"""A synthetic district: grid hierarchy as GeoJSON and a device registry, from a seed.

The district is a rectangle split into streets (columns of grids), comprehensive grids
and micro-grids (each grid split 2 × 2), laid over a smooth seeded terrain. Devices are
placed where an operations centre would put them:

* waterlogging sensors at *low points* (underpasses, metro entrances, old residential
  compounds, low roads): the lowest of several candidate points of the grid, with a
  ground elevation, a contributing catchment, a ponding basin and a drainage capacity;
* rain gauges on rooftops, one per few grids;
* bike-parking sites at metro-station exits (a station in about a third of the grids),
  with a capacity and a per-operator mix;
* cameras at intersections (grid corners), commercial streets and metro exits;
* one LoRa gateway per street, which sends ``status`` messages.

The same seed and size give the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.registry import Registry

GRID_TYPES = ("residential", "commercial", "mixed", "campus")
OPERATORS = ("meituan", "hellobike", "didi")
# Approximate metres per degree at 31° N (Shanghai).
M_PER_DEG_LAT = 110_900.0
M_PER_DEG_LON = 95_300.0

WATER_SITES = ("underpass", "metro_entrance", "old_compound", "low_road", "park_edge")
# site type → (probability, catchment m² range, drainage mm/h range, depression m, exposure)
_WATER_SPEC: dict[str, tuple[float, tuple[float, float], tuple[float, float], float, str]] = {
    "underpass": (0.22, (6_000, 20_000), (25, 50), 4.5, "road"),
    "metro_entrance": (0.2, (2_000, 8_000), (30, 55), 0.4, "road"),
    "old_compound": (0.3, (3_000, 12_000), (15, 32), 0.3, "homes"),
    "low_road": (0.2, (4_000, 14_000), (22, 45), 0.6, "road"),
    "park_edge": (0.08, (5_000, 15_000), (15, 30), 0.5, "none"),
}


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
    origin: tuple[float, float] = (121.40, 31.20)

    def registry(self) -> Registry:
        return Registry.from_documents(self.grids, self.devices)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "grids.geojson").write_text(_dumps(self.grids), encoding="utf-8")
        (directory / "devices.json").write_text(_dumps(self.devices), encoding="utf-8")
        return directory

    def grid_types(self) -> dict[str, str]:
        """Comprehensive grid id → grid type."""
        return {
            f["properties"]["id"]: f["properties"].get("grid_type", "")
            for f in self.grids["features"]
            if f["properties"]["level"] == "grid"
        }

    def xy_m(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local metres east/north of the district's south-west corner."""
        return (lon - self.origin[0]) * M_PER_DEG_LON, (lat - self.origin[1]) * M_PER_DEG_LAT

    def extent_m(self) -> tuple[float, float]:
        """Width and height of the district in metres."""
        ring = self.grids["features"][0]["geometry"]["coordinates"][0]
        lons = [p[0] for p in ring]
        lats = [p[1] for p in ring]
        return (
            (max(lons) - min(lons)) * M_PER_DEG_LON,
            (max(lats) - min(lats)) * M_PER_DEG_LAT,
        )


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


def _feature(props: dict[str, Any], geom: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": geom}


class _Terrain:
    """Smooth ground elevation (m above datum) over the district, from a seed."""

    def __init__(self, rng: np.random.Generator, width_m: float, height_m: float):
        n = 6
        self.cx = rng.uniform(0, width_m, n)
        self.cy = rng.uniform(0, height_m, n)
        self.amp = rng.uniform(-2.0, 2.0, n)
        self.sigma = rng.uniform(500, 1_500, n)
        self.slope = rng.uniform(-2.0, 2.0, 2) / max(width_m, height_m)

    def __call__(self, x: float, y: float) -> float:
        bumps = self.amp * np.exp(-((x - self.cx) ** 2 + (y - self.cy) ** 2) / self.sigma**2)
        return float(4.0 + self.slope[0] * x + self.slope[1] * y + bumps.sum())


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
    terrain = _Terrain(rng, spec.streets * grid_m, spec.grids_per_street * grid_m)
    district = "D01"
    features = [
        _feature(
            {"id": district, "level": "district", "name": "示范区 Demo district"},
            _box(lon0, lat0, lon0 + width, lat0 + height),
        )
    ]
    devices: list[dict[str, Any]] = []
    counters = {"water": 0, "rain": 0, "bike": 0, "camera": 0, "status": 0, "station": 0}
    rain_budget = 0.0
    water_types = list(_WATER_SPEC)
    water_p = np.array([v[0] for v in _WATER_SPEC.values()])
    water_p = water_p / water_p.sum()

    def rid(kind: str, prefix: str) -> str:
        counters[kind] += 1
        return f"{prefix}-{counters[kind]:05d}"

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

            def point(lo: float = 0.05, hi: float = 0.95, *, sx0: float = sx0, gy0: float = gy0):
                # Keep devices off the polygon edges so lookups are unambiguous.
                fx, fy = rng.uniform(lo, hi, size=2)
                return round(sx0 + float(fx) * dlon, 6), round(gy0 + float(fy) * dlat, 6)

            def elev(lon: float, lat: float) -> float:
                return terrain((lon - lon0) * M_PER_DEG_LON, (lat - lat0) * M_PER_DEG_LAT)

            # -- metro station and its exits ---------------------------------------
            exits: list[tuple[float, float]] = []
            station = ""
            p_station = 0.55 if grid_type in ("commercial", "mixed") else 0.3
            if rng.random() < p_station:
                counters["station"] += 1
                station = f"M{counters['station']:03d}"
                cx, cy = point(0.35, 0.65)
                for _ in range(int(rng.integers(2, 5))):
                    ex = cx + float(rng.uniform(-0.12, 0.12)) * dlon
                    ey = cy + float(rng.uniform(-0.12, 0.12)) * dlat
                    exits.append((round(ex, 6), round(ey, 6)))
            side = "business" if grid_type in ("commercial", "campus") else "residential"
            if grid_type == "mixed":
                side = "business" if rng.random() < 0.5 else "residential"

            # -- waterlogging sensors at low points --------------------------------
            for _ in range(_count(rng, spec.water_per_grid)):
                site_type = water_types[int(rng.choice(len(water_types), p=water_p))]
                _, (c_lo, c_hi), (d_lo, d_hi), depression, exposure = _WATER_SPEC[site_type]
                if site_type == "metro_entrance" and exits:
                    ex, ey = exits[int(rng.integers(len(exits)))]
                    lon, lat = (
                        round(ex + float(rng.uniform(-0.02, 0.02)) * dlon, 6),
                        round(ey + float(rng.uniform(-0.02, 0.02)) * dlat, 6),
                    )
                else:
                    candidates = [point() for _ in range(6)]
                    lon, lat = min(candidates, key=lambda p: elev(*p))
                ground = elev(lon, lat) - depression * float(rng.uniform(0.7, 1.3))
                if site_type == "old_compound":
                    exposure = "homes"
                dev_id = rid("water", "wl")
                devices.append(
                    {
                        "device_id": dev_id,
                        "kind": "water",
                        "lon": lon,
                        "lat": lat,
                        "site_type": site_type,
                        "site": f"site-{dev_id}",
                        "interval_s": 60.0,
                        "thresholds": {"alert_cm": 7.6, "impassable_cm": 15.0},
                        "attrs": {
                            "drainage_mm_h": round(float(rng.uniform(d_lo, d_hi)), 1),
                            "elevation_m": round(ground, 2),
                            "catchment_m2": round(float(rng.uniform(c_lo, c_hi)), 0),
                            "basin_m2": round(float(rng.uniform(250, 1_200)), 0),
                            "runoff_coeff": round(float(rng.uniform(0.6, 0.9)), 2),
                            "lag_min": round(float(rng.uniform(5, 20)), 1),
                            "exposure": exposure,
                            "mount_mm": float(int(rng.integers(1_500, 3_000))),
                        },
                    }
                )

            # -- rain gauges, one per few grids ------------------------------------
            rain_budget += spec.rain_per_grid
            if rain_budget >= 1.0:
                rain_budget -= 1.0
                lon, lat = point()
                devices.append(
                    {
                        "device_id": rid("rain", "rg"),
                        "kind": "rain",
                        "lon": lon,
                        "lat": lat,
                        "site_type": "rooftop",
                        "interval_s": 60.0,
                        "attrs": {"resolution_mm": 0.2},
                    }
                )

            # -- bike parking at metro exits ---------------------------------------
            # Most parking sites are at metro exits; a few at bus stops and shops.
            bike_mean = spec.bike_per_grid * (2.0 if exits else 0.33)
            for _ in range(_count(rng, bike_mean)):
                if exits:
                    ex, ey = exits[int(rng.integers(len(exits)))]
                    lon = round(ex + float(rng.uniform(-0.03, 0.03)) * dlon, 6)
                    lat = round(ey + float(rng.uniform(-0.03, 0.03)) * dlat, 6)
                    site_type = "metro_exit"
                    capacity = int(rng.integers(60, 220))
                else:
                    lon, lat = point()
                    site_type = "bus_stop" if rng.random() < 0.5 else "commercial_entrance"
                    capacity = int(rng.integers(30, 100))
                mix = rng.dirichlet(np.array([4.0, 3.0, 2.0]))
                dev_id = rid("bike", "bk")
                attrs: dict[str, float | str] = {
                    "capacity": float(capacity),
                    "side": side,
                    "station": station,
                }
                for op, share in zip(OPERATORS, mix, strict=True):
                    attrs[f"mix_{op}"] = round(float(share), 3)
                devices.append(
                    {
                        "device_id": dev_id,
                        "kind": "bike",
                        "lon": lon,
                        "lat": lat,
                        "site_type": site_type,
                        "site": f"site-{dev_id}",
                        "interval_s": 120.0,
                        "thresholds": {"overflow_ratio": 1.2},
                        "attrs": attrs,
                    }
                )

            # -- cameras at intersections, commercial streets and metro exits ------
            commercial = grid_type in ("commercial", "mixed")
            for _ in range(_count(rng, spec.camera_per_grid)):
                r = rng.random()
                if exits and r < 0.3:
                    ex, ey = exits[int(rng.integers(len(exits)))]
                    lon = round(ex + float(rng.uniform(-0.03, 0.03)) * dlon, 6)
                    lat = round(ey + float(rng.uniform(-0.03, 0.03)) * dlat, 6)
                    site_type = "metro_exit"
                elif r < (0.7 if commercial else 0.4):
                    lon, lat = point(0.2, 0.8)
                    site_type = "commercial_street"
                else:
                    corner = int(rng.integers(4))
                    fx = 0.06 if corner % 2 == 0 else 0.94
                    fy = 0.06 if corner // 2 == 0 else 0.94
                    lon, lat = round(sx0 + fx * dlon, 6), round(gy0 + fy * dlat, 6)
                    site_type = "intersection"
                busy = {"metro_exit": 1.6, "commercial_street": 1.2, "intersection": 0.8}[site_type]
                traffic = 1.5 if site_type == "intersection" else 0.7
                devices.append(
                    {
                        "device_id": rid("camera", "cam"),
                        "kind": "camera",
                        "lon": lon,
                        "lat": lat,
                        "site_type": site_type,
                        "interval_s": 60.0,
                        "attrs": {
                            "person_per_min": round(float(rng.uniform(10, 40)) * busy, 1),
                            "vehicle_per_min": round(float(rng.uniform(5, 30)) * traffic, 1),
                            "station": station if site_type == "metro_exit" else "",
                            "grid_type": grid_type,
                        },
                    }
                )
        # -- one LoRa gateway per street, reporting status -------------------------
        gy = int(rng.integers(spec.grids_per_street))
        lon = round(sx0 + float(rng.uniform(0.3, 0.7)) * dlon, 6)
        lat = round(lat0 + (gy + float(rng.uniform(0.3, 0.7))) * dlat, 6)
        devices.append(
            {
                "device_id": rid("status", "gw"),
                "kind": "status",
                "lon": lon,
                "lat": lat,
                "site_type": "lora_gateway",
                "interval_s": 300.0,
                "attrs": {"firmware": "2.4.1"},
            }
        )
    if max_devices is not None:
        devices = devices[:max_devices]
    return City(
        grids={"type": "FeatureCollection", "features": features},
        devices=devices,
        origin=origin,
    )


def _count(rng: np.random.Generator, mean: float) -> int:
    return int(rng.poisson(mean))


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Planar distance in metres (good enough within a district)."""
    return math.hypot((lon1 - lon2) * M_PER_DEG_LON, (lat1 - lat2) * M_PER_DEG_LAT)
