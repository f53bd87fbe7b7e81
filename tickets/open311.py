"""Open311 GeoReport v2 (JSON) over the complaint intake.

Endpoints (``/open311/v2``): ``services.json``, ``requests.json`` (GET: read, POST:
file, with ``api_key``), ``requests/{service_request_id}.json``. Field names follow
the GeoReport v2 specification; service codes are the ticket categories. Errors are
the spec's ``[{"code": ..., "description": ...}]`` list.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime
from sqlalchemy import select

from gridwatch.contracts import Category, Complaint
from tickets.errors import UnknownLocation
from tickets.models import ComplaintRow, Ticket
from tickets.rules import TERMINAL_STATES
from tickets.service import TicketService

router = APIRouter(tags=["open311"])


def _to_utc(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc


# A query-string time: must carry an offset and fit the calendar once in UTC.
QueryTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

SERVICES: dict[str, tuple[str, str, str]] = {
    # code: (name, description, group)
    "waterlogging": ("积水 Waterlogging", "Standing water on a road or in an underpass", "street"),
    "bike_overflow": ("共享单车堆积 Bike overflow", "Shared bikes piled up or blocking", "street"),
    "street_vendor": ("占道经营 Street vending", "Unlicensed vending on the street", "street"),
    "exposed_garbage": ("暴露垃圾 Exposed garbage", "Garbage left in the open", "sanitation"),
    "road_occupation": ("道路占用 Road occupation", "Road or pavement occupied", "street"),
    "crowding": ("人员聚集 Crowding", "Unusual crowding", "public_safety"),
    "device_fault": ("设备故障 Device fault", "A street sensor or camera is broken", "devices"),
}


def _err(code: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": code, "description": description}], status_code=code)


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat(timespec="seconds") if v else None


def _request_doc(c: ComplaintRow, t: Ticket | None) -> dict[str, Any]:
    closed = t is not None and t.state in TERMINAL_STATES
    notes = ""
    if t is not None:
        notes = f"ticket {t.id}: {t.state}" + (f" ({t.closing_code})" if t.closing_code else "")
    name = SERVICES.get(c.category, (c.category, "", ""))[0]
    return {
        "service_request_id": c.id,
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": name,
        "service_code": c.category,
        "description": c.description,
        "agency_responsible": t.agency if t is not None else "",
        "service_notice": "",
        "requested_datetime": _iso(c.ts),
        "updated_datetime": _iso(t.updated_at if t is not None else c.created_at),
        "expected_datetime": _iso(t.resolve_due if t is not None else None),
        "address": "",
        "address_id": "",
        "zipcode": "",
        "lat": c.lat,
        "long": c.lon,
        "media_url": "",
    }


def _service(request: Request) -> TicketService:
    svc: TicketService = request.app.state.service
    return svc


@router.get("/services.json")
def services() -> list[dict[str, Any]]:
    return [
        {
            "service_code": code,
            "service_name": name,
            "description": desc,
            "metadata": False,
            "type": "realtime",
            "keywords": code.replace("_", ","),
            "group": group,
        }
        for code, (name, desc, group) in SERVICES.items()
    ]


@router.get("/requests.json", response_model=None)
def list_requests(
    request: Request,
    service_request_id: Annotated[str | None, Query(max_length=1000)] = None,
    service_code: Annotated[str | None, Query(max_length=200)] = None,
    start_date: QueryTime | None = None,
    end_date: QueryTime | None = None,
    status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))?$")] = None,
) -> list[dict[str, Any]] | JSONResponse:
    svc = _service(request)
    q = select(ComplaintRow, Ticket).join(Ticket, Ticket.id == ComplaintRow.ticket_id)
    if service_request_id:
        q = q.where(ComplaintRow.id.in_(service_request_id.split(",")[:50]))
    else:
        # GeoReport v2: without ids, default to the last 90 days, at most 1000 rows
        start = start_date or ((end_date or svc.clock()) - timedelta(days=90))
        q = q.where(ComplaintRow.ts >= start)
        if end_date:
            q = q.where(ComplaintRow.ts < end_date)
    if service_code:
        codes = service_code.split(",")
        if any(c not in SERVICES for c in codes):
            return _err(400, f"unknown service_code {service_code!r}")
        q = q.where(ComplaintRow.category.in_(codes))
    q = q.order_by(ComplaintRow.ts.desc()).limit(1000)
    wanted = set(status.split(",")) if status else {"open", "closed"}
    with svc.read_session() as s:
        docs = [_request_doc(c, t) for c, t in s.execute(q)]
    return [d for d in docs if d["status"] in wanted]


@router.get("/requests/{service_request_id}.json", response_model=None)
def get_request(request: Request, service_request_id: str) -> list[dict[str, Any]] | JSONResponse:
    svc = _service(request)
    if len(service_request_id) > 64:
        return _err(400, "service_request_id too long")
    with svc.read_session() as s:
        c = s.get(ComplaintRow, service_request_id)
        if c is None:
            return _err(404, f"service request {service_request_id!r} not found")
        return [_request_doc(c, s.get(Ticket, c.ticket_id))]


@router.post("/requests.json", response_model=None, status_code=201)
def post_request(
    request: Request,
    api_key: Annotated[str, Form(max_length=256)],
    service_code: Annotated[str, Form(max_length=32)],
    lat: Annotated[float, Form(ge=-90, le=90)],
    long: Annotated[float, Form(ge=-180, le=180)],
    description: Annotated[str, Form(max_length=2000)] = "",
    address_string: Annotated[str, Form(max_length=500)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
    first_name: Annotated[str, Form(max_length=100)] = "",
    last_name: Annotated[str, Form(max_length=100)] = "",
    phone: Annotated[str, Form(max_length=50)] = "",
    jurisdiction_id: Annotated[str, Form(max_length=100)] = "",
) -> list[dict[str, Any]] | JSONResponse:
    svc = _service(request)
    if not svc.config.open311_key_ok(api_key):
        return _err(403, "invalid api_key")
    if service_code not in SERVICES:
        return _err(400, f"unknown service_code {service_code!r}")
    text = description
    if address_string:
        text = f"{description} @ {address_string}".strip()
    complaint = Complaint(
        complaint_id=f"o311-{uuid4().hex[:16]}",
        ts=svc.clock(),
        category=Category(service_code),
        lon=long,
        lat=lat,
        description=text[:2000],
        source="open311",
    )
    try:
        out = svc.file_complaint(complaint)
    except UnknownLocation as exc:
        return _err(400, str(exc))
    notice = "已并入已有工单 joined an existing ticket" if out.linked else "新工单 new ticket"
    return [{"service_request_id": out.complaint_id, "service_notice": notice, "account_id": None}]
