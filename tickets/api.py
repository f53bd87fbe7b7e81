"""The ticket REST API, Open311 GeoReport v2 and the watch-floor console, in one app.

``create_app(service)`` builds the FastAPI application; ``gridwatch tickets serve``
runs it with uvicorn. Every ``/api/v1`` endpoint needs a bearer token (viewer, operator
or admin); Open311 reads are public as in GeoReport v2, and Open311 POST needs an
``api_key``. ``/healthz`` and the console's static files are public (they hold no data).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from shapely.geometry import mapping

from gridwatch.contracts import Alert, Category, Complaint, Severity, TicketState
from tickets import queries
from tickets.api_errors import errors, install_handlers, refuse_repeated_query
from tickets.auth import Admin, Operator, Viewer
from tickets.errors import TicketError, TicketNotFound
from tickets.middleware import LimitBody, SecurityHeaders
from tickets.open311 import build_router as open311_router
from tickets.service import TicketService
from tickets.times import QueryTime

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
TicketId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Actor = Annotated[str, Field(max_length=64)]


class AlertIn(Alert):
    """An ``Alert`` posted as JSON (lax parsing of enums and timestamps at the edge)."""

    model_config = ConfigDict(strict=False)


class ComplaintIn(Complaint):
    model_config = ConfigDict(strict=False)


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class DispatchIn(ActionIn):
    assignee: str | None = Field(None, min_length=1, max_length=64)


class AssignIn(ActionIn):
    assignee: str = Field(min_length=1, max_length=64)


class ResolveIn(ActionIn):
    closing_code: Literal["real", "duplicate", "already_fixed"] = "real"


def create_app(service: TicketService, *, sweep_every_s: float | None = None) -> FastAPI:
    """The FastAPI app over ``service``; ``sweep_every_s`` runs the SLA sweep in-process."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if sweep_every_s:
            task = asyncio.create_task(_sweeper(service, sweep_every_s))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="GridWatch tickets",
        version="1",
        description="Proactive tickets: lifecycle, SLA, complaints, Open311, KPIs.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_repeated_query)],
    )
    app.state.service = service
    app.state.config = service.config
    app.state.streams = 0
    app.add_middleware(LimitBody)
    app.add_middleware(SecurityHeaders)
    install_handlers(app)
    app.include_router(_api_router(service), prefix="/api/v1")
    app.include_router(open311_router(), prefix="/open311/v2")
    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    return app


async def _sweeper(service: TicketService, every_s: float) -> None:
    while True:
        try:
            counts = await asyncio.to_thread(service.sweep)
            if any(counts.values()):
                log.info("sla sweep %s", counts)
        except TicketError as exc:  # a database hiccup: log it, try again next round
            log.error("sla sweep failed error=%s", exc)
        await asyncio.sleep(every_s)


def _api_router(service: TicketService) -> APIRouter:
    r = APIRouter()
    cfg = service.config
    action_errors = errors(400, 401, 403, 404, 409, 413, 422, 503)

    def detail_or_404(ticket_id: str) -> dict[str, Any]:
        with service.read_session() as s:
            d = queries.ticket_detail(s, ticket_id)
        if d is None:
            raise TicketNotFound(ticket_id)
        return d

    @r.get("/me", tags=["meta"], responses=errors(401))
    def me(who: Viewer) -> dict[str, str]:
        return {"name": who.name, "role": who.role}

    @r.get("/tickets", tags=["tickets"], responses=errors(401, 422, 503))
    def list_tickets(
        _: Viewer,
        state: Annotated[list[TicketState] | None, Query(max_length=8)] = None,
        grid_id: Annotated[str | None, Query(max_length=64)] = None,
        category: Category | None = None,
        severity: Severity | None = None,
        since: QueryTime | None = None,
        until: QueryTime | None = None,
        q: Annotated[str | None, Query(max_length=100)] = None,
        active: bool | None = None,
        # the configured page limit, declared (a default, not Annotated: annotations are
        # resolved in the module's globals, where ``cfg`` is not)
        limit: int = Query(min(100, cfg.max_page), ge=1, le=cfg.max_page),
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        f = queries.TicketFilter(
            state=tuple(state or ()),
            grid_id=grid_id,
            category=category.value if category else None,
            severity=severity.value if severity else None,
            since=since,
            until=until,
            q=q,
            active=active,
            limit=limit,
            offset=offset,
        )
        with service.read_session() as s:
            return queries.list_tickets(s, f)

    @r.get("/queue", tags=["tickets"], responses=errors(401, 422, 503))
    def queue(
        _: Viewer,
        limit: Annotated[int, Query(ge=1, le=500)] = 200,
        group: queries.QueueGroup = "none",
    ) -> dict[str, Any]:
        """Active tickets in watch-floor order. ``group=grid`` rolls them up per grid
        (counts by category and state, worst severity, nearest due, breaches, oldest,
        ticket ids); ``group=auto`` does so for districts in storm mode only."""
        with service.read_session() as s:
            if group == "none":
                return {"items": queries.queue(s, limit), "last_change": queries.last_change_id(s)}
            view = queries.queue_view(s, group, service.clock(), limit)
            return {**view, "last_change": queries.last_change_id(s)}

    @r.get("/storms", tags=["reports"], responses=errors(401, 422, 503))
    def storms(
        _: Viewer,
        active: bool | None = None,
        district_id: Annotated[str | None, Query(max_length=64)] = None,
        since: QueryTime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        """Storm periods (storm mode of a district, on → off), newest first."""
        with service.read_session() as s:
            return queries.storm_periods(
                s, active=active, district_id=district_id, since=since, limit=limit
            )

    @r.get("/tickets/{ticket_id}", tags=["tickets"], responses=errors(401, 404, 422, 503))
    def get_ticket(ticket_id: TicketId, _: Viewer) -> dict[str, Any]:
        return detail_or_404(ticket_id)

    @r.post("/tickets/{ticket_id}/acknowledge", tags=["actions"], responses=action_errors)
    def acknowledge(ticket_id: TicketId, body: ActionIn, who: Operator) -> dict[str, Any]:
        service.acknowledge(ticket_id, who.name, body.reason)
        return detail_or_404(ticket_id)

    @r.post("/tickets/{ticket_id}/assign", tags=["actions"], responses=action_errors)
    def assign(ticket_id: TicketId, body: AssignIn, who: Operator) -> dict[str, Any]:
        service.assign(ticket_id, body.assignee, who.name, body.reason)
        return detail_or_404(ticket_id)

    @r.post("/tickets/{ticket_id}/dispatch", tags=["actions"], responses=action_errors)
    def dispatch(ticket_id: TicketId, body: DispatchIn, who: Operator) -> dict[str, Any]:
        service.dispatch(ticket_id, who.name, body.reason, body.assignee)
        return detail_or_404(ticket_id)

    @r.post("/tickets/{ticket_id}/resolve", tags=["actions"], responses=action_errors)
    def resolve(ticket_id: TicketId, body: ResolveIn, who: Operator) -> dict[str, Any]:
        service.resolve(ticket_id, who.name, body.closing_code, body.reason)
        return detail_or_404(ticket_id)

    @r.post("/tickets/{ticket_id}/false_alarm", tags=["actions"], responses=action_errors)
    def false_alarm(ticket_id: TicketId, body: ActionIn, who: Operator) -> dict[str, Any]:
        service.mark_false_alarm(ticket_id, who.name, body.reason)
        return detail_or_404(ticket_id)

    @r.post("/alerts", tags=["intake"], responses=errors(400, 401, 403, 413, 422, 503))
    def raise_alert(alert: AlertIn, _: Admin) -> dict[str, Any]:
        out = service.raise_alert(alert)
        return {**out.__dict__, "duplicate": out.duplicate}

    @r.post("/complaints", tags=["intake"], responses=errors(400, 401, 403, 413, 422, 503))
    def file_complaint(complaint: ComplaintIn, _: Operator) -> dict[str, Any]:
        return dict(service.file_complaint(complaint).__dict__)

    @r.post("/sweep", tags=["actions"], responses=errors(401, 403, 503))
    def sweep(_: Admin) -> dict[str, int]:
        return service.sweep()

    @r.get("/kpis", tags=["reports"], responses=errors(401, 422, 503))
    def kpis(_: Viewer, since: QueryTime | None = None, until: QueryTime | None = None) -> Any:
        with service.read_session() as s:
            return queries.kpis(s, since, until)

    @r.get("/precision", tags=["reports"], responses=errors(401, 503))
    def precision(_: Viewer) -> dict[str, Any]:
        with service.read_session() as s:
            return queries.precision_report(s)

    @r.get("/near-misses", tags=["reports"], responses=errors(401, 422, 503))
    def near_misses(
        _: Viewer,
        grid_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        with service.read_session() as s:
            return queries.near_misses(s, limit, grid_id)

    @r.get("/grids.geojson", tags=["map"], responses=errors(401))
    def grids(_: Viewer) -> dict[str, Any]:
        reg = service.registry
        features = [
            {
                "type": "Feature",
                "properties": {"id": g.id, "level": g.level, "name": g.name, "parent": g.parent},
                "geometry": mapping(reg.geometry[g.id]),
            }
            for g in reg.grids.values()
            if g.level in ("district", "street", "grid")
        ]
        return {"type": "FeatureCollection", "features": features}

    @r.get(
        "/stream",
        tags=["tickets"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
            **errors(401, 429, 503),
        },
    )
    async def stream(request: Request, _: Viewer) -> StreamingResponse:
        """Server-sent events: one ``ticket`` event per committed change (outbox order)."""
        if request.app.state.streams >= 64:
            raise HTTPException(429, "too many live streams")
        header = request.headers.get("last-event-id", "")
        with service.read_session() as s:
            start = int(header) if header.isdigit() else queries.last_change_id(s)
        return StreamingResponse(
            _events(request, service, start, cfg.sse_poll_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return r


async def _events(
    request: Request, service: TicketService, after: int, poll_s: float
) -> AsyncIterator[str]:
    def fetch(last: int) -> list[tuple[int, dict[str, Any]]]:
        with service.read_session() as s:
            return queries.changes_since(s, last)

    request.app.state.streams += 1
    try:
        yield f"event: hello\ndata: {json.dumps({'last_change': after})}\n\n"
        idle = 0.0
        while not await request.is_disconnected():
            rows = await asyncio.to_thread(fetch, after)
            for seq, payload in rows:
                after = seq
                yield f"id: {seq}\nevent: ticket\ndata: {json.dumps(payload)}\n\n"
            if not rows:
                idle += poll_s
                if idle >= 15:
                    idle = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(poll_s)
    finally:
        request.app.state.streams -= 1
