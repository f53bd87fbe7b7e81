"""The camera scorer: a vendor that stays opens a street_vendor incident; one frame
with a vendor does not; a camera that is not ok raises nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridwatch.contracts import CameraCounts, CameraReading
from simulators.city import generate_city
from streams.camera_scoring import CameraScorer, slot_keys

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def run(vendors: list[int], status: str = "ok", batch: int = 1) -> list[tuple[str, str]]:
    registry = generate_city(5, "small").registry()
    cam = registry.devices_of("camera")[0]
    scorer = CameraScorer(registry)
    stored: dict = {}
    slots: dict = {}
    out: list[tuple[str, str]] = []
    readings = [
        CameraReading(
            device_id=cam.device.device_id,
            ts=T0 + timedelta(minutes=i),
            received_at=T0 + timedelta(minutes=i),
            grid_id=cam.grid_id,
            district_id=cam.district_id,
            counts=CameraCounts(person=20, vehicle=5, vendor=v),
            status=status,  # type: ignore[arg-type]
        )
        for i, v in enumerate(vendors)
    ]
    for start in range(0, len(readings), batch):
        chunk = readings[start : start + batch]
        result = scorer.score(chunk, stored, {k: slots.get(k) for k in slot_keys(chunk)})
        stored.update(result.states)
        slots.update(result.slots)
        out += [(a.category.value, a.kind) for a in result.alerts]
    return out


def test_lasting_vendor_is_an_incident_that_clears() -> None:
    alerts = run([0] * 30 + [2] * 40 + [0] * 40)
    assert ("street_vendor", "observed") in alerts
    assert alerts[-1] == ("street_vendor", "clear")


def test_one_frame_is_not_an_incident() -> None:
    assert run([0] * 30 + [3] + [0] * 30) == []


def test_camera_not_ok_raises_nothing() -> None:
    assert run([0] * 30 + [2] * 40, status="obstructed") == []


def test_batches_give_the_same_alerts() -> None:
    vendors = [0] * 30 + [2] * 40 + [0] * 40
    assert run(vendors, batch=1) == run(vendors, batch=8)
