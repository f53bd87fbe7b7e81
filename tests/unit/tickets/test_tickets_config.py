"""The tickets configuration: defaults, TOML overrides, development tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gridwatch.errors import ConfigError
from gridwatch.settings import Settings, StackSettings, TicketsSettings
from tickets.config import ensure_dev_tokens, load_config


def settings(tmp_path: Path) -> Settings:
    return Settings(
        stack=StackSettings(var_dir=tmp_path / "var"),
        tickets=TicketsSettings(db_url=f"sqlite:///{tmp_path}/t.db", port=9090),
    )


def test_defaults_come_from_shared_settings(tmp_path: Path) -> None:
    cfg = load_config(settings(tmp_path))
    assert cfg.db_url == f"sqlite:///{tmp_path}/t.db"
    assert cfg.port == 9090
    assert cfg.tokens == ()
    assert cfg.sla_for("street_vendor").ack_min == 15


def test_file_overrides_sla_rosters_and_tokens(tmp_path: Path) -> None:
    f = tmp_path / "tickets.toml"
    f.write_text(
        """
complaint_link_distance_m = 300.0
open311_api_keys = ["key-1"]

[sla.crowding]
ack_min = 5
resolve_min = 30

[rosters."D01-S01-G01"]
grid_head = "王网格长"
inspectors = ["李巡查"]
agencies = { waterlogging = "排水所" }

[[tokens]]
name = "ops-desk"
role = "operator"
token = "t-1"
""",
        encoding="utf-8",
    )
    cfg = load_config(settings(tmp_path), f)
    assert cfg.sla_for("crowding").resolve_min == 30
    assert cfg.sla_for("street_vendor").resolve_min == 45  # untouched defaults stay
    assert cfg.roster_for("D01-S01-G01").grid_head == "王网格长"
    assert cfg.agency_for("D01-S01-G01", "waterlogging") == "排水所"
    assert cfg.agency_for("D01-S01-G01", "exposed_garbage") == "sanitation"
    assert cfg.roster_for("D01-S01-G02").grid_head == "D01-S01-G02/head"
    assert cfg.role_of("t-1") == "operator"
    assert cfg.open311_key_ok("key-1")
    assert cfg.complaint_link_distance_m == 300.0


def test_dev_tokens_are_private_and_loaded(tmp_path: Path) -> None:
    path = ensure_dev_tokens(tmp_path / "var")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_dev_tokens(tmp_path / "var") == path  # never regenerated
    cfg = load_config(settings(tmp_path))
    assert sorted(t.role for t in cfg.tokens) == ["admin", "operator", "viewer"]
    assert len(cfg.open311_api_keys) == 1
    assert len({t.token.get_secret_value() for t in cfg.tokens}) == 3


@pytest.mark.parametrize(
    "text",
    [
        "sla = 3",
        "[sla.crowding]\nack_min = 0\nresolve_min = 5",
        '[[tokens]]\nname = "x"\nrole = "root"\ntoken = "t"',
        "not toml [",
    ],
)
def test_bad_files_are_config_errors(tmp_path: Path, text: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError):
        load_config(settings(tmp_path), f)
    with pytest.raises(ConfigError):
        load_config(settings(tmp_path), tmp_path / "missing.toml")
