"""The simulator commands, run through typer as the ``gridwatch`` CLI registers them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from simulators import cli
from tests.conftest import shared_data

SATYR = shared_data() / "floodnet_nyc/raw_uplinks/daily_happy_satyr_2023-05-29_06-28.csv"


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(cli.app, name="sim")
    root.command("simulate")(cli.simulate)
    root.command("replay")(cli.replay)
    return root


runner = CliRunner()


def test_simulate_writes_messages_truth_and_city(app, tmp_path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        ["simulate", "rainstorm-50y", "--duration", "40min", "--size", "tiny", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    for name in (
        "messages.jsonl",
        "incidents.jsonl",
        "complaints.jsonl",
        "faults.jsonl",
        "run.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "city" / "grids.geojson").is_file() and (out / "city" / "devices.json").is_file()
    info = json.loads((out / "run.json").read_text())
    lines = (out / "messages.jsonl").read_text().splitlines()
    assert info["messages"] == len(lines) > 0
    assert info["scenario"]["city"]["size"] == "tiny" and info["scenario"]["duration"] == 2400
    assert "simulate rainstorm-50y" in res.output and "messages" in res.output


def test_simulate_twice_gives_the_same_files(app, tmp_path) -> None:
    for name in ("a", "b"):
        args = [
            "simulate",
            "typhoon",
            "--duration",
            "30min",
            "--size",
            "tiny",
            "--out",
            str(tmp_path / name),
        ]
        assert runner.invoke(app, args).exit_code == 0
    for f in ("messages.jsonl", "incidents.jsonl", "complaints.jsonl", "faults.jsonl", "run.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_simulate_refuses_bad_options(app, tmp_path) -> None:
    res = runner.invoke(app, ["simulate", "rainstorm-50y", "--to", "kafka"])
    assert res.exit_code != 0
    res = runner.invoke(app, ["simulate", "rainstorm-50y", "--speed", "5", "--as-fast-as-possible"])
    assert res.exit_code != 0


def test_sim_validate_reports_bad_files(app, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstart: 2026-07-14T07:00:00Z\nduration: 2 hours\nwind: 3\n")
    res = runner.invoke(app, ["sim", "validate", str(bad)])
    assert res.exit_code == 1
    assert "bad duration" in res.output and "wind: unknown key" in res.output
    ok = runner.invoke(app, ["sim", "validate"])
    assert ok.exit_code == 0 and "rainstorm-50y" in ok.output


def test_sim_city_writes_a_registry(app, tmp_path) -> None:
    res = runner.invoke(
        app, ["sim", "city", "--out", str(tmp_path), "--size", "tiny", "--seed", "3"]
    )
    assert res.exit_code == 0, res.output
    devices = json.loads((tmp_path / "devices.json").read_text())
    assert devices and all("device_id" in d for d in devices)


def test_replay_floodnet_to_jsonl(app, tmp_path) -> None:
    out = tmp_path / "fn.jsonl"
    res = runner.invoke(app, ["replay", str(SATYR), "--out", str(out)])
    assert res.exit_code == 0, res.output
    first = json.loads(out.read_text().splitlines()[0])
    assert first["topic"] == "gw/v1/water/fn-daily-happy-satyr"
    assert first["at"].startswith("2023-05-29")  # as recorded unless --start is given
    assert "floodnet" in res.output


def test_replay_rebases_to_a_start(app, tmp_path) -> None:
    out = tmp_path / "fn.jsonl"
    res = runner.invoke(
        app, ["replay", str(SATYR), "--out", str(out), "--start", "2030-01-01T00:00:00Z"]
    )
    assert res.exit_code == 0, res.output
    first = json.loads(out.read_text().splitlines()[0])
    # The first message (after the 30 readings that set the dry baseline) moves to it.
    assert first["at"] == "2030-01-01T00:00:00Z"
    assert first["payload"]["ts"] == first["at"]


def test_replay_csv_needs_a_field_mapping(app, tmp_path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("time,v\n2026-07-14T07:00:00Z,1\n")
    res = runner.invoke(app, ["replay", str(p), "--device-id", "d1"])
    assert res.exit_code != 0
    res = runner.invoke(
        app,
        [
            "replay",
            str(p),
            "--device-id",
            "d1",
            "--field",
            "level_cm=v*10",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o.jsonl").read_text())["payload"]["level_cm"] == 10.0


@pytest.mark.slow
def test_the_gridwatch_entry_point_runs_simulate(tmp_path) -> None:
    exe = Path(sys.executable).parent / "gridwatch"
    res = subprocess.run(
        [str(exe), "simulate", "dry-weekday", "--duration", "10min", "--size", "tiny", "--out", str(tmp_path)],  # noqa: E501
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "messages.jsonl").stat().st_size > 0


def test_parse_start() -> None:
    from datetime import UTC, datetime

    from simulators.cli_support import parse_start

    assert parse_start(None, "jsonl") is None
    now = parse_start(None, "mqtt")
    assert now is not None and now.second == 0 and now.tzinfo is not None
    assert parse_start("2030-01-01T00:00:00Z", "jsonl") == datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_start("2030-01-01T00:00:00", "jsonl")
    with pytest.raises(typer.BadParameter):
        parse_start("tomorrow", "jsonl")


def test_sim_truth_summarises_a_run(app, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["simulate", "rainstorm-50y", "--duration", "100min", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, ["sim", "truth", str(out)])
    assert res.exit_code == 0, res.output
    assert "waterlogging" in res.output and "complaints" in res.output
