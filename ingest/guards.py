"""Per-device guards: duplicate suppression and a token-bucket rate limit.

State is bounded: at most ``max_devices`` devices are remembered (least recently seen
evicted first) and each remembers at most ``window`` recent duplicate keys. The clock is
injected: every call passes the message's ``received_at``; nothing here reads the time.

Rate. One token per message, taken before the payload is parsed (junk floods cost no
parsing); a message that yields ``n`` readings is then charged ``n - 1`` more, so a SenML
pack cannot multiply a device's reading rate.

Duplicate keys. A reading with a device ``seq`` is keyed by ``(seq, event time)`` when
the time came from the payload, so a redelivered or retransmitted reading (same seq,
same timestamp) is dropped while a device that rebooted and restarted its ``seq`` at 0
is not. When the event time was derived from the arrival time (a SenML pack with
relative times) the key is ``seq`` alone. A reading without ``seq`` is keyed by a hash
of the payload bytes and its event time; without either an absolute time or a seq a
reading cannot be told apart from a genuine repeat and is not deduplicated
(``GuardStats.not_deduplicable`` counts those).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

DEFAULT_WINDOW = 64
DEFAULT_MAX_DEVICES = 65_536
DEFAULT_RATE_PER_S = 1.0
DEFAULT_BURST = 30.0
# CPython's hash() never returns -1, so its 8 bytes mark an empty slot.
_EMPTY = (-1).to_bytes(8, "little", signed=True)


@dataclass
class GuardStats:
    """Plain counters the bridge reads and exports (monotonic, never reset here)."""

    duplicates: int = 0  # readings dropped as duplicates
    rate_limited: int = 0  # messages refused by the token bucket
    not_deduplicable: int = 0  # readings with neither seq nor absolute time
    evicted_devices: int = 0  # device states dropped by the LRU bound


class _DeviceState:
    """Token bucket plus a ring of the last ``window`` duplicate keys.

    The ring is one ``bytearray`` of 8-byte keys (≈ 0.6 kB per device at window 64,
    against ≈ 5 kB for a dict), searched with ``bytearray.find`` at C speed.
    """

    __slots__ = ("last_s", "pos", "ring", "tokens")

    def __init__(self, tokens: float, last_s: float, window: int) -> None:
        self.tokens = tokens
        self.last_s = last_s
        self.ring = bytearray(_EMPTY * window)
        self.pos = 0

    def seen(self, key: bytes) -> bool:
        ring = self.ring
        i = ring.find(key)
        while i >= 0:
            if i % 8 == 0:  # a match straddling two slots is not a match
                return True
            i = ring.find(key, i + 1)
        return False

    def remember(self, key: bytes, window: int) -> None:
        at = self.pos * 8
        self.ring[at : at + 8] = key
        self.pos = (self.pos + 1) % window


class DeviceGuards:
    """Rate limit and duplicate window for every device, in bounded memory."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        max_devices: int = DEFAULT_MAX_DEVICES,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
    ) -> None:
        if window < 1 or max_devices < 1 or rate_per_s <= 0 or burst < 1:
            raise ValueError("window, max_devices, burst must be >= 1 and rate_per_s > 0")
        self.window = window
        self.max_devices = max_devices
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.stats = GuardStats()
        self._devices: OrderedDict[str, _DeviceState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._devices)

    def _state(self, device_id: str, now_s: float) -> _DeviceState:
        state = self._devices.get(device_id)
        if state is None:
            state = _DeviceState(self.burst, now_s, self.window)
            self._devices[device_id] = state
            if len(self._devices) > self.max_devices:
                self._devices.popitem(last=False)
                self.stats.evicted_devices += 1
        else:
            self._devices.move_to_end(device_id)
        return state

    def admit(self, device_id: str, received_at: datetime) -> bool:
        """Take one token from the device's bucket; False (and counted) when empty."""
        now_s = received_at.timestamp()
        state = self._state(device_id, now_s)
        elapsed = now_s - state.last_s
        if elapsed > 0:  # a clock that steps back adds nothing
            state.tokens = min(self.burst, state.tokens + elapsed * self.rate_per_s)
            state.last_s = now_s
        if state.tokens >= 1.0:
            state.tokens -= 1.0
            return True
        self.stats.rate_limited += 1
        return False

    def charge(self, device_id: str, extra: float) -> None:
        """Take ``extra`` more tokens after the fact (a pack of several readings).

        The bucket may go into debt, down to ``-burst``: the pack itself is accepted (a
        device forwarding its backlog is not refused), the device's next messages wait.
        """
        state = self._devices.get(device_id)
        if state is not None and extra > 0:
            state.tokens = max(-self.burst, state.tokens - extra)

    def is_new(self, device_id: str, key: int | None) -> bool:
        """True if ``key`` was not seen recently for this device (and remember it).

        ``key`` None means the reading cannot be deduplicated: always new, counted.
        Duplicates are counted in ``stats.duplicates``.
        """
        if key is None:
            self.stats.not_deduplicable += 1
            return True
        state = self._devices.get(device_id)
        if state is None:  # admit() was not called first (e.g. guards used alone)
            state = self._state(device_id, 0.0)
        packed = key.to_bytes(8, "little", signed=True)
        if state.seen(packed):
            self.stats.duplicates += 1
            return False
        state.remember(packed, self.window)
        return True


def dedup_key(seq: int | None, ts_ms: int | None, payload: bytes) -> int | None:
    """The duplicate key of one reading (see the module docstring)."""
    if seq is not None:
        return hash((seq, ts_ms))  # 64-bit, never -1 (the empty-slot mark) in CPython
    if ts_ms is not None:
        return hash((payload, ts_ms))
    return None
