"""GeoReport v2 wire formats: pydantic models, and their JSON and XML renderings.

The XML follows the specification's examples: a root element per document
(``services``, ``service_definition``, ``service_requests``, ``discovery``, ``errors``),
one child per item (``service``, ``request``, ``error``), one element per field, lists
wrapped in their plural (``attributes/attribute``, ``values/value``,
``endpoints/endpoint``, ``formats/format``), ``true``/``false`` for booleans and an
empty element for a missing value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, PlainSerializer

Format = Literal["json", "xml"]
FORMATS: tuple[Format, ...] = ("json", "xml")
MEDIA: dict[Format, str] = {"json": "application/json", "xml": "text/xml"}
# W3C datetimes as the specification writes them: to the second, with an offset
W3CTime = Annotated[
    datetime,
    PlainSerializer(lambda v: v.astimezone(UTC).isoformat(timespec="seconds"), return_type=str),
]
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(Wire):
    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class AttributeValue(Wire):
    key: str
    name: str


class Attribute(Wire):
    variable: bool
    code: str
    datatype: Datatype
    required: bool
    datatype_description: str
    order: int
    description: str
    values: list[AttributeValue] = []


class ServiceDefinition(Wire):
    service_code: str
    attributes: list[Attribute]


class ServiceRequest(Wire):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str
    service_notice: str
    requested_datetime: W3CTime
    updated_datetime: W3CTime | None
    expected_datetime: W3CTime | None
    address: str
    address_id: str
    zipcode: str
    lat: float | None
    long: float | None
    media_url: str


class RequestCreated(Wire):
    service_request_id: str
    service_notice: str
    account_id: str | None


class Open311Error(Wire):
    code: int
    description: str


class Endpoint(Wire):
    specification: str
    url: str
    changeset: W3CTime
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(Wire):
    changeset: W3CTime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


# root element, item element (None: the document is one object)
ROOTS: dict[type[Wire], tuple[str, str | None]] = {
    Service: ("services", "service"),
    ServiceDefinition: ("service_definition", None),
    ServiceRequest: ("service_requests", "request"),
    RequestCreated: ("service_requests", "request"),
    Open311Error: ("errors", "error"),
    Discovery: ("discovery", None),
}
LIST_ITEMS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint"}
LIST_ITEMS["formats"] = "format"


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _fill(parent: ET.Element, doc: dict[str, Any]) -> None:
    for name, value in doc.items():
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            for item in value:
                sub = ET.SubElement(child, LIST_ITEMS.get(name, "item"))
                if isinstance(item, dict):
                    _fill(sub, item)
                else:
                    sub.text = _text(item)
        elif isinstance(value, dict):
            _fill(child, value)
        else:
            child.text = _text(value)


def to_xml(models: Wire | Sequence[Wire], kind: type[Wire]) -> bytes:
    root_tag, item_tag = ROOTS[kind]
    root = ET.Element(root_tag)
    if isinstance(models, Wire):
        _fill(root, models.model_dump(mode="json"))
    else:
        for m in models:
            _fill(ET.SubElement(root, item_tag or "item"), m.model_dump(mode="json"))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _json(models: Wire | Sequence[Wire]) -> Any:
    if isinstance(models, Wire):
        return models.model_dump(mode="json")
    return [m.model_dump(mode="json") for m in models]


def render(
    fmt: Format, models: Wire | Sequence[Wire], kind: type[Wire], status: int = 200
) -> Response:
    if fmt == "xml":
        return Response(to_xml(models, kind), status, media_type=MEDIA["xml"])
    return JSONResponse(_json(models), status)


def error(
    fmt: Format, code: int, description: str, headers: dict[str, str] | None = None
) -> Response:
    response = render(fmt, [Open311Error(code=code, description=description)], Open311Error, code)
    response.headers.update(headers or {})
    return response


class XmlResponse(Response):
    media_type = MEDIA["xml"]


def format_of(path: str) -> Format:
    """The format a GeoReport path asks for: XML for ``….xml``, JSON otherwise."""
    return "xml" if path.rstrip("/").endswith(".xml") else "json"


def documented(
    fmt: Format, model: Any, *errors: int, ok_status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a GeoReport route: its document and its error lists."""
    if fmt == "json":
        ok: dict[str, Any] = {"model": model}
        err: dict[str, Any] = {"model": list[Open311Error]}
    else:
        xml = {"schema": {"type": "string", "description": "GeoReport v2 XML"}}
        ok = {"content": {MEDIA["xml"]: xml}}
        err = {"content": {MEDIA["xml"]: xml}}
    out: dict[int | str, dict[str, Any]] = {ok_status: {**ok, "description": "GeoReport v2"}}
    for code in errors:
        out[code] = {**err, "description": ERROR_TEXT.get(code, "error")}
    return out


ERROR_TEXT = {
    400: "bad request: a list of {code, description}",
    403: "api_key missing or not valid",
    404: "no such service or service request",
    405: "method not allowed",
    413: "body too large",
    503: "ticket store unavailable",
}
