"""The benchmark's SenML packs decode, for every kind, into the readings they stand
for: ``pack`` readings one second apart with consecutive seqs and the values of the
one-reading payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gridwatch.contracts import KINDS, DeadLetterReason
from gridwatch.errors import ContractError
from ingest.bench import payload, senml_pack
from ingest.decode import Decoder
from simulators.city import generate_city

REGISTRY = generate_city(42, "small").registry()


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_packs_into_its_readings(kind: str) -> None:
    device = REGISTRY.devices_of(kind)[0].device.device_id
    now = datetime.now(UTC).replace(microsecond=0)
    now_ms = int(now.timestamp() * 1000)
    decoder = Decoder(REGISTRY, rate_per_s=1e6, burst=1e6)
    body = json.dumps(senml_pack(kind, now_ms, 7, 10)).encode()
    readings = decoder.decode(f"gw/v1/{kind}/{device}", body, now)
    assert [r.seq for r in readings] == list(range(7, 17))
    assert [int(r.ts.timestamp()) for r in readings] == [now_ms // 1000 - 9 + i for i in range(10)]
    one = json.dumps(payload(kind, now_ms, 99)).encode()
    # The pack's last reading and the one-reading payload are one point with the same
    # values: a duplicate for the decoder that saw the pack, whatever the seq.
    with pytest.raises(ContractError) as info:
        decoder.decode(f"gw/v1/{kind}/{device}", one, now)
    assert info.value.reason == DeadLetterReason.DUPLICATE
    fresh = Decoder(REGISTRY, rate_per_s=1e6, burst=1e6)
    single = fresh.decode(f"gw/v1/{kind}/{device}", one, now)[0]
    skip = {"ts", "seq", "received_at", "qc"}
    assert readings[-1].model_dump(exclude=skip) == single.model_dump(exclude=skip)


def test_packs_of_one_device_never_share_a_time() -> None:
    first = senml_pack("water", 1_796_000_010_000, 0, 10)
    second = senml_pack("water", 1_796_000_012_345, 10, 10, since_ms=1_796_000_010_000)
    t1 = sorted({r["t"] for r in first})
    t2 = sorted({r["t"] for r in second})
    assert len(t1) == len(t2) == 10
    assert t1[-1] == 1_796_000_010.0 < t2[0]
    assert t2[-1] == 1_796_000_012.345
