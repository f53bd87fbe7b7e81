"""A TCP proxy that delays every chunk it forwards: a slow network in the drill harness.

``DelayProxy(host, port, (200, 500)).start()`` listens on a free local port and forwards
each connection to ``host:port``, sleeping a uniformly drawn 200–500 ms before passing on
each chunk read, in both directions, in order. It runs its own asyncio loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

import numpy as np

CHUNK = 65_536


@dataclass
class ProxyStats:
    connections: int = 0
    chunks: int = 0
    bytes: int = 0
    delay_ms_total: float = 0.0

    @property
    def mean_delay_ms(self) -> float:
        return self.delay_ms_total / self.chunks if self.chunks else 0.0


class DelayProxy:
    def __init__(
        self, host: str, port: int, delay_ms: tuple[float, float], *, seed: int = 0
    ) -> None:
        self.target = (host, port)
        self.delay_ms = delay_ms
        self.stats = ProxyStats()
        self.port = 0
        self._rng = np.random.default_rng(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _delay_s(self) -> float:
        low, high = self.delay_ms
        ms = float(self._rng.uniform(low, high))
        self.stats.delay_ms_total += ms
        return ms / 1000

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                await asyncio.sleep(self._delay_s())
                self.stats.chunks += 1
                self.stats.bytes += len(chunk)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
