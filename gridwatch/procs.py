"""Run GridWatch services as child processes with the parent's settings.

Used by the demo, benchmarks, drills and tests: a child gets the settings as
``GW_*`` environment variables, its own log file, and is stopped by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from gridwatch.errors import StackError, WaitTimeout
from gridwatch.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``GW_SECTION__FIELD`` variables (secrets revealed for the child)."""
    env: dict[str, str] = {}
    for section, value in settings:
        if isinstance(value, BaseModel):
            for name, field_value in value:
                if field_value is None:
                    continue
                env[f"GW_{section.upper()}__{name.upper()}"] = _env_value(field_value)
        elif value is not None:
            env[f"GW_{section.upper()}"] = _env_value(value)
    return env


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


class Child:
    """One ``python -m gridwatch …`` child process."""

    def __init__(self, name: str, args: list[str], settings: Settings, log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.settings = settings
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Child:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gridwatch", *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise StackError(
                f"{self.name} exited (code {code}); see {self.log_path}: {self.tail()}"
            )

    def stop(self, timeout_s: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """``kill -9`` the child and its process group."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])[-800:]


def wait_until(
    predicate: Any, timeout_s: float, interval_s: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy, or raise after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
