"""Open311 GeoReport v2 against a real uvicorn server, read through a third-party client.

``georeport`` (PyPI) is the GeoReport v2 client that runs on Python 3; it reads services,
service definitions and requests in JSON and in XML (parsed with ``xmltodict``). It has no
POST, so requests are filed over plain HTTP the way the Python 2 clients ``open311``
(``api_key`` in the query string, XML) and ``three`` (``api_key`` in the form body)
send them, and read back through ``georeport``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import xmltodict
from georeport import GeoReport

from gridwatch.registry import Registry
from gridwatch.stack import free_port
from tickets.api import create_app
from tickets.config import TicketsConfig
from tickets.db import make_engine
from tickets.models import Open311Request
from tickets.open311.catalogue import SERVICES
from tickets.service import TicketService

from .tickets_testlib import OPEN311_KEY, T0, TOKENS, Clock, api_config, live_server, make_alert

pytestmark = pytest.mark.integration

FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
}  # fmt: skip
FORMATS = ("json", "xml")


@pytest.fixture
def base(live_url: str) -> str:
    return f"{live_url}/open311/v2"


@pytest.fixture
def http(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=30) as c:
        yield c


def records(doc: Any) -> list[dict[str, Any]]:
    """georeport's answer as a list (xmltodict gives one child as a dict)."""
    return doc if isinstance(doc, list) else [doc]


def created_id(resp: httpx.Response, fmt: str) -> str:
    assert resp.status_code == 201, resp.text
    if fmt == "json":
        [doc] = resp.json()
    else:
        assert resp.headers["content-type"].startswith("text/xml")
        doc = xmltodict.parse(resp.content)["service_requests"]["request"]
    assert set(doc) == {"service_request_id", "service_notice", "account_id"}
    return str(doc["service_request_id"])


def xml_errors(resp: httpx.Response) -> list[dict[str, str]]:
    assert resp.headers["content-type"].startswith("text/xml"), resp.text
    return records(xmltodict.parse(resp.content)["errors"]["error"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_client_reads_services_and_definitions(base: str, fmt: str) -> None:
    client = GeoReport(base, output_format=fmt)
    services = records(client.get_service_list())
    assert [s["service_code"] for s in services] == list(SERVICES)
    by_code = {s["service_code"]: s for s in services}
    truth = {"json": (True, False), "xml": ("true", "false")}[fmt]
    assert (by_code["waterlogging"]["metadata"], by_code["crowding"]["metadata"]) == truth

    definition = client.get_service_definition("waterlogging")
    assert definition["service_code"] == "waterlogging"
    attrs = definition["attributes"] if fmt == "json" else definition["attributes"]["attribute"]
    depth = next(a for a in attrs if a["code"] == "depth")
    assert depth["datatype"] == "singlevaluelist"
    values = depth["values"] if fmt == "json" else depth["values"]["value"]
    assert [v["key"] for v in values] == ["ankle", "knee", "deeper"]
    assert str(attrs[0]["variable"]).lower() == "false"  # the safety notice

    with pytest.raises(requests.HTTPError) as err:
        client.get_service_definition("ufo")
    assert err.value.response.status_code == 404
    body = err.value.response.content
    if fmt == "json":
        assert err.value.response.json()[0]["code"] == 404
    else:
        assert xmltodict.parse(body)["errors"]["error"]["code"] == "404"


@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery(http: httpx.Client, base: str, fmt: str) -> None:
    r = http.get(f"/discovery.{fmt}")
    assert r.status_code == 200
    doc = r.json() if fmt == "json" else xmltodict.parse(r.content)["discovery"]
    endpoint = doc["endpoints"][0] if fmt == "json" else doc["endpoints"]["endpoint"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == base
    formats = endpoint["formats"] if fmt == "json" else endpoint["formats"]["format"]
    assert set(formats) == {"text/xml", "application/json"}
    assert datetime.fromisoformat(doc["changeset"]).tzinfo is not None


def test_every_field_round_trips_in_both_formats(
    http: httpx.Client, base: str, registry: Registry, api_service: TicketService
) -> None:
    dev = registry.devices["wl-00001"]
    form = {
        "service_code": "waterlogging",
        "lat": str(dev.device.lat),
        "long": str(dev.device.lon),
        "address_string": "东门 east gate, 网格 1-1",
        "zipcode": "200051",
        "email": "resident@example.org",
        "first_name": "Li",
        "last_name": "Wei",
        "phone": "+86 21 5555 0100",
        "device_id": "phone-7",
        "account_id": "acct-42",
        "description": "积水 water up to the knee",
        "media_url": "https://photos.example.org/p/1.jpg",
        "attribute[depth]": "knee",
        "attribute[passable]": "no",
        "jurisdiction_id": "gridwatch",
    }
    # the open311 library's way: XML, api_key and jurisdiction_id in the query string
    xml_id = created_id(
        http.post("/requests.xml", params={"api_key": OPEN311_KEY}, data=form), "xml"
    )
    # the three library's way: JSON, api_key in the form body
    json_id = created_id(http.post("/requests.json", data={**form, "api_key": OPEN311_KEY}), "json")

    for fmt in FORMATS:
        client = GeoReport(base, output_format=fmt)
        for rid in (xml_id, json_id):
            doc = client.get_service_request(rid)
            assert set(doc) == FIELDS
            assert (doc["service_request_id"], doc["service_code"], doc["status"]) == (
                rid,
                "waterlogging",
                "open",
            )
            assert doc["description"] == form["description"]
            assert doc["address"] == form["address_string"]
            assert doc["zipcode"] == form["zipcode"]
            assert doc["media_url"] == form["media_url"]
            assert doc["agency_responsible"] == "drainage"
            assert doc["address_id"] == dev.grid_id  # the grid the point lies in
            assert float(doc["lat"]) == dev.device.lat
            assert float(doc["long"]) == dev.device.lon
            assert datetime.fromisoformat(doc["requested_datetime"]) == T0
            assert datetime.fromisoformat(doc["expected_datetime"]) > T0
            assert "email" not in doc  # contact details are not published
        both = records(client.get_service_requests(service_request_id=f"{xml_id},{json_id}"))
        assert {d["service_request_id"] for d in both} == {xml_id, json_id}

    with api_service.read_session() as s:
        row = s.get(Open311Request, json_id)
        assert row is not None
        kept = (row.email, row.first_name, row.last_name, row.phone, row.device_id)
        assert kept == ("resident@example.org", "Li", "Wei", "+86 21 5555 0100", "phone-7")
        assert (row.account_id, row.attributes) == ("acct-42", {"depth": "knee", "passable": "no"})
    created = http.post("/requests.json", data={**form, "api_key": OPEN311_KEY}).json()
    assert created[0]["account_id"] == "acct-42"


def test_address_only_requests_are_geocoded_or_kept(
    http: httpx.Client, base: str, registry: Registry
) -> None:
    def file(**fields: str) -> str:
        data = {"api_key": OPEN311_KEY, "service_code": "crowding", **fields}
        return created_id(http.post("/requests.json", data=data), "json")

    client = GeoReport(base, output_format="json")
    near_device = client.get_service_request(file(address_string="bus stop by wl-00002"))
    dev = registry.devices["wl-00002"].device
    assert (near_device["lat"], near_device["long"]) == (dev.lat, dev.lon)
    assert near_device["address_id"] == "wl-00002"

    grid = next(g for g in registry.grids.values() if g.level == "grid" and g.name)
    by_name = client.get_service_request(file(address_string=f"路口 {grid.name} 北侧"))
    assert registry.locate(by_name["long"], by_name["lat"], "grid") == grid.id
    by_id = client.get_service_request(file(address_id=grid.id))
    assert registry.locate(by_id["long"], by_id["lat"], "grid") == grid.id
    lone = client.get_service_request(file(lat="10.0", address_id=grid.id))  # lat alone
    assert registry.locate(lone["long"], lone["lat"], "grid") == grid.id

    nowhere = file(address_string="100 Nowhere Road")
    for fmt in FORMATS:
        doc = GeoReport(base, output_format=fmt).get_service_request(nowhere)
        assert (doc["status"], doc["address"]) == ("open", "100 Nowhere Road")
        assert doc["lat"] in (None, "") and doc["long"] in (None, "")
        assert doc["expected_datetime"] in (None, "")
    listed = client.get_service_requests(status="open", service_code="crowding")
    assert nowhere in {d["service_request_id"] for d in listed}
    assert client.get_service_requests(status="closed") == []
    # a point outside every grid is kept the same way (an operator places it)
    outside = file(lat="10.0", long="10.0")
    assert client.get_service_request(outside)["status_notes"] == "awaiting location"


def test_listing_ids_dates_and_window(
    http: httpx.Client, base: str, api_service: TicketService, registry: Registry, clock: Clock
) -> None:
    dev = registry.devices["wl-00001"]
    api_service.raise_alert(
        make_alert("w1", "forecast", grid=dev.grid_id, lon=dev.device.lon, lat=dev.device.lat)
    )
    data = {
        "api_key": OPEN311_KEY,
        "service_code": "waterlogging",
        "lat": dev.device.lat,
        "long": dev.device.lon,
    }
    first = created_id(http.post("/requests.json", data=data), "json")
    clock.advance(days=2)
    second = created_id(http.post("/requests.json", data=data), "json")
    client = GeoReport(base, output_format="json")

    def ids(**params: str) -> list[str]:
        return [d["service_request_id"] for d in client.get_service_requests(**params)]

    assert ids() == [second, first]  # newest first
    # service_request_id wins over every other filter
    assert ids(
        service_request_id=f"{first},{second}",
        status="closed",
        service_code="crowding",
        start_date="2030-01-01",
    ) == [second, first]
    assert ids(start_date="2026-07-03") == [second]  # a date alone: that day's start
    assert ids(end_date="2026-07-01") == [first]  # a date alone: the whole day
    assert ids(start_date="2026-07-01T00:00:00+08:00", end_date="2026-07-02T00:00Z") == [first]
    assert ids(status="open,closed", service_code="waterlogging,crowding") == [second, first]
    clock.advance(days=89)  # 91 days after the first: outside the default window
    assert ids() == [second]
    assert ids(start_date="2026-06-01") == [second, first]
    many = ",".join(f"id-{i}" for i in range(101))
    r = http.get("/requests.xml", params={"service_request_id": many})
    assert r.status_code == 400
    assert xml_errors(r)[0]["description"].startswith("at most 100")


@pytest.mark.parametrize(
    ("method", "path", "kw", "status"),
    [
        ("GET", "/nope", {}, 404),
        ("GET", "/requests/nope", {}, 404),
        ("DELETE", "/requests", {}, 405),
        ("GET", "/requests", {"params": {"start_date": "2026-07-01T08:00:00"}}, 400),
        ("GET", "/requests", {"params": {"end_date": "yesterday"}}, 400),
        ("GET", "/requests", {"params": {"status": "pending"}}, 400),
        ("GET", "/requests", {"params": {"service_code": "ufo"}}, 400),
        ("POST", "/requests", {"data": {"service_code": "crowding", "lat": 31.2}}, 400),
        ("POST", "/requests", {"data": {"service_code": "crowding", "address_id": " "}}, 400),
        ("POST", "/requests", {"data": {"service_code": "crowding", "address_id": "D01"}}, 403),
        ("POST", "/requests", {"data": {"lat": 31.2, "long": 121.4, "api_key": "x"}}, 400),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_are_open311_lists_in_the_asked_format(
    http: httpx.Client, method: str, path: str, kw: dict[str, Any], status: int, fmt: str
) -> None:
    r = http.request(method, f"{path}.{fmt}", **kw)
    assert r.status_code == status, r.text
    if fmt == "json":
        [err] = r.json()
    else:
        [err] = xml_errors(r)
    assert int(err["code"]) == status
    assert err["description"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"api_key": "wrong"}, "invalid api_key"),
        ({"attribute[depth]": "waist"}, "attribute[depth]"),
        ({"attribute[colour]": "blue"}, "no attribute 'colour'"),
        ({"media_url": "javascript:alert(1)"}, "media_url"),
    ],
)
def test_posts_refused_with_a_reason(
    http: httpx.Client, fields: dict[str, str], message: str
) -> None:
    data = {"api_key": OPEN311_KEY, "service_code": "waterlogging", "address_id": "D01-S01-G01"}
    r = http.post("/requests.xml", data={**data, **fields})
    assert r.status_code in (400, 403), r.text
    assert message in xml_errors(r)[0]["description"]


def test_too_large_body_is_an_open311_error(http: httpx.Client) -> None:
    r = http.post(
        "/requests.xml", params={"api_key": OPEN311_KEY}, data={"description": "x" * 70_000}
    )
    assert r.status_code == 413
    assert xml_errors(r)[0]["code"] == "413"


def test_store_down_is_a_503_in_the_asked_format(registry: Registry, tmp_path: Path) -> None:
    """A database that cannot be reached: reads and filings answer 503, never 500."""
    url = f"postgresql+psycopg://gw:gw@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    cfg = api_config(TicketsConfig(db_url=url, var_dir=tmp_path))
    down = TicketService(make_engine(url), cfg, registry)
    with live_server(create_app(down)) as live, httpx.Client(base_url=live, timeout=60) as c:
        r = c.get("/open311/v2/requests.xml")
        assert r.status_code == 503
        assert xml_errors(r)[0]["code"] == "503"
        data = {"api_key": OPEN311_KEY, "service_code": "crowding", "address_string": "?"}
        r = c.post("/open311/v2/requests.json", data=data)
        assert r.status_code == 503
        assert r.json()[0]["code"] == 503
        r = c.get("/api/v1/kpis", headers={"Authorization": f"Bearer {TOKENS['viewer']}"})
        assert (r.status_code, r.json()["error"]) == (503, "store_unavailable")
