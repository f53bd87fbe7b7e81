"""Mosquitto's configuration and its dynamic-security state for the local stack.

Authentication and ACLs are Mosquitto's dynamic-security plugin (2.0), configured by a
JSON file generated from the development credentials into
``<var_dir>/mosquitto/dynsec.json`` (mode 0600):

* a device logs in as itself (username = device id, password derived from the device
  secret) and may publish only to ``{root}/{its kind}/{its id}``; it may subscribe to
  nothing, so it can neither read other devices nor join the bridges' shared
  subscription;
* the ingest service user (``mqtt.username``) may subscribe to ``$share/<any
  group>/{root}/#`` (the bridges), ``{root}/#`` (listeners, tests) and ``$SYS/#`` and
  receive what they match; it publishes nothing;
* ``gw_dynsec_admin`` (an underscore: never a device id) may only send
  dynamic-security commands; the stack uses it to provision a running broker;
* anonymous clients are refused, and whatever is not granted is denied
  (``defaultACLAccess``: no publish, no delivery, no subscription).

Why not ``acl_file``: Mosquitto 2.0 grants every SUBSCRIBE when ACLs come from a file
and checks read access only when it delivers (eclipse/mosquitto#2296), so a device
could join the bridges' ``$share`` group and the broker then silently dropped the part
of the stream it assigned to the device. The plugin checks the SUBSCRIBE itself, with
the whole filter (``$share/<group>/...``, measured on 2.0.11), and refuses it with
reason code 0x87. It has no ``%u`` substitution in 2.0, hence one role per device.

The plugin reads its file once at start (SIGHUP does not reload it) and rewrites it
after every change made through ``$CONTROL``. So the file is written here only while
the broker is stopped; a running broker gets the commands of ``changes``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pwd
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.contracts import DEVICE_ID_RE, KINDS
from gridwatch.credentials import device_password
from gridwatch.errors import StackError
from gridwatch.settings import Settings

PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 and the dynsec plugin write
ADMIN_USER = "gw_dynsec_admin"
DEVICE_ROLE = "device:"  # + device id
INGEST_ROLE = "service:ingest"
ADMIN_ROLE = "service:dynsec-admin"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
# Everything not granted by a role is denied; unsubscribing is harmless.
DEFAULT_ACCESS: dict[str, bool] = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}

Acl = tuple[str, str, bool]  # (acltype, topic, allow)


# -- the dynamic-security state ----------------------------------------------------------


@dataclass(frozen=True)
class Account:
    password: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class DynsecState:
    """Who may log in, with which roles, and what each role may do."""

    clients: Mapping[str, Account]
    roles: Mapping[str, frozenset[Acl]]
    default_access: Mapping[str, bool]


def device_topic(root: str, kind: str, device_id: str) -> str:
    return f"{root.rstrip('/')}/{kind}/{device_id}"


def wanted_state(
    settings: Settings, devices: Mapping[str, str], admin_password: str
) -> DynsecState:
    """Service users plus ``devices`` (device id → kind), each allowed its own topic only."""
    root = settings.mqtt.topic_root.rstrip("/")
    if not root or any(c in root for c in "+#$"):
        raise StackError(f"mqtt.topic_root {root!r} cannot be used in an ACL")
    service = settings.mqtt.username
    clients: dict[str, Account] = {ADMIN_USER: Account(admin_password, (ADMIN_ROLE,))}
    if settings.mqtt.password is not None:
        clients[service] = Account(settings.mqtt.password.get_secret_value(), (INGEST_ROLE,))
    roles: dict[str, frozenset[Acl]] = {
        ADMIN_ROLE: frozenset(
            (t, "$CONTROL/dynamic-security/#", True)
            for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
        ),
        INGEST_ROLE: frozenset(
            {
                ("subscribePattern", f"$share/+/{root}/#", True),
                ("subscribePattern", f"{root}/#", True),
                ("subscribePattern", "$SYS/#", True),
                ("publishClientReceive", f"{root}/#", True),
                ("publishClientReceive", "$SYS/#", True),
            }
        ),
    }
    if devices and settings.sim.device_secret is None:
        raise StackError("settings.sim.device_secret is not set; run `gridwatch stack up`")
    secret = settings.sim.device_secret.get_secret_value() if settings.sim.device_secret else ""
    for device_id, kind in sorted(devices.items()):
        if not DEVICE_ID_RE.match(device_id):
            raise StackError(f"cannot provision {device_id!r}: not a device id")
        if kind not in KINDS:
            raise StackError(f"cannot provision {device_id}: unknown kind {kind!r}")
        if device_id in clients:
            raise StackError(f"device {device_id} has the name of a service user")
        role = DEVICE_ROLE + device_id
        clients[device_id] = Account(device_password(secret, device_id), (role,))
        topic = device_topic(root, kind, device_id)
        roles[role] = frozenset({("publishClientSend", topic, True)})
    return DynsecState(clients, roles, dict(DEFAULT_ACCESS))


def _hashed(password: str) -> dict[str, Any]:
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 64)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": PBKDF2_ITERATIONS,
    }


def password_matches(client: Mapping[str, Any], password: str) -> bool:
    """Whether a client of a dynsec file has this password (PBKDF2-SHA512, its salt)."""
    try:
        salt = base64.b64decode(client["salt"])
        stored = base64.b64decode(client["password"])
        iterations = int(client["iterations"])
    except (KeyError, TypeError, ValueError):
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(stored))
    return hmac.compare_digest(digest, stored)


def _acl_doc(acl: Acl) -> dict[str, Any]:
    return {"acltype": acl[0], "topic": acl[1], "allow": acl[2]}


def config_doc(
    state: DynsecState, reuse: Mapping[str, Any] | None = None, trust: Collection[str] = ()
) -> dict[str, Any]:
    """The plugin's JSON document for ``state``.

    A client of ``reuse`` (a current document) keeps its hash when its password still
    matches, or without checking when it is in ``trust`` (saves 50,000 PBKDF2 runs on a
    restart); every other password is hashed with a fresh salt.
    """
    old = _clients(reuse) if reuse is not None else {}
    clients = []
    for user, account in sorted(state.clients.items()):
        prev = old.get(user)
        if prev is not None and (user in trust or password_matches(prev, account.password)):
            hashed = {k: prev[k] for k in ("password", "salt", "iterations")}
        else:
            hashed = _hashed(account.password)
        roles = [{"rolename": r} for r in account.roles]
        clients.append({"username": user, **hashed, "roles": roles})
    roles_doc = [
        {"rolename": name, "acls": [_acl_doc(a) for a in sorted(acls)]}
        for name, acls in sorted(state.roles.items())
    ]
    return {
        "defaultACLAccess": dict(state.default_access),
        "clients": clients,
        "roles": roles_doc,
        "groups": [],
    }


def write_production_config(settings: Settings, devices: Mapping[str, str], path: Path) -> int:
    """The plugin's file for production (``deploy/mosquitto``): the service user with
    ``settings.mqtt.password`` (the deployment's ``GW_MQTT__PASSWORD``), ``devices``
    (id → kind) each on its own topic, and an admin login for ``$CONTROL`` whose random
    password goes to ``<path>.admin``; both files mode 0600. Returns the logins written."""
    if settings.mqtt.password is None:
        raise StackError(
            "mqtt.password is not set: export the deployment's GW_MQTT__PASSWORD first"
        )
    admin = path.with_name(path.name + ".admin")
    fd = os.open(admin, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    password = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    state = wanted_state(settings, devices, password)
    write_config(path, config_doc(state))
    return len(state.clients)


def read_config(path: Path) -> dict[str, Any] | None:
    """The plugin's file as it is now, or None when there is none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read Mosquitto's dynamic-security file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise StackError(f"{path}: not a dynamic-security document")
    return doc


def write_config(path: Path, doc: Mapping[str, Any]) -> None:
    """Write atomically with mode 0600 (it holds password hashes)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    tmp.chmod(0o600)
    tmp.replace(path)


def _clients(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        c["username"]: c
        for c in doc.get("clients") or []
        if isinstance(c, dict) and isinstance(c.get("username"), str)
    }


def _client_roles(client: Mapping[str, Any]) -> set[str]:
    return {r["rolename"] for r in client.get("roles") or [] if isinstance(r, dict)}


def _roles(doc: Mapping[str, Any]) -> dict[str, set[Acl]]:
    out: dict[str, set[Acl]] = {}
    for role in doc.get("roles") or []:
        if isinstance(role, dict) and isinstance(role.get("rolename"), str):
            out[role["rolename"]] = {
                (a.get("acltype", ""), a.get("topic", ""), bool(a.get("allow", False)))
                for a in role.get("acls") or []
                if isinstance(a, dict)
            }
    return out


def provisioned_devices(doc: Mapping[str, Any] | None, root: str) -> dict[str, str]:
    """Device id → kind of every device login in a dynsec document."""
    if doc is None:
        return {}
    roles = _roles(doc)
    prefix = root.rstrip("/") + "/"
    out: dict[str, str] = {}
    for user in _clients(doc):
        for acltype, topic, allow in roles.get(DEVICE_ROLE + user, set()):
            if acltype == "publishClientSend" and allow and topic.startswith(prefix):
                kind, _, device = topic[len(prefix) :].partition("/")
                if device == user and DEVICE_ID_RE.match(user):
                    out[user] = kind
    return out


def changes(
    current: Mapping[str, Any], wanted: DynsecState, trust: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Dynamic-security commands turning the ``current`` document into ``wanted``.

    Passwords are compared by hashing (clients in ``trust`` are not checked).
    """
    out: list[dict[str, Any]] = []
    default = current.get("defaultACLAccess") or {}
    if any(default.get(k) != v for k, v in wanted.default_access.items()):
        access = [{"acltype": k, "allow": v} for k, v in wanted.default_access.items()]
        out.append({"command": "setDefaultACLAccess", "acls": access})
    have_roles = _roles(current)
    for name, acls in sorted(wanted.roles.items()):
        have = have_roles.get(name)
        if have is None:
            docs = [_acl_doc(a) for a in sorted(acls)]
            out.append({"command": "createRole", "rolename": name, "acls": docs})
            continue
        for acltype, topic, _allow in sorted(have - acls):
            out.append(
                {"command": "removeRoleACL", "rolename": name, "acltype": acltype, "topic": topic}
            )
        for acl in sorted(acls - have):
            out.append({"command": "addRoleACL", "rolename": name, **_acl_doc(acl)})
    have_clients = _clients(current)
    for user, account in sorted(wanted.clients.items()):
        prev = have_clients.get(user)
        if prev is None:
            out.append(
                {
                    "command": "createClient",
                    "username": user,
                    "password": account.password,
                    "roles": [{"rolename": r} for r in account.roles],
                }
            )
            continue
        if user not in trust and not password_matches(prev, account.password):
            out.append(
                {"command": "setClientPassword", "username": user, "password": account.password}
            )
        roles = _client_roles(prev)
        for role in sorted(roles - set(account.roles)):
            out.append({"command": "removeClientRole", "username": user, "rolename": role})
        for role in sorted(set(account.roles) - roles):
            out.append({"command": "addClientRole", "username": user, "rolename": role})
    for user in sorted(set(have_clients) - set(wanted.clients)):
        out.append({"command": "deleteClient", "username": user})
    for name in sorted(set(have_roles) - set(wanted.roles)):
        out.append({"command": "deleteRole", "rolename": name})
    return out


# -- mosquitto.conf ------------------------------------------------------------------------


def config_text(settings: Settings, data_dir: Path, log_file: Path, plugin: Path) -> str:
    m = settings.mqtt
    return "\n".join(
        [
            "# Generated by gridwatch stack; do not edit.",
            "per_listener_settings false",
            # Run as whoever started us: data and logs live in our own var directory.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "allow_anonymous false",
            # Logins and ACLs: the dynamic-security plugin (see gridwatch.mosquitto_conf).
            f"plugin {plugin}",
            f"plugin_opt_config_file {data_dir / 'dynsec.json'}",
            "persistence true",
            f"persistence_location {data_dir}/",
            f"autosave_interval {m.broker_autosave_s}",
            f"max_inflight_messages {m.broker_max_inflight}",
            f"max_queued_messages {m.broker_max_queued}",
            "max_queued_bytes 0",
            "set_tcp_nodelay true",
            f"log_dest file {log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
            f"listener {m.port} {m.host}",
            "",
        ]
    )


PLUGIN_NAME = "mosquitto_dynamic_security.so"


def find_plugin(binary: str) -> Path:
    """The dynamic-security plugin shipped with the Mosquitto package of ``binary``."""
    prefix = Path(binary).resolve().parent.parent  # /usr/sbin/mosquitto → /usr
    candidates = [
        *sorted(prefix.glob(f"lib/*/{PLUGIN_NAME}")),
        prefix / "lib" / PLUGIN_NAME,
        *sorted(Path("/usr/lib").glob(f"*/{PLUGIN_NAME}")),
        Path("/usr/lib") / PLUGIN_NAME,
        Path("/usr/local/lib") / PLUGIN_NAME,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise StackError(
        f"Mosquitto's dynamic-security plugin ({PLUGIN_NAME}) not found next to {binary}; "
        "install Mosquitto 2.0 or newer: apt-get install -y mosquitto"
    )
