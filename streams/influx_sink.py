"""Map contract records to InfluxDB points (DESIGN.md, InfluxDB).

Tags are bounded: device, grid, district, kind (and category/severity for alerts);
never a timestamp, message id or free text. Event time in ms.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridwatch.contracts import (
    BikeReading,
    CameraReading,
    RainReading,
    ReadingBase,
    StatusReading,
    WaterReading,
)
from gridwatch.influx import FieldValue, Point


def _ms(reading: ReadingBase) -> int:
    return int(reading.ts.timestamp() * 1000)


def reading_point(reading: ReadingBase) -> Point:
    tags = {"device": reading.device_id, "grid": reading.grid_id, "district": reading.district_id}
    fields: dict[str, FieldValue] = {"qc": int(reading.qc)}
    if reading.seq is not None:
        fields["seq"] = reading.seq
    if isinstance(reading, WaterReading):
        fields["level_cm"] = float(reading.level_cm)
        _maybe(fields, "battery_v", reading.battery_v)
        _maybe(fields, "rssi_dbm", reading.rssi_dbm)
    elif isinstance(reading, RainReading):
        _maybe(fields, "rain_mm", reading.rain_mm)
        _maybe(fields, "intensity_mm_h", reading.intensity_mm_h)
    elif isinstance(reading, BikeReading):
        fields["bikes"] = reading.bikes
        fields["capacity"] = reading.capacity
        fields["occupancy"] = reading.bikes / reading.capacity
    elif isinstance(reading, CameraReading):
        for name, count in reading.counts.model_dump(exclude={"schema_version"}).items():
            fields[name] = int(count)
        _maybe(fields, "water_cover", reading.water_cover)
        fields["status"] = reading.status
    elif isinstance(reading, StatusReading):
        _maybe(fields, "battery_v", reading.battery_v)
        if reading.uptime_s is not None:
            fields["uptime_s"] = reading.uptime_s
        if reading.firmware is not None:
            fields["firmware"] = reading.firmware
    return Point(reading.kind, tags, fields, _ms(reading))


def reading_points(readings: Iterable[ReadingBase]) -> list[Point]:
    return [reading_point(r) for r in readings]


def _maybe(fields: dict[str, FieldValue], name: str, value: float | None) -> None:
    if value is not None:
        fields[name] = float(value)
