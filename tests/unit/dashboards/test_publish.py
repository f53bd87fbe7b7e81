"""The publisher's HTTP requests, checked against Grafana's documented HTTP API.

No Grafana server can run on our machines, so this is the one place where GridWatch
tests against a stand-in: grafana-client's own HTTP transport (niquests) gets an
adapter (tests/unit/dashboards/fake_grafana.py) that answers like the documented API
and records every request. Everything above the transport — grafana-client and our
publisher — is the real code.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import SecretStr

from dashboards.build import load_generated
from dashboards.influxql import DATASOURCE_UID
from dashboards.publish import (
    FOLDER_TITLE,
    FOLDER_UID,
    GrafanaAuthError,
    GrafanaUnreachableError,
    GrafanaVersionError,
    Publisher,
    PublishError,
    datasource_payload,
)
from gridwatch.errors import GridWatchError
from gridwatch.settings import InfluxSettings

from .fake_grafana import TOKEN, FakeGrafana

URL = "http://grafana.test:3000"
MODELS = {m["uid"]: m for m in load_generated().values()}
INFLUX = InfluxSettings(url="http://influxdb:8086", database="gridwatch")


def publisher(fake: FakeGrafana, token: str = TOKEN) -> Publisher:
    pub = Publisher.connect(URL, token)
    pub.api.client.s.mount(URL, fake)
    return pub


def publish(fake: FakeGrafana, models: dict[str, Any] | None = None) -> Any:
    return publisher(fake).publish(models or MODELS, datasource_payload(INFLUX))


def test_first_publish_sends_the_documented_requests_in_order() -> None:
    fake = FakeGrafana()
    report = publish(fake)
    expected = [
        ("GET", "/api/frontend/settings"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("POST", "/api/datasources"),
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
    ]
    for uid in MODELS:
        expected += [("GET", f"/api/dashboards/uid/{uid}"), ("POST", "/api/dashboards/db")]
    assert [(c.method, c.path) for c in fake.calls] == expected
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in fake.calls)

    ds = fake.calls[2].body
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "influxdb" and ds["access"] == "proxy"
    assert ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "gridwatch"
    assert fake.calls[4].body == {"title": FOLDER_TITLE, "uid": FOLDER_UID}
    saves = [c.body for c in fake.calls if c.path == "/api/dashboards/db"]
    for body, (uid, model) in zip(saves, MODELS.items(), strict=True):
        assert body["folderUid"] == FOLDER_UID and body["overwrite"] is False
        assert body["dashboard"]["uid"] == uid and body["dashboard"]["id"] is None
        assert body["dashboard"]["panels"] == model["panels"]
    assert len(report.created) == 2 + len(MODELS) and not report.updated
    assert report.line().startswith("Grafana 11.3.0: 8 created")


def test_second_publish_only_reads() -> None:
    fake = FakeGrafana()
    publish(fake)
    fake.calls.clear()
    report = publish(fake)
    assert {c.method for c in fake.calls} == {"GET"}
    assert len(report.unchanged) == 2 + len(MODELS) and not report.created + report.updated


def test_a_changed_dashboard_is_overwritten_and_nothing_else() -> None:
    fake = FakeGrafana()
    publish(fake)
    fake.calls.clear()
    models = copy.deepcopy(MODELS)
    models["gridwatch-wall"]["title"] = "城市运行 · 总览 v2"
    report = publish(fake, models)
    writes = [c for c in fake.calls if c.method != "GET"]
    assert [(c.method, c.path) for c in writes] == [("POST", "/api/dashboards/db")]
    assert writes[0].body["overwrite"] is True
    assert writes[0].body["dashboard"]["title"] == "城市运行 · 总览 v2"
    assert report.updated == ["dashboard gridwatch-wall"]
    assert fake.dashboards["gridwatch-wall"]["dashboard"]["version"] == 2


def test_a_dashboard_in_another_folder_is_moved_back() -> None:
    fake = FakeGrafana()
    publish(fake)
    fake.dashboards["gridwatch-pipeline"]["meta"]["folderUid"] = "elsewhere"
    report = publish(fake)
    assert report.updated == ["dashboard gridwatch-pipeline"]
    assert fake.dashboards["gridwatch-pipeline"]["meta"]["folderUid"] == FOLDER_UID


def test_datasource_and_folder_are_updated_when_they_drift() -> None:
    fake = FakeGrafana()
    publish(fake)
    fake.datasources[DATASOURCE_UID]["url"] = "http://old-influx:8086"
    fake.folders[FOLDER_UID]["title"] = "renamed by hand"
    fake.calls.clear()
    report = publish(fake)
    writes = [(c.method, c.path) for c in fake.calls if c.method != "GET"]
    assert writes == [
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("PUT", f"/api/folders/{FOLDER_UID}"),
    ]
    folder_put = next(c for c in fake.calls if c.method == "PUT" and "folders" in c.path)
    assert folder_put.body == {"title": FOLDER_TITLE, "version": 1, "overwrite": True}
    assert fake.datasources[DATASOURCE_UID]["url"] == "http://influxdb:8086"
    assert sorted(report.updated) == [f"datasource {DATASOURCE_UID}", f"folder {FOLDER_UID}"]


def test_v2_datasource_sends_the_token_as_a_write_only_header() -> None:
    influx = InfluxSettings(
        api="v2",
        url="http://influxdb:8086",
        org="city",
        bucket="gridwatch",
        token=SecretStr("influx-secret"),
    )
    fake = FakeGrafana()
    publisher(fake).publish(MODELS, datasource_payload(influx))
    body = next(c.body for c in fake.calls if c.path == "/api/datasources")
    assert body["jsonData"]["httpHeaderName1"] == "Authorization"
    assert body["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    fake.calls.clear()
    publisher(fake).publish(MODELS, datasource_payload(influx))
    assert {c.method for c in fake.calls} == {"GET"}  # secret set: nothing to rewrite


def test_a_refused_token_is_one_clear_line() -> None:
    fake = FakeGrafana()
    with pytest.raises(GrafanaAuthError) as err:
        publish_with_token(fake, "wrong")
    message = str(err.value)
    assert "\n" not in message and "401" in message and URL in message
    assert isinstance(err.value, GridWatchError)


def publish_with_token(fake: FakeGrafana, token: str) -> Any:
    return publisher(fake, token).publish(MODELS, datasource_payload(INFLUX))


def test_a_viewer_token_is_refused_on_the_first_write() -> None:
    fake = FakeGrafana(forbid_writes=True)
    with pytest.raises(GrafanaAuthError, match=r"403.*create datasource"):
        publish(fake)
    assert not fake.datasources


@pytest.mark.parametrize("version", ["9.5.2", "10.3.1", "8.0.0-beta1"])
def test_an_old_grafana_is_refused_before_any_write(version: str) -> None:
    fake = FakeGrafana(version=version)
    with pytest.raises(GrafanaVersionError, match=rf"is {version.split('-')[0]}; .*10\.4"):
        publish(fake)
    assert [c.path for c in fake.calls] == ["/api/frontend/settings"]


def test_a_grafana_without_a_version_is_refused() -> None:
    with pytest.raises(GrafanaVersionError, match="no usable version"):
        publisher(FakeGrafana(version="")).check_version()


@pytest.mark.parametrize("version", ["10.4.0", "11.3.0", "12.0.1-security-01", "10.10.2"])
def test_supported_versions_pass(version: str) -> None:
    assert publisher(FakeGrafana(version=version)).check_version() == version.split("-")[0]


def test_unreachable_grafana_is_one_clear_line() -> None:
    with pytest.raises(GrafanaUnreachableError, match="unreachable"):
        publish(FakeGrafana(unreachable=True))


def test_other_refusals_are_publish_errors_with_the_server_message() -> None:
    fake = FakeGrafana()
    publish(fake)
    del fake.folders[FOLDER_UID]  # the folder vanished between the two steps
    models = copy.deepcopy(MODELS)
    models["gridwatch-wall"]["title"] = "changed"
    pub = publisher(fake)
    pub._folder = lambda report: None  # type: ignore[method-assign]  # skip re-creating it
    with pytest.raises(PublishError, match=r"\(400\): folder not found"):
        pub.publish(models, datasource_payload(INFLUX))


def test_cli_publish_ends_with_our_error_for_a_refused_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from gridwatch import cli

    connect = Publisher.connect

    def with_fake(url: str, token: str, timeout_s: float = 10.0) -> Publisher:
        pub = connect(url, token, timeout_s)
        pub.api.client.s.mount(url, FakeGrafana())
        return pub

    monkeypatch.setattr(Publisher, "connect", staticmethod(with_fake))
    cli._register()
    result = CliRunner().invoke(
        cli.app, ["dashboards", "publish", "--url", URL, "--token", "not-the-token"]
    )
    assert isinstance(result.exception, GrafanaAuthError)  # main() prints it as one line
    assert "\n" not in str(result.exception)


def test_cli_publish_refuses_a_url_without_scheme() -> None:
    from typer.testing import CliRunner

    from gridwatch import cli
    from gridwatch.errors import ConfigError

    cli._register()
    result = CliRunner().invoke(
        cli.app, ["dashboards", "publish", "--url", "grafana:3000", "--token", "t"]
    )
    assert isinstance(result.exception, ConfigError)
