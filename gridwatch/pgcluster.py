"""A private PostgreSQL cluster: initdb + postgres on a free port in a temporary directory.

Tests, the tickets benchmark and the drills start one of these; nothing assumes a server on
5432. A drill can stop (even crash) and restart it without touching any other server."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from gridwatch.errors import StackError
from gridwatch.stack import free_port


def _binary(name: str) -> str:
    """Debian keeps the server binaries off PATH, one directory per major version."""
    for d in ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)):
        path = Path(d) / name
        if path.is_file():
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"PostgreSQL's {name} not found; install it with `make setup` "
            "(apt-get install -y postgresql)"
        )
    return found


class PgCluster:
    """``with PgCluster() as pg: pg.create_database("x"); pg.stop("immediate"); pg.start()``"""

    def __init__(self) -> None:
        # not under pytest's tmp dirs: those are private to root, postgres must reach it
        self.root = Path(tempfile.mkdtemp(prefix="gw-drill-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            raise StackError(f"{' '.join(argv[:2])} failed: {(out.stderr or out.stdout)[-400:]}")

    def init(self) -> PgCluster:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N")
        return self

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            _binary("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash (no shutdown checkpoint; WAL recovery at start)."""
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        with contextlib.suppress(StackError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
