"""``gridwatch bench`` refuses a bad argument in one readable line, exit 2, before
starting anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-bench"], "unknown benchmark 'no-such-bench'"),
        (["pipeline", "--pack", "0"], "--pack must be between 1 and 60"),
        (["pipeline", "--pack", "61"], "--pack must be between 1 and 60"),
    ],
)
def test_bad_argument_is_one_readable_line_exit_2(args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gridwatch", "bench", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GW_")}, "COLUMNS": "300"},
        check=False,
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr
