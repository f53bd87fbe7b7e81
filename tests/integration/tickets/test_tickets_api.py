"""The ticket API over real SQLite and PostgreSQL: roles, actions, errors, SSE."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tickets.service import TicketService

from .tickets_testlib import GRID, T0, TOKENS, make_alert

pytestmark = pytest.mark.integration


@pytest.fixture
def client(live_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_url, timeout=30) as c:
        yield c


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def alert_json(alert_id: str, **kw: Any) -> dict[str, Any]:
    return json.loads(make_alert(alert_id, **kw).model_dump_json())


# (method, path, body, lowest role allowed); {tid} is a real ticket id
ENDPOINTS: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/me", None, "viewer"),
    ("GET", "/api/v1/tickets", None, "viewer"),
    ("GET", "/api/v1/queue", None, "viewer"),
    ("GET", "/api/v1/queue?group=auto", None, "viewer"),
    ("GET", "/api/v1/storms", None, "viewer"),
    ("GET", "/api/v1/tickets/{tid}", None, "viewer"),
    ("GET", "/api/v1/kpis", None, "viewer"),
    ("GET", "/api/v1/precision", None, "viewer"),
    ("GET", "/api/v1/near-misses", None, "viewer"),
    ("GET", "/api/v1/grids.geojson", None, "viewer"),
    ("POST", "/api/v1/tickets/{tid}/assign", {"assignee": "x"}, "operator"),
    ("POST", "/api/v1/tickets/{tid}/acknowledge", {}, "operator"),
    ("POST", "/api/v1/tickets/{tid}/dispatch", {}, "operator"),
    ("POST", "/api/v1/tickets/{tid}/resolve", {"closing_code": "real"}, "operator"),
    ("POST", "/api/v1/tickets/{tid}/false_alarm", {}, "operator"),
    (
        "POST",
        "/api/v1/complaints",
        {
            "complaint_id": "api-c1",
            "ts": "2026-07-01T08:10:00Z",
            "category": "waterlogging",
            "lon": 121.401,
            "lat": 31.201,
        },
        "operator",
    ),
    ("POST", "/api/v1/alerts", "ALERT", "admin"),
    ("POST", "/api/v1/sweep", None, "admin"),
]
RANK = {"none": -2, "bad": -1, "viewer": 0, "operator": 1, "admin": 2}


def test_role_matrix(client: httpx.Client, api_service: TicketService) -> None:
    """Every endpoint × every kind of caller (one database for the whole matrix)."""
    wrong: list[str] = []
    for method, path, body, lowest in ENDPOINTS:
        for who in ("none", "bad", "viewer", "operator", "admin"):
            site = f"rm-{who}-{path.rsplit('/', 1)[-1]}"
            tid = api_service.raise_alert(make_alert(site, site=site)).ticket_id or ""
            if path.endswith("/resolve"):
                api_service.acknowledge(tid, "prep")  # resolving needs an acknowledged ticket
            headers = {}
            if who == "bad":
                headers = {"Authorization": "Bearer not-a-token"}
            elif who != "none":
                headers = auth(who)
            payload = alert_json(f"{site}-post") if body == "ALERT" else body
            if isinstance(payload, dict) and "complaint_id" in payload:
                payload = {**payload, "complaint_id": f"api-{who}"}
            resp = client.request(method, path.format(tid=tid), json=payload, headers=headers)
            if RANK[who] < 0:
                expected = 401
                if not resp.headers.get("www-authenticate", "").startswith("Bearer"):
                    wrong.append(f"{method} {path} as {who}: no WWW-Authenticate")
            elif RANK[who] < RANK[lowest]:
                expected = 403
            else:
                expected = 200
            if resp.status_code != expected:
                wrong.append(f"{method} {path} as {who}: {resp.status_code} != {expected}")
    assert wrong == []


def test_raise_list_act_and_errors(client: httpx.Client) -> None:
    r = client.post(
        "/api/v1/alerts", json=alert_json("api-1", severity="major"), headers=auth("admin")
    )
    assert r.status_code == 200
    out = r.json()
    assert (out["action"], out["state"], out["duplicate"]) == ("create", "open", False)
    tid = out["ticket_id"]
    again = client.post("/api/v1/alerts", json=alert_json("api-1"), headers=auth("admin")).json()
    assert again["duplicate"] is True

    lst = client.get(
        "/api/v1/tickets",
        params={"state": ["open"], "grid_id": GRID, "severity": "major", "q": tid[3:9]},
        headers=auth("viewer"),
    ).json()
    assert lst["total"] == 1
    assert lst["items"][0]["id"] == tid
    assert (
        client.get("/api/v1/tickets", params={"state": "bogus"}, headers=auth("viewer")).status_code
        == 422
    )
    assert (
        client.get("/api/v1/tickets", params={"limit": 100000}, headers=auth("viewer")).status_code
        == 422
    )

    ack = client.post(
        f"/api/v1/tickets/{tid}/acknowledge", json={"reason": "seen"}, headers=auth("operator")
    )
    assert ack.status_code == 200
    body = ack.json()
    assert body["state"] == "acknowledged"
    assert body["audit"][-1]["actor"] == "dev-operator"
    again = client.post(f"/api/v1/tickets/{tid}/acknowledge", json={}, headers=auth("operator"))
    assert again.status_code == 409
    assert again.json()["error"] == "illegal_transition"
    missing = client.post("/api/v1/tickets/TK-NOPE/acknowledge", json={}, headers=auth("operator"))
    assert missing.status_code == 404
    bad_code = client.post(
        f"/api/v1/tickets/{tid}/resolve", json={"closing_code": "meh"}, headers=auth("operator")
    )
    assert bad_code.status_code == 422
    long_reason = client.post(
        f"/api/v1/tickets/{tid}/dispatch", json={"reason": "x" * 501}, headers=auth("operator")
    )
    assert long_reason.status_code == 422
    huge = client.post(
        "/api/v1/alerts",
        content=b'{"pad": "' + b"x" * 70_000 + b'"}',
        headers={**auth("admin"), "Content-Type": "application/json"},
    )
    assert huge.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts streamed bytes
        yield b'{"pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    streamed = client.post(
        "/api/v1/alerts",
        content=chunks(),
        headers={**auth("admin"), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    bad_alert = client.post("/api/v1/alerts", json={"alert_id": "x"}, headers=auth("admin"))
    assert bad_alert.status_code == 422
    assert client.get("/api/v1/tickets/bad%20id", headers=auth("viewer")).status_code == 422
    nowhere = client.post(
        "/api/v1/complaints",
        json={
            "complaint_id": "nw",
            "ts": "2026-07-01T08:00:00Z",
            "category": "crowding",
            "lon": 10,
            "lat": 10,
        },
        headers=auth("operator"),
    )
    assert nowhere.status_code == 422
    assert nowhere.json()["error"] == "unknown_location"


def test_kpis_precision_and_map(client: httpx.Client, api_service: TicketService) -> None:
    tid = api_service.raise_alert(make_alert("k1")).ticket_id
    client.post(
        f"/api/v1/tickets/{tid}/false_alarm", json={"reason": "glare"}, headers=auth("operator")
    )
    k = client.get("/api/v1/kpis", headers=auth("viewer")).json()
    assert set(k["overall"]) >= {
        "open",
        "sla_breaches",
        "pre_emption_rate",
        "median_lead_min",
        "mtta_min",
        "mttr_min",
    }
    assert GRID in k["grids"]
    p = client.get("/api/v1/precision", headers=auth("viewer")).json()
    assert p["by_rule"]["rule-1"]["false_alarm"] == 1
    geo = client.get("/api/v1/grids.geojson", headers=auth("viewer")).json()
    assert geo["type"] == "FeatureCollection"
    assert any(f["properties"]["id"] == GRID for f in geo["features"])
    assert client.get("/openapi.json").status_code == 200
    assert "GridWatch" in client.get("/console/").text


def test_sse_stream_delivers_new_ticket_events(live_url: str, api_service: TicketService) -> None:
    with httpx.Client(base_url=live_url, timeout=10) as c:
        assert c.get("/api/v1/stream").status_code == 401
        with c.stream("GET", "/api/v1/stream", headers=auth("viewer")) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            assert next(lines) == "event: hello"
            out = api_service.raise_alert(make_alert("sse-1"))
            deadline = time.monotonic() + 10
            data = None
            for line in lines:
                if line.startswith("data: ") and "ticket_id" in line:
                    data = json.loads(line[6:])
                    break
                assert time.monotonic() < deadline
            assert data is not None
            assert (data["ticket_id"], data["event"]) == (out.ticket_id, "create")


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/tickets", {"since": "2026-07-01T08:00:00"}, 422),  # naive time
        ("/api/v1/kpis", {"until": "2026-07-01T08:00:00"}, 422),
        ("/open311/v2/requests.json", {"start_date": "2026-07-01T08:00:00"}, 400),
        ("/open311/v2/requests.json", {"end_date": "0001-01-01T00:00:00+01:00"}, 400),
        ("/api/v1/tickets", {"since": "0001-01-01T00:00:00+01:00"}, 422),
        ("/api/v1/tickets", {"q": "x" * 101}, 422),
        ("/api/v1/tickets", {"state": ["open"] * 9}, 422),
        ("/api/v1/near-misses", {"limit": 0}, 422),
        ("/api/v1/queue", {"group": "street"}, 422),
        ("/api/v1/storms", {"since": "2026-07-01T08:00:00"}, 422),
        ("/api/v1/storms", {"limit": 501}, 422),
        ("/api/v1/kpis", {"until": "-1722"}, 422),  # negative epoch
        ("/api/v1/kpis", {"until": "1722.5"}, 422),  # fractional epoch
        ("/api/v1/tickets", {"since": "5000000000"}, 422),  # epoch seconds after 2100
        ("/api/v1/tickets", {"limit": 501}, 422),  # the declared max_page
        ("/api/v1/near-misses", {"grid_id": ["a", "b"]}, 422),  # a scalar given twice
        ("/open311/v2/requests.json", {"status": ["open", "closed"]}, 400),
    ],
)
def test_bad_queries_are_clear_4xx(
    client: httpx.Client, path: str, params: dict[str, Any], status: int
) -> None:
    r = client.get(path, params=params, headers=auth("viewer"))
    assert r.status_code == status, r.text
    body = r.json()
    if path.startswith("/open311/"):
        assert body[0]["code"] == 400
        assert body[0]["description"]
    else:
        assert body["error"] == "invalid"


def test_lists_and_sane_epochs_are_taken(client: httpx.Client) -> None:
    r = client.get(
        "/api/v1/tickets",
        params={"state": ["open", "acknowledged"], "since": "1782892800"},
        headers=auth("viewer"),
    )
    assert r.status_code == 200, r.text
    r = client.get("/api/v1/kpis", params={"until": "1782892800000"}, headers=auth("viewer"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("q", ["\\", "%", "_", "'; drop table tickets; --", "积水"])
def test_search_text_is_literal(client: httpx.Client, api_service: TicketService, q: str) -> None:
    api_service.raise_alert(make_alert("lit-1"))
    r = client.get("/api/v1/tickets", params={"q": q}, headers=auth("viewer"))
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 0


def test_unknown_grids_are_refused(client: httpx.Client) -> None:
    doc = alert_json("ug-1")
    doc["grid_id"] = "NOPE"
    r = client.post("/api/v1/alerts", json=doc, headers=auth("admin"))
    assert r.status_code == 422
    assert r.json()["error"] == "unknown_location"
    c = {
        "complaint_id": "ug-c",
        "ts": "2026-07-01T08:00:00Z",
        "category": "crowding",
        "lon": 121.401,
        "lat": 31.201,
        "grid_id": "NOPE",
    }
    r = client.post("/api/v1/complaints", json=c, headers=auth("operator"))
    assert r.status_code == 422


def test_storm_alerts_and_the_grouped_queue_over_http(
    client: httpx.Client, api_service: TicketService
) -> None:
    """Storm alerts posted like any alert record a storm period; the console's
    ``group=auto`` queue rolls the storm district's tickets up per grid."""
    grids = ["D01-S01-G01", "D01-S01-G02"]
    for i in range(5):
        api_service.raise_alert(make_alert(f"gq-{i}", grid=grids[i % 2], site=f"g{i}"))
    flat = client.get("/api/v1/queue", headers=auth("viewer")).json()
    assert set(flat) == {"items", "last_change"}  # the flat queue is as it was
    assert len(flat["items"]) == 5
    calm = client.get("/api/v1/queue", params={"group": "auto"}, headers=auth("viewer")).json()
    assert (len(calm["items"]), calm["groups"], calm["storms"]) == (5, [], [])

    start = T0.replace(minute=5)
    on = alert_json("storm:D01:on:1", kind="observed")  # then made a storm alert by hand
    on.update(
        alert_id="storm:D01:on:1",
        incident_key="storm:D01",
        kind="storm_on",
        grid_id="D01",
        site=None,
        ts=T0.replace(minute=10).isoformat(),
        evidence={"started_at": start.isoformat(), "peak_share": 0.64},
    )
    r = client.post("/api/v1/alerts", json=on, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["action"], r.json()["ticket_id"]) == ("storm_start", None)
    again = client.post("/api/v1/alerts", json=on, headers=auth("admin")).json()
    assert again["duplicate"] is True
    wrong = client.post(
        "/api/v1/alerts", json={**on, "alert_id": "w", "grid_id": grids[0]}, headers=auth("admin")
    )
    assert wrong.status_code == 422  # a storm alert names its district

    grouped = client.get("/api/v1/queue", params={"group": "auto"}, headers=auth("viewer")).json()
    assert grouped["storm_districts"] == ["D01"]
    assert grouped["items"] == []
    assert sorted(g["grid_id"] for g in grouped["groups"]) == grids
    assert sum(g["tickets"] for g in grouped["groups"]) == 5
    assert all(g["storm"] and len(g["items"]) == g["tickets"] for g in grouped["groups"])
    assert grouped["last_change"] == flat["last_change"]
    [period] = grouped["storms"]
    assert (period["district_id"], period["active"], period["started_at"]) == (
        "D01",
        True,
        start.isoformat(),
    )

    off = {
        **on,
        "alert_id": "storm:D01:off:1",
        "kind": "storm_off",
        "ts": T0.replace(minute=50).isoformat(),
        "evidence": {
            "started_at": start.isoformat(),
            "ended_at": T0.replace(minute=35).isoformat(),
        },
    }
    assert client.post("/api/v1/alerts", json=off, headers=auth("admin")).json()["action"] == (
        "storm_end"
    )
    storms = client.get("/api/v1/storms", headers=auth("viewer")).json()
    assert [(p["active"], p["duration_min"], p["alert_ids"]) for p in storms] == [
        (False, 30.0, ["storm:D01:on:1", "storm:D01:off:1"])
    ]
    assert (
        client.get("/api/v1/storms", params={"active": True}, headers=auth("viewer")).json() == []
    )
    assert (
        client.get("/api/v1/storms", params={"district_id": "D09"}, headers=auth("viewer")).json()
        == []
    )
    after = client.get("/api/v1/queue", params={"group": "auto"}, headers=auth("viewer")).json()
    assert (len(after["items"]), after["groups"]) == (5, [])
    by_grid = client.get("/api/v1/queue", params={"group": "grid"}, headers=auth("viewer")).json()
    assert len(by_grid["groups"]) == 2 and not any(g["storm"] for g in by_grid["groups"])
