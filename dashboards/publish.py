"""Push the datasource, the folder and the dashboards to a running Grafana.

Uses grafana-client (``GrafanaApi``) over Grafana's HTTP API:

* ``GET /api/frontend/settings`` – build version (refused below ``MIN_GRAFANA``);
* ``GET /api/datasources/uid/{uid}``, then ``POST /api/datasources`` or
  ``PUT /api/datasources/uid/{uid}``;
* ``GET /api/folders/{uid}``, then ``POST /api/folders`` or ``PUT /api/folders/{uid}``;
* ``GET /api/dashboards/uid/{uid}``, then ``POST /api/dashboards/db``.

Idempotent: each object is read first and written only when it differs from what we
would write, so publishing twice changes nothing the second time. Failures become one
line: ``GrafanaAuthError`` (401/403), ``GrafanaVersionError`` (too old),
``GrafanaUnreachableError`` (network), ``PublishError`` (anything else).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.influxql import DATASOURCE_TYPE, DATASOURCE_UID
from gridwatch.errors import GridWatchError
from gridwatch.settings import InfluxSettings

log = logging.getLogger(__name__)

MIN_GRAFANA = (10, 4)  # geomap gazetteer lookups and InfluxQL annotations as written
FOLDER_UID = "gridwatch"
FOLDER_TITLE = "GridWatch 城市运行"
DATASOURCE_NAME = "GridWatch InfluxDB"
MESSAGE = "published by gridwatch dashboards publish"


class PublishError(GridWatchError):
    """Grafana refused or failed a publishing step."""


class GrafanaAuthError(PublishError):
    """The token was refused (401) or lacks the permission (403)."""


class GrafanaVersionError(PublishError):
    """The Grafana server is older than the dashboards need."""


class GrafanaUnreachableError(PublishError):
    """No answer from the Grafana URL."""


@dataclass
class PublishReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    version: str = ""

    def line(self) -> str:
        return (
            f"Grafana {self.version}: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def datasource_payload(influx: InfluxSettings, url: str | None = None) -> dict[str, Any]:
    """The datasource as provisioned (dashboards/provisioning/datasources/influxdb.yaml):
    InfluxQL; v1 with database and basic credentials, v2 through DBRP with a token."""
    json_data: dict[str, Any] = {"httpMode": "POST", "timeInterval": "10s"}
    secure: dict[str, str] = {}
    payload: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "url": url or influx.url,
        "isDefault": True,
    }
    if influx.api == "v2":
        json_data["dbName"] = influx.bucket or influx.database
        json_data["httpHeaderName1"] = "Authorization"
        if influx.token is not None:
            secure["httpHeaderValue1"] = f"Token {influx.token.get_secret_value()}"
    else:
        json_data["dbName"] = influx.database
        if influx.username:
            payload["user"] = influx.username
            payload["basicAuth"] = False
        if influx.password is not None:
            secure["password"] = influx.password.get_secret_value()
    payload["jsonData"] = json_data
    if secure:
        payload["secureJsonData"] = secure
    return payload


def _differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when a key we set has another value (secrets are write-only in Grafana: a
    missing secure field counts as a difference, a present one cannot be compared)."""
    for key, value in wanted.items():
        if key == "secureJsonData":
            have = current.get("secureJsonFields") or {}
            if any(not have.get(k) for k in value):
                return True
        elif key == "jsonData":
            if any((current.get("jsonData") or {}).get(k) != v for k, v in value.items()):
                return True
        elif current.get(key) != value:
            return True
    return False


def _comparable(dashboard: Mapping[str, Any]) -> dict[str, Any]:
    """A dashboard without the fields Grafana assigns (id, version)."""
    return {k: v for k, v in dashboard.items() if k not in ("id", "version")}


class Publisher:
    def __init__(self, api: GrafanaApi, url: str) -> None:
        self.api = api
        self.url = url

    @classmethod
    def connect(cls, url: str, token: str, timeout_s: float = 10.0) -> Publisher:
        return cls(GrafanaApi.from_url(url, credential=token, timeout=timeout_s), url)

    def publish(
        self, dashboards: Mapping[str, Mapping[str, Any]], datasource: Mapping[str, Any]
    ) -> PublishReport:
        report = PublishReport(version=self.check_version())
        self._datasource(dict(datasource), report)
        self._folder(report)
        for model in dashboards.values():
            self._dashboard(dict(model), report)
        return report

    # -- steps -----------------------------------------------------------------------

    def check_version(self) -> str:
        info = self._call("read the build version", self.api.health.check)
        raw = str((info or {}).get("version") or "")
        version = raw.split("-")[0].split("+")[0]
        match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)*", version)
        if match is None:
            raise GrafanaVersionError(f"Grafana at {self.url} reports no usable version {raw!r}")
        if (int(match.group(1)), int(match.group(2))) < MIN_GRAFANA:
            need = ".".join(map(str, MIN_GRAFANA))
            raise GrafanaVersionError(
                f"Grafana at {self.url} is {version}; these dashboards need {need} or newer"
            )
        return version

    def _datasource(self, wanted: dict[str, Any], report: PublishReport) -> None:
        name = f"datasource {DATASOURCE_UID}"
        current = self._get(name, lambda: self.api.datasource.get_datasource_by_uid(DATASOURCE_UID))
        if current is None:
            self._call(f"create {name}", lambda: self.api.datasource.create_datasource(wanted))
            report.created.append(name)
        elif _differs(current, wanted):
            self._call(
                f"update {name}",
                lambda: self.api.datasource.update_datasource_by_uid(DATASOURCE_UID, wanted),
            )
            report.updated.append(name)
        else:
            report.unchanged.append(name)

    def _folder(self, report: PublishReport) -> None:
        name = f"folder {FOLDER_UID}"
        current = self._get(name, lambda: self.api.folder.get_folder(FOLDER_UID))
        if current is None:
            self._call(
                f"create {name}",
                lambda: self.api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID),
            )
            report.created.append(name)
        elif current.get("title") != FOLDER_TITLE:
            self._call(
                f"update {name}",
                lambda: self.api.folder.update_folder(
                    FOLDER_UID, title=FOLDER_TITLE, version=current.get("version"), overwrite=True
                ),
            )
            report.updated.append(name)
        else:
            report.unchanged.append(name)

    def _dashboard(self, model: dict[str, Any], report: PublishReport) -> None:
        uid = model["uid"]
        name = f"dashboard {uid}"
        current = self._get(name, lambda: self.api.dashboard.get_dashboard(uid))
        body = {
            "dashboard": {**model, "id": None},
            "folderUid": FOLDER_UID,
            "message": MESSAGE,
            "overwrite": current is not None,
        }
        if current is None:
            self._call(f"create {name}", lambda: self.api.dashboard.update_dashboard(body))
            report.created.append(name)
            return
        same_folder = (current.get("meta") or {}).get("folderUid") == FOLDER_UID
        if same_folder and _comparable(current.get("dashboard") or {}) == _comparable(model):
            report.unchanged.append(name)
            return
        self._call(f"update {name}", lambda: self.api.dashboard.update_dashboard(body))
        report.updated.append(name)

    # -- error mapping -----------------------------------------------------------------

    def _get(self, what: str, fn: Any) -> dict[str, Any] | None:
        """``fn()``, or None when Grafana answers 404."""
        try:
            return self._call(f"read {what}", fn)
        except _NotFound:
            return None

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except GrafanaClientError as exc:
            status = exc.status_code
            if status in (401, 403):
                kind = "refused the token" if status == 401 else "denied the token permission"
                raise GrafanaAuthError(
                    f"Grafana at {self.url} {kind} ({status}) to {what}: {_message(exc)}"
                ) from exc
            if status == 404:
                raise _NotFound(what) from exc
            raise PublishError(
                f"Grafana at {self.url} could not {what} ({status}): {_message(exc)}"
            ) from exc
        except GrafanaException as exc:
            raise PublishError(
                f"Grafana at {self.url} failed to {what} ({exc.status_code}): {_message(exc)}"
            ) from exc
        except niquests.exceptions.RequestException as exc:
            raise GrafanaUnreachableError(f"Grafana at {self.url} is unreachable: {exc}") from exc


class _NotFound(PublishError):
    pass


def _message(exc: GrafanaException) -> str:
    """Grafana's own ``message`` when the body has one, else the client's text."""
    body = getattr(exc, "response", None)
    if isinstance(body, dict) and body.get("message"):
        text = str(body["message"])
    else:
        text = str(getattr(exc, "message", "") or exc)
    return " ".join(text.split())[:200]
