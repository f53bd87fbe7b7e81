"""Error bodies of the ticket API, their OpenAPI declarations and the handlers behind them.

``/api/v1`` and the meta routes answer errors as ``{"error": slug, "detail": text}``
(``ErrorBody``); ``/open311/`` routes as the GeoReport list of ``{code, description}``
in the requested format (``.xml`` → XML, else JSON). Every status a route can return is
declared with ``errors(...)`` so that the OpenAPI document tells the truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tickets import open311
from tickets.errors import (
    IllegalTransition,
    StoreError,
    TicketError,
    TicketNotFound,
    UnknownLocation,
)


class ErrorBody(BaseModel):
    """An error of the ticket API."""

    error: str  # a stable slug: invalid, not_found, unauthorized, ...
    detail: str  # for people


ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request breaks a rule of the ticket store"),
    401: ("unauthorized", "no bearer token, or an unknown one"),
    403: ("forbidden", "the token's role may not do this"),
    404: ("not_found", "no such ticket"),
    405: ("method_not_allowed", "the path does not take this method"),
    409: ("illegal_transition", "the lifecycle forbids this change now"),
    413: ("too_large", "body over 64 KiB"),
    422: ("invalid", "a parameter or the body is not valid (or names an unknown place)"),
    429: ("too_many_streams", "too many live streams"),
    503: ("store_unavailable", "the ticket database cannot be reached"),
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses ``codes`` of an ``/api/v1`` route."""
    return {c: {"model": ErrorBody, "description": ERRORS[c][1]} for c in codes}


def error_body(path: str, code: int, slug: str, detail: str, **kw: Any) -> Response:
    """The error response for ``path``: GeoReport format under ``/open311/``."""
    headers: dict[str, str] | None = kw.get("headers")
    if path.startswith("/open311/"):
        return open311.error(open311.format_of(path), code, detail, headers)
    return JSONResponse({"error": slug, "detail": detail}, status_code=code, headers=headers)


def _summary(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', '')}")
    return "; ".join(parts)[:500]


def install_handlers(app: FastAPI) -> None:
    def path(request: Request) -> str:
        return request.url.path

    @app.exception_handler(TicketNotFound)
    async def not_found(request: Request, exc: TicketNotFound) -> Response:
        return error_body(path(request), 404, "not_found", str(exc))

    @app.exception_handler(IllegalTransition)
    async def illegal(request: Request, exc: IllegalTransition) -> Response:
        return error_body(path(request), 409, "illegal_transition", str(exc))

    @app.exception_handler(UnknownLocation)
    async def unknown(request: Request, exc: UnknownLocation) -> Response:
        return error_body(path(request), 422, "unknown_location", str(exc))

    @app.exception_handler(OperationalError)
    async def database(request: Request, exc: OperationalError) -> Response:
        # a read that found the database gone (writes retry, then raise StoreError)
        return error_body(path(request), 503, "store_unavailable", type(exc.orig).__name__)

    @app.exception_handler(StoreError)
    async def store(request: Request, exc: StoreError) -> Response:
        return error_body(path(request), 503, "store_unavailable", str(exc))

    @app.exception_handler(TicketError)
    async def other(request: Request, exc: TicketError) -> Response:
        return error_body(path(request), 400, "bad_request", str(exc))

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> Response:
        # datetimes at the edge of the calendar overflow when converted to UTC
        code = 400 if path(request).startswith("/open311/") else 422
        return error_body(path(request), code, "invalid", f"value out of range: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        code = 400 if path(request).startswith("/open311/") else 422
        return error_body(path(request), code, "invalid", _summary(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = ERRORS.get(exc.status_code, ("error", ""))[0]
        return error_body(
            path(request), exc.status_code, slug, str(exc.detail), headers=exc.headers
        )


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, UnionType, Annotated):
        return any(_takes_many(a) for a in get_args(annotation))
    return False


def _list_params(dependant: Any) -> Iterator[str]:
    """The query parameters of a route (and its dependencies) that take a list."""
    for f in dependant.query_params:
        if _takes_many(f.field_info.annotation):
            yield f.alias
    for sub in dependant.dependencies:
        yield from _list_params(sub)


async def refuse_repeated_query(request: Request) -> None:
    """A query parameter given twice is refused unless the route takes a list of it
    (FastAPI would silently keep the last value)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    many = set(_list_params(dependant))
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen and key not in many:
            raise RequestValidationError(
                [{"loc": ("query", key), "msg": "given more than once", "type": "value_error"}]
            )
        seen.add(key)
