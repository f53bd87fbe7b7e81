"""A wait that runs out is one line on the command line and a TimeoutError to code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gridwatch.errors import GridWatchError
from gridwatch.procs import wait_until


def test_a_wait_that_runs_out_is_a_gridwatch_error_and_a_timeout() -> None:
    with pytest.raises(TimeoutError) as caught:
        wait_until(lambda: False, 0.01, interval_s=0.001, what="consumer lag 0")
    assert isinstance(caught.value, GridWatchError)
    assert "waiting for consumer lag 0" in str(caught.value)


def test_the_cli_prints_a_run_out_wait_as_one_line() -> None:
    script = textwrap.dedent(
        """
        import gridwatch.cli as cli
        from gridwatch.procs import wait_until

        @cli.app.command(name="wait-forever")
        def wait_forever() -> None:
            wait_until(lambda: False, 0.01, interval_s=0.001, what="the stream worker")

        cli.main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "wait-forever"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "waiting for the stream worker" in lines[0], done.stderr
