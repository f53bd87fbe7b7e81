"""``gridwatch tickets …`` through the real entry point, and the bench on both backends."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from tickets import bench

pytestmark = pytest.mark.integration

ENTRY = "from gridwatch.cli import main; main()"


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(Path.cwd()),
        "GW_STACK__VAR_DIR": str(tmp_path / "var"),
        "GW_TICKETS__DB_URL": f"sqlite:///{tmp_path / 'cli.db'}",
    }


def test_migrate_and_token(cli_env: dict[str, str], tmp_path: Path) -> None:
    out = run_cli(["tickets", "migrate"], cli_env)
    assert out.returncode == 0, out.stderr
    assert "revision 0003" in out.stdout
    out = run_cli(["tickets", "token", "--show"], cli_env)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "var" / "tickets-tokens.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = tomllib.loads(path.read_text())
    assert {t["role"] for t in doc["tokens"]} == {"viewer", "operator", "admin"}
    for t in doc["tokens"]:
        assert t["token"] in out.stdout
    bad = run_cli(["tickets", "migrate", "--db-url", "mysql://nope/x"], cli_env)
    assert bad.returncode == 2
    assert "unsupported database backend" in bad.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_with_demo_data(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "tickets", "serve", "--demo", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        doc = tomllib.loads((tmp_path / "var" / "tickets-tokens.toml").read_text())
        viewer = next(t["token"] for t in doc["tokens"] if t["role"] == "viewer")
        q = httpx.get(f"{base}/api/v1/queue", headers={"Authorization": f"Bearer {viewer}"})
        assert q.status_code == 200
        assert len(q.json()["items"]) >= 5
        assert "console.js" in httpx.get(f"{base}/console/").text
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.slow
def test_bench_runs_on_sqlite_and_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "ALERTS", 120)
    monkeypatch.setattr(bench, "INCIDENTS", 20)
    monkeypatch.setattr(bench, "API_REQUESTS", 80)
    out = tmp_path / "bench.json"
    result = bench.run_bench(out)
    assert json.loads(out.read_text()) == result
    for name in ("sqlite", "postgresql"):
        r = result["backends"][name]
        assert r["tickets"] == 20
        assert r["raise_per_s"] > 0
        assert r["raise_batched_per_s"] > 0
        assert r["api_p99_ms"] >= r["api_p50_ms"] > 0
