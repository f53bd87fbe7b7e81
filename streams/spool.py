"""A local spool of line-protocol batches for when InfluxDB is down.

Each batch the sink could not write becomes one file ``<time_ns>-<pid>.lp`` in the spool
directory, written to a temporary name, fsynced and renamed, so a file either holds a
whole batch or does not exist. File names sort in the order the batches were spooled,
which is the order they are drained in. A worker that dies with a full spool leaves its
files for whichever worker (on the same directory) starts next: draining takes an
exclusive ``flock`` on each file, so two workers never write the same file twice at the
same time (and if one is written twice after a crash, InfluxDB keeps one point per
series and time).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".lp"


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._bytes = sum(p.stat().st_size for p in self.files())

    def files(self) -> list[Path]:
        """Spooled batches, oldest first."""
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def __bool__(self) -> bool:
        return bool(self.files())

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def has_room(self, lines: list[str]) -> bool:
        return self._bytes + sum(len(line) + 1 for line in lines) <= self.max_bytes

    def append(self, lines: list[str]) -> Path:
        """Persist one batch durably (fsync) before the caller acks what it holds."""
        body = ("\n".join(lines) + "\n").encode()
        name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        path = self.directory / name
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._bytes += len(body)
        return path

    @contextmanager
    def claim(self, path: Path) -> Iterator[list[str] | None]:
        """The lines of ``path`` under an exclusive lock, or None if another worker holds
        it or already drained it. Leaving the block normally deletes the file."""
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed in finally
        except FileNotFoundError:
            yield None
            return
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if not path.exists():  # drained by another worker before we locked it
                yield None
                return
            data = fh.read()
            yield [line for line in data.decode().split("\n") if line]
            path.unlink(missing_ok=True)
            self._bytes = max(0, self._bytes - len(data))
        finally:
            fh.close()
