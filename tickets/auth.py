"""Bearer-token roles for the ticket API: viewer < operator < admin.

Tokens come from the tickets configuration (``TicketsConfig.tokens``); a missing or
unknown token is 401, a known token whose role is too low is 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tickets.config import ROLE_RANK, Role, TicketsConfig

bearer = HTTPBearer(auto_error=False, description="Token with role viewer, operator or admin")


@dataclass(frozen=True)
class Principal:
    role: Role
    name: str


def _config(request: Request) -> TicketsConfig:
    cfg: TicketsConfig = request.app.state.config
    return cfg


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that admits tokens whose role is ``role`` or higher."""

    def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        cfg = _config(request)
        token = creds.credentials[:512]
        entry = cfg.token_entry(token)
        if entry is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown bearer token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if ROLE_RANK[entry.role] < ROLE_RANK[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {entry.role!r} may not do this (needs {role})"
            )
        return Principal(role=entry.role, name=entry.name)

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
