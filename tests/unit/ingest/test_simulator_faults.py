"""The simulators' bad-input catalogue gets exactly the reason it expects from ingest."""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.errors import ContractError
from ingest.decode import Decoder
from simulators.faults import malformed
from simulators.messages import TEMPLATES, rfc3339
from simulators.scenario import MALFORMED_CLASSES

from .conftest import NOW, STATUS_DEVICE

T = int(NOW.timestamp()) - 30
GOOD: dict[str, tuple[str, str]] = {
    "water": ("wl-00001", TEMPLATES["water"] % (3.61, 4.2, -88.0, 17, rfc3339(T))),
    "rain": ("rg-00001", TEMPLATES["rain"] % (2.4, 0.2, 17, rfc3339(T))),
    "bike": ("bk-00001", TEMPLATES["bike"] % (30, 10, 8, 12, 69, 17, rfc3339(T))),
    "camera": ("cam-00001", TEMPLATES["camera"] % (3, 0, 12, 0, 4, 1, 17, rfc3339(T), 0.05)),
    "status": (STATUS_DEVICE, TEMPLATES["status"] % (3.9, "1.4.2", 17, rfc3339(T), 86400)),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_the_simulators_good_payloads_decode(decoder: Decoder, kind: str) -> None:
    device, body = GOOD[kind]
    [reading] = decoder.decode(f"gw/v1/{kind}/{device}", body.encode(), NOW)
    assert reading.seq == 17


@pytest.mark.parametrize("kind", sorted(GOOD))
@pytest.mark.parametrize("cls", sorted(MALFORMED_CLASSES))
def test_each_fault_class_gets_its_expected_reason(decoder: Decoder, cls: str, kind: str) -> None:
    device, body = GOOD[kind]
    for seed in range(4):  # the faults draw cut points and target kinds at random
        topic, payload = malformed(cls, kind, device, body, T, rfc3339, np.random.default_rng(seed))
        with pytest.raises(ContractError) as info:
            decoder.decode(topic, payload, NOW)
        assert info.value.reason == MALFORMED_CLASSES[cls], (seed, info.value.detail)
