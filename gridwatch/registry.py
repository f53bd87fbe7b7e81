"""The grid and device registry: where every device is, and which grid owns a point.

Grids come as a GeoJSON FeatureCollection whose features carry ``properties``::

    {"id": "D1-S2-G07", "level": "grid", "parent": "D1-S2", "name": "...",
     "grid_type": "residential"}

with ``level`` one of ``district street grid micro_grid``. Devices come as a JSON list
of ``DeviceInfo`` objects. Lookups (point → micro-grid → grid) use a shapely STRtree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from gridwatch.contracts import DeviceId, GridId, Kind
from gridwatch.errors import RegistryError

Level = Literal["district", "street", "grid", "micro_grid"]
LEVELS: tuple[Level, ...] = ("district", "street", "grid", "micro_grid")
GridType = Literal["residential", "commercial", "mixed", "campus"]


class GridInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: GridId
    level: Level
    parent: GridId | None = None
    name: str = ""
    grid_type: GridType | None = None


class DeviceInfo(BaseModel):
    """One device: what it measures, where, and what is normal for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: DeviceId
    kind: Kind
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    site_type: str = Field("", max_length=64)
    site: str | None = Field(None, max_length=64)
    interval_s: Annotated[float, Field(gt=0)] = 60.0
    thresholds: dict[str, float] = Field(default_factory=dict)
    # Kind-specific physical attributes (capacity, drainage_mm_h, elevation_m, ...).
    attrs: dict[str, float | str] = Field(default_factory=dict)


class Placement(BaseModel):
    """A device's place in the hierarchy, resolved once when the registry loads."""

    model_config = ConfigDict(frozen=True)

    device: DeviceInfo
    micro_grid_id: str | None
    grid_id: str
    street_id: str | None
    district_id: str


class Registry:
    """Immutable lookup tables built from the grid GeoJSON and the device list."""

    def __init__(
        self, grids: Iterable[tuple[GridInfo, BaseGeometry]], devices: Iterable[DeviceInfo]
    ):
        self.grids: dict[str, GridInfo] = {}
        self.geometry: dict[str, BaseGeometry] = {}
        for info, geom in grids:
            if info.id in self.grids:
                raise RegistryError(f"grid id {info.id!r} appears twice")
            self.grids[info.id] = info
            self.geometry[info.id] = geom
        for info in self.grids.values():
            if info.parent is not None and info.parent not in self.grids:
                raise RegistryError(f"grid {info.id!r} names unknown parent {info.parent!r}")
        self._trees: dict[Level, tuple[shapely.STRtree, list[str]]] = {}
        for level in LEVELS:
            ids = [g.id for g in self.grids.values() if g.level == level]
            if ids:
                self._trees[level] = (shapely.STRtree([self.geometry[i] for i in ids]), ids)
        if "grid" not in self._trees:
            raise RegistryError("the grid GeoJSON holds no feature with level 'grid'")
        self.devices: dict[str, Placement] = {}
        for dev in devices:
            if dev.device_id in self.devices:
                raise RegistryError(f"device id {dev.device_id!r} appears twice")
            self.devices[dev.device_id] = self._place(dev)

    # -- loading -------------------------------------------------------------------

    @classmethod
    def from_dir(cls, path: Path) -> Registry:
        """Load ``grids.geojson`` and ``devices.json`` from a directory."""
        return cls.from_files(path / "grids.geojson", path / "devices.json")

    @classmethod
    def from_files(cls, grids_file: Path, devices_file: Path) -> Registry:
        try:
            grids_doc = json.loads(grids_file.read_text(encoding="utf-8"))
            devices_doc = json.loads(devices_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot read registry: {exc}") from exc
        return cls.from_documents(grids_doc, devices_doc)

    @classmethod
    def from_documents(cls, grids_doc: Mapping[str, Any], devices_doc: Iterable[Any]) -> Registry:
        if grids_doc.get("type") != "FeatureCollection":
            raise RegistryError("grids must be a GeoJSON FeatureCollection")
        grids = []
        for i, feature in enumerate(grids_doc.get("features", [])):
            try:
                info = GridInfo.model_validate(feature.get("properties") or {})
                geom = shape(feature["geometry"])
            except (ValidationError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RegistryError(f"grid feature #{i}: {exc}") from exc
            if not geom.is_valid or geom.is_empty:
                raise RegistryError(f"grid {info.id!r}: invalid or empty geometry")
            grids.append((info, geom))
        try:
            devices = [DeviceInfo.model_validate(d) for d in devices_doc]
        except ValidationError as exc:
            raise RegistryError(f"device list: {exc}") from exc
        return cls(grids, devices)

    # -- lookups -------------------------------------------------------------------

    def locate(self, lon: float, lat: float, level: Level = "grid") -> str | None:
        """The id of the ``level`` polygon containing the point, or None."""
        tree = self._trees.get(level)
        if tree is None:
            return None
        strtree, ids = tree
        hits = strtree.query(Point(lon, lat), predicate="intersects")
        if len(hits) == 0:
            return None
        return ids[int(np.min(hits))]

    def ancestor(self, grid_id: str, level: Level) -> str | None:
        """Walk up from ``grid_id`` to the enclosing polygon of ``level``."""
        current: str | None = grid_id
        while current is not None:
            info = self.grids[current]
            if info.level == level:
                return current
            current = info.parent
        return None

    def placement(self, device_id: str) -> Placement:
        try:
            return self.devices[device_id]
        except KeyError:
            raise RegistryError(f"unknown device {device_id!r}") from None

    def get(self, device_id: str) -> Placement | None:
        return self.devices.get(device_id)

    def devices_of(self, kind: str) -> list[Placement]:
        return [p for p in self.devices.values() if p.device.kind == kind]

    def children(self, grid_id: str) -> list[str]:
        return [g.id for g in self.grids.values() if g.parent == grid_id]

    def neighbours_of(self, grid_ids: Iterable[str]) -> dict[str, list[str]]:
        """For each grid, the other grids of ``grid_ids`` whose polygons touch or overlap
        it (sharing an edge or a corner), sorted."""
        ids = list(grid_ids)
        if not ids:
            return {}
        tree = shapely.STRtree([self.geometry[g] for g in ids])
        out: dict[str, list[str]] = {}
        for g in ids:
            hits = tree.query(self.geometry[g], predicate="intersects")
            out[g] = sorted(ids[int(i)] for i in hits if ids[int(i)] != g)
        return out

    def _place(self, dev: DeviceInfo) -> Placement:
        micro = self.locate(dev.lon, dev.lat, "micro_grid")
        grid = self.ancestor(micro, "grid") if micro else self.locate(dev.lon, dev.lat, "grid")
        if grid is None:
            raise RegistryError(
                f"device {dev.device_id!r} at ({dev.lon}, {dev.lat}) lies in no grid"
            )
        district = self.ancestor(grid, "district")
        if district is None:
            raise RegistryError(f"grid {grid!r} has no district ancestor")
        return Placement(
            device=dev,
            micro_grid_id=micro,
            grid_id=grid,
            street_id=self.ancestor(grid, "street"),
            district_id=district,
        )
