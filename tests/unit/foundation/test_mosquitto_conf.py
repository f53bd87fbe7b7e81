"""The broker's dynamic-security state: who may log in, publish and subscribe (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gridwatch.credentials import device_password, ensure_secret_file
from gridwatch.errors import StackError
from gridwatch.mosquitto_conf import (
    ADMIN_USER,
    DEFAULT_ACCESS,
    DEVICE_ROLE,
    INGEST_ROLE,
    changes,
    config_doc,
    config_text,
    password_matches,
    provisioned_devices,
    read_config,
    wanted_state,
    write_config,
)
from gridwatch.settings import Settings, load_settings

DEVICES = {"wl-00001": "water", "rg-00001": "rain", "cam-00001": "camera"}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    monkeypatch.chdir(tmp_path)
    return load_settings(mqtt={"password": "ingest-pw"}, sim={"device_secret": "dev-secret"})


def _roles(doc: dict[str, Any]) -> dict[str, set[tuple[str, str, bool]]]:
    return {
        r["rolename"]: {(a["acltype"], a["topic"], a["allow"]) for a in r["acls"]}
        for r in doc["roles"]
    }


def test_a_device_may_publish_to_its_own_kind_and_id_only(settings: Settings) -> None:
    doc = config_doc(wanted_state(settings, DEVICES, "admin-pw"))
    roles = _roles(doc)
    for device, kind in DEVICES.items():
        assert roles[DEVICE_ROLE + device] == {
            ("publishClientSend", f"gw/v1/{kind}/{device}", True)
        }
    clients = {c["username"]: c for c in doc["clients"]}
    assert [r["rolename"] for r in clients["wl-00001"]["roles"]] == ["device:wl-00001"]
    assert password_matches(clients["wl-00001"], device_password("dev-secret", "wl-00001"))
    assert not password_matches(clients["wl-00001"], device_password("dev-secret", "rg-00001"))
    # nothing else is granted: no subscription, no delivery, no other publish
    assert doc["defaultACLAccess"] == DEFAULT_ACCESS
    assert DEFAULT_ACCESS["subscribe"] is False
    assert DEFAULT_ACCESS["publishClientSend"] is False
    assert DEFAULT_ACCESS["publishClientReceive"] is False


def test_the_ingest_user_reads_the_bridges_share_groups_and_publishes_nothing(
    settings: Settings,
) -> None:
    doc = config_doc(wanted_state(settings, DEVICES, "admin-pw"))
    ingest = _roles(doc)[INGEST_ROLE]
    assert ("subscribePattern", "$share/+/gw/v1/#", True) in ingest
    assert ("subscribePattern", "gw/v1/#", True) in ingest
    assert ("publishClientReceive", "gw/v1/#", True) in ingest
    assert not any(t == "publishClientSend" for t, _, _ in ingest)
    clients = {c["username"]: c for c in doc["clients"]}
    assert password_matches(clients[settings.mqtt.username], "ingest-pw")
    assert password_matches(clients[ADMIN_USER], "admin-pw")


@pytest.mark.parametrize(
    ("devices", "error"),
    [
        ({"wl-#": "water"}, "not a device id"),
        ({"+": "water"}, "not a device id"),
        ({"WL-1": "water"}, "not a device id"),
        ({"wl-1": "smoke"}, "unknown kind"),
        ({"gw-ingest": "status"}, "service user"),
    ],
)
def test_what_cannot_become_a_login_is_refused(
    settings: Settings, devices: dict[str, str], error: str
) -> None:
    with pytest.raises(StackError, match=error):
        wanted_state(settings, devices, "admin-pw")


def test_a_topic_root_with_wildcards_is_refused(tmp_path: Path) -> None:
    s = load_settings(mqtt={"topic_root": "gw/+"}, stack={"var_dir": tmp_path})
    with pytest.raises(StackError, match="topic_root"):
        wanted_state(s, {}, "admin-pw")


def test_a_document_round_trips_without_changes(settings: Settings) -> None:
    state = wanted_state(settings, DEVICES, "admin-pw")
    doc = config_doc(state)
    assert changes(doc, state) == []
    assert provisioned_devices(doc, "gw/v1") == DEVICES


def test_changes_add_remove_rekind_and_repassword(settings: Settings) -> None:
    doc = config_doc(wanted_state(settings, DEVICES, "admin-pw"))
    wanted = {"wl-00001": "water", "rg-00001": "bike", "wl-00002": "water"}
    commands = changes(doc, wanted_state(settings, wanted, "new-admin-pw"))
    by = {(c["command"], c.get("username") or c.get("rolename")) for c in commands}
    assert by == {
        ("createRole", "device:wl-00002"),
        ("createClient", "wl-00002"),
        ("removeRoleACL", "device:rg-00001"),
        ("addRoleACL", "device:rg-00001"),
        ("setClientPassword", ADMIN_USER),
        ("deleteClient", "cam-00001"),
        ("deleteRole", "device:cam-00001"),
    }
    create = next(c for c in commands if c["command"] == "createClient")
    assert create["password"] == device_password("dev-secret", "wl-00002")
    assert create["roles"] == [{"rolename": "device:wl-00002"}]
    # a role exists before a client names it; a client goes before its role
    order = [c["command"] for c in commands]
    assert order.index("createRole") < order.index("createClient")
    assert order.index("deleteClient") < order.index("deleteRole")
    # trusted clients are not re-hashed (a restart keeps 50,000 devices as they are)
    assert changes(doc, wanted_state(settings, DEVICES, "admin-pw"), trust=DEVICES) == []


def test_a_changed_default_access_is_set_again(settings: Settings) -> None:
    state = wanted_state(settings, {}, "admin-pw")
    doc = config_doc(state)
    doc["defaultACLAccess"]["subscribe"] = True
    assert changes(doc, state) == [
        {
            "command": "setDefaultACLAccess",
            "acls": [{"acltype": k, "allow": v} for k, v in DEFAULT_ACCESS.items()],
        }
    ]


def test_reused_hashes_are_kept_only_when_they_match(settings: Settings) -> None:
    old = config_doc(wanted_state(settings, DEVICES, "admin-pw"))
    fresh = config_doc(wanted_state(settings, DEVICES, "other-pw"), reuse=old)
    old_c = {c["username"]: c for c in old["clients"]}
    new_c = {c["username"]: c for c in fresh["clients"]}
    assert new_c["wl-00001"]["salt"] == old_c["wl-00001"]["salt"]
    assert new_c[ADMIN_USER]["salt"] != old_c[ADMIN_USER]["salt"]
    assert password_matches(new_c[ADMIN_USER], "other-pw")


def test_the_file_is_private_and_read_back(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dynsec.json"
    assert read_config(path) is None
    doc = config_doc(wanted_state(settings, DEVICES, "admin-pw"))
    write_config(path, doc)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_config(path) == doc
    path.write_text("[1, 2")
    with pytest.raises(StackError, match="dynamic-security"):
        read_config(path)


def test_the_broker_config_loads_the_plugin_and_no_password_file(
    settings: Settings, tmp_path: Path
) -> None:
    plugin = tmp_path / "mosquitto_dynamic_security.so"
    text = config_text(settings, tmp_path, tmp_path / "m.log", plugin)
    assert f"plugin {plugin}" in text.splitlines()
    assert f"plugin_opt_config_file {tmp_path / 'dynsec.json'}" in text.splitlines()
    assert "allow_anonymous false" in text.splitlines()
    assert "password_file" not in text and "acl_file" not in text


def test_the_admin_secret_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "mosquitto" / "admin.secret"
    first = ensure_secret_file(path)
    assert len(first) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert ensure_secret_file(path) == first
