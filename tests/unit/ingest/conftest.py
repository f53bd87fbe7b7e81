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
STATUS = "gw/v1/status/wl-00001"


def js(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return generate_city(1, "tiny").registry()


@pytest.fixture
def make_decoder(registry: Registry) -> Callable[..., Decoder]:
    def make(**kwargs: Any) -> Decoder:
        return Decoder(registry, **kwargs)

    return make


@pytest.fixture
def decoder(make_decoder: Callable[..., Decoder]) -> Decoder:
    return make_decoder()
