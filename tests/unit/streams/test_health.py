from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch.contracts import Severity, StatusReading
from simulators.city import generate_city
from streams.health import back_alert, classify, partition_time, silence_alert, silent_devices
from streams.status_scoring import StatusScorer, battery_trend, battery_update, hours_left


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


def _battery(volts_per_hour: float, start_v: float = 3.9, hours: float = 3.0) -> dict:
    doc: dict | None = None
    for k in range(int(hours * 12) + 1):  # every 5 minutes
        t = 1_000_000.0 + k * 300.0
        doc = battery_update(doc, t, start_v + volts_per_hour * k * 300.0 / 3600.0)
    assert doc is not None
    return doc


def test_battery_trend_is_measured_and_hours_left_follow() -> None:
    falling = _battery(-0.2)
    volts, slope = battery_trend(falling)
    assert volts == pytest.approx(3.3) and slope == pytest.approx(-0.2, rel=0.05)
    assert hours_left(volts, slope) == pytest.approx(1.5, rel=0.1)
    steady = _battery(0.0)
    assert battery_trend(steady)[1] == pytest.approx(0.0, abs=1e-9)
    assert hours_left(*battery_trend(steady)) == float("inf")
    assert battery_trend(battery_update(None, 0.0, 3.8)) == (3.8, 0.0)  # too short a span
    noisy: dict | None = None
    rng = np.random.default_rng(1)
    for k in range(60):
        noisy = battery_update(noisy, k * 300.0, 3.8 - 0.01 * k / 12 + rng.normal(0, 0.005))
    assert battery_trend(noisy)[1] == pytest.approx(-0.01, abs=0.01)


def test_silent_is_told_from_dead() -> None:
    p = generate_city(5, "small").registry().devices_of("water")[0]
    healthy = _battery(0.0)
    dying = _battery(-0.2)  # 3.3 V and falling 0.2 V/h
    assert classify(900.0, healthy)[0] == "silent"
    assert classify(900.0, None)[0] == "silent"
    assert classify(900.0, dying)[0] == "dead"
    assert classify(7 * 3600.0, healthy)[0] == "dead"  # gone for hours
    silent = silence_alert(p, 1000.0, 900.0, 0.0, healthy)
    dead = silence_alert(p, 1000.0, 900.0, 0.0, dying)
    assert silent.severity is Severity.MINOR and "silent" in silent.why
    assert dead.severity is Severity.MAJOR and "battery ran down" in dead.why
    assert dead.incident_key == silent.incident_key and dead.alert_id != silent.alert_id


def test_status_scorer_warns_before_the_battery_dies_and_clears() -> None:
    registry = generate_city(5, "small").registry()
    p = registry.devices_of("status")[0]
    scorer = StatusScorer(registry)
    t0 = datetime(2026, 7, 1, tzinfo=UTC)

    def status(k: int, volts: float, uptime: int, firmware: str = "1.0") -> StatusReading:
        ts = t0 + timedelta(minutes=5 * k)
        return StatusReading(
            device_id=p.device.device_id,
            ts=ts,
            received_at=ts,
            grid_id=p.grid_id,
            district_id=p.district_id,
            battery_v=volts,
            uptime_s=uptime,
            firmware=firmware,
        )

    readings = [status(k, 3.9, 300 * k) for k in range(24)]
    readings += [status(24 + k, 3.9 - 0.05 * k, 300 * (24 + k)) for k in range(12)]
    readings += [status(36, 3.35, 10, "1.1")]  # rebooted into new firmware
    result = scorer.score(readings, {})
    assert [a.kind for a in result.alerts] == ["maintenance"]
    assert result.alerts[0].category.value == "device_fault"
    assert "battery low" in result.alerts[0].why
    a = result.assessments[0]
    assert a.detail["reboots"] == 1 and a.detail["firmware_changes"] == 1
    assert a.detail["hours_left"] < 24
    swapped = scorer.score([status(48, 4.1, 20, "1.1")], result.states)
    assert [x.kind for x in swapped.alerts] == ["clear"]


def test_a_device_whose_clock_runs_ahead_does_not_silence_its_partition() -> None:
    """Ten sensors reporting every minute up to t=1,000 s and one whose clock runs four
    minutes ahead: judged against the newest reading (1,240 s) the ten would be four
    intervals quiet — close to silent; against the partition's median they are not."""
    last_seen = [(f"wl-{i}", 1000.0 - i) for i in range(10)] + [("wl-skewed", 1240.0)]
    intervals = {d: 60.0 for d, _ in last_seen}
    mark = partition_time(last_seen, newest=1240.0)
    assert mark == pytest.approx(996.0)  # the median of 991…1,000 and 1,240
    assert silent_devices(last_seen, intervals, mark, factor=2.0) == []
    assert len(silent_devices(last_seen, intervals, 1240.0, factor=2.0)) == 10
    # a device gone for good still stands out against the median
    gone = [*last_seen, ("wl-dead", 500.0)]
    assert [d for d, _ in silent_devices(gone, intervals, partition_time(gone, 1240.0))] == [
        "wl-dead"
    ]
    assert partition_time([], newest=7.0) == 7.0
