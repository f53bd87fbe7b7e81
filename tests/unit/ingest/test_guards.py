"""Duplicate suppression and the per-device token bucket, alone and through the decoder."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import timedelta

import pytest

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError
from ingest.decode import Decoder
from ingest.guards import DeviceGuards
from ingest.identity import identity

from .conftest import NOW, STATUS, WATER, js

TS = "2026-11-23T07:59:00Z"


def water(seq: int | None, ts: str | None = None, level: float = 1.0) -> bytes:
    """A water reading; by default at ``TS`` plus ``seq`` seconds (distinct points)."""
    if ts is None:
        ts = TS if seq is None else f"2026-11-23T07:59:{seq:02d}Z"
    body: dict = {"ts": ts, "level_cm": level}
    if seq is not None:
        body["seq"] = seq
    return js(body)


# -- duplicates -------------------------------------------------------------------------


def test_redelivered_seq_is_a_duplicate(decoder: Decoder) -> None:
    assert decoder.decode(WATER, water(1), NOW)
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, water(1), NOW + timedelta(seconds=5))
    assert info.value.reason == DeadLetterReason.DUPLICATE
    assert decoder.stats.duplicates == 1
    assert decoder.stats.rejected == {"duplicate": 1}
    assert decoder.decode(WATER, water(2), NOW)  # the next one passes


def test_same_seq_at_a_new_time_is_a_reboot_not_a_duplicate(decoder: Decoder) -> None:
    decoder.decode(WATER, water(0), NOW)
    assert decoder.decode(WATER, water(0, ts="2026-11-23T07:59:40Z"), NOW)
    assert decoder.stats.duplicates == 0


def test_without_seq_same_values_are_duplicates_other_values_conflict(decoder: Decoder) -> None:
    decoder.decode(WATER, water(None), NOW)
    with pytest.raises(ContractError, match="duplicate"):
        decoder.decode(WATER, water(None), NOW)
    with pytest.raises(ContractError, match="conflict"):  # it would overwrite level 1.0
        decoder.decode(WATER, water(None, level=2.0), NOW)
    assert decoder.decode(WATER, water(None, ts="2026-11-23T07:59:01Z", level=2.0), NOW)


def test_dedup_is_per_device(decoder: Decoder) -> None:
    decoder.decode(WATER, water(1), NOW)
    assert decoder.decode("gw/v1/water/wl-00002", water(1), NOW)


def test_rejected_message_does_not_poison_the_window(decoder: Decoder) -> None:
    with pytest.raises(ContractError, match="schema"):
        decoder.decode(WATER, js({"ts": TS, "level_cm": "1", "seq": 5}), NOW)
    assert decoder.decode(WATER, water(5), NOW)


def test_pack_with_some_seen_readings_returns_only_new_ones(decoder: Decoder) -> None:
    bt = NOW.timestamp() - 120
    first = [{"bt": bt, "n": "level", "u": "cm", "v": 1}, {"n": "seq", "v": 1}]
    decoder.decode(WATER, js(first), NOW)
    both = [*first, {"n": "level", "u": "cm", "v": 2, "t": 60}, {"n": "seq", "v": 2, "t": 60}]
    [fresh] = decoder.decode(WATER, js(both), NOW)
    assert (fresh.seq, fresh.level_cm) == (2, 2)
    assert decoder.stats.duplicates == 1


def test_relative_time_packs_dedup_by_seq_only(decoder: Decoder) -> None:
    pack = js([{"n": "level", "u": "cm", "v": 1}, {"n": "seq", "v": 9}])
    decoder.decode(WATER, pack, NOW)
    with pytest.raises(ContractError, match="duplicate"):
        decoder.decode(WATER, pack, NOW + timedelta(seconds=3))  # redelivered later
    no_seq = js([{"n": "level", "u": "cm", "v": 1}])
    decoder.decode(WATER, no_seq, NOW)
    assert decoder.decode(WATER, no_seq, NOW + timedelta(seconds=60))  # a genuine repeat
    assert decoder.stats.guards.not_deduplicable == 2


C = bytes(8)  # one field of content


def test_window_is_bounded_per_device() -> None:
    guards = DeviceGuards(window=3)
    for ms in range(5):
        assert guards.check("d", identity(None, ms), C) is None
    assert guards.check("d", identity(None, 4), C) == b""  # a duplicate
    assert guards.check("d", identity(None, 0), C) is None  # forgotten: outside the window
    state = guards._devices["d"]
    assert (len(state.ring), len(state.values)) == (3 * 8, 3 * len(C))
    assert guards.stats.duplicates == 1


def test_keys_only_match_whole_slots() -> None:
    guards = DeviceGuards(window=2)
    a = int.from_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08", "little", signed=True)
    b = int.from_bytes(b"\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", "little", signed=True)
    c = int.from_bytes(b"\x11\x12\x13\x14\x15\x16\x17\x18", "little", signed=True)
    b_bytes = b.to_bytes(8, "little", signed=True)
    assert guards.check("d", a, b_bytes) is None  # b's bytes now sit in a's content
    assert guards.check("d", b, C) is None  # ...which is not b's identity
    straddling = int.from_bytes(b"\x05\x06\x07\x08\x09\x0a\x0b\x0c", "little", signed=True)
    assert guards.check("d", straddling, C) is None  # its bytes run across the a|b boundary
    assert guards.check("d", c, C) is None
    assert guards.check("d", c, C) == b""


def test_same_identity_other_content_is_a_conflict() -> None:
    guards = DeviceGuards()
    one, two = struct.pack("<d", 1.0), struct.pack("<d", 2.0)
    assert guards.check("d", identity(None, 5), one) is None
    assert guards.check("d", identity(None, 5), one) == b""  # a duplicate
    assert guards.check("d", identity(None, 5), two) == one  # a conflict: the earlier content
    assert guards.check("d", identity(None, 5), two, lambda a, b: True) == b""  # "same"
    assert guards.check("e", identity(None, 5), two) is None  # another device
    assert (guards.stats.duplicates, guards.stats.conflicts) == (2, 1)


@pytest.mark.parametrize("window", [1, 64, 4096])
def test_window_sizes(window: int) -> None:
    guards = DeviceGuards(window=window)
    keys = [identity(s, 1_795_420_800_000 + s) for s in range(window + 1)]
    assert all(guards.check("d", k, C) is None for k in keys)
    assert guards.check("d", keys[-1], C) == b""
    assert guards.check("d", keys[0], C) is None  # the oldest fell out of the window


def test_device_count_is_bounded_lru() -> None:
    guards = DeviceGuards(max_devices=2)
    guards.admit("a", NOW)
    guards.admit("b", NOW)
    guards.admit("a", NOW)  # a is now the most recent
    guards.admit("c", NOW)  # evicts b
    assert list(guards._devices) == ["a", "c"]
    assert guards.stats.evicted_devices == 1


# -- rate limit -------------------------------------------------------------------------


def test_token_bucket_allows_burst_then_refills_from_arrival_times() -> None:
    guards = DeviceGuards(rate_per_s=0.5, burst=3)
    assert [guards.admit("d", NOW) for _ in range(4)] == [True, True, True, False]
    assert not guards.admit("d", NOW + timedelta(seconds=1))  # half a token
    assert guards.admit("d", NOW + timedelta(seconds=2))  # one token by now
    assert not guards.admit("d", NOW + timedelta(seconds=2))
    assert guards.admit("d", NOW + timedelta(hours=1))  # refill is capped at burst...
    assert [guards.admit("d", NOW + timedelta(hours=1)) for _ in range(3)] == [True, True, False]
    assert guards.stats.rate_limited == 4


def test_clock_stepping_back_adds_no_tokens() -> None:
    guards = DeviceGuards(rate_per_s=1, burst=1)
    assert guards.admit("d", NOW)
    assert not guards.admit("d", NOW - timedelta(hours=1))
    assert not guards.admit("d", NOW)


def test_decoder_rate_limits_per_device(make_decoder: Callable[..., Decoder]) -> None:
    decoder = make_decoder(rate_per_s=1.0, burst=2)
    decoder.decode(WATER, water(1), NOW)
    decoder.decode(WATER, water(2), NOW)
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, water(3), NOW)
    assert info.value.reason == DeadLetterReason.RATE_LIMITED
    # Another device has its own bucket.
    assert decoder.decode("gw/v1/water/wl-00002", water(3), NOW)
    assert decoder.decode(STATUS, js({"ts": TS, "battery_v": 3.6}), NOW)
    # Malformed messages spend tokens too: a flood of junk is refused before parsing.
    with pytest.raises(ContractError, match="rate_limited"):
        decoder.decode(WATER, b"junk", NOW)
    assert decoder.decode(WATER, water(3), NOW + timedelta(seconds=1))
    assert decoder.stats.guards.rate_limited == 2


def test_packs_are_charged_per_reading(make_decoder: Callable[..., Decoder]) -> None:
    decoder = make_decoder(rate_per_s=1.0, burst=5)
    bt = NOW.timestamp() - 600
    pack = [{"bt": bt, "n": "level", "u": "cm", "v": 1}]
    pack += [{"n": "level", "u": "cm", "v": 1, "t": i} for i in range(1, 20)]
    assert len(decoder.decode(WATER, js(pack), NOW)) == 20  # accepted whole, in debt
    with pytest.raises(ContractError, match="rate_limited"):
        decoder.decode(WATER, water(1), NOW + timedelta(seconds=5))
    # Debt is capped at -burst: 5 + 1 tokens of refill at 1/s, so back after 6 s.
    assert decoder.decode(WATER, water(1), NOW + timedelta(seconds=6))


def test_unknown_devices_hold_no_state(decoder: Decoder) -> None:
    for i in range(50):
        with pytest.raises(ContractError, match="unknown_device"):
            decoder.decode(f"gw/v1/water/x-{i}", water(1), NOW)
    assert len(decoder.guards) == 0


def test_bad_guard_parameters_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="window"):
        DeviceGuards(window=0)
    with pytest.raises(ValueError, match="rate_per_s"):
        DeviceGuards(rate_per_s=0)
