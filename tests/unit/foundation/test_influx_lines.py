from __future__ import annotations

import math

import pytest

from gridwatch.errors import SinkError
from gridwatch.influx import Point, to_line


def test_line_protocol_types_and_escaping() -> None:
    p = Point(
        "water",
        {"device": "wl 1", "grid": "a,b=c"},
        {"level_cm": 1.5, "seq": 3, "ok": True, "fw": 'v"1'},
        1000,
    )
    assert (
        to_line(p) == r'water,device=wl\ 1,grid=a\,b\=c fw="v\"1",level_cm=1.5,ok=true,seq=3i 1000'
    )


def test_empty_tags_are_left_out() -> None:
    assert to_line(Point("m", {"a": ""}, {"v": 1.0}, 5)) == "m v=1.0 5"


def test_non_finite_fields_are_flagged_not_dropped() -> None:
    line = to_line(Point("m", {}, {"a": math.nan, "b": 2.0, "c": math.inf}, 1))
    assert line == 'm b=2.0,nonfinite="a,c" 1'


def test_point_without_fields_is_an_error() -> None:
    with pytest.raises(SinkError):
        to_line(Point("m", {}, {}, 1))


def test_bike_points_carry_one_field_per_operator() -> None:
    from datetime import UTC, datetime

    from gridwatch.contracts import BikeReading
    from streams.influx_sink import reading_point

    now = datetime(2026, 7, 1, tzinfo=UTC)
    reading = BikeReading(
        device_id="bk-1",
        ts=now,
        received_at=now,
        grid_id="G1",
        district_id="D1",
        bikes=30,
        capacity=40,
        by_operator={"meituan": 10, "hellobike": 20},
    )
    point = reading_point(reading)
    assert point.fields["op_meituan"] == 10
    assert point.fields["op_hellobike"] == 20
    assert point.fields["occupancy"] == 0.75
    assert "meituan" not in point.tags.values()
