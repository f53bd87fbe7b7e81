"""An in-memory Grafana HTTP API behind a niquests transport adapter.

No Grafana server runs on our machines, so the publisher's requests are intercepted at
the HTTP transport of grafana-client (niquests, a requests-compatible client: the
adapter is mounted on its session) and answered with the shapes that Grafana's HTTP API
documentation gives for each endpoint (data sources, folders, dashboards,
frontend settings). Requests that do not follow the documented shape fail the test.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import niquests
from niquests.adapters import BaseAdapter
from niquests.structures import CaseInsensitiveDict

TOKEN = "glsa_test_token"


class _Raw:
    """What niquests reads from a transport's raw response: no cookies, nothing open."""

    _original_response = None

    def close(self) -> None:
        return None

    def release_conn(self) -> None:
        return None


@dataclass
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGrafana(BaseAdapter):
    version: str = "11.3.0"
    token: str = TOKEN
    forbid_writes: bool = False
    unreachable: bool = False
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    # -- transport ---------------------------------------------------------------------

    def send(self, request: Any, *args: Any, **kwargs: Any) -> niquests.Response:
        if self.unreachable:
            raise niquests.exceptions.ConnectionError("connection refused")
        method = str(request.method).upper()
        path = urlsplit(str(request.url)).path
        raw = request.body
        body = json.loads(raw) if raw else None
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append(Call(method, path, body, headers))
        if raw:
            assert headers.get("content-type", "").startswith("application/json"), headers
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._reply(request, 401, {"message": "Unauthorized"})
        if self.forbid_writes and method != "GET":
            return self._reply(request, 403, {"message": "You'll need additional permissions"})
        status, payload = self._route(method, path, body)
        return self._reply(request, status, payload)

    def close(self) -> None:
        return None

    def _reply(self, request: Any, status: int, payload: Any) -> niquests.Response:
        response = niquests.Response()
        response.status_code = status
        response._content = json.dumps(payload).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.request = request
        response.url = request.url
        response.encoding = "utf-8"
        response.raw = _Raw()  # no socket behind this answer
        return response

    # -- documented endpoints -----------------------------------------------------------

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        assert parts[0] == "api", path
        match method, parts[1:]:
            case "GET", ["frontend", "settings"]:
                return 200, {"buildInfo": {"version": self.version, "edition": "Open Source"}}
            case "GET", ["datasources", "uid", uid]:
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                return 200, self._public_datasource(self.datasources[uid])
            case "POST", ["datasources"]:
                for key in ("name", "type", "access", "url"):
                    assert key in body, f"POST /api/datasources without {key}"
                if body["uid"] in self.datasources:
                    return 409, {"message": "data source with the same uid already exists"}
                stored = {**body, "id": len(self.datasources) + 1, "version": 1}
                self.datasources[body["uid"]] = stored
                return 200, {
                    "datasource": self._public_datasource(stored),
                    "id": stored["id"],
                    "message": "Datasource added",
                    "name": stored["name"],
                }
            case "PUT", ["datasources", "uid", uid]:
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                for key in ("name", "type", "access", "url"):
                    assert key in body, f"PUT /api/datasources/uid without {key}"
                old = self.datasources[uid]
                stored = {**body, "id": old["id"], "version": old["version"] + 1}
                self.datasources[uid] = stored
                return 200, {
                    "datasource": self._public_datasource(stored),
                    "id": stored["id"],
                    "message": "Datasource updated",
                    "name": stored["name"],
                }
            case "GET", ["folders", uid]:
                if uid not in self.folders:
                    return 404, {"message": "folder not found", "status": "not-found"}
                return 200, self.folders[uid]
            case "POST", ["folders"]:
                assert set(body) <= {"uid", "title", "parentUid"} and body.get("title")
                if body.get("uid") in self.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                folder = {
                    "id": len(self.folders) + 1,
                    "uid": body["uid"],
                    "title": body["title"],
                    "url": f"/dashboards/f/{body['uid']}/",
                    "version": 1,
                }
                self.folders[body["uid"]] = folder
                return 200, folder
            case "PUT", ["folders", uid]:
                if uid not in self.folders:
                    return 404, {"message": "folder not found"}
                assert body.get("title") and ("version" in body or body.get("overwrite"))
                folder = self.folders[uid]
                folder.update(title=body["title"], version=folder["version"] + 1)
                return 200, folder
            case "GET", ["dashboards", "uid", uid]:
                if uid not in self.dashboards:
                    return 404, {"message": "Dashboard not found"}
                return 200, copy.deepcopy(self.dashboards[uid])
            case "POST", ["dashboards", "db"]:
                return self._save_dashboard(body)
        raise AssertionError(f"undocumented request {method} {path}")

    def _save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        assert set(body) <= {"dashboard", "folderUid", "folderId", "message", "overwrite"}
        dash = body["dashboard"]
        assert dash.get("uid") and dash.get("title"), "dashboard needs uid and title"
        assert dash.get("id") is None, "new or overwritten dashboards are sent with id null"
        if body.get("folderUid") and body["folderUid"] not in self.folders:
            return 400, {"message": "folder not found"}
        existing = self.dashboards.get(dash["uid"])
        if existing and not body.get("overwrite"):
            return 412, {
                "message": "A dashboard with the same uid already exists",
                "status": "name-exists",
            }
        version = existing["dashboard"]["version"] + 1 if existing else 1
        dash_id = existing["dashboard"]["id"] if existing else len(self.dashboards) + 1
        stored = {**copy.deepcopy(dash), "id": dash_id, "version": version}
        self.dashboards[dash["uid"]] = {
            "dashboard": stored,
            "meta": {"folderUid": body.get("folderUid", ""), "version": version, "slug": "x"},
        }
        return 200, {
            "id": dash_id,
            "uid": dash["uid"],
            "url": f"/d/{dash['uid']}/x",
            "status": "success",
            "version": version,
            "slug": "x",
        }

    @staticmethod
    def _public_datasource(stored: dict[str, Any]) -> dict[str, Any]:
        """Secrets are write-only: the API returns which are set, never their values."""
        public = {k: v for k, v in stored.items() if k != "secureJsonData"}
        public["secureJsonFields"] = {k: True for k in stored.get("secureJsonData", {})}
        return public
