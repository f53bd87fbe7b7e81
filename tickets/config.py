"""The tickets package's own configuration, built from ``gridwatch.settings``.

``TicketsSettings`` (in ``gridwatch/settings.py``) carries only ``db_url``, ``host`` and
``port``; everything else the ticket store needs — SLA targets per category, escalation
stages, duty rosters, complaint-link windows, API tokens and Open311 keys — lives here
with defaults from the practice in the seeds, and can be overridden from a TOML file
(``--tickets-config``) until the shared settings grow these fields.

Tokens are never committed: ``ensure_dev_tokens`` generates development tokens under
the var directory (``<var_dir>/tickets-tokens.toml``, mode 0600).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gridwatch.errors import ConfigError
from gridwatch.settings import Settings

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
ROLE_RANK: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}

_Frozen = ConfigDict(extra="forbid", frozen=True)

STREET_CATEGORIES = (
    "waterlogging",
    "bike_overflow",
    "street_vendor",
    "exposed_garbage",
    "road_occupation",
    "crowding",
)


class SlaTarget(BaseModel):
    """Minutes from opening to acknowledgement, and from opening to resolution."""

    model_config = _Frozen

    ack_min: int = Field(ge=1, le=60 * 24 * 30)
    resolve_min: int = Field(ge=1, le=60 * 24 * 90)


def _default_sla() -> dict[str, SlaTarget]:
    sla = {c: SlaTarget(ack_min=15, resolve_min=45) for c in STREET_CATEGORIES}
    # Not yet a contract category; kept so the seeds' second example is configured.
    sla["illegal_structure"] = SlaTarget(ack_min=120, resolve_min=7 * 24 * 60)
    sla["device_fault"] = SlaTarget(ack_min=60, resolve_min=24 * 60)
    return sla


class EscalationStage(BaseModel):
    """From ``after_ack_due_min`` past the acknowledgement due time, ``role`` must act."""

    model_config = _Frozen

    after_ack_due_min: int = Field(ge=0)
    role: Literal["grid_head", "street_office", "district_command"]


def _default_stages() -> tuple[EscalationStage, ...]:
    return (
        EscalationStage(after_ack_due_min=0, role="grid_head"),
        EscalationStage(after_ack_due_min=15, role="street_office"),
        EscalationStage(after_ack_due_min=45, role="district_command"),
    )


DEFAULT_AGENCIES: dict[str, str] = {
    "waterlogging": "drainage",
    "bike_overflow": "transport",
    "street_vendor": "urban_management",
    "exposed_garbage": "sanitation",
    "road_occupation": "urban_management",
    "crowding": "public_security",
    "device_fault": "iot_maintenance",
    "illegal_structure": "urban_management",
}


class Roster(BaseModel):
    """Who is on duty for one grid."""

    model_config = _Frozen

    grid_head: str = Field(max_length=64)
    inspectors: tuple[str, ...] = Field(min_length=1, max_length=32)
    agencies: dict[str, str] = Field(default_factory=dict)


def default_roster(grid_id: str) -> Roster:
    """The roster generated for a grid the configuration does not name."""
    return Roster(
        grid_head=f"{grid_id}/head",
        inspectors=(f"{grid_id}/inspector-1", f"{grid_id}/inspector-2"),
        agencies=dict(DEFAULT_AGENCIES),
    )


class ApiToken(BaseModel):
    model_config = _Frozen

    name: str = Field(max_length=64)
    role: Role
    token: SecretStr


class TicketsConfig(BaseModel):
    model_config = _Frozen

    db_url: str = "sqlite:///var/tickets.db"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    var_dir: Path = Path("var")
    sla: dict[str, SlaTarget] = Field(default_factory=_default_sla)
    escalation: tuple[EscalationStage, ...] = Field(default_factory=_default_stages)
    reminder_every_min: int = Field(5, ge=1)
    rosters: dict[str, Roster] = Field(default_factory=dict)
    complaint_link_distance_m: float = Field(800.0, gt=0)
    complaint_link_window_min: int = Field(6 * 60, ge=1)
    tokens: tuple[ApiToken, ...] = ()
    open311_api_keys: tuple[SecretStr, ...] = ()
    # GeoReport discovery: who runs the endpoint, and where a developer asks for a key
    open311_contact: str = Field("GridWatch operations centre", max_length=200)
    open311_key_service: str = Field("Ask the operations centre for an api_key", max_length=200)
    max_page: int = Field(500, ge=1, le=5000)
    sse_poll_s: float = Field(1.0, gt=0, le=30)
    escalation_sweep_s: float = Field(30.0, gt=0)
    relay_batch: int = Field(200, ge=1, le=10_000)

    def sla_for(self, category: str) -> SlaTarget:
        return self.sla.get(category) or SlaTarget(ack_min=15, resolve_min=45)

    def roster_for(self, grid_id: str) -> Roster:
        return self.rosters.get(grid_id) or default_roster(grid_id)

    def agency_for(self, grid_id: str, category: str) -> str:
        roster = self.roster_for(grid_id)
        return roster.agencies.get(category) or DEFAULT_AGENCIES.get(category, "grid_office")

    def token_entry(self, token: str) -> ApiToken | None:
        """The configured token equal to ``token``, compared in constant time."""
        digest = hashlib.sha256(token.encode()).digest()
        found: ApiToken | None = None
        for entry in self.tokens:
            other = hashlib.sha256(entry.token.get_secret_value().encode()).digest()
            if secrets.compare_digest(digest, other):
                found = entry
        return found

    def role_of(self, token: str) -> Role | None:
        entry = self.token_entry(token)
        return entry.role if entry is not None else None

    def open311_key_ok(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode()).digest()
        ok = False
        for k in self.open311_api_keys:
            other = hashlib.sha256(k.get_secret_value().encode()).digest()
            ok = secrets.compare_digest(digest, other) or ok
        return ok


def tokens_path(var_dir: Path) -> Path:
    return var_dir / "tickets-tokens.toml"


def ensure_dev_tokens(var_dir: Path) -> Path:
    """Create development tokens (one per role) and an Open311 key, if absent."""
    path = tokens_path(var_dir)
    if path.exists():
        return path
    var_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Development tokens generated by `gridwatch tickets token`; never commit.\n",
        f'open311_api_keys = ["o311-{secrets.token_urlsafe(24)}"]\n\n',
    ]
    for role in ROLES:
        lines.append(
            f'[[tokens]]\nname = "dev-{role}"\nrole = "{role}"\n'
            f'token = "{role[:2]}-{secrets.token_urlsafe(24)}"\n\n'
        )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(lines))
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read tickets configuration: {exc}") from exc


def load_config(
    settings: Settings, config_file: Path | None = None, **overrides: Any
) -> TicketsConfig:
    """Build the tickets configuration: shared settings, then the file, then overrides.

    Tokens come from the file's ``[[tokens]]`` tables, else from the development tokens
    file under the var directory when it exists.
    """
    data: dict[str, Any] = {
        "db_url": settings.tickets.db_url,
        "host": settings.tickets.host,
        "port": settings.tickets.port,
        "var_dir": settings.stack.var_dir,
    }
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"tickets configuration file not found: {config_file}")
        data.update(_read_toml(config_file))
    dev = tokens_path(Path(data["var_dir"]))
    if "tokens" not in data and dev.is_file():
        dev_data = _read_toml(dev)
        data["tokens"] = dev_data.get("tokens", [])
        data.setdefault("open311_api_keys", dev_data.get("open311_api_keys", []))
    data.update(overrides)
    try:
        return TicketsConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid tickets configuration: {exc}") from exc
