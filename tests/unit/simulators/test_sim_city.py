from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from simulators.city import SIZES, City, generate_city


@pytest.mark.parametrize(("size", "grids", "devices"), [("tiny", 4, 15), ("small", 45, 500)])
def test_sizes_match_the_issue(size: str, grids: int, devices: int) -> None:
    city = generate_city(7, size)
    levels = Counter(f["properties"]["level"] for f in city.grids["features"])
    assert levels["grid"] == grids
    assert levels["micro_grid"] == 4 * grids
    assert 0.7 * devices <= len(city.devices) <= 1.3 * devices


def test_city_size_is_about_5000_micro_grids() -> None:
    spec = SIZES["city"]
    micro = spec.streets * spec.grids_per_street * 4
    per_grid = spec.water_per_grid + spec.rain_per_grid + spec.bike_per_grid + spec.camera_per_grid
    assert micro == 5000
    assert 45_000 <= per_grid * spec.streets * spec.grids_per_street <= 55_000


def test_same_seed_same_bytes_other_seed_other_city(tmp_path) -> None:
    a = generate_city(3, "small").write(tmp_path / "a")
    b = generate_city(3, "small").write(tmp_path / "b")
    c = generate_city(4, "small").write(tmp_path / "c")
    for name in ("grids.geojson", "devices.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "devices.json").read_bytes() != (c / "devices.json").read_bytes()


def test_registry_places_every_device_and_kinds_have_their_attributes() -> None:
    city = generate_city(11, "small")
    reg = city.registry()
    assert len(reg.devices) == len(city.devices)
    kinds = Counter(d["kind"] for d in city.devices)
    assert set(kinds) == {"water", "rain", "bike", "camera", "status"}
    # One rain gauge per few grids.
    assert 45 / 5 <= kinds["rain"] <= 45 / 2
    for dev in city.devices:
        a = dev["attrs"]
        if dev["kind"] == "water":
            assert dev["site_type"] in {
                "underpass", "metro_entrance", "old_compound", "low_road", "park_edge"
            }  # fmt: skip
            assert a["drainage_mm_h"] > 0 and a["catchment_m2"] > 0 and a["basin_m2"] > 0
            assert "elevation_m" in a
        if dev["kind"] == "bike":
            assert a["capacity"] >= 30
            mix = [a["mix_meituan"], a["mix_hellobike"], a["mix_didi"]]
            assert sum(mix) == pytest.approx(1.0, abs=0.01)
        if dev["kind"] == "camera":
            assert dev["site_type"] in {"intersection", "commercial_street", "metro_exit"}


def test_water_sensors_sit_lower_than_their_surroundings() -> None:
    city = generate_city(5, "small")
    water = [d for d in city.devices if d["kind"] == "water"]
    by_type: dict[str, list[float]] = {}
    for d in water:
        by_type.setdefault(d["site_type"], []).append(float(d["attrs"]["elevation_m"]))
    # Underpasses are dug below street level: lowest of all site types on average.
    means = {k: float(np.mean(v)) for k, v in by_type.items()}
    assert means["underpass"] == min(means.values())


def test_bike_sites_are_mostly_at_metro_exits() -> None:
    city = generate_city(7, "small")
    bikes = [d for d in city.devices if d["kind"] == "bike"]
    at_metro = [d for d in bikes if d["site_type"] == "metro_exit"]
    assert len(at_metro) > len(bikes) / 2
    assert all(d["attrs"]["station"] for d in at_metro)


def test_max_devices_truncates() -> None:
    assert len(generate_city(7, "small", max_devices=20).devices) == 20


def test_unknown_size_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown city size"):
        generate_city(1, "huge")


def test_extent_and_local_coordinates() -> None:
    city: City = generate_city(7, "small")
    w, h = city.extent_m()
    assert w == pytest.approx(5 * 600, rel=0.01) and h == pytest.approx(9 * 600, rel=0.01)
    lon = np.array([d["lon"] for d in city.devices])
    lat = np.array([d["lat"] for d in city.devices])
    x, y = city.xy_m(lon, lat)
    assert (x > 0).all() and (x < w).all() and (y > 0).all() and (y < h).all()
