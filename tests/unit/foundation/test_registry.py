from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.errors import RegistryError
from gridwatch.registry import Registry
from simulators.city import generate_city


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return generate_city(3, "small")


@pytest.fixture(scope="module")
def registry(city) -> Registry:  # type: ignore[no-untyped-def]
    return city.registry()


def _bounds(registry: Registry, grid_id: str) -> tuple[float, float, float, float]:
    return registry.geometry[grid_id].bounds  # type: ignore[no-any-return]


def test_hierarchy_levels(registry: Registry) -> None:
    levels = {g.level for g in registry.grids.values()}
    assert levels == {"district", "street", "grid", "micro_grid"}
    grids = [g for g in registry.grids.values() if g.level == "grid"]
    assert 40 <= len(grids) <= 50
    assert all(g.grid_type in ("residential", "commercial", "mixed", "campus") for g in grids)


def test_point_to_micro_grid_to_grid(registry: Registry) -> None:
    grid = next(g for g in registry.grids.values() if g.level == "grid")
    x0, y0, x1, y1 = _bounds(registry, grid.id)
    # a point in the lower-left quarter lies in micro-grid M1 of that grid
    lon, lat = x0 + (x1 - x0) * 0.25, y0 + (y1 - y0) * 0.25
    micro = registry.locate(lon, lat, "micro_grid")
    assert micro == f"{grid.id}-M1"
    assert registry.ancestor(micro, "grid") == grid.id
    assert registry.locate(lon, lat, "grid") == grid.id
    assert registry.ancestor(grid.id, "district") == "D01"


def test_point_outside_is_none(registry: Registry) -> None:
    assert registry.locate(0.0, 0.0) is None


def test_devices_are_placed(registry: Registry) -> None:
    for placement in registry.devices.values():
        d = placement.device
        assert registry.locate(d.lon, d.lat, "grid") == placement.grid_id
        assert placement.district_id == "D01"
    assert registry.devices_of("water")
    with pytest.raises(RegistryError, match="unknown device"):
        registry.placement("nope")


@settings(max_examples=200, deadline=None)
@given(fx=st.floats(0.01, 0.99), fy=st.floats(0.01, 0.99))
def test_any_interior_point_maps_consistently(registry: Registry, fx: float, fy: float) -> None:
    x0, y0, x1, y1 = _bounds(registry, "D01")
    lon, lat = x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy
    micro = registry.locate(lon, lat, "micro_grid")
    grid = registry.locate(lon, lat, "grid")
    assert micro is not None and grid is not None
    assert registry.ancestor(micro, "grid") == grid


def test_round_trip_through_files(city, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    city.write(tmp_path)
    loaded = Registry.from_dir(tmp_path)
    assert set(loaded.devices) == set(city.registry().devices)


def test_bad_documents_are_registry_errors(city) -> None:  # type: ignore[no-untyped-def]
    grids = copy.deepcopy(city.grids)
    grids["features"][3]["properties"]["parent"] = "ghost"
    with pytest.raises(RegistryError, match="unknown parent"):
        Registry.from_documents(grids, [])
    with pytest.raises(RegistryError, match="FeatureCollection"):
        Registry.from_documents({"type": "Feature"}, [])
    far = {**city.devices[0], "lon": 10.0, "lat": 10.0}
    with pytest.raises(RegistryError, match="lies in no grid"):
        Registry.from_documents(city.grids, [far])
    with pytest.raises(RegistryError, match="twice"):
        Registry.from_documents(city.grids, [city.devices[0], city.devices[0]])
