"""The HTTP half of the attack sweep: every route of the tickets API × every caller × every
malformed input, against a running ``gridwatch tickets serve``.

Routes come from the server's own OpenAPI document; ``REQUIRED`` says who may call each
(a route missing from it is reported, so a new route cannot slip past the sweep). What
must hold: never a 5xx; a caller without a valid token gets 401, one whose role is too
low 403 (a body that cannot even be parsed may be refused first, with 400/413/422, but
never accepted); a malformed input from an allowed caller gets 4xx (422, or Open311's
400); a valid one 2xx (or 404/409 when the ticket is gone or in the wrong state).

The ticket tokens carry no expiry: the "expired" caller is a well-formed token of a
rotated-out kind, which the server must treat as unknown.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

ROLE_RANK = {"viewer": 1, "operator": 2, "admin": 3}
ANON_CALLERS = ("none", "bad-token", "malformed-header", "expired")
CALLERS = (*ANON_CALLERS, "viewer", "operator", "admin")
# (method, path) → role needed; None = public; "api_key" = Open311 POST
REQUIRED: dict[tuple[str, str], str | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/api/v1/me"): "viewer",
    ("GET", "/api/v1/tickets"): "viewer",
    ("GET", "/api/v1/queue"): "viewer",
    ("GET", "/api/v1/tickets/{ticket_id}"): "viewer",
    ("POST", "/api/v1/tickets/{ticket_id}/acknowledge"): "operator",
    ("POST", "/api/v1/tickets/{ticket_id}/assign"): "operator",
    ("POST", "/api/v1/tickets/{ticket_id}/dispatch"): "operator",
    ("POST", "/api/v1/tickets/{ticket_id}/resolve"): "operator",
    ("POST", "/api/v1/tickets/{ticket_id}/false_alarm"): "operator",
    ("POST", "/api/v1/alerts"): "admin",
    ("POST", "/api/v1/complaints"): "operator",
    ("POST", "/api/v1/sweep"): "admin",
    ("GET", "/api/v1/kpis"): "viewer",
    ("GET", "/api/v1/precision"): "viewer",
    ("GET", "/api/v1/near-misses"): "viewer",
    ("GET", "/api/v1/storms"): "viewer",
    ("GET", "/api/v1/grids.geojson"): "viewer",
    ("GET", "/api/v1/stream"): "viewer",
    **{
        (method, f"/open311/v2/{path}.{fmt}"): need
        for fmt in ("json", "xml")
        for method, path, need in (
            ("GET", "discovery", None),
            ("GET", "services", None),
            ("GET", "services/{service_code}", None),
            ("GET", "requests", None),
            ("GET", "requests/{service_request_id}", None),
            ("POST", "requests", "api_key"),
        )
    },
}
BODY_CASES = (
    "valid", "invalid-json", "wrong-types", "huge-string", "too-large-body", "unicode",
    "negative-numbers", "extra-field", "empty-body", "array-body", "deep-nesting",
)  # fmt: skip
QUERY_CASES = ("valid", "wrong-types", "negative-numbers", "huge-string", "unicode", "injection")
PATH_CASES = ("unknown-id", "bad-id", "unicode-id", "traversal-id")
# body cases a server may refuse before it looks at the caller
UNPARSEABLE = {"invalid-json", "too-large-body", "empty-body", "array-body", "deep-nesting"}
BODY_REFUSALS = {400, 413, 422}


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # the OpenAPI path template
    caller: str
    case: str
    query: frozenset[str] = frozenset()  # the query fields the route takes


def route_cases(method: str, path: str, has_body: bool, query: frozenset[str]) -> list[str]:
    """The input cases tried on one route (query cases only where it takes those fields)."""
    cases = list(BODY_CASES if has_body else ("valid",))
    cases += [c for c in QUERY_CASES if c != "valid" and query & set(query_case(c))]
    if "{" in path:
        cases += list(PATH_CASES)
    return cases


Route = tuple[str, str, bool, frozenset[str]]  # method, path, has a body, query fields


def plan_calls(routes: list[Route]) -> list[Call]:
    """Every (route, caller, case): valid input from every caller, malformed input from
    an allowed caller and from one that is not (so refusal is checked on bad input too)."""
    calls: list[Call] = []
    for method, path, has_body, query in routes:
        need = REQUIRED.get((method, path))
        for case in route_cases(method, path, has_body, query):
            callers = CALLERS if case == "valid" else _malformed_callers(need)
            calls += [Call(method, path, caller, case, query) for caller in callers]
    return calls


def _malformed_callers(need: str | None) -> tuple[str, ...]:
    if need is None:
        return ("none",)
    if need == "api_key":
        return ("none", "admin")
    weaker = [r for r, k in ROLE_RANK.items() if k < ROLE_RANK[need]]
    return ("none", *weaker[-1:], need)


def allowed_statuses(call: Call) -> set[int]:
    """The statuses that satisfy the sweep's rules for ``call``."""
    need = REQUIRED.get((call.method, call.path))
    path_bad = call.case in ("bad-id", "unicode-id", "traversal-id")
    malformed = call.case not in ("valid", "unknown-id", "unicode")
    if need == "api_key":  # Open311 POST: the api_key field is the credential
        if call.caller in ANON_CALLERS:
            return {400, 403, 413}
        return BODY_REFUSALS if malformed else {201, 400}
    if need is not None:
        rank = ROLE_RANK.get(call.caller, 0)
        if rank < ROLE_RANK[need]:
            base = {401} if rank == 0 else {403}
            if call.case in UNPARSEABLE:
                base |= BODY_REFUSALS
            if path_bad:
                base |= {404, 422}  # the router refuses the path before the caller
            return base
    if path_bad:
        return {400, 404, 422}
    if call.case == "unknown-id":
        return {400, 404}
    if call.case in ("unicode", "injection") and call.method == "GET":
        return {200, 400, 422}  # taken as text, or refused by a pattern; never a 5xx
    if malformed:
        return BODY_REFUSALS | ({404} if "{" in call.path else set())
    return {200, 201, 404, 409}


@dataclass
class ApiSweep:
    calls: dict[str, dict[str, dict[str, dict[str, int]]]] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    server_errors: int = 0
    total: int = 0
    seconds: float = 0.0


class ApiCaller:
    """Builds and sends each call against a running server."""

    def __init__(
        self,
        base_url: str,
        tokens: Mapping[str, str],
        open311_key: str,
        place: dict[str, Any],
    ) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=15.0)
        self.tokens = tokens
        self.key = open311_key
        self.place = place  # grid_id, district_id, lon, lat of a registered device
        self.ticket_id = ""
        self.request_id = ""

    def close(self) -> None:
        self.client.close()

    def setup(self) -> None:
        """A ticket and an Open311 request to act on."""
        r = self.client.post(
            "/api/v1/alerts", json=self._body("/api/v1/alerts"), headers=self._auth("admin")
        )
        r.raise_for_status()
        self.ticket_id = str(r.json()["ticket_id"])
        r = self.client.post("/open311/v2/requests.json", data=self._form(self.key))
        r.raise_for_status()
        self.request_id = str(r.json()[0]["service_request_id"])

    def _auth(self, caller: str) -> dict[str, str]:
        if caller == "none":
            return {}
        if caller == "bad-token":
            return {"Authorization": f"Bearer {uuid.uuid4().hex}"}
        if caller == "malformed-header":
            return {"Authorization": "Basic Z3c6Z3c="}
        if caller == "expired":
            return {"Authorization": f"Bearer ad-{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"}
        return {"Authorization": f"Bearer {self.tokens[caller]}"}

    def _body(self, path: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        p = self.place
        if path.endswith("/alerts"):
            return {
                "alert_id": f"abuse-{uuid.uuid4().hex[:12]}",
                "incident_key": f"{p['grid_id']}:waterlogging:abuse",
                "kind": "observed",
                "category": "waterlogging",
                "severity": "major",
                "grid_id": p["grid_id"],
                "district_id": p["district_id"],
                "ts": now,
                "probability": 0.9,
                "why": "attack sweep",
            }
        if path.endswith("/complaints"):
            return {
                "complaint_id": f"abuse-{uuid.uuid4().hex[:12]}",
                "ts": now,
                "category": "waterlogging",
                "lon": p["lon"],
                "lat": p["lat"],
                "source": "app",
            }
        if path.endswith("/assign"):
            return {"assignee": "inspector-1", "reason": "attack sweep"}
        if path.endswith("/resolve"):
            return {"closing_code": "real", "reason": "attack sweep"}
        return {"reason": "attack sweep"}

    def _form(self, key: str | None) -> dict[str, str]:
        form = {
            "service_code": "waterlogging",
            "lat": str(self.place["lat"]),
            "long": str(self.place["lon"]),
            "description": "积水 attack sweep",
        }
        if key is not None:
            form["api_key"] = key
        return form

    def send(self, call: Call) -> int:
        path = self._path(call)
        headers = self._auth(call.caller)
        kwargs: dict[str, Any] = {"headers": headers}
        if call.method == "POST" and call.path.startswith("/open311/"):
            keys = {"none": None, "bad-token": "wrong-key", "expired": "o311-expired"}
            keys["malformed-header"] = ""
            kwargs.update(_form_case(self._form(keys.get(call.caller, self.key)), call.case))
            if "content" in kwargs:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif call.method == "POST":
            kwargs.update(_body_case(self._body(call.path), call.case))
            if "content" in kwargs:
                headers["Content-Type"] = "application/json"
        params = {k: v for k, v in query_case(call.case).items() if k in call.query}
        if params:
            kwargs["params"] = params
        if call.path.endswith("/stream") and call.case == "valid":
            with self.client.stream(call.method, path, **kwargs) as r:
                return r.status_code
        return self.client.request(call.method, path, **kwargs).status_code

    def _path(self, call: Call) -> str:
        ids = {
            "ticket_id": self.ticket_id,
            "service_request_id": self.request_id,
            "service_code": "waterlogging",
        }
        bad = {
            "unknown-id": "abuse-no-such-id",
            "bad-id": "x" * 300,
            "unicode-id": "积水-💧",
            "traversal-id": "..%2F..%2Fetc%2Fpasswd",
        }
        path = call.path
        for name, value in ids.items():
            path = path.replace("{" + name + "}", bad.get(call.case, value))
        return path


def _body_case(body: dict[str, Any], case: str) -> dict[str, Any]:
    text_field = "reason" if "reason" in body else ("why" if "why" in body else "description")
    if case == "valid":
        return {"json": body}
    if case == "invalid-json":
        return {"content": b'{"reason": "unterminated'}
    if case == "wrong-types":
        return {
            "json": {k: ([v] if isinstance(v, str) else "not-a-number") for k, v in body.items()}
        }
    if case == "huge-string":
        return {"json": {**body, text_field: "x" * 20_000}}
    if case == "too-large-body":
        return {"json": {**body, text_field: "x" * 70_000}}
    if case == "unicode":
        return {"json": {**body, text_field: "积水 \u202e\U0001f30a é \u0000 end"}}
    if case == "negative-numbers":
        nums = {"probability": -1, "lon": -500.0, "lat": -91.0}
        return {"json": {**body, **{k: v for k, v in nums.items() if k in body}, "seq": -1}}
    if case == "extra-field":
        return {"json": {**body, "is_admin": True}}
    if case == "empty-body":
        return {"content": b""}
    if case == "array-body":
        return {"json": [body]}
    if case == "deep-nesting":
        return {"content": b"[" * 5000 + b"]" * 5000}
    return {"json": body}


def _form_case(form: dict[str, str], case: str) -> dict[str, Any]:
    if case == "valid":
        return {"data": form}
    if case in ("wrong-types", "negative-numbers"):
        bad = {"lat": "north", "long": "-500"} if case == "wrong-types" else {"lat": "-91"}
        return {"data": {**form, **bad}}
    if case == "huge-string":
        return {"data": {**form, "description": "x" * 20_000}}
    if case == "too-large-body":
        return {"data": {**form, "description": "x" * 70_000}}
    if case == "unicode":
        return {"data": {**form, "description": "积水 \u202e\U0001f30a"}}
    if case == "extra-field":
        return {"data": {**form, "service_code": "no_such_service"}}
    if case == "invalid-json":
        return {"content": b"%%%&&&=\xff\xfe"}
    return {"content": b"" if case == "empty-body" else b"[" * 5000}


def query_case(case: str) -> dict[str, str]:
    if case == "wrong-types":
        return {"limit": "abc", "since": "yesterday", "active": "maybe", "start_date": "x"}
    if case == "negative-numbers":
        return {"limit": "-1", "offset": "-5"}
    if case == "huge-string":
        return {"q": "x" * 5000, "grid_id": "g" * 5000, "service_request_id": "1," * 3000}
    if case == "unicode":
        return {"q": "积水💧\u202e", "grid_id": "网格"}
    if case == "injection":
        return {"q": "' OR 1=1 --", "grid_id": "x'; DROP TABLE tickets; --", "status": "open;"}
    return {}


def run_api_sweep(caller: ApiCaller, openapi: dict[str, Any]) -> ApiSweep:
    """Call every planned (route, caller, case) once and check each status."""
    routes: list[Route] = []
    out = ApiSweep()
    for path, ops in sorted(openapi.get("paths", {}).items()):
        for method, op in sorted(ops.items()):
            m = method.upper()
            if (m, path) not in REQUIRED:
                out.unmapped.append(f"{m} {path}")
                continue
            names = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            routes.append((m, path, "requestBody" in op, frozenset(names)))
    started = time.monotonic()
    caller.setup()
    for call in plan_calls(routes):
        try:
            status = caller.send(call)
        except httpx.HTTPError as exc:
            status = 599  # no answer at all counts as a server failure
            out.violations.append({**_call_doc(call), "status": status, "error": repr(exc)})
        out.total += 1
        route = f"{call.method} {call.path}"
        per_case = out.calls.setdefault(route, {}).setdefault(call.caller, {})
        per_case.setdefault(call.case, {})
        per_case[call.case][str(status)] = per_case[call.case].get(str(status), 0) + 1
        if status >= 500:
            out.server_errors += 1
        if status not in allowed_statuses(call) and status != 599:
            out.violations.append(
                {**_call_doc(call), "status": status, "allowed": sorted(allowed_statuses(call))}
            )
    out.seconds = time.monotonic() - started
    return out


def _call_doc(call: Call) -> dict[str, str]:
    return {"route": f"{call.method} {call.path}", "caller": call.caller, "case": call.case}
