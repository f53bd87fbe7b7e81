from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gridwatch.contracts import Severity
from simulators.city import generate_city
from streams.health import back_alert, silence_alert, silent_devices


@pytest.mark.parametrize(
    ("last", "interval", "watermark", "silent"),
    [
        (1000.0, 60.0, 1000.0 + 299, False),
        (1000.0, 60.0, 1000.0 + 300, True),
        (1000.0, 120.0, 1000.0 + 300, False),
        (float("nan"), 60.0, 5000.0, False),
    ],
)
def test_silence_is_five_intervals_of_event_time(
    last: float, interval: float, watermark: float, silent: bool
) -> None:
    found = silent_devices([("d1", last)], {"d1": interval}, watermark)
    assert bool(found) is silent


def test_silence_in_heavy_rain_is_urgent_and_a_device_fault() -> None:
    p = generate_city(5, "small").registry().devices_of("water")[0]
    wet = silence_alert(p, 1000.0, 600.0, rain_mm_h=35.0)
    dry = silence_alert(p, 1000.0, 600.0, rain_mm_h=0.0)
    assert wet.severity is Severity.CRITICAL and "urgent" in wet.why
    assert dry.severity is Severity.MINOR
    assert wet.category.value == dry.category.value == "device_fault"
    assert wet.kind == "maintenance"
    assert wet.alert_id == dry.alert_id  # one silence, one alert id: re-sends change nothing
    back = back_alert(p, datetime(2026, 7, 1, tzinfo=UTC))
    assert back.kind == "clear" and back.incident_key == wet.incident_key
