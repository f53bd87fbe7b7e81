"""Service requests: file one (complaint + Open311 row in one transaction), read them back.

Every complaint is a service request (whatever its channel); Open311 requests add the
fields the complaint record does not carry. A request whose place could not be found
(an address the registry cannot name, a point outside every grid) is kept as an open
request without a complaint until an operator places it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from sqlalchemy import Select, exists, false, select
from sqlalchemy.orm import Session

from gridwatch.contracts import Category, Complaint
from gridwatch.registry import Registry
from tickets.errors import UnknownLocation
from tickets.models import ComplaintRow, Open311Request, Ticket
from tickets.open311 import catalogue
from tickets.open311.geocode import describe, geocode
from tickets.open311.wire import RequestCreated, ServiceRequest
from tickets.rules import TERMINAL_STATES
from tickets.service import TicketService

MAX_RESULTS = 1000
MAX_IDS = 100
DEFAULT_WINDOW = timedelta(days=90)
CODES = "|".join(catalogue.SERVICES)
UNPLACED_NOTICE = "位置待确认 not yet placed on the map: an operator will locate it"


NOT_BLANK: dict[str, Any] = {"type": "string", "pattern": r"\S"}
LAT: dict[str, Any] = {"type": "number", "minimum": -90, "maximum": 90}
LONG: dict[str, Any] = {"type": "number", "minimum": -180, "maximum": 180}


class RequestIn(BaseModel):
    """The form of ``POST requests.{fmt}`` (``attribute[code]`` fields come beside it)."""

    model_config = ConfigDict(
        extra="ignore",
        # where: a point, or an address that is not blank (a lone lat or long is ignored)
        json_schema_extra={
            "anyOf": [
                {"required": ["lat", "long"]},
                {"required": ["address_string"], "properties": {"address_string": NOT_BLANK}},
                {"required": ["address_id"], "properties": {"address_id": NOT_BLANK}},
            ]
        },
    )

    service_code: str = Field(pattern=f"^({CODES})$")
    api_key: str | None = Field(None, max_length=256)
    jurisdiction_id: str | None = Field(None, max_length=100)
    # optional but never null: a form has no null ("long=null" is not a number)
    lat: Annotated[float | None, WithJsonSchema(LAT)] = Field(None, ge=-90, le=90)
    long: Annotated[float | None, WithJsonSchema(LONG)] = Field(None, ge=-180, le=180)
    address_string: str = Field("", max_length=500)
    address_id: str = Field("", max_length=100)
    zipcode: str = Field("", max_length=20)
    email: str = Field("", max_length=200)
    device_id: str = Field("", max_length=100)
    account_id: str = Field("", max_length=100)
    first_name: str = Field("", max_length=100)
    last_name: str = Field("", max_length=100)
    phone: str = Field("", max_length=50)
    description: str = Field("", max_length=2000)
    media_url: str = Field("", max_length=1000, pattern=r"^(https?://\S+)?$")

    @model_validator(mode="after")
    def _located(self) -> RequestIn:
        point = self.lat is not None and self.long is not None
        if not point and not self.address_string.strip() and not self.address_id.strip():
            raise ValueError("a request needs lat and long, address_string or address_id")
        return self


def file_request(
    svc: TicketService, form: RequestIn, attributes: Mapping[str, Sequence[str]]
) -> RequestCreated:
    """File ``form`` as a complaint when it can be placed, else keep it unplaced."""
    attrs = catalogue.check_attributes(form.service_code, attributes)  # ValueError: 400
    now = svc.clock()
    rid = f"o311-{uuid4().hex[:16]}"
    lon, lat, located_by = form.long, form.lat, "point"
    address_id = form.address_id.strip()
    if lat is None or lon is None:  # no point (a lone coordinate places nothing)
        place = geocode(svc.registry, form.address_string, address_id)
        lon, lat = (place.lon, place.lat) if place else (None, None)
        located_by = place.how if place else "none"
        address_id = address_id or (place.address_id if place else "")

    def row(located: str) -> Open311Request:
        return Open311Request(
            id=rid,
            requested_at=now,
            service_code=form.service_code,
            lon=lon,
            lat=lat,
            located_by=located,
            address=form.address_string.strip(),
            address_id=address_id,
            zipcode=form.zipcode.strip(),
            description=form.description,
            media_url=form.media_url,
            email=form.email.strip(),
            phone=form.phone.strip(),
            first_name=form.first_name.strip(),
            last_name=form.last_name.strip(),
            device_id=form.device_id.strip(),
            account_id=form.account_id.strip(),
            attributes=attrs,
            created_at=now,
        )

    account = form.account_id.strip() or None
    if lon is not None and lat is not None:
        complaint = Complaint(
            complaint_id=rid,
            ts=now,
            category=Category(form.service_code),
            lon=lon,
            lat=lat,
            description=_complaint_text(form, attrs),
            source="open311",
        )
        try:
            out = svc.file_complaint(complaint, attach=lambda s: s.add(row(located_by)))
        except UnknownLocation:  # a point outside every grid: kept, as an address is
            pass
        else:
            notice = (
                "已并入已有工单 joined an existing ticket" if out.linked else "新工单 new ticket"
            )
            return RequestCreated(service_request_id=rid, service_notice=notice, account_id=account)
        located_by = "none"
    svc.write(lambda s: s.add(row(located_by)))  # a fresh row for every attempt
    return RequestCreated(
        service_request_id=rid, service_notice=UNPLACED_NOTICE, account_id=account
    )


def _complaint_text(form: RequestIn, attrs: Mapping[str, Any]) -> str:
    text = form.description
    if form.address_string.strip():
        text = f"{text} @ {form.address_string.strip()}".strip()
    if attrs:
        text += " (" + "; ".join(f"{k}: {v}" for k, v in attrs.items()) + ")"
    return text[:2000]


def _doc(
    registry: Registry, c: ComplaintRow | None, t: Ticket | None, o: Open311Request | None
) -> ServiceRequest:
    code = c.category if c is not None else o.service_code if o is not None else ""
    name = catalogue.SERVICES.get(code, (code, "", "", []))[0]
    closed = t is not None and t.state in TERMINAL_STATES
    if t is not None:
        notes = f"ticket {t.id}: {t.state}" + (f" ({t.closing_code})" if t.closing_code else "")
    else:
        notes = "awaiting location"
    if c is not None:
        notice = "已并入已有工单 joined an existing ticket" if c.linked else "新工单 new ticket"
    else:
        notice = UNPLACED_NOTICE
    address = o.address if o is not None and o.address else ""
    if not address and c is not None:
        address = describe(registry, c.grid_id)
    address_id = o.address_id if o is not None and o.address_id else ""
    if not address_id and c is not None:
        address_id = c.grid_id
    requested = c.ts if c is not None else o.requested_at if o is not None else None
    assert requested is not None  # a request is a complaint, an Open311 row, or both
    updated = t.updated_at if t is not None else o.created_at if o is not None else None
    return ServiceRequest(
        service_request_id=c.id if c is not None else o.id if o is not None else "",
        status="closed" if closed else "open",
        status_notes=notes,
        service_name=name,
        service_code=code,
        description=o.description if o is not None else c.description if c is not None else "",
        agency_responsible=t.agency if t is not None else "",
        service_notice=notice,
        requested_datetime=requested,
        updated_datetime=updated,
        expected_datetime=t.resolve_due if t is not None and not closed else None,
        address=address,
        address_id=address_id,
        zipcode=o.zipcode if o is not None else "",
        lat=c.lat if c is not None else o.lat if o is not None else None,
        long=c.lon if c is not None else o.lon if o is not None else None,
        media_url=o.media_url if o is not None else "",
    )


def _placed() -> Select[ComplaintRow, Ticket, Open311Request]:
    return (
        select(ComplaintRow, Ticket, Open311Request)
        .join(Ticket, Ticket.id == ComplaintRow.ticket_id)
        .outerjoin(Open311Request, Open311Request.id == ComplaintRow.id)
    )


def _unplaced() -> Select[Open311Request]:
    return select(Open311Request).where(~exists().where(ComplaintRow.id == Open311Request.id))


def get_request(s: Session, registry: Registry, rid: str) -> ServiceRequest | None:
    hit = s.execute(_placed().where(ComplaintRow.id == rid)).first()
    if hit is not None:
        return _doc(registry, *hit)
    o = s.get(Open311Request, rid)
    return None if o is None else _doc(registry, None, None, o)


def find_requests(
    s: Session,
    registry: Registry,
    now: datetime,
    *,
    ids: Sequence[str] = (),
    codes: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    statuses: Sequence[str] = (),
) -> list[ServiceRequest]:
    """GeoReport ``GET requests``: by ids (every other filter ignored), or by service
    codes, status and a time window (default: the 90 days before ``end`` or now);
    newest first, at most ``MAX_RESULTS``."""
    placed, unplaced = _placed(), _unplaced()
    if ids:
        placed = placed.where(ComplaintRow.id.in_(ids))
        unplaced = unplaced.where(Open311Request.id.in_(ids))
    else:
        lo = start if start is not None else (end or now) - DEFAULT_WINDOW
        placed = placed.where(ComplaintRow.ts >= lo)
        unplaced = unplaced.where(Open311Request.requested_at >= lo)
        if end is not None:
            placed = placed.where(ComplaintRow.ts < end)
            unplaced = unplaced.where(Open311Request.requested_at < end)
        if codes:
            placed = placed.where(ComplaintRow.category.in_(codes))
            unplaced = unplaced.where(Open311Request.service_code.in_(codes))
        wanted = set(statuses) or {"open", "closed"}
        if wanted == {"closed"}:
            placed = placed.where(Ticket.state.in_(TERMINAL_STATES))
            unplaced = unplaced.where(false())  # an unplaced request is open
        elif wanted == {"open"}:
            placed = placed.where(Ticket.state.not_in(TERMINAL_STATES))
    placed = placed.order_by(ComplaintRow.ts.desc()).limit(MAX_RESULTS)
    unplaced = unplaced.order_by(Open311Request.requested_at.desc()).limit(MAX_RESULTS)
    docs = [_doc(registry, c, t, o) for c, t, o in s.execute(placed)]
    docs += [_doc(registry, None, None, o) for o in s.scalars(unplaced)]
    docs.sort(key=lambda d: d.requested_datetime, reverse=True)
    return docs[:MAX_RESULTS]
