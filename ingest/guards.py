"""Per-device guards: duplicate suppression and a token-bucket rate limit.

State is bounded: at most ``max_devices`` devices are remembered (least recently seen
evicted first) and each remembers at most its ``window`` most recent readings. The clock is
injected: every call passes the message's ``received_at``; nothing here reads the time.

Rate. One token per message, taken before the payload is parsed (junk floods cost no
parsing); a message that yields ``n`` readings is then charged ``n - 1`` more, so a SenML
pack cannot multiply a device's reading rate.

Duplicates and conflicts. Each device remembers its last ``window`` readings as
``(identity, content)`` slots (``ingest.identity``): the identity is the InfluxDB point
(device + event time in ms) when the time came from the payload, else the device's
``seq``; the content is the reading's packed measured values. A reading whose identity
is remembered is a *duplicate* when its content is the same (a redelivery, or the same
values sent as JSON and as SenML) and a *conflict* when it differs (storing it would
overwrite the earlier reading). Readings identified by ``seq`` alone (relative SenML
times) are never conflicts: their times come from the arrival, so they overwrite
nothing, and a repeated seq is a duplicate as before. A device that rebooted and
restarted its ``seq`` at 0 sends new times, so it is neither. Without an absolute time
or a seq a reading cannot be told apart from a genuine repeat and is not deduplicated
(``GuardStats.not_deduplicable`` counts those).

The bound, honestly: a device's memory is its last ``window`` readings (64 by default,
an hour of a sensor reporting every minute), and at most ``max_devices`` devices are
remembered. A reading whose point fell out of the window (or whose device was evicted,
or which arrives after a bridge restart, or at another bridge sharing the subscription)
is taken as new: a duplicate is then stored again (harmless, InfluxDB overwrites the
point with the same values) and a conflicting one overwrites the earlier value without
a dead letter. ``GuardStats.evicted_devices`` counts evictions.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
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
    conflicts: int = 0  # readings refused: same point as an earlier one, other values
    rate_limited: int = 0  # messages refused by the token bucket
    not_deduplicable: int = 0  # readings with neither seq nor absolute time
    evicted_devices: int = 0  # device states dropped by the LRU bound


class _DeviceState:
    """Token bucket plus a ring of the last ``window`` readings.

    Identities (8 bytes each) sit in one ``bytearray`` searched with ``bytearray.find`` at
    C speed (512 bytes at window 64); each slot's packed content (8 bytes per field: 24
    for a water sensor, 64 for a camera) sits at the same index of a parallel
    ``bytearray``, allocated at the device's first reading and sized by its content:
    ≈ 2 kB per water sensor, ≈ 4.6 kB per camera at window 64.
    """

    __slots__ = ("last_s", "pos", "ring", "size", "tokens", "values")

    def __init__(self, tokens: float, last_s: float) -> None:
        self.tokens = tokens
        self.last_s = last_s
        self.ring = bytearray()
        self.values = bytearray()
        self.size = -1  # content bytes per slot; -1 until the first reading
        self.pos = 0

    def find(self, ident: bytes) -> int:
        """Slot index holding ``ident``, or -1."""
        ring = self.ring
        i = ring.find(ident)
        while i >= 0:
            if i % 8 == 0:  # a match straddling two slots is not a match
                return i // 8
            i = ring.find(ident, i + 1)
        return -1

    def remember(self, ident: bytes, content: bytes, window: int) -> None:
        pos, size = self.pos, self.size
        self.ring[pos * 8 : pos * 8 + 8] = ident
        self.values[pos * size : pos * size + size] = content
        self.pos = (pos + 1) % window


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
            state = _DeviceState(self.burst, now_s)
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

    def check(
        self,
        device_id: str,
        key: int | None,
        content: bytes,
        same: Callable[[bytes, bytes], bool] | None = None,
    ) -> bytes | None:
        """None if the reading ``key`` is new (it is then remembered with ``content``);
        ``b""`` if it is a duplicate (the remembered content is ``content``, or ``same``
        says it says the same); else a conflict, and the remembered content is returned.
        Counted in ``stats.duplicates`` / ``stats.conflicts``.

        ``key`` None means the reading cannot be deduplicated: always new, counted.
        """
        if key is None:
            self.stats.not_deduplicable += 1
            return None
        state = self._devices.get(device_id)
        if state is None:  # admit() was not called first (e.g. guards used alone)
            state = self._state(device_id, 0.0)
        size = len(content)
        if state.size != size:  # first reading, or the device changed kind: start afresh
            state.ring = bytearray(_EMPTY * self.window)
            state.values = bytearray(self.window * size)
            state.size, state.pos = size, 0
        packed = key.to_bytes(8, "little", signed=True)
        at = state.find(packed)
        if at < 0:
            state.remember(packed, content, self.window)
            return None
        earlier = bytes(state.values[at * size : at * size + size])
        if earlier == content or (same is not None and same(earlier, content)):
            self.stats.duplicates += 1
            return b""
        self.stats.conflicts += 1
        return earlier
