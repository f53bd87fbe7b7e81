"""The v2 transport (influxdb-client) sends what InfluxDB 2.x's /api/v2/write expects.

No InfluxDB 2.x runs here (Debian 12 packages only 1.6), so a local HTTP server records
the request the real client library makes; the v1 path is tested against the real
InfluxDB in tests/integration.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from gridwatch.errors import SinkError
from gridwatch.influx import InfluxWriter, Point, RetryableWriteError
from gridwatch.settings import InfluxSettings


class Recorder(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, object]]] = []
    status: ClassVar[int] = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        url = urlsplit(self.path)
        Recorder.requests.append(
            {
                "path": url.path,
                "query": parse_qs(url.query),
                "auth": self.headers.get("Authorization"),
                "body": body,
            }
        )
        self.send_response(Recorder.status)
        self.end_headers()
        if Recorder.status >= 400:
            self.wfile.write(b'{"code":"invalid","message":"bad"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.requests = []
    Recorder.status = 204
    httpd = HTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _settings(url: str) -> InfluxSettings:
    return InfluxSettings(
        api="v2", url=url, org="city", bucket="gridwatch", token="s3cret", max_retries=0
    )  # type: ignore[arg-type]


def test_v2_write_shape(server: str) -> None:
    writer = InfluxWriter(_settings(server))
    points = [Point("water", {"device": "wl-1"}, {"level_cm": 1.5}, 1_700_000_000_000)]
    assert asyncio.run(writer.write(points)) == 1
    asyncio.run(writer.close())
    (req,) = Recorder.requests
    assert req["path"] == "/api/v2/write"
    assert req["query"] == {"org": ["city"], "bucket": ["gridwatch"], "precision": ["ms"]}
    assert req["auth"] == "Token s3cret"
    assert req["body"] == b"water,device=wl-1 level_cm=1.5 1700000000000"


@pytest.mark.parametrize(("status", "error"), [(400, SinkError), (503, RetryableWriteError)])
def test_v2_errors_are_classified(server: str, status: int, error: type[Exception]) -> None:
    Recorder.status = status
    writer = InfluxWriter(_settings(server))
    with pytest.raises(error) as info:
        asyncio.run(writer.write([Point("m", {}, {"v": 1.0}, 1)]))
    asyncio.run(writer.close())
    assert type(info.value) is error  # a 400 must not be retried, a 503 must
