"""The GeoReport v2 routes, each served as ``….json`` and ``….xml``.

Reads are public; ``POST requests.{fmt}`` needs an ``api_key`` in the query string or
the form body. ``jurisdiction_id`` is accepted everywhere and ignored (one jurisdiction).
Errors are the specification's list of ``{code, description}`` in the requested format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from tickets.open311 import catalogue
from tickets.open311.requests import (
    CODES,
    MAX_IDS,
    RequestIn,
    file_request,
    find_requests,
    get_request,
)
from tickets.open311.wire import (
    FORMATS,
    MEDIA,
    Discovery,
    Endpoint,
    Format,
    RequestCreated,
    Service,
    ServiceDefinition,
    ServiceRequest,
    XmlResponse,
    documented,
    error,
    render,
)
from tickets.service import TicketService
from tickets.times import EndDate, StartDate

SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = datetime(2026, 12, 7, tzinfo=UTC)  # when this endpoint's surface last changed
IDS = r"^[\x21-\x2b\x2d-\x7e]+(,[\x21-\x2b\x2d-\x7e]+)*$"  # printable ASCII, commas between
_ATTRIBUTE = re.compile(r"attribute\[([^\]]{1,64})\](\[\])?")

Jurisdiction = Annotated[str | None, Query(max_length=100, description="accepted, ignored")]


def _service(request: Request) -> TicketService:
    svc: TicketService = request.app.state.service
    return svc


async def _attributes(request: Request) -> dict[str, list[str]]:
    """The ``attribute[code]`` (or ``attribute[code][]``) fields of the posted form."""
    form = await request.form()
    out: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        m = _ATTRIBUTE.fullmatch(key)
        if m is not None and isinstance(value, str):
            out.setdefault(m.group(1), []).append(value)
    return out


def build_router() -> APIRouter:
    router = APIRouter(tags=["open311"])
    for fmt in FORMATS:
        _add_routes(router, fmt)
    return router


def _add_routes(router: APIRouter, fmt: Format) -> None:
    cls: type[Response] = XmlResponse if fmt == "xml" else JSONResponse

    def add(path: str, endpoint: Callable[..., Any], model: Any, *errors: int, **kw: Any) -> None:
        status = kw.pop("status_code", 200)
        router.add_api_route(
            f"{path}.{fmt}",
            endpoint,
            name=f"{endpoint.__name__}_{fmt}",
            operation_id=f"open311_{endpoint.__name__}_{fmt}",
            response_model=None,
            status_code=status,
            responses=documented(fmt, model, *errors, ok_status=status),
            response_class=cls,
            **kw,
        )

    def discovery(request: Request, jurisdiction_id: Jurisdiction = None) -> Response:
        """Where this GeoReport v2 endpoint lives and which formats it speaks."""
        cfg = _service(request).config
        endpoint = Endpoint(
            specification=SPEC,
            url=str(request.base_url).rstrip("/") + "/open311/v2",
            changeset=CHANGESET,
            type="production",
            formats=[MEDIA["xml"], MEDIA["json"]],
        )
        doc = Discovery(
            changeset=CHANGESET,
            contact=cfg.open311_contact,
            key_service=cfg.open311_key_service,
            endpoints=[endpoint],
        )
        return render(fmt, doc, Discovery)

    def services(jurisdiction_id: Jurisdiction = None) -> Response:
        """The service list: one service per ticket category."""
        return render(fmt, catalogue.services(), Service)

    def service_definition(
        service_code: Annotated[str, Path(max_length=32)], jurisdiction_id: Jurisdiction = None
    ) -> Response:
        """The attributes of one service (``metadata`` true in the service list)."""
        definition = catalogue.definition(service_code)
        if definition is None:
            return error(fmt, 404, f"unknown service_code {service_code[:32]!r}")
        return render(fmt, definition, ServiceDefinition)

    def list_requests(
        request: Request,
        service_request_id: Annotated[
            str | None,
            Query(
                max_length=4000,
                pattern=IDS,
                description=f"comma-separated ids (at most {MAX_IDS}); other filters are "
                "then ignored",
            ),
        ] = None,
        service_code: Annotated[
            str | None, Query(pattern=f"^({CODES})(,({CODES}))*$", description="comma-separated")
        ] = None,
        start_date: StartDate | None = None,
        end_date: EndDate | None = None,
        status: Annotated[str | None, Query(pattern=r"^(open|closed)(,(open|closed))*$")] = None,
        jurisdiction_id: Jurisdiction = None,
    ) -> Response:
        """Service requests, newest first, at most 1000: by ``service_request_id``, or
        by service, status and a window (default: the last 90 days)."""
        svc = _service(request)
        ids = [i.strip() for i in (service_request_id or "").split(",") if i.strip()]
        if len(ids) > MAX_IDS:
            return error(fmt, 400, f"at most {MAX_IDS} service_request_id values")
        with svc.read_session() as s:
            docs = find_requests(
                s,
                svc.registry,
                svc.clock(),
                ids=ids,
                codes=service_code.split(",") if service_code else (),
                start=start_date,
                end=end_date,
                statuses=status.split(",") if status else (),
            )
        return render(fmt, docs, ServiceRequest)

    def one_request(
        request: Request,
        service_request_id: Annotated[str, Path(max_length=64)],
        jurisdiction_id: Jurisdiction = None,
    ) -> Response:
        """One service request (a list of one, as the specification has it)."""
        svc = _service(request)
        with svc.read_session() as s:
            doc = get_request(s, svc.registry, service_request_id)
        if doc is None:
            return error(fmt, 404, f"service request {service_request_id!r} not found")
        return render(fmt, [doc], ServiceRequest)

    def post_request(
        request: Request,
        form: Annotated[RequestIn, Form()],
        attributes: Annotated[dict[str, list[str]], Depends(_attributes)],
        api_key: Annotated[str | None, Query(max_length=256)] = None,
        jurisdiction_id: Jurisdiction = None,
    ) -> Response:
        """File a request: ``lat`` + ``long``, ``address_string`` or ``address_id``;
        ``attribute[code]`` fields per the service definition. An address the registry
        cannot place is accepted and kept for an operator."""
        svc = _service(request)
        key = form.api_key or api_key
        if not key:
            return error(fmt, 403, "api_key required")
        if not svc.config.open311_key_ok(key):
            return error(fmt, 403, "invalid api_key")
        try:
            created = file_request(svc, form, attributes)
        except ValueError as exc:
            return error(fmt, 400, str(exc))
        return render(fmt, [created], RequestCreated, 201)

    add("/discovery", discovery, Discovery, 400)
    add("/services", services, list[Service], 400)
    add("/services/{service_code}", service_definition, ServiceDefinition, 400, 404)
    add("/requests", list_requests, list[ServiceRequest], 400, 503)
    add("/requests/{service_request_id}", one_request, list[ServiceRequest], 400, 404, 503)
    add(
        "/requests",
        post_request,
        list[RequestCreated],
        400,
        403,
        413,
        503,
        methods=["POST"],
        status_code=201,
    )
