"""Fixtures for the decoder tests: a tiny synthetic city and a fixed arrival time."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gridwatch.registry import Registry
from ingest.decode import Decoder
from simulators.city import generate_city

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
WATER = "gw/v1/water/wl-00001"
RAIN = "gw/v1/rain/rg-00001"
BIKE = "gw/v1/bike/bk-00001"
CAMERA = "gw/v1/camera/cam-00001"
STATUS_DEVICE = "status-t1"  # added to the synthetic city below
STATUS = f"gw/v1/status/{STATUS_DEVICE}"


def js(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The tiny synthetic city, plus one status gateway whose id the tests can rely on."""
    city = generate_city(1, "tiny")
    anchor = next(d for d in city.devices if d["device_id"] == "wl-00001")
    gateway = {
        "device_id": STATUS_DEVICE,
        "kind": "status",
        "lon": anchor["lon"],
        "lat": anchor["lat"],
    }
    return Registry.from_documents(city.grids, [*city.devices, gateway])


@pytest.fixture
def make_decoder(registry: Registry) -> Callable[..., Decoder]:
    def make(**kwargs: Any) -> Decoder:
        return Decoder(registry, **kwargs)

    return make


@pytest.fixture
def decoder(make_decoder: Callable[..., Decoder]) -> Decoder:
    return make_decoder()
