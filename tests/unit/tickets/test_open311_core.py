"""The pure parts of Open311 and the API's times: parsing, attributes, geocoding, XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from simulators.city import generate_city
from tickets.open311.catalogue import SERVICES, check_attributes, definition, services
from tickets.open311.geocode import describe, geocode
from tickets.open311.wire import Open311Error, ServiceDefinition, ServiceRequest, to_xml
from tickets.times import EndDate, QueryTime, StartDate, parse_w3c

QUERY_TIME = TypeAdapter(QueryTime)
START = TypeAdapter(StartDate)
END = TypeAdapter(EndDate)
REGISTRY = generate_city(42, "small").registry()


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("2026-07-01T08:00:00Z", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("2026-07-01T16:00:00+08:00", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1782892800", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        ("1782892800000", datetime(2026, 7, 1, 8, tzinfo=UTC)),
        (1782892800, datetime(2026, 7, 1, 8, tzinfo=UTC)),
    ],
)
def test_query_times_taken(given_: object, expected: datetime) -> None:
    assert QUERY_TIME.validate_python(given_) == expected


@pytest.mark.parametrize(
    "given_",
    [
        "-1722",
        "1722.5",
        "1e9",
        "4102444801",  # seconds after 2100
        "19999999999",  # between the second and millisecond ranges
        "4102444800001",  # ms after 2100
        "2026-07-01T08:00:00",  # no offset
        "0001-01-01T00:00:00+01:00",  # leaves the calendar in UTC
        -1,
        True,
    ],
)
def test_query_times_refused(given_: object) -> None:
    with pytest.raises(ValidationError):
        QUERY_TIME.validate_python(given_)


def test_w3c_dates_and_datetimes() -> None:
    assert START.validate_python("2026-07-01") == datetime(2026, 7, 1, tzinfo=UTC)
    assert END.validate_python("2026-07-01") == datetime(2026, 7, 2, tzinfo=UTC)
    assert START.validate_python("2026-07-01T08:00+08:00") == datetime(2026, 7, 1, tzinfo=UTC)
    assert END.validate_python("2026-07-01T08:00:00.5Z").microsecond == 500_000
    for bad in ("2026-07-01T08:00:00", "yesterday", "2026-13-01", "1782892800", "9999-12-31"):
        with pytest.raises(ValidationError):
            END.validate_python(bad)


@given(st.text(max_size=40))
def test_parse_w3c_raises_only_value_error(text: str) -> None:
    try:
        parsed = parse_w3c(text)
    except ValueError:
        return
    assert parsed.tzinfo is not None


@given(st.one_of(st.text(max_size=30), st.integers(), st.floats()))
def test_query_time_raises_only_validation_error(value: object) -> None:
    try:
        parsed = QUERY_TIME.validate_python(value)
    except ValidationError:
        return
    assert parsed.tzinfo is UTC


def test_catalogue_is_consistent() -> None:
    listed = services()
    assert [s.service_code for s in listed] == list(SERVICES)
    for s in listed:
        d = definition(s.service_code)
        assert d is not None
        assert s.metadata == bool(d.attributes)
        orders = [a.order for a in d.attributes]
        assert orders == sorted(set(orders))
        for a in d.attributes:
            assert bool(a.values) == a.datatype.endswith("valuelist")
    assert definition("ufo") is None


def test_attributes_checked_and_normalised() -> None:
    got = check_attributes("bike_overflow", {"operators": ["didi", "meituan", "didi"]})
    assert got == {"operators": ["didi", "meituan"]}
    assert check_attributes("bike_overflow", {"count": ["40"]}) == {"count": 40.0}
    assert check_attributes("road_occupation", {"since": ["2026-07-01T16:00+08:00"]}) == {
        "since": "2026-07-01T08:00:00+00:00"
    }
    assert check_attributes("waterlogging", {"depth": ["  "]}) == {}  # blank = not given
    bad = [
        ("waterlogging", {"depth": ["waist"]}, "not one of"),
        ("waterlogging", {"safety": ["x"]}, "no attribute 'safety'"),  # informational only
        ("waterlogging", {"depth": ["knee", "ankle"]}, "takes one value"),
        ("bike_overflow", {"count": ["nan"]}, "not a number"),
        ("bike_overflow", {"operators": ["ofo"]}, "not one of"),
        ("road_occupation", {"since": ["monday"]}, "attribute[since]"),
        ("device_fault", {"symptom": ["x" * 501]}, "over 500"),
        ("crowding", {"anything": ["x"]}, "no attribute"),
    ]
    for code, raw, message in bad:
        with pytest.raises(ValueError, match=message.replace("[", r"\[")):
            check_attributes(code, raw)


def test_geocoding_with_the_registry() -> None:
    dev = REGISTRY.devices["wl-00001"]
    place = geocode(REGISTRY, "by WL-00001, near the gate")
    assert place is not None
    assert (place.lon, place.lat, place.how) == (dev.device.lon, dev.device.lat, "device")
    site = geocode(REGISTRY, address_id=str(dev.device.site))
    assert site is not None and site.how == "site"
    micro = next(g for g in REGISTRY.grids.values() if g.level == "micro_grid")
    placed = geocode(REGISTRY, address_id=micro.id)
    assert placed is not None
    assert REGISTRY.locate(placed.lon, placed.lat, "micro_grid") == micro.id
    named = [g for g in REGISTRY.grids.values() if g.level == "grid" and g.name]
    longest = max(named, key=lambda g: len(g.name))
    by_name = geocode(REGISTRY, f"在{longest.name}里")
    assert by_name is not None and by_name.address_id == longest.id
    assert geocode(REGISTRY, "D01") is None  # a district is too large to place
    assert geocode(REGISTRY, "100 Nowhere Road") is None
    assert geocode(REGISTRY, address_id="wl-99999") is None
    assert describe(REGISTRY, dev.grid_id).startswith(REGISTRY.grids[dev.grid_id].name)


def test_xml_rendering_matches_the_specification_shape() -> None:
    doc = ET.fromstring(to_xml([Open311Error(code=404, description="none")], Open311Error))
    assert (doc.tag, doc[0].tag, doc[0].findtext("code")) == ("errors", "error", "404")
    d = definition("waterlogging")
    assert d is not None
    root = ET.fromstring(to_xml(d, ServiceDefinition))
    assert root.tag == "service_definition"
    keys = [v.text for v in root.iter("key")]
    assert keys == ["ankle", "knee", "deeper", "yes", "no"]
    assert root.find("attributes/attribute/variable").text == "false"  # type: ignore[union-attr]
    request = ServiceRequest(
        service_request_id="r1",
        status="open",
        status_notes="",
        service_name="n",
        service_code="crowding",
        description="<b>&",
        agency_responsible="",
        service_notice="",
        requested_datetime=datetime(2026, 7, 1, 16, 0, 0, 123, tzinfo=UTC),
        updated_datetime=None,
        expected_datetime=None,
        address="",
        address_id="",
        zipcode="",
        lat=None,
        long=None,
        media_url="",
    )
    out = ET.fromstring(to_xml([request], ServiceRequest))[0]
    assert out.findtext("description") == "<b>&"
    assert out.findtext("requested_datetime") == "2026-07-01T16:00:00+00:00"
    assert out.findtext("lat") == "" and out.findtext("expected_datetime") == ""
